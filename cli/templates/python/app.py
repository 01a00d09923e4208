"""{{name}}: a lattice actor, built with componentize-py.

For each message it increments a counter in the key-value store linked as `default` and replies with the new
value. The counter's key is the message payload (trimmed), or `counter` when it is empty. When the actor has a
messaging link named `events`, it also publishes `<key> <value>` on the subject `{{name}}.counted`.

It never names a backend: links decide at deploy time, e.g. `--link keyvalue:default=inmemory` on a laptop,
Redis in production.
"""

from componentize_py_types import Err

from wit_world import exports
from wit_world.imports import atomics, logging, producer, request_reply, store, types

STORE = "default"  # the key-value link this actor opens
EVENTS = "events"  # the messaging link it publishes on, when it has one


class IncomingHandler(exports.IncomingHandler):
    def handle(self, message: types.Message) -> None:
        key = message.data().decode("utf-8", errors="replace").strip() or "counter"
        try:
            bucket = store.open(STORE)
            value = atomics.increment(bucket, key, 1)
        except Err as e:
            raise Err(types.Error_Other(f"increment `{key}`: {e.value}"))
        logging.log(logging.Level.INFO, "{{name}}", f"{key} = {value}")

        # Publishing is optional: without an `events` link, connecting is refused and the actor only replies.
        try:
            client = types.Client.connect(EVENTS)
        except Err:
            client = None
        if client is not None:
            producer.send(client, "{{name}}.counted", types.Message(f"{key} {value}".encode()))
        request_reply.reply(message, types.Message(str(value).encode()))

// wasi:http/incoming-handler@0.2.12 in plain JS (componentize-js, default features).
// Answers every request: 200, content-type: text/plain, "hello from js <path-with-query>".
import { Fields, OutgoingBody, OutgoingResponse, ResponseOutparam } from 'wasi:http/types@0.2.12';

const enc = new TextEncoder();

export const incomingHandler = {
  handle(request, responseOut) {
    const response = new OutgoingResponse(Fields.fromList([['content-type', enc.encode('text/plain')]]));
    response.setStatusCode(200);
    const body = response.body();
    ResponseOutparam.set(responseOut, { tag: 'ok', val: response });
    const stream = body.write();
    stream.blockingWriteAndFlush(enc.encode(`hello from js ${request.pathWithQuery() ?? '/'}`));
    stream[Symbol.dispose]();
    OutgoingBody.finish(body, undefined);
  },
};

//! `store.open` of a name the actor has no link for: `access-denied` for the actor as always, a warning that
//! names the link for whoever runs the host (once per actor and name), and the link in the error of an
//! invocation that then fails.

use std::io::Write;
use std::sync::{Arc, Mutex};

use lattice_host::{ActorConfig, IncomingMessage};
use lattice_test_actors::KV_PROBE;

use crate::{component, runtime};

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

// A current-thread runtime: the invocations run on this thread, under this thread's subscriber.
#[tokio::test]
async fn an_unlinked_store_is_warned_once_and_named_in_the_failure() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = runtime();
    let actor = rt.load("probe", component(KV_PROBE), ActorConfig::default()).await.expect("load kv-probe");

    // The actor handles the refusal itself: it still gets access-denied, and the host warns once.
    for _ in 0..3 {
        let reply = actor.invoke(IncomingMessage::new("unlinked")).await.result.expect("invocation").expect("reply");
        assert_eq!(reply.data, b"access-denied");
    }
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN") && l.contains("store.open")).collect();
    assert_eq!(warnings.len(), 1, "one warning per actor and name: {text}");
    assert!(
        warnings[0].contains("the actor has no keyvalue link `not-linked`")
            && warnings[0].contains("`lattice link put probe keyvalue not-linked --provider <provider>`")
            && warnings[0].contains("`--link keyvalue:not-linked=<provider>`"),
        "{text}"
    );

    // An invocation that fails because of it names the link in its error (what `lattice call` prints).
    let error = actor.invoke(IncomingMessage::new("batch")).await.result.expect_err("no `default` link");
    let error = error.to_string();
    assert!(error.starts_with("actor returned an error: open: "), "{error}");
    assert!(
        error.contains(
            "its store.open(\"default\") was refused: no keyvalue link `default`; grant one with `lattice link put \
             probe keyvalue default --provider <provider>` or `--link keyvalue:default=<provider>`"
        ),
        "{error}"
    );
    assert_eq!(logs.text().lines().filter(|l| l.contains("WARN") && l.contains("store.open")).count(), 2);

    // With the link, the same invocation succeeds and nothing more is logged.
    let linked = ActorConfig { links: vec!["keyvalue:default=inmemory".parse().expect("link")], ..Default::default() };
    let actor = rt.load("probe-linked", component(KV_PROBE), linked).await.expect("load kv-probe");
    actor.invoke(IncomingMessage::new("batch")).await.result.expect("linked: the batch works");
    assert_eq!(logs.text().lines().filter(|l| l.contains("WARN") && l.contains("store.open")).count(), 2);
}

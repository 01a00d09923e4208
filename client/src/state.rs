//! The lattice's JetStream key-value buckets as the client and hosts open them, and the route records the state
//! bucket holds next to links.

use async_nats::jetstream::{self, kv};
use lattice_core::http::Route;
use lattice_core::subject::Subjects;
use lattice_core::wire::LinkRecord;

/// Opens the key-value bucket `config` describes, creating it (replicated as the servers allow) when it does
/// not exist yet. The error is the server's message.
pub async fn open_bucket(js: &jetstream::Context, mut config: kv::Config) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    config.num_replicas = lattice_messaging_nats::replicas(&js.client());
    let bucket = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another host (or client) may have created it in between.
        Err(error) => js.get_key_value(&bucket).await.map_err(|_| error.to_string()),
    }
}

/// Opens (creating if needed) the lattice's state bucket: links, routes, apps and their status.
pub async fn state_bucket(js: &jetstream::Context, subjects: &Subjects) -> Result<kv::Store, String> {
    let config = kv::Config {
        bucket: subjects.state_bucket(),
        description: "lattice state: links, apps and their status".into(),
        history: 5,
        ..Default::default()
    };
    open_bucket(js, config).await
}

/// The text a route is stored and signed as in [`LinkRecord::link`] (distinct from every link's text, so a signed
/// link record is never a valid route record, nor the reverse).
pub(crate) fn route_record_text(route: &Route) -> String {
    format!("route:{route}")
}

/// The route a record holds, if it is a well-formed route record.
pub fn route_of_record(record: &LinkRecord) -> Option<Route> {
    record.link.strip_prefix("route:")?.parse().ok()
}

//! HTTP as the lattice forwards it: routes (records and flags), route matching on a request's authority and path
//! (what any client sends an ingress), and the outgoing policy's URL check (what a guest asks for). The
//! forwarded request and response themselves are wire types (`wire.rs`).

use lattice_core::http::{OutgoingPolicy, Route, RouteTable};
use lattice_core::link::LinkSpec;
use lattice_core::subject::Name;
use proptest::prelude::*;

use crate::{config, mutated_text, within_bound};

const ROUTES: [&str; 4] = ["api.test/v1", "/", "*.example.com/static", "shop.test/a/b"];
const URLS: [&str; 4] = ["http://a.example.com/x", "https://10.0.0.1:8443/", "http://[::1]/", "http://u@h:80/p?q#f"];

fn table() -> RouteTable {
    let routes = ROUTES.iter().map(|r| (Name::new("a").unwrap(), r.parse().unwrap())).collect();
    RouteTable::new(routes)
}

fn policy() -> OutgoingPolicy {
    let spec: LinkSpec = "http:outgoing=allow,hosts=*.example.com|10.0.0.1:8443|localhost".parse().unwrap();
    OutgoingPolicy::from_link(&spec).unwrap()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_routes_parse_or_are_refused(text in "(?s).{0,100}") {
        let _ = within_bound(text.len(), || text.parse::<Route>().map(|r| r.to_string()))?;
    }

    #[test]
    fn mutated_routes_parse_or_are_refused(text in prop::sample::select(ROUTES.to_vec()).prop_flat_map(mutated_text)) {
        let _ = within_bound(text.len(), || text.parse::<Route>().map(|r| r.to_string()))?;
    }

    #[test]
    fn any_authority_and_path_find_a_route_or_none(
        authority in prop_oneof!["(?s).{0,60}", prop::sample::select(ROUTES.to_vec()).prop_flat_map(mutated_text)],
        path in "(?s).{0,60}",
    ) {
        let table = table();
        within_bound(authority.len() + path.len(), || table.find(&authority, &path).cloned())?;
    }

    #[test]
    fn any_url_is_checked_against_the_outgoing_policy(
        url in prop_oneof!["(?s).{0,80}", prop::sample::select(URLS.to_vec()).prop_flat_map(mutated_text)]
    ) {
        let policy = policy();
        within_bound(url.len(), || policy.check(&url))?;
    }
}

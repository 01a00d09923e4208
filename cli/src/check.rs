//! Checks of a component file before it is run, inspected or uploaded, with one-line messages that name the
//! file.

use std::path::Path;

use anyhow::bail;
use lattice_core::claims::{self, ClaimsError};
use lattice_core::subject::Name;
use lattice_core::wire::HostInfo;

/// Refuses bytes that are not a WebAssembly component (a core module, a text file, an executable…), naming
/// `path` and what the bytes look like. Reads only the 8-byte preamble.
pub fn component(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let shown = path.display();
    match claims::check_preamble(bytes) {
        Ok(()) => Ok(()),
        Err(ClaimsError::NotWasm { looks_like }) => bail!("`{shown}` is not a WebAssembly component: {looks_like}"),
        Err(error) => bail!("`{shown}` is {error}"),
    }
}

/// What `lattice push` checks before uploading: `bytes` are a component, and signed with claims that are
/// intact (signed by their issuer, for this very component), unless `allow_unsigned` lets an unsigned one
/// through. Whether a host trusts the issuer is the host's decision, made when it starts the actor.
pub fn pushable(path: &Path, bytes: &[u8], allow_unsigned: bool) -> anyhow::Result<()> {
    component(path, bytes)?;
    let shown = path.display();
    let signed = match claims::inspect(bytes) {
        Ok(signed) => signed,
        Err(error) => bail!("cannot read the claims of `{shown}`: {error}"),
    };
    match signed {
        None if allow_unsigned => Ok(()),
        None => bail!(
            "`{shown}` is not signed, and hosts run only signed actors unless started with --allow-unsigned: sign \
             it with `lattice claims sign`, or push it anyway with --allow-unsigned"
        ),
        Some(signed) if !signed.signature_is_valid() => bail!(
            "the claims of `{shown}` are not validly signed by their issuer {}: sign it again",
            signed.claims.issuer
        ),
        Some(signed) if !signed.hash_matches() => {
            bail!("`{shown}` was modified after it was signed, so every host would refuse it: sign it again")
        }
        Some(_) => Ok(()),
    }
}

/// Whether a route to `actor` can work, from what `hosts` (a ping) run: refuses when the actor runs somewhere
/// and none of its hosts serves HTTP with it (requests would get 501). When it runs nowhere this cannot be
/// known: returns a warning to print instead.
pub fn route_target(actor: &Name, hosts: &[HostInfo]) -> anyhow::Result<Option<String>> {
    let running: Vec<&Name> =
        hosts.iter().filter(|host| host.actors.iter().any(|a| &a.name == actor)).map(|host| &host.id).collect();
    let serving = hosts.iter().any(|host| host.actors.iter().any(|a| &a.name == actor && a.http));
    match running.first() {
        None => Ok(Some(format!(
            "warning: actor `{actor}` runs on no host now, so whether it serves HTTP cannot be checked (it must \
             export wasi:http/incoming-handler)"
        ))),
        Some(_) if serving => Ok(None),
        Some(host) => bail!(
            "actor `{actor}` does not serve HTTP: it runs on host {host} but does not export \
             wasi:http/incoming-handler, so every request would get 501 (build it for the world \
             lattice:actor/http-actor, or route to another actor)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_on_one_line() {
        let path = Path::new("garbage.bin");
        let error = component(path, b"hello, world").map_err(|e| format!("{e:#}"));
        assert_eq!(error, Err("`garbage.bin` is not a WebAssembly component: it is a text file".to_owned()));
        let error = component(path, b"\0asm\x01\0\0\0").map_err(|e| format!("{e:#}"));
        assert!(
            error.as_ref().is_err_and(|e| e.starts_with("`garbage.bin` is a core WebAssembly module, not a component")),
            "{error:?}"
        );
        let unsigned = b"\0asm\x0d\x00\x01\x00";
        assert!(component(path, unsigned).is_ok());
        let error = pushable(path, unsigned, false).map_err(|e| format!("{e:#}"));
        assert!(error.as_ref().is_err_and(|e| e.contains("is not signed") && !e.contains('\n')), "{error:?}");
        assert!(pushable(path, unsigned, true).is_ok());
    }
}

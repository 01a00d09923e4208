//! Admission by signed claims: the host's [`Policy`], the capability check of a component's imports, and the
//! capability check of an actor's links.
//!
//! [`Runtime::load`](crate::Runtime::load) runs these before anything is compiled, in this order: claims
//! verification ([`claims::verify`]: one section, decodes, signature, hash, time window, trusted issuer), then
//! the imports ([`claims::check_imports`]), then the links ([`check_links`]). An unsigned actor that the policy
//! allows has nothing checked and is logged with a warning on every load.

use std::time::{SystemTime, UNIX_EPOCH};

use lattice_core::claims::{self, Claims, Policy, Rejection};
use lattice_core::link::LinkSpec;

use crate::links::LinkError;

/// Verifies `bytes`' claims against `policy` now and checks the component's imports against them.
///
/// Returns the claims, or `None` for an unsigned component the policy allows.
pub(crate) fn admit(actor: &str, bytes: &[u8], policy: &Policy) -> Result<Option<Claims>, Rejection> {
    let verified = claims::verify(bytes, policy, now_unix());
    let claims = match verified {
        Ok(verified) => verified.claims,
        Err(rejection) => return Err(refused(actor, rejection)),
    };
    let Some(claims) = claims else {
        tracing::warn!(
            actor,
            "loading an unsigned actor: no issuer, hash or capability is checked (unsigned actors are allowed: \
             development only)"
        );
        return Ok(None);
    };
    let imports = claims::component_imports(bytes).map_err(|e| refused(actor, Rejection::InvalidComponent(e)))?;
    claims::check_imports(&claims, &imports).map_err(|e| refused(actor, e))?;
    tracing::debug!(actor, claims = %claims, "claims verified");
    Ok(Some(claims))
}

/// Refuses the first link whose interface `claims` do not allow (`None`: unsigned, nothing to check).
pub(crate) fn check_links(actor: &str, claims: Option<&Claims>, specs: &[LinkSpec]) -> Result<(), LinkError> {
    let Some(claims) = claims else {
        return Ok(());
    };
    match specs.iter().find(|spec| !claims.allows(spec.interface.capability())) {
        Some(spec) => {
            let error = LinkError::NotAllowed { interface: spec.interface, actor: actor.to_owned() };
            tracing::info!(actor, link = %spec, %error, "link refused");
            Err(error)
        }
        None => Ok(()),
    }
}

/// Logs a rejection (at info: the caller reports it as an error) and passes it on.
fn refused(actor: &str, rejection: Rejection) -> Rejection {
    tracing::info!(actor, reason = %rejection, "actor refused");
    rejection
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

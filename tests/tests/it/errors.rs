//! What callers are told when nobody can answer.

use anyhow::{Result, bail};
use lattice_host::lattice::ClientError;

use crate::{TestLattice, call, name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_verbs_nobody_can_answer_say_so() -> Result<()> {
    let lattice = TestLattice::start("lonely").await?;
    let _host = lattice.host("host-1", &[]).await?;
    let control = lattice.client().await?;

    match call(&control, &name("ghost"), "boo").await {
        Err(ClientError::NoResponders(message)) => {
            assert_eq!(
                message,
                "no host in lattice `lonely` runs actor `ghost`: start it with `lattice start` or `lattice apply`"
            );
        }
        other => bail!("calling an actor nobody runs: expected NoResponders, got {other:?}"),
    }
    match control.inventory(&name("nobody")).await {
        Err(ClientError::NoResponders(message)) => {
            assert!(message.contains("nobody"), "{message}");
            assert!(message.contains("lonely"), "{message}");
        }
        other => {
            bail!("inventory of a host that does not exist: expected NoResponders, got {other:?}")
        }
    }
    Ok(())
}

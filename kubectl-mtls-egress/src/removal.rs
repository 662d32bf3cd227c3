//! The deletions of one `disable` (or `disconnect`) run, all or nothing: the server checks every
//! deletion first (`dryRun=All`), and only when it accepted each one are they sent, so one
//! refused deletion (RBAC, an admission webhook) leaves every object in place. Both rounds keep
//! at most a given number of requests in flight over the client's connection pool.

use futures::{StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::core::ApiResource;

use shared::cluster::{ClusterError, delete_object};

/// One object to delete.
#[derive(Debug, Clone)]
pub(crate) struct Removal {
    /// Its kind.
    pub resource: ApiResource,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Sends one deletion (`dry_run`: its server check) per removal, at most `limit` at a time;
/// returns the kubectl-style line of each, in order (`None`: it was gone already). The first
/// refusal stops the round.
async fn round(
    client: &Client,
    removals: &[Removal],
    dry_run: bool,
    limit: usize,
) -> Result<Vec<Option<String>>, ClusterError> {
    stream::iter(removals.iter().map(|r| {
        delete_object(
            client,
            &r.resource,
            Some(r.namespace.as_str()),
            &r.name,
            dry_run,
        )
    }))
    .buffered(limit.max(1))
    .try_collect()
    .await
}

/// Checks every deletion of `removals` on the server (nothing is deleted), at most `limit`
/// requests in flight: the lines a `--dry-run=server` prints.
pub(crate) async fn check(
    client: &Client,
    removals: &[Removal],
    limit: usize,
) -> Result<Vec<Option<String>>, ClusterError> {
    round(client, removals, true, limit).await
}

/// Deletes `removals` after [`check`] accepted them (the caller sends the check first, alongside
/// anything else that must pass before the first deletion).
pub(crate) async fn delete_checked(
    client: &Client,
    removals: &[Removal],
    limit: usize,
) -> Result<Vec<Option<String>>, ClusterError> {
    round(client, removals, false, limit).await
}

//! The read behind "never clobber a partner's credential": whether a credential Secret a plan
//! would write already exists holding another certificate. Plugins decide what to do with the
//! answer (refuse, or go ahead with `--force`); the comparison itself is
//! [`crate::manifest::secret::credential_clash`].

use k8s_openapi::api::core::v1::Secret;
use kube::Client;

use super::{ClusterError, get_opt};
use crate::manifest::secret::{CredentialClash, credential_clash};

/// Reads the Secret `planned` would be written over (same namespace and name) and compares the
/// certificates: `Some` when it exists and holds another one (or none that parses).
pub async fn existing_credential_clash(
    client: &Client,
    planned: &Secret,
) -> Result<Option<CredentialClash>, ClusterError> {
    let (Some(namespace), Some(name)) = (&planned.metadata.namespace, &planned.metadata.name)
    else {
        return Ok(None);
    };
    Ok(get_opt::<Secret>(client, namespace, name)
        .await?
        .and_then(|existing| credential_clash(&existing, planned)))
}

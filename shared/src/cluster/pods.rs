//! Pods as a probe uses them: create, read, run a command in a container (exec over a
//! websocket), read a container's recent logs, delete — each with the same one-line errors as
//! every other request.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams};
use kube::core::ApiResource;
use tokio::io::AsyncReadExt as _;

use super::error::{ClusterError, Operation};

/// What a command run in a container printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// The exit code; `None` when the API server reported no status (the stream broke).
    pub exit_code: Option<i32>,
    /// The API server's message when the command could not run at all (e.g. no such executable).
    pub failure: Option<String>,
}

fn operation(verb: &str, namespace: &str, name: Option<&str>, sub: Option<&str>) -> Operation {
    let mut op = Operation::new(verb, &ApiResource::erase::<Pod>(&()), Some(namespace), name);
    if let Some(sub) = sub {
        op.resource = format!("pods/{sub}");
    }
    op
}

/// Creates `pod` in `namespace`.
pub async fn create_pod(client: &Client, namespace: &str, pod: &Pod) -> Result<Pod, ClusterError> {
    let name = pod.metadata.name.as_deref();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), pod)
        .await
        .map_err(|e| ClusterError::from_kube(e, &operation("create", namespace, name, None)))
}

/// Deletes a pod right away (grace period 0); a pod that is already gone is not an error.
pub async fn delete_pod(client: &Client, namespace: &str, name: &str) -> Result<(), ClusterError> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    match Api::<Pod>::namespaced(client.clone(), namespace)
        .delete(name, &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::from_kube(
            e,
            &operation("delete", namespace, Some(name), None),
        )),
    }
}

/// Runs `command` (no shell: argv as given) in `container` of pod `name` and collects its output.
/// A command that exits non-zero is not an error here; the caller judges [`ExecOutput`].
pub async fn exec(
    client: &Client,
    namespace: &str,
    name: &str,
    container: &str,
    command: &[String],
) -> Result<ExecOutput, ClusterError> {
    let op = || operation("create", namespace, Some(name), Some("exec"));
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut process = Api::<Pod>::namespaced(client.clone(), namespace)
        .exec(name, command.to_vec(), &params)
        .await
        .map_err(|e| ClusterError::from_kube(e, &op()))?;
    let mut stdout_stream = process.stdout();
    let mut stderr_stream = process.stderr();
    let status = process.take_status();
    let read_out = async {
        let mut buf = Vec::new();
        if let Some(s) = stdout_stream.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let read_err = async {
        let mut buf = Vec::new();
        if let Some(s) = stderr_stream.as_mut() {
            let _ = s.read_to_end(&mut buf).await;
        }
        buf
    };
    let (stdout, stderr) = tokio::join!(read_out, read_err);
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    // The streams are read to the end: the process is over; a join error only repeats that.
    let _ = process.join().await;
    let (exit_code, failure) = exit_status(status.as_ref());
    Ok(ExecOutput {
        stdout,
        stderr,
        exit_code,
        failure,
    })
}

/// The exit code in an exec's final `Status` (channel 3): `Success` is 0, `NonZeroExitCode`
/// carries the code in a cause with reason `ExitCode`; any other failure (e.g. the executable
/// does not exist) has no exit code, only its message.
pub fn exit_status(status: Option<&Status>) -> (Option<i32>, Option<String>) {
    let Some(status) = status else {
        return (None, None);
    };
    if status.status.as_deref() == Some("Success") {
        return (Some(0), None);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref()?.parse().ok())
        })
        .filter(|_| status.reason.as_deref() == Some("NonZeroExitCode"));
    match code {
        Some(code) => (Some(code), None),
        None => (
            None,
            Some(
                status
                    .message
                    .clone()
                    .unwrap_or_else(|| "no message".into()),
            ),
        ),
    }
}

/// The last `since_seconds` of `container`'s log in pod `name`.
pub async fn logs_since(
    client: &Client,
    namespace: &str,
    name: &str,
    container: &str,
    since_seconds: i64,
) -> Result<String, ClusterError> {
    let params = LogParams {
        container: Some(container.to_string()),
        since_seconds: Some(since_seconds),
        ..LogParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), namespace)
        .logs(name, &params)
        .await
        .map_err(|e| {
            ClusterError::from_kube(e, &operation("get", namespace, Some(name), Some("log")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn exit_codes_from_the_status_channel() {
        assert_eq!(
            exit_status(Some(&status(serde_json::json!({"status": "Success"})))),
            (Some(0), None)
        );
        let non_zero = status(serde_json::json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code: error executing command [curl], exit code 7",
            "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}
        }));
        assert_eq!(exit_status(Some(&non_zero)), (Some(7), None));
        let not_found = status(serde_json::json!({
            "status": "Failure", "reason": "InternalError",
            "message": "exec: \"curl\": executable file not found in $PATH"
        }));
        assert_eq!(
            exit_status(Some(&not_found)),
            (
                None,
                Some("exec: \"curl\": executable file not found in $PATH".into())
            )
        );
        assert_eq!(exit_status(None), (None, None));
    }
}

//! The probe pods `check` runs, as pure functions: their spec, and what a pod's status says about
//! whether a command can run in it yet.
//!
//! A probe pod is built to be harmless where it runs: it only sleeps until we exec into it, has
//! no service-account token, runs as a non-root user with every capability dropped (it passes the
//! `restricted` Pod Security level, the sidecar aside), and removes itself after
//! `ACTIVE_DEADLINE_SECONDS` even if we are killed before we can delete it. It may carry the
//! labels of the lockdown policy's pod selector (so the policy covers it), which could also make a
//! Service select it; so its container is never Ready (a readiness probe that only runs after the
//! deadline), and no Service ever sends it traffic. Exec needs a running container, not a ready one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerStatus, ExecAction, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use shared::manifest::{COMPONENT_LABEL, MANAGED_BY_LABEL, MANAGER};

/// The image probe pods run by default: curl, pinned to a release.
pub const DEFAULT_IMAGE: &str = "curlimages/curl:8.11.1";
/// The container we exec into in our own probe pods.
pub const CONTAINER: &str = "probe";
/// The Istio sidecar's container name (a regular container, or a native sidecar init container).
pub(crate) const SIDECAR: &str = "istio-proxy";
/// The pod label Istio's injector honours per pod.
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";
/// The label that ties probe pods to one run of `check`.
pub const RUN_LABEL: &str = "kubectl-mtls/probe-run";
/// Our component label value for probe pods.
pub const COMPONENT: &str = "probe";
/// After this many seconds the kubelet stops a probe pod that is still there.
pub(crate) const ACTIVE_DEADLINE_SECONDS: i64 = 900;

/// What a probe pod is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePod {
    /// The pod name.
    pub name: String,
    /// The namespace it runs in.
    pub namespace: String,
    /// The container image (must have `curl` and `sleep`).
    pub image: String,
    /// Whether Istio should inject a sidecar.
    pub injected: bool,
    /// The run it belongs to (label [`RUN_LABEL`]).
    pub run_id: String,
    /// Labels to add so that policies select the pod (ours are never overridden).
    pub extra_labels: BTreeMap<String, String>,
}

/// A probe pod name: `mtls-probe-<kind>-<run id>` (`kind` is `mesh` or `plain`).
pub(crate) fn pod_name(kind: &str, run_id: &str) -> String {
    format!("mtls-probe-{kind}-{run_id}")
}

/// The pod object for `probe`.
pub(crate) fn probe_pod(probe: &ProbePod) -> Pod {
    let mut labels = probe.extra_labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels.insert(COMPONENT_LABEL.into(), COMPONENT.into());
    labels.insert(RUN_LABEL.into(), probe.run_id.clone());
    labels.insert(INJECT_LABEL.into(), probe.injected.to_string());
    let annotations = BTreeMap::from([(
        "kubectl-mtls/purpose".to_string(),
        "short-lived probe pod of `kubectl mtls-probe check`; deleted when the check ends"
            .to_string(),
    )]);
    let quantity = |s: &str| Quantity(s.to_string());
    Pod {
        metadata: ObjectMeta {
            name: Some(probe.name.clone()),
            namespace: Some(probe.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(probe.image.clone()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(vec!["sleep".into(), ACTIVE_DEADLINE_SECONDS.to_string()]),
                readiness_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(vec!["true".into()]),
                    }),
                    // Never runs before the pod's deadline: the container stays unready, so no
                    // Service whose selector the extra labels match sends it traffic.
                    initial_delay_seconds: Some(ACTIVE_DEADLINE_SECONDS as i32 * 2),
                    ..Probe::default()
                }),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([
                        ("cpu".to_string(), quantity("10m")),
                        ("memory".to_string(), quantity("16Mi")),
                    ])),
                    limits: Some(BTreeMap::from([("memory".to_string(), quantity("64Mi"))])),
                    ..ResourceRequirements::default()
                }),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Capabilities::default()
                    }),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(1),
            active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(100),
                run_as_group: Some(101),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Whether the pod has an Istio sidecar (classic or native).
pub(crate) fn has_sidecar(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == SIDECAR)
            || s.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == SIDECAR)
    })
}

/// The container to exec into: `wanted` if the pod has it, else the first one that is not the
/// sidecar.
pub(crate) fn exec_container(pod: &Pod, wanted: Option<&str>) -> Result<String, String> {
    let containers: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    match wanted {
        Some(w) if containers.contains(&w) => Ok(w.to_string()),
        Some(w) => Err(format!(
            "pod has no container {w:?} (it has: {}); pass one of them to --container",
            containers.join(", ")
        )),
        None => containers
            .iter()
            .find(|c| **c != SIDECAR)
            .map(|c| c.to_string())
            .ok_or_else(|| "pod has no container besides the sidecar; pass --container".into()),
    }
}

/// Whether a command can run in a pod yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodState {
    /// `container` runs, and the sidecar (if any) is ready.
    Ready,
    /// Not yet; why (for progress and for the timeout message).
    Waiting(String),
    /// It never will (image cannot be pulled, container crashed, pod ended).
    Failed(String),
}

/// Waiting reasons that do not go away by waiting.
const FATAL_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// What `pod`'s status says about running a command in `container`.
pub(crate) fn pod_state(pod: &Pod, container: &str) -> PodState {
    let Some(status) = pod.status.as_ref() else {
        return PodState::Waiting("no status yet".into());
    };
    let phase = status.phase.as_deref().unwrap_or("Pending");
    if matches!(phase, "Failed" | "Succeeded") {
        let why = [status.reason.as_deref(), status.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        return PodState::Failed(format!(
            "pod ended (phase {phase}{})",
            if why.is_empty() {
                String::new()
            } else {
                format!(", {why}")
            }
        ));
    }
    let all: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    for c in &all {
        if let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if FATAL_REASONS.contains(&reason) {
                return PodState::Failed(format!(
                    "container {}: {reason}{}",
                    c.name,
                    waiting
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
        }
        if c.name == container
            && c.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some()
        {
            return PodState::Failed(format!("container {container} has terminated"));
        }
    }
    let running = |name: &str| {
        all.iter()
            .any(|c| c.name == name && c.state.as_ref().and_then(|s| s.running.as_ref()).is_some())
    };
    let sidecar_ready = !has_sidecar(pod) || all.iter().any(|c| c.name == SIDECAR && c.ready);
    if running(container) && sidecar_ready {
        return PodState::Ready;
    }
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unschedulable {
        return PodState::Waiting(format!(
            "not scheduled: {}",
            c.message.as_deref().unwrap_or("no reason given")
        ));
    }
    let waiting: Vec<String> = all
        .iter()
        .filter_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "{} {}",
                c.name,
                w.reason.as_deref().unwrap_or("waiting")
            ))
        })
        .collect();
    if !running(container) {
        PodState::Waiting(if waiting.is_empty() {
            format!("phase {phase}, container {container} not running yet")
        } else {
            format!("phase {phase}: {}", waiting.join(", "))
        })
    } else {
        PodState::Waiting(format!("container {SIDECAR} not ready yet"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn probe() -> ProbePod {
        ProbePod {
            name: pod_name("mesh", "abc123"),
            namespace: "apps".into(),
            image: DEFAULT_IMAGE.into(),
            injected: true,
            run_id: "abc123".into(),
            extra_labels: BTreeMap::from([
                ("app".into(), "client".into()),
                (MANAGED_BY_LABEL.into(), "someone-else".into()),
            ]),
        }
    }

    #[test]
    fn probe_pod_is_harmless_and_labelled() {
        let value = serde_json::to_value(probe_pod(&probe())).unwrap();
        let labels = &value["metadata"]["labels"];
        assert_eq!(labels["app"], "client");
        assert_eq!(
            labels[MANAGED_BY_LABEL], MANAGER,
            "ours are never overridden"
        );
        assert_eq!(labels[INJECT_LABEL], "true");
        assert_eq!(labels[RUN_LABEL], "abc123");
        let spec = &value["spec"];
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["activeDeadlineSeconds"], ACTIVE_DEADLINE_SECONDS);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        let c = &spec["containers"][0];
        assert_eq!(c["name"], CONTAINER);
        assert_eq!(c["image"], DEFAULT_IMAGE);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert!(
            c["readinessProbe"]["initialDelaySeconds"].as_i64().unwrap() > ACTIVE_DEADLINE_SECONDS,
            "the container must never become Ready while the pod lives"
        );
        let mut plain = probe();
        plain.injected = false;
        let value = serde_json::to_value(probe_pod(&plain)).unwrap();
        assert_eq!(value["metadata"]["labels"][INJECT_LABEL], "false");
    }

    fn running(name: &str, ready: bool) -> serde_json::Value {
        json!({"name": name, "ready": ready, "restartCount": 0, "image": "x", "imageID": "",
               "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
    }

    #[test]
    fn ready_needs_our_container_running_and_the_sidecar_ready() {
        let spec = json!({"containers": [{"name": "probe"}, {"name": "istio-proxy"}]});
        let p = |statuses: serde_json::Value| {
            pod(
                json!({"spec": spec, "status": {"phase": "Running", "containerStatuses": statuses}}),
            )
        };
        assert_eq!(
            pod_state(
                &p(json!([
                    running("probe", false),
                    running("istio-proxy", true)
                ])),
                "probe"
            ),
            PodState::Ready,
            "our container is never ready by design; running is enough"
        );
        assert_eq!(
            pod_state(
                &p(json!([
                    running("probe", false),
                    running("istio-proxy", false)
                ])),
                "probe"
            ),
            PodState::Waiting("container istio-proxy not ready yet".into())
        );
        // A native sidecar reports under initContainerStatuses.
        let native = pod(json!({
            "spec": {"containers": [{"name": "probe"}], "initContainers": [{"name": "istio-proxy"}]},
            "status": {"phase": "Running", "containerStatuses": [running("probe", false)],
                       "initContainerStatuses": [running("istio-proxy", true)]}
        }));
        assert!(has_sidecar(&native));
        assert_eq!(pod_state(&native, "probe"), PodState::Ready);
    }

    #[test]
    fn fatal_and_waiting_states_say_why() {
        let pulling = pod(json!({
            "spec": {"containers": [{"name": "probe"}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "probe", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"curlimages/curl:8.11.1\""}}}]}
        }));
        assert_eq!(
            pod_state(&pulling, "probe"),
            PodState::Failed(
                "container probe: ImagePullBackOff: Back-off pulling image \"curlimages/curl:8.11.1\""
                    .into()
            )
        );
        let unschedulable = pod(json!({
            "spec": {"containers": [{"name": "probe"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                       "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
        }));
        assert_eq!(
            pod_state(&unschedulable, "probe"),
            PodState::Waiting("not scheduled: 0/3 nodes are available: 3 Insufficient cpu.".into())
        );
        let ended = pod(json!({"status": {"phase": "Failed", "reason": "DeadlineExceeded"}}));
        assert_eq!(
            pod_state(&ended, "probe"),
            PodState::Failed("pod ended (phase Failed, DeadlineExceeded)".into())
        );
        assert_eq!(
            pod_state(&pod(json!({})), "probe"),
            PodState::Waiting("no status yet".into())
        );
    }

    #[test]
    fn exec_container_defaults_to_the_first_non_sidecar() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "istio-proxy"}, {"name": "app"}, {"name": "tools"}]}}),
        );
        assert_eq!(exec_container(&p, None).unwrap(), "app");
        assert_eq!(exec_container(&p, Some("tools")).unwrap(), "tools");
        let err = exec_container(&p, Some("nope")).unwrap_err();
        assert!(err.contains("istio-proxy, app, tools"), "{err}");
        let only_sidecar = pod(json!({"spec": {"containers": [{"name": "istio-proxy"}]}}));
        assert!(exec_container(&only_sidecar, None).is_err());
    }
}

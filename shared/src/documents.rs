//! Kubernetes objects as `-f` gives them to `kubectl mtls-lockdown explain` and `doctor`: YAML
//! streams or JSON parsed into documents; `List`s and the typed lists the API returns
//! (`PodList`, `NamespaceList`, … whose items carry no `apiVersion` and `kind`) expanded into
//! their items; and workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! ReplicationController, Job, CronJob) seen as the pod their template describes.
//!
//! Pure: text and values in, values out.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::api::ObjectMeta;
use serde_json::Value;

/// What a document that is not a Kubernetes object is told.
const NOT_AN_OBJECT: &str = "not a Kubernetes object (it has no apiVersion and kind); pass YAML or JSON manifests of Pods, workloads, Namespaces, Services and NetworkPolicies";

/// Parses a YAML (multi-document) or JSON text into its documents (empty documents included, as
/// `null`). The error is one line.
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    // JSON is parsed by serde_json (fast); everything else, and JSON-like YAML flow mappings
    // serde_json refuses, by the YAML parser.
    let json = text
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<Value>(text).ok())
        .flatten();
    if let Some(doc) = json {
        return Ok(vec![doc]);
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 1_000_000,
            max_nodes: 50_000_000,
            max_events: 100_000_000,
        },
    };
    serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
        let first = e.to_string();
        format!("invalid YAML: {}", first.lines().next().unwrap_or(""))
    })
}

/// The objects of one document: the document itself, or the items of a `List` or typed list
/// (recursively; a typed list's items get the list's `apiVersion` and item kind when they have
/// none, as `kubectl get -o json` and the API leave them out). An empty document gives nothing;
/// anything else without `apiVersion` and `kind` is refused.
pub fn objects(doc: Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    collect(doc, &mut out)?;
    Ok(out)
}

fn collect(doc: Value, out: &mut Vec<Value>) -> Result<(), String> {
    if doc.is_null() {
        return Ok(());
    }
    let (Some(kind), Some(api_version)) = (str_at(&doc, "kind"), str_at(&doc, "apiVersion")) else {
        return Err(NOT_AN_OBJECT.into());
    };
    let Some(item_kind) = kind.strip_suffix("List") else {
        out.push(doc);
        return Ok(());
    };
    let (kind, api_version) = (kind.to_string(), api_version.to_string());
    let items = match doc.get("items") {
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(format!("{kind}: items is not a list")),
    };
    for (i, mut item) in items.into_iter().enumerate() {
        // `kind: List` holds objects of any kind, each naming its own; a typed list names them.
        if !item_kind.is_empty()
            && let Value::Object(fields) = &mut item
        {
            fields
                .entry("apiVersion")
                .or_insert_with(|| Value::from(api_version.as_str()));
            fields
                .entry("kind")
                .or_insert_with(|| Value::from(item_kind));
        }
        collect(item, out).map_err(|e| format!("items[{i}]: {e}"))?;
    }
    Ok(())
}

fn str_at<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Where a workload kind keeps its pod template.
fn template_pointer(api_version: &str, kind: &str) -> Option<&'static str> {
    match (api_version, kind) {
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("v1", "ReplicationController")
        | ("batch/v1", "Job") => Some("/spec/template"),
        ("batch/v1", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// `doc` as the typed object `T`, parsed from its JSON text the way kube-client parses the API
/// server's answers (`serde_json::from_str`). k8s-openapi's Pod, PodSpec, Volume and Service
/// deserializers are large, and each deserializer type they are used with is another copy of them
/// in the binary: parsing from text here instead of from the `Value` keeps one copy (measured:
/// release `kubectl-mtls` smaller by the size in the commit that made this).
pub fn typed<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<T, serde_json::Error> {
    serde_json::from_str(&doc.to_string())
}

/// The pod a workload runs, standing for all its replicas: named `KIND/NAME` (`deployment/web`),
/// in the workload's namespace, with the template's labels and containers (so its named ports).
/// `Ok(None)` for an object that is not a workload, or a workload without a pod template.
pub fn workload_pod(doc: &Value) -> Result<Option<Pod>, String> {
    let (Some(kind), Some(api_version)) = (str_at(doc, "kind"), str_at(doc, "apiVersion")) else {
        return Ok(None);
    };
    let Some(pointer) = template_pointer(api_version, kind) else {
        return Ok(None);
    };
    let Some(template) = doc.pointer(pointer).filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    let template: PodTemplateSpec =
        typed(template).map_err(|e| format!("{kind}: the pod template is not valid: {e}"))?;
    let metadata = doc.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Some(Pod {
        metadata: ObjectMeta {
            name: Some(format!("{}/{name}", kind.to_ascii_lowercase())),
            namespace,
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_lists_name_their_items_and_plain_lists_keep_theirs() {
        let list = json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
            "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]});
        let items = objects(list).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["kind"], "Namespace");
        assert_eq!(items[1]["apiVersion"], "v1");
        let nested = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [{"metadata": {"name": "d"}}]},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}]});
        let items = objects(nested).unwrap();
        assert_eq!(
            items
                .iter()
                .map(|i| i["kind"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["Deployment", "Pod"]
        );
        assert_eq!(items[0]["apiVersion"], "apps/v1");
        let bad = json!({"apiVersion": "v1", "kind": "List", "items": [{"metadata": {}}]});
        let err = objects(bad).unwrap_err();
        assert!(
            err.starts_with("items[0]: not a Kubernetes object"),
            "{err}"
        );
        assert!(objects(json!({"just": "text"})).is_err());
        assert!(objects(Value::Null).unwrap().is_empty());
    }

    #[test]
    fn a_cronjob_runs_the_pod_of_its_job_template() {
        let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"app": "report"}},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "metrics", "containerPort": 9090}]}]}}}}}});
        let pod = workload_pod(&cronjob).unwrap().unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("cronjob/nightly"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(pod.metadata.labels.unwrap()["app"], "report");
        let port = &pod.spec.unwrap().containers[0].ports.clone().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("metrics"), 9090)
        );
    }

    #[test]
    fn only_workloads_with_a_template_stand_for_pods() {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        assert!(workload_pod(&service).unwrap().is_none());
        let bare =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        assert!(workload_pod(&bare).unwrap().is_none());
        let broken = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"template": {"spec": {"containers": "not a list"}}}});
        let err = workload_pod(&broken).unwrap_err();
        assert!(
            err.starts_with("StatefulSet: the pod template is not valid"),
            "{err}"
        );
    }
}

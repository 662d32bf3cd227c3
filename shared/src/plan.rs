//! A [`Plan`]: the ordered, typed objects a command wants on the cluster — computed without I/O.
//!
//! Commands build a plan from their inputs; `--dry-run=client` prints it (a multi-document YAML
//! stream or a JSON `List`, both accepted by `kubectl apply -f -`), and [`crate::cluster::apply`]
//! sends it by server-side apply. Objects keep the field order of their typed structs, so the
//! output reads like kubectl's (`apiVersion`, `kind`, `metadata`, then the body).

use kube::Resource;
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

/// Why an object could not be put into a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The object has no `metadata.name`.
    #[error("a {kind} in the plan has no name")]
    Unnamed {
        /// The object's kind.
        kind: String,
    },
    /// The object did not serialize (a bug in a builder, not user input).
    #[error("cannot serialize {kind}/{name}: {source}")]
    Serialize {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The serializer's complaint.
        source: serde_json::Error,
    },
}

/// One object of a plan, type-erased for sending: its API coordinates and its JSON body.
#[derive(Debug, Clone)]
pub struct PlannedObject {
    /// Group, version, kind and plural of the object's API.
    pub resource: ApiResource,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// The full object as JSON (with `apiVersion` and `kind`), in the typed struct's field order.
    pub body: Value,
}

impl PlannedObject {
    /// `kind/name` in kubectl's lower-case form, e.g. `secret/kyma-mtls-certs`.
    pub fn display_name(&self) -> String {
        let kind = self.resource.kind.to_ascii_lowercase();
        if self.resource.group.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}.{}/{}", self.resource.group, self.name)
        }
    }
}

/// An ordered list of objects to apply, first to last.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    objects: Vec<PlannedObject>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a typed object (a k8s-openapi type or one of our custom resources).
    pub fn push<K>(&mut self, object: &K) -> Result<&mut Self, PlanError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let meta = object.meta();
        let name = meta.name.clone().ok_or_else(|| PlanError::Unnamed {
            kind: resource.kind.clone(),
        })?;
        let mut body = serde_json::to_value(object).map_err(|source| PlanError::Serialize {
            kind: resource.kind.clone(),
            name: name.clone(),
            source,
        })?;
        // Read like kubectl's output: apiVersion, kind, metadata, then the body in the type's
        // field order (k8s-openapi serializes `metadata` after `data`, which reads oddly).
        if let Value::Object(map) = &mut body {
            let mut rest = std::mem::take(map);
            map.insert(
                "apiVersion".into(),
                Value::String(resource.api_version.clone()),
            );
            map.insert("kind".into(), Value::String(resource.kind.clone()));
            if let Some(metadata) = rest.shift_remove("metadata") {
                map.insert("metadata".into(), metadata);
            }
            rest.retain(|k, _| k != "apiVersion" && k != "kind");
            map.extend(rest);
        }
        self.objects.push(PlannedObject {
            resource,
            namespace: meta.namespace.clone(),
            name,
            body,
        });
        Ok(self)
    }

    /// The objects, in apply order.
    pub fn objects(&self) -> &[PlannedObject] {
        &self.objects
    }

    /// Whether the plan has no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// A multi-document YAML stream (`---` between objects), as `kubectl apply -f -` reads it.
    pub fn to_yaml(&self) -> String {
        render_yaml(self.objects.iter().map(|o| &o.body))
    }

    /// A JSON `v1/List` of the objects, as `kubectl apply -f -` reads it.
    pub(crate) fn to_json(&self) -> String {
        render_json_list(self.objects.iter().map(|o| &o.body))
    }
}

impl Extend<PlannedObject> for Plan {
    /// Appends objects after the plan's own, in the order given (e.g. another plan's objects).
    fn extend<I: IntoIterator<Item = PlannedObject>>(&mut self, objects: I) {
        self.objects.extend(objects);
    }
}

impl FromIterator<PlannedObject> for Plan {
    /// A plan of these objects, in the order given (e.g. a one-object plan to send on its own).
    fn from_iter<I: IntoIterator<Item = PlannedObject>>(objects: I) -> Self {
        Self {
            objects: objects.into_iter().collect(),
        }
    }
}

/// Renders JSON values as one multi-document YAML stream.
pub fn render_yaml<'a>(docs: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for doc in docs {
        if !out.is_empty() {
            out.push_str("---\n");
        }
        // Long single-line strings (base64 Secret data) stay plain scalars, as kubectl prints them;
        // multi-line strings still use literal blocks. A JSON value always serializes.
        let mut options = serde_saphyr::SerializerOptions::default();
        options.folded_wrap_chars = usize::MAX;
        options.min_fold_chars = usize::MAX;
        let mut text = String::new();
        serde_saphyr::to_fmt_writer_with_options(&mut text, doc, options)
            .expect("a JSON value serializes to YAML");
        out.push_str(&text);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Renders JSON values as a pretty `{"apiVersion":"v1","kind":"List","items":[...]}` document.
pub(crate) fn render_json_list<'a>(docs: impl IntoIterator<Item = &'a Value>) -> String {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": docs.into_iter().collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&list).expect("a JSON value serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::ObjectMeta;

    fn config_map(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), "on".to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_order_and_kubectl_field_order() {
        let mut plan = Plan::new();
        plan.push(&config_map("a")).unwrap();
        plan.push(&config_map("b")).unwrap();
        let yaml = plan.to_yaml();
        assert_eq!(yaml.matches("---\n").count(), 1);
        assert!(
            yaml.starts_with("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"),
            "{yaml}"
        );
        // YAML 1.1 booleans must stay strings for kubectl.
        assert!(
            yaml.contains("k: \"on\"") || yaml.contains("k: 'on'"),
            "{yaml}"
        );
        let names: Vec<_> = plan.objects().iter().map(|o| o.display_name()).collect();
        assert_eq!(names, ["configmap/a", "configmap/b"]);
        let reparsed: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(reparsed[1]["metadata"]["name"], "b");
    }

    #[test]
    fn json_is_a_list_kubectl_accepts() {
        let mut plan = Plan::new();
        plan.push(&config_map("a")).unwrap();
        let v: Value = serde_json::from_str(&plan.to_json()).unwrap();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][0]["kind"], "ConfigMap");
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace_and_unnamed_ones_are_refused() {
        let mut plan = Plan::new();
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        plan.push(&ns).unwrap();
        assert_eq!(plan.objects()[0].namespace, None);
        assert!(matches!(
            plan.push(&Namespace::default()),
            Err(PlanError::Unnamed { .. })
        ));
    }
}

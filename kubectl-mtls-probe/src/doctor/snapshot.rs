//! The objects `doctor` reasons about, typed: parsed from documents (YAML files, `List`s) or
//! gathered from a cluster. It also remembers whether Secrets were supplied at all, so a rule can
//! tell "absent" from "not looked at" (a GitOps folder usually has no Secrets).

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use shared::documents;
use shared::gateway::{GatewayArgs, GatewayRole, GatewayWorkload, choose_gateway};
use shared::netpol::Inventory;
use shared::resources::{
    DestinationRule, Gateway, Istio, ServiceEntry, Sidecar, Telemetry, VirtualService,
};

/// The objects of one or two clusters.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Secrets (credential Secrets live in the gateways' namespaces).
    pub secrets: Vec<Secret>,
    /// Kyma Istio CRs.
    pub istios: Vec<Istio>,
    /// Deployments (the egress gateway's).
    pub deployments: Vec<Deployment>,
    /// ServiceEntries.
    pub service_entries: Vec<ServiceEntry>,
    /// Gateways (ingress and egress).
    pub gateways: Vec<Gateway>,
    /// VirtualServices.
    pub virtual_services: Vec<VirtualService>,
    /// DestinationRules.
    pub destination_rules: Vec<DestinationRule>,
    /// Telemetries.
    pub telemetries: Vec<Telemetry>,
    /// Sidecars (a namespace-wide REGISTRY_ONLY one from the lockdown, and the user's).
    pub sidecars: Vec<Sidecar>,
    /// Pods, Namespaces, Services and NetworkPolicies, for the lockdown rules.
    pub inventory: Inventory,
    /// Whether Secrets were supplied (a file with one, or a cluster read); without them the
    /// credential rules cannot tell a missing Secret from one that was not looked at.
    pub secrets_supplied: bool,
    /// Whether the routing objects could not be read (RBAC): the per-host routing rules then say
    /// nothing, instead of reporting as missing what was not looked at.
    pub routing_unread: bool,
    /// The egress gateway as found on the cluster (`None`: from the Deployments, else the default).
    pub egress_gateway: Option<GatewayWorkload>,
    /// The ingress gateway as found on the cluster (`None`: from the Deployments, else the default).
    pub ingress_gateway: Option<GatewayWorkload>,
}

/// One object of `kind` (through `shared::documents::typed`: one copy of each type's deserializer
/// in the binary, the one the API client's answers use).
fn parse<K: DeserializeOwned>(doc: Value, kind: &str) -> Result<K, String> {
    shared::documents::typed(&doc).map_err(|e| format!("{kind} is not valid: {e}"))
}

impl Snapshot {
    /// The `role` gateway the rules judge: the one found on the cluster; else the one Istio
    /// gateway of that role among the Deployments (files); else istioctl's and Kyma's in
    /// istio-system.
    pub fn gateway(&self, role: GatewayRole) -> GatewayWorkload {
        let found = match role {
            GatewayRole::Egress => &self.egress_gateway,
            GatewayRole::Ingress => &self.ingress_gateway,
        };
        found.clone().unwrap_or_else(|| {
            choose_gateway(role, &self.deployments, &[], &GatewayArgs::default())
                .unwrap_or_else(|_| GatewayWorkload::default_for(role))
        })
    }

    /// Adds one document (or a `List` or typed list); kinds doctor does not read are skipped.
    /// Pods, workloads (as the pod their template describes), Namespaces, Services and
    /// NetworkPolicies go to the inventory the lockdown rules judge.
    pub fn add_document(&mut self, doc: Value) -> Result<(), String> {
        for object in documents::objects(doc)? {
            self.add_object(object)?;
        }
        Ok(())
    }

    fn add_object(&mut self, doc: Value) -> Result<(), String> {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let group = doc["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .split_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        if matches!(
            (group.as_str(), kind.as_str()),
            ("", "Pod" | "Namespace" | "Service") | ("networking.k8s.io", "NetworkPolicy")
        ) {
            return self.inventory.add_document(doc, "default");
        }
        if documents::workload_pod(&doc)?.is_some() {
            self.inventory.add_document(doc.clone(), "default")?;
        }
        match (group.as_str(), kind.as_str()) {
            ("", "Secret") => {
                self.secrets.push(parse(decode_string_data(doc), &kind)?);
                self.secrets_supplied = true;
            }
            ("operator.kyma-project.io", "Istio") => self.istios.push(parse(doc, &kind)?),
            ("apps", "Deployment") => self.deployments.push(parse(doc, &kind)?),
            ("networking.istio.io", "ServiceEntry") => {
                self.service_entries.push(parse(doc, &kind)?)
            }
            ("networking.istio.io", "Gateway") => self.gateways.push(parse(doc, &kind)?),
            ("networking.istio.io", "VirtualService") => {
                self.virtual_services.push(parse(doc, &kind)?)
            }
            ("networking.istio.io", "DestinationRule") => {
                self.destination_rules.push(parse(doc, &kind)?)
            }
            ("telemetry.istio.io", "Telemetry") => self.telemetries.push(parse(doc, &kind)?),
            ("networking.istio.io", "Sidecar") => self.sidecars.push(parse(doc, &kind)?),
            _ => {}
        }
        Ok(())
    }

    /// Adds every document of a YAML (multi-document) or JSON text.
    pub fn add_text(&mut self, text: &str, origin: &str) -> Result<(), String> {
        let docs = documents::parse(text).map_err(|e| format!("{origin}: {e}"))?;
        self.add_documents(docs, origin)
    }

    /// Adds the documents of one source; `origin` names it in errors.
    pub fn add_documents(&mut self, docs: Vec<Value>, origin: &str) -> Result<(), String> {
        for (i, doc) in docs.into_iter().enumerate() {
            self.add_document(doc)
                .map_err(|e| format!("{origin}: document {}: {e}", i + 1))?;
        }
        Ok(())
    }

    /// The Secret `namespace/name`, if supplied.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == name)
    }
}

/// Folds a manifest's `stringData` into `data` (as the API server does), so files written by hand
/// read like Secrets from a cluster.
fn decode_string_data(mut doc: Value) -> Value {
    if let Some(Value::Object(string_data)) = doc.get("stringData").cloned() {
        let data = doc
            .as_object_mut()
            .expect("a document with stringData is an object")
            .entry("data")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(data) = data {
            for (k, v) in string_data {
                if let Value::String(s) = v {
                    // ByteString serializes as base64, as `data` holds it.
                    let encoded =
                        serde_json::to_value(ByteString(s.into_bytes())).expect("bytes serialize");
                    data.insert(k, encoded);
                }
            }
        }
        doc.as_object_mut().expect("object").remove("stringData");
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_becomes_data_and_unknown_kinds_are_skipped() {
        let mut s = Snapshot::default();
        s.add_text(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: istio-system}\nstringData: {tls.crt: abc, ca.crt: hello!}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "t.yaml",
        )
        .unwrap();
        let secret = s.secret("istio-system", "c").unwrap();
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data["tls.crt"].0, b"abc");
        assert_eq!(data["ca.crt"].0, b"hello!");
        assert!(s.secrets_supplied);
        assert!(s.add_text("foo: bar\n", "bad.yaml").is_err());
    }
}

//! Validates emitted objects against the real CRD schemas in `../shared/crds` (next to the
//! repository), the way an API server with `fieldValidation=Strict` would: the served version's
//! OpenAPI v3 schema (`spec.versions[].schema`), with every object schema that lists `properties` and does not say
//! `x-kubernetes-preserve-unknown-fields: true` treated as closed, so an unknown field fails.
//! CEL rules (`x-kubernetes-validations`) are not evaluated.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

/// The CRD directory: `<repo>/../shared/crds`.
pub fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/crds")
}

/// Compiled schemas by `(apiVersion, kind)`.
pub struct Schemas {
    validators: HashMap<(String, String), jsonschema::Validator>,
}

impl Schemas {
    /// Loads every CRD in [`crd_dir`]; `None` (after saying so on stderr, uncaptured) when the
    /// directory is absent.
    pub fn load() -> Option<Self> {
        let dir = crd_dir();
        if !dir.is_dir() {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED schema validation: {} not found (the CRDs live in ../shared/crds beside the repository)",
                dir.display()
            );
            return None;
        }
        let mut validators = HashMap::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(
                &text,
                serde_saphyr::options! { budget: serde_saphyr::budget! { max_nodes: 10_000_000, max_reader_input_bytes: Some(64 * 1024 * 1024) } },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for crd in docs
                .iter()
                .filter(|d| d["kind"] == "CustomResourceDefinition")
            {
                let group = crd["spec"]["group"].as_str().unwrap();
                let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
                for version in crd["spec"]["versions"].as_array().unwrap() {
                    if version["served"] != Value::Bool(true) {
                        continue;
                    }
                    // A version's `schema` holds exactly one member: its OpenAPI v3 schema.
                    let mut schema = version["schema"]
                        .as_object()
                        .and_then(|m| m.values().next())
                        .cloned()
                        .unwrap_or_else(|| panic!("{kind}: a served version without a schema"));
                    // The API server supplies these for every kind; many CRDs do not list them.
                    let props = schema["properties"].as_object_mut().unwrap();
                    props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
                    props.insert("kind".into(), serde_json::json!({"type": "string"}));
                    props.insert(
                        "metadata".into(),
                        serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                    );
                    close_objects(&mut schema);
                    let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
                    let validator = jsonschema::draft4::new(&schema)
                        .unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"));
                    validators.insert((api_version, kind.to_string()), validator);
                }
            }
        }
        Some(Self { validators })
    }

    /// Whether a served CRD version exists for this apiVersion and kind.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.validators
            .contains_key(&(api_version.to_string(), kind.to_string()))
    }

    /// Validates one object; the errors name the JSON path of each violation.
    pub fn validate(&self, object: &Value) -> Result<(), Vec<String>> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some(validator) = self
            .validators
            .get(&(api_version.to_string(), kind.to_string()))
        else {
            return Err(vec![format!(
                "no served CRD version for {api_version} {kind}"
            )]);
        };
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{}: {}", e.instance_path(), e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Adds `additionalProperties: false` to every object schema that lists `properties`, has no
/// `additionalProperties` of its own and does not preserve unknown fields.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserve = map
                .get("x-kubernetes-preserve-unknown-fields")
                .is_some_and(|v| v == &Value::Bool(true));
            if map.contains_key("properties")
                && !preserve
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, child) in map.iter_mut() {
                // `properties` maps names to schemas; every other value may itself be a schema.
                if key == "properties" {
                    if let Value::Object(props) = child {
                        for prop in props.values_mut() {
                            close_objects(prop);
                        }
                    }
                } else {
                    close_objects(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

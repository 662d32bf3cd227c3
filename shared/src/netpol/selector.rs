//! Label selectors as NetworkPolicies use them: `matchLabels` and `matchExpressions`
//! (`In`, `NotIn`, `Exists`, `DoesNotExist`), all terms ANDed; the empty selector selects everything.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// A label selector the API server would accept, ready to match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// The empty selector `{}`: selects every pod (or namespace).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Compiles a Kubernetes `LabelSelector`, refusing what the API server refuses (an unknown
    /// operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values). The error is
    /// the reason, without the object's name.
    pub(crate) fn compile(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for e in selector.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let key = e.key.clone();
            let requirement = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "matchExpressions on {key:?}: operator {} needs at least one value",
                        e.operator
                    ));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "matchExpressions on {key:?}: operator {} takes no values",
                        e.operator
                    ));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(format!(
                        "matchExpressions on {key:?}: operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                    ));
                }
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax (`app=x,tier in (a,b),!canary`); `{}` for the empty selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn display_reads_like_kubectl() {
        let s = Selector::compile(&LabelSelector {
            match_labels: Some([("app".to_string(), "x".to_string())].into()),
            match_expressions: Some(vec![
                expr("tier", "In", &["a", "b"]),
                expr("canary", "DoesNotExist", &[]),
            ]),
        })
        .unwrap();
        assert_eq!(s.to_string(), "app=x,tier in (a,b),!canary");
        assert_eq!(Selector::everything().to_string(), "{}");
    }

    #[test]
    fn invalid_operators_and_values_are_refused() {
        for (e, needle) in [
            (expr("a", "Equals", &["x"]), "not one of"),
            (expr("a", "In", &[]), "at least one value"),
            (expr("a", "Exists", &["x"]), "takes no values"),
        ] {
            let err = Selector::compile(&LabelSelector {
                match_expressions: Some(vec![e]),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}

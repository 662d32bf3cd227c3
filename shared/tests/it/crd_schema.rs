//! The schema validator itself must be able to fail: it accepts a correct object and rejects
//! unknown fields, wrong types, and the tutorial's mis-indented VirtualService.

use serde_json::json;
use test_support::schema::Schemas;

#[test]
fn validator_accepts_correct_objects_and_rejects_broken_ones() {
    let Some(schemas) = Schemas::load() else {
        return;
    };
    assert!(schemas.knows("networking.istio.io/v1", "VirtualService"));
    assert!(schemas.knows("gateway.kyma-project.io/v2", "APIRule"));
    assert!(schemas.knows("operator.kyma-project.io/v1alpha2", "Istio"));
    let good = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "direct-httpbin-through-egress-gateway", "namespace": "ns"},
        "spec": {
            "hosts": ["httpbin.example.com"],
            "gateways": ["istio-egressgateway", "mesh"],
            "http": [{"match": [{"gateways": ["mesh"], "port": 80}],
                      "route": [{"destination": {"host": "istio-egressgateway.istio-system.svc.cluster.local", "subset": "httpbin", "port": {"number": 80}}, "weight": 100}]}]
        }
    });
    schemas.validate(&good).unwrap();
    // The developers.sap.com copy: gateways/http at the top level, spec has only hosts.
    let misindented = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"hosts": ["httpbin.example.com"]},
        "gateways": ["istio-egressgateway", "mesh"],
        "http": []
    });
    let errors = schemas.validate(&misindented).unwrap_err();
    assert!(errors.iter().any(|e| e.contains("gateways")), "{errors:?}");
    let mut typo = good.clone();
    typo["spec"]["htpp"] = json!([]);
    assert!(schemas.validate(&typo).is_err());
    let mut wrong_type = good.clone();
    wrong_type["spec"]["hosts"] = json!("httpbin.example.com");
    assert!(schemas.validate(&wrong_type).is_err());
    let mut unserved = good;
    unserved["apiVersion"] = json!("networking.istio.io/v2");
    assert!(schemas.validate(&unserved).is_err());
}

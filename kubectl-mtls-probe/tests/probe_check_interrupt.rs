//! Ctrl-C during `check`: the probe pod is deleted and the command ends with exit 130. A test
//! binary of its own, because the SIGINT it sends reaches the whole process.

use std::sync::Arc;
use std::time::Duration;

use kubectl_mtls_probe::check::{CheckRequest, Source, execute, pod};
use serde_json::{Value, json};
use shared::names::DnsName;
use test_support::fake_api::{seen, tcp_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_deletes_the_probe_pod() {
    let (client, state) = tcp_server(|state| {
        state.namespaces.insert("apps".into());
        // The pod never starts (no node would take it), so the check waits until interrupted.
        state.on_pod_create = Some(Arc::new(|pod: &mut Value| {
            pod["status"] = json!({"phase": "Pending"});
        }));
    });
    let request = CheckRequest {
        host: DnsName::parse_exact("httpbin.example.com").unwrap(),
        port: 443,
        path: "/headers".into(),
        namespace: "apps".into(),
        source: Source::ProbePod {
            image: pod::DEFAULT_IMAGE.into(),
        },
        image: pod::DEFAULT_IMAGE.into(),
        client: None,
        external: "example.com".into(),
        keep: false,
        start_timeout: Duration::from_secs(60),
        curl_timeout: 10,
        gateway_namespace: "istio-system".into(),
        gateway_selector: "istio=egressgateway".into(),
        log_wait: Duration::from_millis(300),
        poll: Duration::from_millis(20),
    };
    // Wait until the pod exists, then press Ctrl-C; the check runs alongside on this task.
    let interrupt = async {
        let created = async {
            while !seen(&state).iter().any(|s| s.method == "POST") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), created)
            .await
            .expect("the probe pod is created");
        let kill = std::process::Command::new("kill")
            .args(["-INT", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    };
    let mut progress = Vec::new();
    let check = tokio::time::timeout(
        Duration::from_secs(30),
        execute(&client, &request, &mut progress),
    );
    let (result, ()) = tokio::join!(check, interrupt);
    let result = result.expect("the check stops on Ctrl-C");
    let progress = String::from_utf8(progress).unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 130, "{err}");
    assert!(err.to_string().starts_with("interrupted: "), "{err}");
    let seen = seen(&state);
    let pod_path = seen
        .iter()
        .find(|s| s.method == "POST")
        .unwrap()
        .body
        .as_ref()
        .unwrap()["metadata"]["name"]
        .as_str()
        .map(|n| format!("/api/v1/namespaces/apps/pods/{n}"))
        .unwrap();
    assert!(
        seen.iter()
            .any(|s| s.method == "DELETE" && s.path == pod_path),
        "{progress}"
    );
    assert!(!state.lock().unwrap().objects.contains_key(&pod_path));
}

//! Fuzz target: `kubectl_mtls_probe::access_log` on arbitrary bytes never panics; every entry points
//! at a real line of the input, parsing that line alone gives the same entry, and the upstream
//! filter only returns entries of the cluster asked for.
#![no_main]

use kubectl_mtls_probe::access_log;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    let entries = access_log::parse_lines(&text);
    for e in &entries {
        assert!(
            e.line >= 1 && e.line <= lines.len(),
            "line {} of {}",
            e.line,
            lines.len()
        );
        let again = access_log::parse_line(lines[e.line - 1], e.line);
        assert_eq!(again.as_ref(), Some(e));
    }
    let wanted = access_log::upstream_cluster("httpbin.example.com", 443);
    for e in access_log::for_upstream(&entries, "httpbin.example.com", 443) {
        let cluster = e
            .upstream_cluster
            .as_deref()
            .expect("filtered entries have a cluster");
        assert!(cluster.eq_ignore_ascii_case(&wanted));
    }
});

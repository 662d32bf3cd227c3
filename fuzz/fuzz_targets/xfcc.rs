//! Fuzz target: `kubectl_mtls_probe::xfcc::parse` on arbitrary text never panics, and whatever it
//! accepts survives a round trip through `to_header` unchanged (so `check` can quote elements
//! back to the user faithfully). The DN normaliser and percent-decoder run on every value too.
#![no_main]

use kubectl_mtls_probe::xfcc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(elements) = xfcc::parse(text) else {
        return;
    };
    let written = xfcc::to_header(&elements);
    let reparsed = xfcc::parse(&written).expect("our own output parses");
    assert_eq!(
        reparsed, elements,
        "round trip changed {text:?} -> {written:?}"
    );
    for e in &elements {
        if let Some(subject) = &e.subject {
            let _ = xfcc::normalize_dn(subject);
        }
        if let Some(cert) = &e.cert {
            let _ = xfcc::percent_decode(cert);
        }
        let _ = e.cert_der();
    }
});

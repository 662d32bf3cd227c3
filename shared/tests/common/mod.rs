//! Test helpers shared by the integration tests of `shared`.
#![allow(dead_code)]

pub mod fake_api;
pub mod mesh;
pub mod schema;

/// A fresh ECDSA bundle (CA, server certificate for `domain`, client certificate for
/// `client.example.com`), valid for 30 days from now.
pub fn bundle(domain: &str) -> shared::pki::Bundle {
    shared::pki::Bundle::generate(
        &shared::pki::BundleRequest {
            domain: shared::names::DnsName::parse(domain).unwrap(),
            client: shared::names::DnsName::parse("client.example.com").unwrap(),
            days: 30,
            key_type: shared::pki::KeyType::EcdsaP256,
            ca_name: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("a bundle")
}

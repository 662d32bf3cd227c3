//! Integration tests of `shared`: the cluster layer against mocks, the manifests against the real CRD schemas, the
//! NetworkPolicy evaluator, and a real mTLS handshake with our certificates.
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod cluster_mock;
mod crd_schema;
mod egress_plans;
mod helm_gateways;
mod netpol;
mod netpol_properties;
mod rustls_handshake;

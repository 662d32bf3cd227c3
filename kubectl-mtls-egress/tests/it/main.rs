//! Integration tests of `kubectl mtls-egress`: the command line, command flows against the fake API server,
//! `connect`/`disconnect` across two clusters, `doctor` reading what `enable` wrote, and the live API
//! server (e2e); several partners and namespaces on one cluster (`partners`).
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod cli;
mod common;
mod doctor_live;
mod e2e;
mod e2e_apiserver;
mod e2e_status_expiry;
mod egress_commands;
mod egress_connect;
mod helm_gateways;
mod partners;

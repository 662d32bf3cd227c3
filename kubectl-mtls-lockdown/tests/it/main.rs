//! Integration tests of `kubectl mtls-lockdown`: the plans, the command line and `explain` offline, command
//! flows against the fake API server, and the live API server (e2e).
//!
//! One test binary for the crate (one link instead of one per file); each module is one area.

mod cli;
mod e2e;
mod e2e_apiserver;
mod lockdown;
mod lockdown_commands;
mod workloads;

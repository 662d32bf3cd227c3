//! Test helpers shared by the integration tests of `shared`.
#![allow(dead_code)]

pub mod fake_api;
pub mod mesh;
pub mod schema;

//! Test helpers shared by the integration tests of `shared`.
#![allow(dead_code)]

pub mod schema;

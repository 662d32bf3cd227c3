//! The lockdown NetworkPolicy and Sidecar (in progress).

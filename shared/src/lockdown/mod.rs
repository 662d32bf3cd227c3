//! `kubectl mtls-lockdown` commands (in progress).

//! `kubectl mtls-lockdown`: the namespace may leave only through the egress gateway; `explain`
//! any namespace's NetworkPolicies. All logic lives in `shared::lockdown`.

fn main() -> std::process::ExitCode {
    shared::cli::main::<shared::lockdown::Cli>()
}

//! What several modules of this test binary share: the commands' flags parsed as kubectl would
//! pass them, and a fake API server that serves Istio's kinds.

use clap::Parser;
use kubectl_mtls_egress::connect::ConnectArgs;
use kubectl_mtls_egress::disconnect::DisconnectArgs;
use kubectl_mtls_egress::{disable, enable, expose};
use shared::cli::GlobalArgs;
use test_support::fake_api::State;

/// `connect`'s flags and the global ones.
#[derive(Parser)]
pub struct ConnectCli {
    #[command(flatten)]
    pub args: ConnectArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `disconnect`'s flags and the global ones.
#[derive(Parser)]
pub struct DisconnectCli {
    #[command(flatten)]
    pub args: DisconnectArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `enable`'s flags.
#[derive(Parser)]
pub struct EnableCli {
    #[command(flatten)]
    pub args: enable::EnableArgs,
}

/// `expose`'s flags.
#[derive(Parser)]
pub struct ExposeCli {
    #[command(flatten)]
    pub args: expose::ExposeArgs,
}

/// `disable`'s flags.
#[derive(Parser)]
pub struct DisableCli {
    #[command(flatten)]
    pub args: disable::DisableArgs,
}

/// Serves the Istio kinds the egress commands write (networking, telemetry, security).
pub fn serve_istio_kinds(state: &mut State) {
    for (plural, kind) in [
        ("serviceentries", "ServiceEntry"),
        ("gateways", "Gateway"),
        ("destinationrules", "DestinationRule"),
        ("virtualservices", "VirtualService"),
    ] {
        state.serve("networking.istio.io/v1", plural, kind);
    }
    state.serve("telemetry.istio.io/v1", "telemetries", "Telemetry");
    state.serve(
        "security.istio.io/v1",
        "authorizationpolicies",
        "AuthorizationPolicy",
    );
}

//! The hub's own gRPC services — catalog, policy, audit, health — generated from
//! `proto/gridhub/v1/hub.proto` by `build.rs` (protox + tonic-prost-build; nothing
//! generated is checked in). Arrow Flight SQL, on the same port, comes from `arrow-flight`.

/// `gridhub.v1`: messages, clients (`*_client`) and servers (`*_server`).
pub mod v1 {
    tonic::include_proto!("gridhub.v1");
}

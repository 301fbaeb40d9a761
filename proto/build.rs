//! Generates the hub's gRPC code from `gridhub/v1/hub.proto` at build time. The proto is
//! compiled by `protox` (pure Rust), so no `protoc` is needed on the build machine; the
//! generated code lands in OUT_DIR and is never checked in.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "gridhub/v1/hub.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}

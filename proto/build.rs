//! Compiles `proto/**/*.proto` with protox (a pure-Rust protobuf compiler), so
//! `cargo build` needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let files = [
        "raftline/v1/errors.proto",
        "raftline/v1/raft.proto",
        "raftline/v1/admin.proto",
        "raftline/v1/controller.proto",
        "raftline/v1/broker.proto",
        "raftline/v1/groups.proto",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    for path in &paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let descriptors = protox::compile(&paths, [&root])?;
    // The descriptors themselves, for gRPC server reflection.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("raftline_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        // Deterministic order wherever a map is iterated (tables, JSON, tests).
        .btree_map(".")
        // Record batches pass through without copies.
        .bytes(".raftline.v1.FetchResult.records")
        .bytes(".raftline.v1.ProduceRequest.records")
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}

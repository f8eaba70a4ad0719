//! Compiles `tests/fixtures/grpc/*.proto` without `protoc`: `protox` parses them into a
//! descriptor set, written to `OUT_DIR/grpc/directory.binpb` for the protocol-convert
//! plugin (its path in the `GRPC_DESCRIPTOR_SET` env var), from which `tonic-prost-build`
//! generates the test gRPC server. Also compiles the example config's
//! `examples/grpc/greeter.proto` (`EXAMPLE_DESCRIPTOR_SET`), so that a test can check the
//! committed `greeter.binpb` still describes it.

use std::path::{Path, PathBuf};

use prost::Message;

/// Compiles the fixtures and emits `cargo:` lines for them.
pub fn compile() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/grpc");
    println!("cargo:rerun-if-changed={}", fixtures.display());
    let protos: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("read tests/fixtures/grpc")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    let fds = protox::compile(&protos, [&fixtures]).expect("compile the test protos");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("grpc");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/grpc");
    let descriptor = out.join("directory.binpb");
    std::fs::write(&descriptor, fds.encode_to_vec()).expect("write the descriptor set");
    println!(
        "cargo:rustc-env=GRPC_DESCRIPTOR_SET={}",
        descriptor.display()
    );
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/grpc");
    println!("cargo:rerun-if-changed={}", examples.display());
    let greeter = protox::compile([examples.join("greeter.proto")], [&examples])
        .expect("compile examples/grpc/greeter.proto");
    let example = out.join("greeter.binpb");
    std::fs::write(&example, greeter.encode_to_vec()).expect("write the example descriptor set");
    println!(
        "cargo:rustc-env=EXAMPLE_DESCRIPTOR_SET={}",
        example.display()
    );
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        .generate_default_stubs(true)
        .compile_fds(fds)
        .expect("generate the test gRPC server");
}

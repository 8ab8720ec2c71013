//! Compiles the vendored `proto/onnx.proto` into Rust types for the ONNX writer
//! (only with the `train` feature), with `protox` in place of `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    #[cfg(feature = "train")]
    {
        let fds = protox::compile(["proto/onnx.proto"], ["proto"]).expect("proto/onnx.proto compiles");
        prost_build::Config::new()
            .compile_fds(fds)
            .expect("onnx.proto generates Rust code");
    }
}

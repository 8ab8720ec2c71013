//! Compiles the vendored `proto/onnx.proto` into Rust types for the ONNX writer
//! (only with the `train` feature), with `protox` in place of `protoc`.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    println!("cargo:rerun-if-changed=.git/HEAD");
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| std::env::var("ECG_GIT_SHA").unwrap_or_else(|_| "unknown".into()));
    println!("cargo:rustc-env=ECG_GIT_SHA={sha}");
    #[cfg(feature = "train")]
    {
        let fds =
            protox::compile(["proto/onnx.proto"], ["proto"]).expect("proto/onnx.proto compiles");
        prost_build::Config::new()
            .compile_fds(fds)
            .expect("onnx.proto generates Rust code");
    }
}

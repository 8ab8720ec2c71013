//! The OpenAPI document promises what the server does: `schemathesis run
//! --checks all` (PyPI, settings in `schemathesis.toml`) generates requests
//! from `/openapi.json` of a real server on an ephemeral port and checks that
//! no answer is a 5xx, every answer conforms to the document (status, content
//! type, headers, body schema), schema-valid requests are taken and invalid
//! ones refused. `scripts/test.sh` installs schemathesis into `.venv-api/`
//! (or set SCHEMATHESIS to its path); without it this test says SKIPPED,
//! unless ECG_REQUIRE_SCHEMATHESIS=1 (CI), where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::Server;

fn schemathesis() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-api/bin/schemathesis");
    venv.exists().then_some(venv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_matches_the_server() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var("ECG_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "schemathesis is required (ECG_REQUIRE_SCHEMATHESIS=1) but not installed"
        );
        eprintln!(
            "schemathesis not installed (scripts/test.sh installs it): API schema check SKIPPED"
        );
        return;
    };
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let url = server.url("/openapi.json");
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .current_dir(root)
            .args(["run", "--checks", "all", "--workers", "2", "--seed", "1"])
            .arg(url)
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failure"))
        .collect();
    eprintln!("schemathesis: {}", summary.join(" | "));
    assert!(
        out.status.success(),
        "schemathesis found requests the server and its document disagree on:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

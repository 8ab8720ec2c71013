//! Issue 8: the viewer page and the SVG picture. The page is driven in headless
//! Chromium by `tests/browser/viewer.mjs` (playwright-core): it uploads record 100
//! through the file picker and checks what was drawn. That part needs node, the
//! npm packages of tests/browser (`npm ci --prefix tests/browser`) and
//! /usr/bin/chromium (or CHROMIUM); without them it says SKIPPED, unless
//! ECG_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use common::server::{fixture, wfdb_form, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_page_and_svg_picture() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let r = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("<title>ecg-serve viewer</title>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );

    // The picture of the default range: the most abnormal segment.
    let post = |query: &'static str| {
        let form = wfdb_form(fixture("100.hea"), fixture("100.dat"));
        reqwest::Client::new()
            .post(server.url(&format!("/predict{query}")))
            .multipart(form)
            .send()
    };
    let r = post("?format=svg").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("class=\"trace\"").count(), 1);
    let beats = svg.matches("class=\"beat beat-").count();
    assert!((8..=20).contains(&beats), "{beats} labelled beats in 10 s");
    assert!(svg.matches("class=\"attention\"").count() > 100);
    // A chosen range, and a range outside the record.
    let r = post("?format=svg&start_s=60&end_s=90").await.unwrap();
    let svg = r.text().await.unwrap();
    assert!(svg.contains("60.0-90.0 s"), "{}", &svg[..400]);
    let beats = svg.matches("class=\"beat beat-").count();
    assert!((30..=45).contains(&beats), "{beats} beats in 30 s");
    let r = post("?format=svg&start_s=4000").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post("?format=svg&start_s=0&end_s=600").await.unwrap();
    assert_eq!(r.status(), 400, "more than 120 s in one picture");

    // The page in a real browser.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_ok = Command::new("node").arg("--version").output().is_ok();
    let ready = node_ok
        && dir.join("node_modules/playwright-core").exists()
        && Path::new(&chromium).exists();
    if !ready {
        assert!(
            std::env::var("ECG_REQUIRE_BROWSER").is_err(),
            "ECG_REQUIRE_BROWSER is set but node, tests/browser/node_modules or {chromium} is missing"
        );
        eprintln!(
            "SKIPPED: browser check (needs node, `npm ci --prefix tests/browser` and {chromium})"
        );
        server.stop().await;
        return;
    }
    let fixtures = common::fixtures().join("mitdb");
    let screenshot = std::env::var("ECG_VIEWER_SCREENSHOT").ok();
    let url = server.url("");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("viewer.mjs")).arg(&url).arg(&fixtures);
    if let Some(s) = &screenshot {
        cmd.arg(s);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("browser check ran:\n{log}");
    assert!(out.status.success(), "browser check failed:\n{log}");
    server.stop().await;
}

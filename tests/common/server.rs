//! The real server on an ephemeral port, for the HTTP integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ecg_serve::server::{serve, Config};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::oneshot;

/// The real server on an ephemeral port, in this process.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The test server's configuration: port 0, the committed model (or
/// ECG_TEST_MODEL_DIR / ECG_TEST_MODEL), then `extra` flags.
pub fn config(extra: &[&str]) -> Config {
    let models = std::env::var("ECG_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let model = std::env::var("ECG_TEST_MODEL").unwrap_or_else(|_| "ecg-segment".into());
    let mut args = vec![
        "ecg-serve",
        "--port",
        "0",
        "--model-dir",
        models.to_str().unwrap(),
    ];
    if !extra.contains(&"--model") {
        args.extend(["--model", model.as_str()]);
    }
    args.extend_from_slice(extra);
    Config::parse_from(args)
}

impl Server {
    pub async fn start(extra: &[&str]) -> Server {
        let config = config(extra);
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let done = tokio::spawn(serve(
            config,
            async move {
                let _ = stopped.await;
            },
            move |a| {
                let _ = bound_tx.send(a);
            },
        ));
        let addr = bound_rx.await.expect("server bound");
        Server {
            addr,
            stop: Some(stop),
            done,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn wait_ready(&self) -> Value {
        let mut last = Value::Null;
        for _ in 0..400 {
            let r = reqwest::get(self.url("/health/ready")).await.unwrap();
            let status = r.status();
            last = r.json().await.unwrap();
            if status == 200 {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server never became ready: {last}");
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap().unwrap();
    }
}

/// A committed MIT-BIH fixture file (record 100).
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(super::fixtures().join("mitdb").join(name)).unwrap()
}

/// A multipart file part.
pub fn file(bytes: Vec<u8>, name: &str) -> Part {
    Part::bytes(bytes).file_name(name.to_string())
}

/// Posts `form` to `/predict{query}`: status and JSON body.
pub async fn post(server: &Server, query: &str, form: Form) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(server.url(&format!("/predict{query}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A multipart form holding record 100 as a WFDB pair.
pub fn wfdb_form(hea: Vec<u8>, dat: Vec<u8>) -> Form {
    Form::new()
        .part("hea", file(hea, "100.hea"))
        .part("dat", file(dat, "100.dat"))
}

//! A bounded load generator for a running ecg-serve: `concurrency` clients post
//! WFDB records to `/predict` for a fixed time, then it prints requests/s,
//! latency percentiles, statuses, the share of request time spent outside ONNX
//! Runtime, and whether every answer belongs to its own request.
//!
//! ```text
//! cargo run --release --example loadgen -- --concurrency 4 --duration-s 30
//! cargo run --release --example loadgen -- --concurrency 40 --variants 8 --json out.json
//! ```
//!
//! With `--variants K` the clients cycle through K different recordings, cut from
//! the record to different lengths and renamed (`v0`..`vK-1`, checksums
//! recomputed); each answer's `record.name` and `record.n_samples` must match the
//! recording that was sent, so crossed wires between requests are caught.
//! Every request ends in a status or a transport error (reset, timeout), and both
//! are counted; a 429 makes that client wait as its `retry-after` says (at most
//! 5 s), as a well-behaved client would. The generator stops by itself after
//! `duration-s`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ecg_serve::signal::wfdb::{checksum, Format};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// WFDB record (without extension) to post.
    #[arg(long, default_value = "tests/fixtures/mitdb/100")]
    record: PathBuf,
    /// Clients sending at the same time.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
    /// Distinct recordings to cycle through (1: the record as it is).
    #[arg(long, default_value_t = 1)]
    variants: usize,
    /// Per-request timeout in seconds (a hang counts as a transport error).
    #[arg(long, default_value_t = 120.0)]
    timeout_s: f64,
    /// Bearer token, when the service has an API key.
    #[arg(long)]
    api_key: Option<String>,
    /// Also write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One recording to send and what its answer must say.
struct Variant {
    name: String,
    hea: Vec<u8>,
    dat: Vec<u8>,
    n_samples: u64,
}

/// Record `base` (format 212, 2 signals) cut to `n` samples and renamed, with
/// the header's sample count and checksums made to match.
fn variant(name: &str, hea: &str, dat: &[u8], n: usize) -> Variant {
    // 212 packs one frame (a sample of each of the two signals) in 3 bytes.
    let bytes = n * 3;
    let adc = Format::F212.decode(&dat[..bytes], 2 * n);
    let sums: Vec<u16> = (0..2)
        .map(|k| checksum(&adc[k..].iter().step_by(2).copied().collect::<Vec<_>>()))
        .collect();
    let mut lines = hea.lines();
    let first: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let mut out = format!("{name} {} {} {n}\n", first[1], first[2]);
    for (k, line) in lines.enumerate() {
        let mut f: Vec<String> = line.split_whitespace().map(String::from).collect();
        if f.len() >= 7 && k < 2 {
            f[0] = format!("{name}.dat");
            f[6] = (sums[k] as i16).to_string();
        }
        out.push_str(&f.join(" "));
        out.push('\n');
    }
    Variant {
        name: name.into(),
        hea: out.into_bytes(),
        dat: dat[..bytes].to_vec(),
        n_samples: n as u64,
    }
}

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    /// Share of each 200's latency outside ONNX Runtime...
    outside_ort: Vec<f64>,
    /// ...and outside both it and the wait for a session.
    outside_ort_and_queue: Vec<f64>,
    statuses: BTreeMap<String, usize>,
    mismatches: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn client(
    http: reqwest::Client,
    args: Arc<Args>,
    variants: Arc<Vec<Variant>>,
    offset: usize,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut i = offset;
    while Instant::now() < deadline {
        let v = &variants[i % variants.len()];
        i += 1;
        let form = reqwest::multipart::Form::new()
            .part(
                "hea",
                reqwest::multipart::Part::bytes(v.hea.clone()).file_name(format!("{}.hea", v.name)),
            )
            .part(
                "dat",
                reqwest::multipart::Part::bytes(v.dat.clone()).file_name(format!("{}.dat", v.name)),
            );
        let mut request = http.post(format!("{}/predict", args.url)).multipart(form);
        if let Some(key) = &args.api_key {
            request = request.bearer_auth(key);
        }
        let started = Instant::now();
        let response = request.send().await;
        let status = match response {
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "transport error"
                };
                *tally.statuses.entry(kind.into()).or_default() += 1;
                // A refused connection fails at once: do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Ok(r) => r,
        };
        let code = status.status().as_u16();
        let header_ms = |name: &str| {
            status
                .headers()
                .get(name)
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse::<f64>().ok())
        };
        let (inference_ms, queue_ms) = (header_ms("x-inference-time"), header_ms("x-queue-time"));
        let retry_after = status
            .headers()
            .get("retry-after")
            .and_then(|h| h.to_str().ok())
            .and_then(|s| s.parse::<f64>().ok());
        let body = status.bytes().await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        let Ok(body) = body else {
            *tally.statuses.entry("body cut off".into()).or_default() += 1;
            continue;
        };
        *tally.statuses.entry(code.to_string()).or_default() += 1;
        if code == 429 {
            // As a well-behaved client: wait as long as `retry-after` says (capped).
            let wait = retry_after.unwrap_or(1.0).clamp(0.0, 5.0);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        if code == 200 {
            tally.latencies_ms.push(elapsed_ms);
            if let Some(inf) = inference_ms {
                tally.outside_ort.push((elapsed_ms - inf) / elapsed_ms);
                let queue = queue_ms.unwrap_or(0.0);
                tally
                    .outside_ort_and_queue
                    .push((elapsed_ms - inf - queue) / elapsed_ms);
            }
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let record = &answer["record"];
            if record["name"] != v.name.as_str() || record["n_samples"] != v.n_samples {
                tally.mismatches += 1;
            }
        }
    }
    tally
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let hea = std::fs::read_to_string(args.record.with_extension("hea"))?;
    let dat = std::fs::read(args.record.with_extension("dat"))?;
    let total = dat.len() / 3;
    let k = args.variants.max(1);
    let variants: Vec<Variant> = (0..k)
        .map(|j| variant(&format!("v{j}"), &hea, &dat, total - j * total / (2 * k)))
        .collect();
    let variants = Arc::new(variants);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(args.timeout_s))
        .build()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_s);
    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|c| {
            tokio::spawn(client(
                http.clone(),
                Arc::clone(&args),
                Arc::clone(&variants),
                c,
                deadline,
            ))
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await?;
        all.latencies_ms.extend(t.latencies_ms);
        all.outside_ort.extend(t.outside_ort);
        all.outside_ort_and_queue.extend(t.outside_ort_and_queue);
        all.mismatches += t.mismatches;
        for (s, n) in t.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    all.latencies_ms.sort_by(f64::total_cmp);
    let requests: usize = all.statuses.values().sum();
    let ok = all.latencies_ms.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let outside = mean(&all.outside_ort);
    let outside_both = mean(&all.outside_ort_and_queue);
    let summary = json!({
        "url": args.url,
        "concurrency": args.concurrency,
        "variants": k,
        "duration_s": wall,
        "requests": requests,
        "statuses": all.statuses,
        "ok_per_s": ok as f64 / wall,
        "latency_ms_200": {
            "p50": percentile(&all.latencies_ms, 50.0),
            "p90": percentile(&all.latencies_ms, 90.0),
            "p99": percentile(&all.latencies_ms, 99.0),
            "max": all.latencies_ms.last().copied().unwrap_or(f64::NAN),
        },
        "share_outside_onnx_runtime": outside,
        "share_outside_onnx_runtime_and_queue": outside_both,
        "mismatched_answers": all.mismatches,
    });
    println!(
        "c={} {:.1} s: {requests} requests {:?}; {:.2} ok/s; 200 latency p50 {:.0} ms p90 {:.0} ms p99 {:.0} ms max {:.0} ms; outside ONNX Runtime {:.1} % (and its queue {:.1} %); mismatched answers {}",
        args.concurrency,
        wall,
        all.statuses,
        ok as f64 / wall,
        percentile(&all.latencies_ms, 50.0),
        percentile(&all.latencies_ms, 90.0),
        percentile(&all.latencies_ms, 99.0),
        all.latencies_ms.last().copied().unwrap_or(f64::NAN),
        100.0 * outside,
        100.0 * outside_both,
        all.mismatches
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(())
}

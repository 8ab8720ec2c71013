//! Hostile and broken uploads against the real server: each gets its exact
//! status and error type, never a 500, and the server stays up for the next one.

mod common;

use common::server::{file, fixture, post, Server};
use reqwest::multipart::Form;
use serde_json::Value;

/// Record 100's header with `edit` applied to its text.
fn header(edit: impl Fn(&str) -> String) -> Vec<u8> {
    edit(&String::from_utf8(fixture("100.hea")).unwrap()).into_bytes()
}

fn pair(hea: Vec<u8>, dat: Vec<u8>) -> Form {
    Form::new()
        .part("hea", file(hea, "100.hea"))
        .part("dat", file(dat, "100.dat"))
}

fn csv(text: impl Into<Vec<u8>>) -> Form {
    Form::new().part("file", file(text.into(), "upload.csv"))
}

/// Record 100 repeated `times` times (format 212), header and checksums to match.
fn repeated_100(times: usize) -> (Vec<u8>, Vec<u8>) {
    let dat = fixture("100.dat").repeat(times);
    let hea = header(|h| {
        let mut lines: Vec<String> = h.lines().map(String::from).collect();
        lines[0] = format!("100 2 360 {}", 650_000 * times);
        for line in lines.iter_mut().skip(1).take(2) {
            let mut f: Vec<String> = line.split_whitespace().map(String::from).collect();
            let c: i64 = f[6].parse().unwrap();
            f[6] = ((c * times as i64).rem_euclid(65536) as u16 as i16).to_string();
            *line = f.join(" ");
        }
        lines.join("\n") + "\n"
    });
    (hea, dat)
}

struct Case {
    name: &'static str,
    query: &'static str,
    form: Form,
    status: u16,
    error_type: &'static str,
    /// Text the error message must contain.
    says: &'static str,
}

fn case(
    name: &'static str,
    query: &'static str,
    form: Form,
    status: u16,
    error_type: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        query,
        form,
        status,
        error_type,
        says,
    }
}

/// A committed EDF fixture (`tests/fixtures/edf/make.py`) with `bytes` at `at`.
fn edf(name: &str, at: usize, bytes: &[u8]) -> Form {
    let mut edf = std::fs::read(common::fixtures().join("edf").join(name)).unwrap();
    edf[at..at + bytes.len()].copy_from_slice(bytes);
    Form::new().part("edf", file(edf, name))
}

fn cases() -> Vec<Case> {
    let dat = fixture("100.dat");
    let uv_edf = std::fs::read(common::fixtures().join("edf/100-20s-uv.edf")).unwrap();
    let hea_with = |from: &str, to: &str| {
        let (from, to) = (from.to_string(), to.to_string());
        header(move |h| h.replacen(&from, &to, 1))
    };
    let mut corrupt = dat.clone();
    corrupt[3000] ^= 0x5a;
    let wide: String = (0..10_000_000).map(|_| "1,").collect::<String>() + "1\n";
    vec![
        case(
            "empty csv",
            "?fs=360",
            csv(""),
            422,
            "invalid_signal",
            "empty",
        ),
        case(
            "empty dat",
            "",
            pair(fixture("100.hea"), Vec::new()),
            422,
            "invalid_signal",
            "empty",
        ),
        case(
            "header names a file that was not sent",
            "",
            pair(hea_with("100.dat", "other.dat"), dat.clone()),
            422,
            "invalid_signal",
            "other.dat",
        ),
        case(
            "zero sampling rate",
            "",
            pair(hea_with("100 2 360", "100 2 0"), dat.clone()),
            422,
            "invalid_signal",
            "sampling",
        ),
        case(
            "negative sampling rate",
            "",
            pair(hea_with("100 2 360", "100 2 -360"), dat.clone()),
            422,
            "invalid_signal",
            "sampling",
        ),
        case(
            "zero signals",
            "",
            pair(hea_with("100 2 360", "100 0 360"), dat.clone()),
            422,
            "invalid_signal",
            "signal",
        ),
        case(
            "a million signals",
            "",
            pair(hea_with("100 2 360", "100 1000000 360"), dat.clone()),
            422,
            "invalid_signal",
            "signal",
        ),
        case(
            "a format we do not read",
            "",
            pair(
                header(|h| h.replace("100.dat 212", "100.dat 508")),
                dat.clone(),
            ),
            422,
            "invalid_signal",
            "508",
        ),
        case(
            "dat shorter than the header says",
            "",
            pair(fixture("100.hea"), dat[..dat.len() / 2].to_vec()),
            422,
            "invalid_signal",
            "shorter",
        ),
        case(
            "checksum mismatch",
            "",
            pair(fixture("100.hea"), corrupt),
            422,
            "invalid_signal",
            "checksum",
        ),
        case(
            "csv with a text cell",
            "?fs=360",
            csv("MLII\n1\n2\nabc\n4\n"),
            422,
            "invalid_signal",
            "row",
        ),
        case(
            "csv with NaN",
            "?fs=360",
            csv("MLII\n1\nNaN\n3\n"),
            422,
            "invalid_signal",
            "row",
        ),
        case(
            "csv with inf",
            "?fs=360",
            csv("MLII\n1\ninf\n3\n"),
            422,
            "invalid_signal",
            "row",
        ),
        case(
            "ragged csv",
            "?fs=360",
            csv("MLII,V5\n1,2\n3\n4,5\n"),
            422,
            "invalid_signal",
            "row",
        ),
        case(
            "csv with a single row",
            "?fs=360",
            csv("MLII\n1\n"),
            422,
            "invalid_signal",
            "at least 10.0 s",
        ),
        case(
            "csv with ten million columns",
            "?fs=360",
            csv(wide),
            422,
            "invalid_signal",
            "at most 64 leads",
        ),
        case(
            "recording shorter than one window",
            "?verify_checksums=false",
            pair(
                hea_with("100 2 360 650000", "100 2 360 1800"),
                dat[..5400].to_vec(),
            ),
            422,
            "invalid_signal",
            "at least 10.0 s",
        ),
        case(
            "truncated edf",
            "",
            Form::new().part("edf", file(uv_edf[..uv_edf.len() - 100].to_vec(), "x.edf")),
            422,
            "invalid_signal",
            "truncated",
        ),
        case(
            "edf header size disagrees with its signal count",
            "",
            edf("100-20s-uv.edf", 184, b"768     "),
            422,
            "invalid_signal",
            "the header says it is 768 bytes",
        ),
        case(
            "edf signal with zero samples per record",
            "",
            // Signal 0's samples per record: 256 + label, transducer, 5 x 8, prefiltering.
            edf("100-20s-uv.edf", 256 + 16 + 80 + 40 + 80, b"0       "),
            422,
            "invalid_signal",
            "samples per data record",
        ),
        case(
            "edf without an ecg signal",
            "",
            edf("100-20s-uv.edf", 256, b"EEG C3-A2       "),
            422,
            "invalid_signal",
            "no ECG signal among `EEG C3-A2`",
        ),
        case(
            "discontinuous edf+",
            "",
            edf("100-2min.edf", 192, b"EDF+D"),
            422,
            "invalid_signal",
            "EDF+D",
        ),
        case(
            "bdf",
            "",
            Form::new().part("edf", file(b"\xffBIOSEMI".repeat(40), "x.edf")),
            422,
            "invalid_signal",
            "BDF",
        ),
        case(
            "bad query parameter",
            "?fs=abc",
            csv("MLII\n1\n2\n"),
            400,
            "bad_request",
            "fs",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_upload_gets_its_status_and_never_a_500() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let mut failures = Vec::new();
    for c in cases() {
        let (status, body) = post(&server, c.query, c.form).await;
        let error = body["error"].as_str().unwrap_or_default().to_lowercase();
        let ok = status == c.status
            && body["error_type"] == c.error_type
            && error.contains(&c.says.to_lowercase());
        eprintln!(
            "{:<40} {status} {:<24} {}",
            c.name,
            body["error_type"].as_str().unwrap_or("-"),
            body["error"].as_str().unwrap_or("-")
        );
        if !ok {
            failures.push(format!(
                "{}: expected {} {} containing {:?}, got {status} {body}",
                c.name, c.status, c.error_type, c.says
            ));
        }
    }
    // Paths and methods we do not serve answer in JSON too.
    let client = reqwest::Client::new();
    for (request, status, error_type) in [
        (client.get(server.url("/nope")), 404, "not_found"),
        (
            client.get(server.url("/predict")),
            405,
            "method_not_allowed",
        ),
        (
            client.delete(server.url("/health/ready")),
            405,
            "method_not_allowed",
        ),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error_type"], error_type, "{body}");
    }
    // Still serving after all of that.
    let (status, _) = post(&server, "", pair(fixture("100.hea"), fixture("100.dat"))).await;
    assert_eq!(status, 200);
    server.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_hour_record_is_served_and_a_limit_refuses_it_by_name() {
    let (hea, dat) = repeated_100(6);
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let (status, body) = post(&server, "", pair(hea.clone(), dat.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["n_samples"], 3_900_000);
    let segments = body["summary"]["segments"].as_u64().unwrap();
    // 10 s windows every 5 s: (3900000 - 3600) / 1800 + 1 = 2165, plus one end-aligned.
    assert_eq!(segments, 2166);
    server.stop().await;

    let server = Server::start(&["--max-duration-s", "3600"]).await;
    server.wait_ready().await;
    let (status, body) = post(&server, "", pair(hea, dat)).await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (422, Some("invalid_signal")),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("3600"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_names_are_never_paths() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    let form = Form::new()
        .part("hea", file(fixture("100.hea"), "../../etc/100.hea"))
        .part("dat", file(fixture("100.dat"), "..\\..\\100.dat"));
    let (status, body): (u16, Value) = post(&server, "", form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["name"], "100");
    assert!(
        !body.to_string().contains(".."),
        "a path leaked into the answer"
    );
    server.stop().await;
}

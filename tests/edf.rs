//! EDF and EDF+ files written by an independent writer (pyedflib, which wraps
//! EDFlib: `tests/fixtures/edf/make.py`) read as pyedflib reads them back, equal
//! to the WFDB record they were made from, and served end to end.

mod common;

use common::server::{file, fixture, post, Server};
use ecg_serve::signal::edf::{read_edf, Event};
use ecg_serve::signal::wfdb::{parse_header, read_record, ReadOptions};
use reqwest::multipart::Form;
use serde_json::Value;

fn edf_fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::fixtures().join("edf").join(name)).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&edf_fixture("expected.json")).unwrap()
}

#[test]
fn reads_what_pyedflib_reads() {
    let expected = expected();
    for (name, mv_per_unit, ecg) in [("100-2min.edf", 1.0, 2), ("100-20s-uv.edf", 1e-3, 1)] {
        let bytes = edf_fixture(name);
        let read = read_edf(name.trim_end_matches(".edf"), &bytes).unwrap();
        let theirs = &expected[name];
        let rec = &read.recording;
        assert_eq!(rec.leads.len(), ecg, "{name}: the ECG signals are kept");
        for (i, lead) in rec.leads.iter().enumerate() {
            assert_eq!(lead.name, theirs["labels"][i], "{name}");
            assert_eq!(rec.sampling_rate, theirs["rates"][i].as_f64().unwrap());
            assert_eq!(
                lead.samples.len() as u64,
                theirs["samples"][i].as_u64().unwrap()
            );
            for (k, v) in theirs["first"][i].as_array().unwrap().iter().enumerate() {
                let want = v.as_f64().unwrap() * mv_per_unit;
                assert!(
                    (lead.samples[k] - want).abs() < 1e-9,
                    "{name} {} sample {k}: ours {} pyedflib {want}",
                    lead.name,
                    lead.samples[k]
                );
            }
        }
        let events: Vec<Event> = theirs["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| Event {
                onset_s: a["onset_s"].as_f64().unwrap(),
                // pyedflib reads "no duration" as -1.
                duration_s: Some(a["duration_s"].as_f64().unwrap()).filter(|&d| d >= 0.0),
                text: a["text"].as_str().unwrap().to_string(),
            })
            .collect();
        assert_eq!(read.events, events, "{name}");
    }
    let plus = read_edf("100-2min", &edf_fixture("100-2min.edf")).unwrap();
    assert_eq!(
        plus.warnings,
        ["EDF: signals that are not ECG left out: `EEG Fpz-Cz`, `SpO2`"]
    );
}

/// The first 120 s of record 100 as MIT-BIH's WFDB files hold them.
fn wfdb_100_first(seconds: usize) -> Vec<Vec<f64>> {
    let header = parse_header("100.hea", &String::from_utf8(fixture("100.hea")).unwrap()).unwrap();
    let dat = fixture("100.dat");
    let rec = read_record(&header, |_| Some(&dat[..]), ReadOptions::default()).unwrap();
    rec.leads
        .iter()
        .map(|l| l.samples[..seconds * 360].to_vec())
        .collect()
}

#[test]
fn equals_the_wfdb_record_it_was_made_from() {
    let read = read_edf("100-2min", &edf_fixture("100-2min.edf")).unwrap();
    for (ours, wfdb) in read.recording.leads.iter().zip(wfdb_100_first(120)) {
        let worst = ours
            .samples
            .iter()
            .zip(&wfdb)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-12, "{}: {worst} mV apart", ours.name);
    }
    let uv = read_edf("100-20s-uv", &edf_fixture("100-20s-uv.edf")).unwrap();
    let wfdb = &wfdb_100_first(20)[0];
    let worst = uv.recording.leads[0]
        .samples
        .iter()
        .zip(wfdb)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "uV file: {worst} mV apart");
}

/// Record 100's first `seconds` as a WFDB pair (format 212: 3 bytes a frame).
fn wfdb_cut(seconds: usize) -> Form {
    let n = seconds * 360;
    let hea = String::from_utf8(fixture("100.hea")).unwrap().replacen(
        "100 2 360 650000",
        &format!("100 2 360 {n}"),
        1,
    );
    let dat = fixture("100.dat")[..3 * n].to_vec();
    Form::new()
        .part("hea", file(hea.into_bytes(), "100.hea"))
        .part("dat", file(dat, "100.dat"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edf_upload_is_answered_as_its_wfdb_record_with_its_events() {
    let server = Server::start(&[]).await;
    server.wait_ready().await;
    // Recognised by extension, and by its signature under the part name `file`.
    let by_name = Form::new().part("edf", file(edf_fixture("100-2min.edf"), "night.edf"));
    let (status, edf) = post(&server, "", by_name).await;
    assert_eq!(status, 200, "{edf}");
    let by_signature = Form::new().part("file", file(edf_fixture("100-2min.edf"), "upload"));
    let (status, sniffed) = post(&server, "", by_signature).await;
    assert_eq!(status, 200, "{sniffed}");
    assert_eq!(sniffed["beats"], edf["beats"]);
    let (status, wfdb) = post(&server, "?verify_checksums=false", wfdb_cut(120)).await;
    assert_eq!(status, 200, "{wfdb}");
    server.stop().await;

    assert_eq!(edf["record"]["source"], "edf");
    assert_eq!(edf["record"]["name"], "night");
    assert_eq!(edf["record"]["lead"], "MLII");
    assert_eq!(edf["record"]["leads"], serde_json::json!(["MLII", "V5"]));
    assert_eq!(
        edf["beats"], wfdb["beats"],
        "the same beats, labels and probabilities"
    );
    assert_eq!(edf["segments"], wfdb["segments"]);
    assert_eq!(
        edf["events"].as_array().unwrap().len(),
        3,
        "{}",
        edf["events"]
    );
    assert_eq!(edf["events"][0]["text"], "Arousal");
    assert_eq!(edf["events"][0]["duration_s"], 0.75);
    assert!(edf["events"][1].get("duration_s").is_none());
    assert!(
        wfdb.get("events").is_none(),
        "no events field without events"
    );
    let warnings = edf["warnings"].to_string();
    assert!(warnings.contains("not ECG left out"), "{warnings}");
}

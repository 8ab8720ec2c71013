//! The signal library against outside references: scipy (filter, resampler),
//! WFDB (decoded values, annotations) and the full MIT-BIH database when present.

mod common;

use ecg_serve::signal::filter::band_pass;
use ecg_serve::signal::resample::resample;
use ecg_serve::signal::AamiClass;
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(common::fixtures().join("scipy/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn vector(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Tolerance of the issue: 1e-6 mV. Both sides are f64 and run the same
/// recursions up to the order of operations, so the real error is ~1e-13.
const FILTER_TOL_MV: f64 = 1e-6;

#[test]
fn band_pass_matches_scipy_sosfiltfilt() {
    let r = reference();
    let f = band_pass(360.0, 0.5, 50.0).unwrap();
    for (input, expected) in [
        ("record_100_mlii_mv", "bandpass_sosfiltfilt"),
        ("noise", "noise_sosfiltfilt"),
    ] {
        let y = f.apply(&vector(&r[input]));
        let err = max_abs_diff(&y, &vector(&r[expected]));
        eprintln!("band-pass vs scipy sosfiltfilt on {input}: max abs error {err:.3e} mV");
        assert!(err < FILTER_TOL_MV, "{input}: {err}");
    }
}

/// A whole record is long enough for the filter's lane pass (stretches filtered
/// side by side, each warmed up): it must still be scipy's answer.
#[test]
fn band_pass_of_a_whole_record_matches_scipy_sosfiltfilt() {
    let r = reference();
    let (rec, _) = common::load(&common::fixtures().join("mitdb"), "100");
    let y = band_pass(360.0, 0.5, 50.0)
        .unwrap()
        .apply(&rec.leads[0].samples);
    let at: Vec<f64> = r["record_100_full_index"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| y[i.as_u64().unwrap() as usize])
        .collect();
    let err = max_abs_diff(&at, &vector(&r["record_100_full_sosfiltfilt"]));
    eprintln!(
        "band-pass vs scipy sosfiltfilt on all of record 100 ({} samples compared): max abs error {err:.3e} mV",
        at.len()
    );
    assert!(err < FILTER_TOL_MV, "{err}");
}

#[test]
fn resampler_matches_scipy_resample_poly() {
    let r = reference();
    let x = vector(&r["record_100_mlii_mv"]);
    let x250 = vector(&r["x250_input"]);
    for (key, input, from, to) in [
        ("360_to_250", &x, 360.0, 250.0),
        ("360_to_500", &x, 360.0, 500.0),
        ("250_to_360", &x250, 250.0, 360.0),
    ] {
        let y = resample(input, from, to).unwrap();
        let err = max_abs_diff(&y, &vector(&r["resample_poly"][key]));
        eprintln!("resample {key} vs scipy resample_poly: max abs error {err:.3e} mV");
        assert!(err < 1e-9, "{key}: {err}");
    }
}

#[test]
fn record_100_decodes_as_wfdb_does() {
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    assert_eq!(rec.sampling_rate, 360.0);
    assert_eq!(rec.n_samples(), 650_000);
    assert_eq!(rec.leads[0].name, "MLII");
    // wfdb.rdrecord('100').p_signal[:10, 0] (ADC 995 995 ... 1000 997, gain 200, baseline 1024).
    let want = [
        -0.145, -0.145, -0.145, -0.145, -0.145, -0.145, -0.145, -0.145, -0.12, -0.135,
    ];
    for (a, b) in rec.leads[0].samples.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert_eq!(ann.len(), 2274);
    let beats: Vec<_> = ann.iter().filter(|a| a.is_beat()).collect();
    assert_eq!(beats.len(), 2273);
    // wfdb.rdann('100', 'atr'): first annotation '+' at 18 with aux '(N', first beat 'N' at 77.
    assert_eq!(
        (ann[0].sample, ann[0].symbol, ann[0].aux.as_deref()),
        (18, "+", Some("(N"))
    );
    assert_eq!((beats[0].sample, beats[0].symbol), (77, "N"));
    let counts = AamiClass::ALL.map(|c| beats.iter().filter(|b| b.aami() == Some(c)).count());
    assert_eq!(counts, [2239, 33, 1, 0, 0]);
}

#[test]
fn all_48_records_decode_with_verified_checksums() {
    let Some(dir) = common::mitdb() else { return };
    let mut records = 0;
    let (mut annotations, mut beats) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("hea") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let (rec, ann) = common::load(&dir, &name);
        assert_eq!(rec.n_samples(), 650_000, "{name}");
        assert_eq!(rec.leads.len(), 2, "{name}");
        let mlii = rec.select_lead("MLII", false);
        if name == "114" {
            assert_eq!(mlii.unwrap().index, 1);
        } else if !["102", "104"].contains(&name.as_str()) {
            assert_eq!(mlii.unwrap().index, 0, "{name}");
        }
        records += 1;
        annotations += ann.len();
        beats += ann.iter().filter(|a| a.is_beat()).count();
    }
    eprintln!("{records} records, {annotations} annotations, {beats} beats");
    // SOURCE.md: 48 records, 112647 annotations of which 109494 beats.
    assert_eq!((records, annotations, beats), (48, 112_647, 109_494));
}

/// The target: Se and +P both >= 99.7 % pooled over all 48 whole records.
#[test]
fn qrs_detector_meets_the_target_on_all_48_records() {
    let Some(dir) = common::mitdb() else { return };
    let report = ecg_serve::eval::qrs::run(&dir, &[], 0.15, 0.0).unwrap();
    eprint!("{}", report.table());
    assert_eq!(report.records.len(), 48);
    assert!(
        report.pooled_sensitivity >= 0.997,
        "Se {}",
        report.pooled_sensitivity
    );
    assert!(
        report.pooled_positive_predictivity >= 0.997,
        "+P {}",
        report.pooled_positive_predictivity
    );
}

/// Issue 18's streaming: each of the 48 records searched a piece at a time
/// (pieces of 2^16 samples, 3 minutes: ten or more per record, as a 24-hour
/// record is searched in pieces of 2^20) gives the beats of the search in one
/// piece, every one.
#[test]
fn qrs_detector_in_pieces_finds_the_same_beats_on_all_48_records() {
    use ecg_serve::signal::qrs::{detect_r_peaks, detect_streamed};
    let Some(dir) = common::mitdb() else { return };
    let mut beats = 0;
    for name in ecg_serve::eval::qrs::record_names(&dir).unwrap() {
        let rec = ecg_serve::eval::load_signals(&dir, &name).unwrap();
        let x = &rec.leads[0].samples;
        let whole = detect_r_peaks(x, rec.sampling_rate);
        let pieces = detect_streamed(x, rec.sampling_rate, 1 << 16);
        assert_eq!(pieces, whole, "record {name}");
        beats += whole.len();
    }
    eprintln!("48 records, {beats} beats: the same in pieces");
    assert!(beats > 100_000);
}

#[test]
fn qrs_detector_finds_every_beat_of_record_100() {
    let dir = common::fixtures().join("mitdb");
    let row = ecg_serve::eval::qrs::score_record(&dir, "100", 0.15, 0.0).unwrap();
    assert_eq!(row.reference_beats, 2273);
    assert_eq!(
        (row.counts.false_negatives, row.counts.false_positives),
        (0, 0),
        "{row:?}"
    );
}

/// Record 100's detected beats labelled by its reference annotations: nearly
/// every beat matched, and the matched classes are the reference's (2239 N,
/// 33 S, 1 V).
#[test]
fn detected_beats_take_the_class_of_their_reference_beat() {
    use ecg_serve::eval::bxb::label_detections;
    use ecg_serve::signal::qrs::detect_r_peaks;
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let peaks = detect_r_peaks(&rec.leads[0].samples, rec.sampling_rate);
    let (labels, cmp) = label_detections(&peaks, &ann, rec.sampling_rate, 0.150);
    assert_eq!(labels.len(), peaks.len());
    let count = |c: AamiClass| labels.iter().filter(|l| **l == Some(c)).count();
    let (n, s, v) = (
        count(AamiClass::N),
        count(AamiClass::S),
        count(AamiClass::V),
    );
    eprintln!(
        "record 100: {} detections, {} matched (N {n}, S {s}, V {v}), {} missed",
        peaks.len(),
        cmp.counts.true_positives,
        cmp.counts.false_negatives
    );
    assert!(cmp.counts.sensitivity() > 0.995 && cmp.counts.positive_predictivity() > 0.995);
    assert!((2230..=2239).contains(&n), "N {n}");
    assert!((31..=33).contains(&s), "S {s}");
    assert_eq!(v, 1);
    let unmatched = labels.iter().filter(|l| l.is_none()).count();
    assert_eq!(unmatched, cmp.counts.false_positives);
}

//! Property tests: random bytes as `.hea`, `.dat` (every format), `.atr` and `.csv`
//! never panic, and every signal stage accepts any finite or non-finite input.

use ecg_serve::signal::csv::{read_csv, CsvOptions};
use ecg_serve::signal::filter::band_pass;
use ecg_serve::signal::qrs::detect_r_peaks;
use ecg_serve::signal::resample::resample;
use ecg_serve::signal::wfdb::{
    parse_header, read_annotations, read_headerless, read_record, DatLayout, Format, ReadOptions,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn header_parser_never_panics(text in "[ -~\\r\\n\\t]{0,400}") {
        let _ = parse_header("x.hea", &text);
    }

    #[test]
    fn header_like_text_never_panics(
        n in 0usize..4, fs in "[0-9./()-]{0,8}", fmt in "[0-9x:+]{0,8}", gain in "[0-9.()/a-zA-Z-]{0,12}",
        rest in "[ 0-9-]{0,30}", dat in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let text = format!("r {n} {fs} 10\nr.dat {fmt} {gain} {rest} MLII\nr.dat {fmt} {gain} {rest} V5\n");
        if let Ok(h) = parse_header("r.hea", &text) {
            let _ = read_record(&h, |_| Some(&dat[..]), ReadOptions::default());
        }
    }

    #[test]
    fn every_dat_format_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), k in 1usize..5, n in 0usize..400) {
        for format in Format::ALL {
            let _ = format.decode(&bytes, n);
            let layout = DatLayout { format, n_signals: k, ..DatLayout::default() };
            let _ = read_headerless("x", &bytes, &layout);
        }
    }

    #[test]
    fn annotation_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = read_annotations("x.atr", &bytes);
    }

    #[test]
    fn csv_reader_never_panics(text in "[0-9a-zA-Z.,;\\t\\r\\n '#:-]{0,400}", fs in proptest::option::of(-10.0f64..1000.0)) {
        let _ = read_csv("x.csv", text.as_bytes(), &CsvOptions { sampling_rate: fs, ..Default::default() });
    }

    #[test]
    fn csv_reader_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_csv("x.csv", &bytes, &CsvOptions { sampling_rate: Some(360.0), ..Default::default() });
    }

    #[test]
    fn signal_stages_accept_any_samples(x in proptest::collection::vec(prop_oneof![-1e6f64..1e6, Just(f64::NAN), Just(f64::INFINITY)], 0..2000), fs in 1.0f64..2000.0) {
        let _ = detect_r_peaks(&x, fs);
        let _ = resample(&x, fs, 360.0);
        if let Ok(f) = band_pass(fs, 0.5, 50.0) {
            prop_assert_eq!(f.apply(&x).len(), x.len());
        }
    }
}

/// Every input that once crashed a fuzz target (`scripts/fuzz.sh`), replayed
/// through the same entry point: `tests/fixtures/fuzz/<target>/<case>`.
#[test]
fn fuzz_crashes_stay_fixed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut replayed = 0;
    for (name, target) in ecg_serve::signal::fuzzing::TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for case in dir {
            let path = case.unwrap().path();
            target(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no fuzz regression cases found under {}",
        root.display()
    );
    eprintln!("replayed {replayed} fuzz crash cases");
}

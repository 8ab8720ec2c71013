//! Training and serving cannot drift: the tensors the trainer builds for a
//! record (`train::data::record_windows`, `record_beats`) equal, bit for bit,
//! the ones the server's pipeline builds from the same record uploaded as a
//! WFDB pair (`service::pipeline::prepare`, with the shipped cards). Record
//! 100 is committed, so this runs everywhere.
#![cfg(feature = "train")]

mod common;

use std::path::Path;
use std::time::Instant;

use ecg_serve::model::ModelCard;
use ecg_serve::service::pipeline::{prepare, AnalysisRequest};
use ecg_serve::service::Include;
use ecg_serve::signal::upload::{ReadRequest, UploadPart};
use ecg_serve::train::data::{record_beats, record_windows, WindowSet};

fn card(name: &str) -> ModelCard {
    ModelCard::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name),
    )
    .unwrap()
}

fn part(field: &str, file: &str) -> UploadPart {
    UploadPart {
        field: field.into(),
        file_name: Some(file.into()),
        content_type: None,
        bytes: common::server::fixture(file),
    }
}

/// Every example of the trainer's `set` is the server's example at the same
/// position (`at`: window starts or R peaks), bit for bit.
fn same_tensors(set: &WindowSet, at: &[usize], (windows, features): (&[f32], &[f32])) {
    let (len, width) = (set.window_len, set.n_features);
    for i in 0..set.len() {
        let k = at.iter().position(|&x| x == set.starts[i]).unwrap();
        assert_eq!(
            set.window(i),
            &windows[k * len..(k + 1) * len],
            "example at {}",
            at[k]
        );
        assert_eq!(set.feature_row(i), &features[k * width..(k + 1) * width]);
    }
}

#[test]
fn trainer_and_server_build_the_same_tensors() {
    let (segment, beat) = (card("ecg-segment.json"), card("ecg-beat.json"));
    let request = || AnalysisRequest {
        parts: vec![part("hea", "100.hea"), part("dat", "100.dat")],
        read: ReadRequest {
            verify_checksums: true,
            ..ReadRequest::default()
        },
        lead: None,
        include: Include::default(),
        warnings: Vec::new(),
        received: Instant::now(),
    };
    let served = prepare(request(), &segment, Some(&beat), 86_400.0)
        .unwrap()
        .inputs;
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");

    // Segment windows: every labelled training window is the server's window
    // at the same start, with the same rhythm features.
    let kind = segment.segment().unwrap();
    let trained = record_windows(&rec, &ann, &kind.preprocessing, 0.5).unwrap();
    let s = served.segment.as_ref().unwrap();
    let width = trained.n_features;
    assert!(
        trained.len() > 300 && width == 6,
        "{} windows, {width} features",
        trained.len()
    );
    same_tensors(
        &trained,
        &s.starts,
        (&s.windows(0..s.starts.len()), &s.features),
    );

    // Beats: every labelled training beat is one of the server's detections,
    // with the same inputs: the shipped model's 80 features (no window), and
    // the 1.0.0 network's two-channel window and nine RR features.
    let mut beats = WindowSet::default();
    for (name, window, features) in [("ecg-beat.json", 0, 83), ("ecg-beat-net.json", 2 * 252, 9)] {
        let beat = card(name);
        let served = prepare(request(), &segment, Some(&beat), 86_400.0)
            .unwrap()
            .inputs;
        let bkind = beat.beat().unwrap();
        let (set, _) = record_beats(&rec, &ann, &bkind.preprocessing).unwrap();
        let b = served.beat.as_ref().unwrap();
        assert_eq!(
            (set.window_len, set.n_features),
            (window, features),
            "{name}"
        );
        assert!(set.len() > 2000, "{name}: {} beats", set.len());
        same_tensors(&set, &served.peaks, (&b.windows, &b.features));
        beats = set;
    }
    eprintln!(
        "record 100: {} segment windows and {} beats built alike by trainer and server",
        trained.len(),
        beats.len()
    );
}

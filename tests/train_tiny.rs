//! A tiny training run through export and ONNX Runtime parity, so the trainer's
//! path cannot rot: windows of the committed record 100, one epoch, export, then
//! burn and ONNX Runtime must agree within the trainer's tolerance.
#![cfg(feature = "train")]

mod common;

use ecg_serve::engine::{Provider, Runtime};
use ecg_serve::model::{BeatPreprocessing, SegmentPreprocessing};
use ecg_serve::train::data::{record_windows, WindowSet};
use ecg_serve::train::logistic::Logistic;
use ecg_serve::train::model::AttentionNetConfig;
use ecg_serve::train::onnx;
use ecg_serve::train::segment::PARITY_TOLERANCE;
use ecg_serve::train::training::{check_parity, train, TrainingConfig};

#[test]
fn one_epoch_trains_exports_and_matches_onnx_runtime() {
    // The segment model with its rhythm features (the second input).
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let prep = SegmentPreprocessing::mitdb_segment();
    let set = record_windows(&rec, &ann, &prep, 0.5).unwrap();
    assert_eq!(set.len(), 361);
    assert_eq!(set.n_features, 6);
    assert_eq!(set.features.len(), 361 * 6);
    // Record 100 is a steady sinus rhythm: windows at its usual rate.
    let rate_rel = set.feature_row(50)[0];
    assert!((0.8..1.25).contains(&rate_rel), "{rate_rel}");
    let train_set = set.subset(&(0..24).collect::<Vec<_>>());
    let val_set = set.subset(&(100..116).collect::<Vec<_>>());
    // As `ecg-train segment` builds it: the features' wide path to the logits and
    // the whole-embedding signal dropout.
    let net = AttentionNetConfig::new()
        .with_features(6)
        .with_feature_logits(true)
        .with_signal_dropout(0.5);
    let mut cfg = TrainingConfig::new(net)
        .with_max_epochs(1)
        .with_batch_size(8);
    let log = std::env::temp_dir().join(format!("ecg-train-tiny-{}.jsonl", std::process::id()));
    let trained = train(&mut cfg, &train_set, &val_set, &log).unwrap();
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 1, "one JSON line per epoch");
    let entry: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(entry["train_loss"].as_f64().unwrap().is_finite());
    let bytes = onnx::export(&trained.net, &cfg.model, "tiny", "0.0.0");
    let parity = check_parity(&trained.net, &bytes, &val_set, 16).unwrap();
    eprintln!("tiny model parity: {parity:?}");
    assert!(parity.max_abs_diff_logits < PARITY_TOLERANCE, "{parity:?}");
    assert!(
        parity.max_abs_diff_attention < PARITY_TOLERANCE,
        "{parity:?}"
    );
    stacked_graph_adds_the_feature_term(&bytes, &val_set);
}

/// `ecg-train stack`'s graph edit on the tiny model: the Abnormal logit gains
/// `features · w + b`, the Normal logit and the attention stay as they were, and
/// a second edit of the same graph is refused.
fn stacked_graph_adds_the_feature_term(bytes: &[u8], set: &WindowSet) {
    let w = [0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75];
    let b = 0.3f32;
    let stacked = onnx::add_feature_logit(bytes, 1, &w, b, "; test").unwrap();
    let runtime = Runtime::get().unwrap();
    let run = |model: &[u8]| {
        let mut session = runtime.session(model, 1, Provider::Cpu).unwrap();
        session
            .run(&set.windows, set.len(), &set.example_shape(), &set.features)
            .unwrap()
    };
    let (net, both) = (run(bytes), run(&stacked));
    for i in 0..set.len() {
        let row = set.feature_row(i);
        let term = b + row.iter().zip(&w).map(|(f, w)| f * w).sum::<f32>();
        let (n, s) = (
            &net.logits[2 * i..2 * i + 2],
            &both.logits[2 * i..2 * i + 2],
        );
        assert_eq!(n[0], s[0], "window {i}: the Normal logit moved");
        assert!(
            (s[1] - n[1] - term).abs() < 1e-4,
            "window {i}: {n:?} {s:?} {term}"
        );
    }
    assert_eq!(net.attention, both.attention);
    let again = onnx::add_feature_logit(&stacked, 1, &w, b, "").unwrap_err();
    assert!(again.to_string().contains("already"), "{again}");
    let wrong = onnx::add_feature_logit(bytes, 1, &w[..5], b, "").unwrap_err();
    assert!(wrong.to_string().contains("wide"), "{wrong}");
}

/// `ecg-train stack`'s logistic regression reproduces scikit-learn's
/// `LogisticRegression(C=1, class_weight="balanced")` on standardised features
/// (reference from `scripts/gen_sklearn_logistic.py`, fitted to tol 1e-12).
#[test]
fn logistic_regression_matches_scikit_learn() {
    let text = std::fs::read_to_string(common::fixtures().join("sklearn/logistic.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let floats = |k: &str| -> Vec<f64> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let rows: Vec<f32> = floats("rows").iter().map(|&v| v as f32).collect();
    let labels: Vec<u8> = floats("labels").iter().map(|&v| v as u8).collect();
    let width = r["width"].as_u64().unwrap() as usize;
    let lr = Logistic::fit(&rows, width, &labels, r["c"].as_f64().unwrap()).unwrap();
    let close = |got: &[f64], want: &[f64], tol: f64, what: &str| {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < tol,
                "{what}: {got:?} vs scikit-learn {want:?}"
            );
        }
    };
    close(&lr.mean, &floats("mean"), 1e-9, "mean");
    close(&lr.scale, &floats("scale"), 1e-9, "scale");
    close(&lr.coef, &floats("coef"), 1e-6, "coef");
    close(
        &[lr.intercept],
        &[r["intercept"].as_f64().unwrap()],
        1e-6,
        "intercept",
    );
    let decisions: Vec<f64> = (0..10)
        .map(|i| lr.decision(&rows[i * width..(i + 1) * width]))
        .collect();
    close(&decisions, &floats("decision_first_10"), 1e-5, "decision");
}

/// The beat model's path: detected beats of record 100 labelled by the
/// reference, RR features as the second input, one epoch, export with the
/// `features` input and Concat, parity through ONNX Runtime.
#[test]
fn beat_model_trains_on_detected_beats_and_matches_onnx_runtime() {
    use ecg_serve::train::data::record_beats;
    use ecg_serve::train::training::Selection;
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let prep = BeatPreprocessing::mitdb_beat();
    let (set, detection) = record_beats(&rec, &ann, &prep).unwrap();
    // Record 100: 2273 reference beats, all found; 2239 N, 33 S, 1 V.
    assert_eq!(detection.true_positives, 2273, "{detection:?}");
    assert_eq!(set.len(), 2273);
    assert_eq!(set.class_counts(5), vec![2239, 33, 1, 0, 0]);
    assert_eq!((set.window_len, set.channels, set.n_features), (504, 2, 9));
    let s_beats: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == 1).collect();
    let mut idx: Vec<usize> = (0..40).collect();
    idx.extend(&s_beats[..8]);
    let train_set = set.subset(&idx);
    let val_set = set.subset(
        &(1000..1032)
            .chain(s_beats[8..16].iter().copied())
            .collect::<Vec<_>>(),
    );
    let net = AttentionNetConfig::beat(2, 252, 9);
    assert_eq!(net.tokens(), 21);
    let mut cfg = TrainingConfig::new(net)
        .with_max_epochs(1)
        .with_batch_size(16)
        .with_soft_targets(false)
        .with_selection(Selection::MacroF1)
        .with_max_class_weight(20.0);
    let log = std::env::temp_dir().join(format!("ecg-train-beat-{}.jsonl", std::process::id()));
    let trained = train(&mut cfg, &train_set, &val_set, &log).unwrap();
    assert_eq!(cfg.class_weights.len(), 5);
    assert!(
        cfg.class_weights[1] > cfg.class_weights[0],
        "{:?}",
        cfg.class_weights
    );
    let bytes = onnx::export(&trained.net, &cfg.model, "tiny-beat", "0.0.0");
    let parity = check_parity(&trained.net, &bytes, &val_set, 40).unwrap();
    eprintln!("tiny beat model parity: {parity:?}");
    assert!(parity.max_abs_diff_logits < PARITY_TOLERANCE, "{parity:?}");
    assert!(
        parity.max_abs_diff_attention < PARITY_TOLERANCE,
        "{parity:?}"
    );
}

/// The beat model 2's path: record 100's beats with the shipped features, a
/// two-member ensemble fitted twice (the same bytes: reproducible), exported
/// as a graph of `features` alone, and ONNX Runtime agreeing with the fit.
#[test]
fn beat_features_network_is_reproducible_and_matches_onnx_runtime() {
    use ecg_serve::model::card::sha256_hex;
    use ecg_serve::train::beat_mlp::preprocessing;
    use ecg_serve::train::data::record_beats;
    use ecg_serve::train::inference::logits_onnx;
    use ecg_serve::train::mlp::{Ensemble, Examples, MlpConfig};
    let (rec, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let prep = preprocessing();
    let (set, _) = record_beats(&rec, &ann, &prep).unwrap();
    assert_eq!(set.len(), 2273);
    assert_eq!(
        (set.window_len, set.n_features),
        (0, prep.beat.features.len())
    );
    assert!(set.features.iter().all(|v| v.is_finite()));
    let cfg = MlpConfig {
        hidden: vec![16],
        epochs: 2,
        members: 2,
        ..MlpConfig::default()
    };
    let data = Examples {
        rows: &set.features,
        width: set.n_features,
        labels: &set.labels,
        classes: 5,
    };
    let keep = vec![true; set.n_features];
    let export = |e: &Ensemble| onnx::export_mlp(e, &keep, "tiny-mlp", "0.0.0").unwrap();
    let fitted = Ensemble::fit(&data, &cfg);
    let bytes = export(&fitted);
    assert_eq!(
        sha256_hex(&bytes),
        sha256_hex(&export(&Ensemble::fit(&data, &cfg))),
        "the same config gives the same model"
    );
    let runtime = Runtime::get().unwrap();
    let mut session = runtime.session(&bytes, 1, Provider::Cpu).unwrap();
    let graph = logits_onnx(&mut session, &set, 512).unwrap();
    let here = fitted.logits(&set.features);
    assert_eq!(graph.len(), here.len());
    let diff = graph
        .iter()
        .zip(&here)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "ONNX Runtime vs the fit: {diff}");
}

/// `ecg-train dataset heartbeat` then `ecg-train heartbeat` for each
/// architecture on the committed record 100: a few hundred rows, one epoch,
/// export, ONNX Runtime parity (the run fails beyond the tolerance), and a
/// card the server takes as a heartbeat model.
#[test]
fn heartbeat_architectures_train_on_csv_rows_and_match_onnx_runtime() {
    use ecg_serve::model::ModelCard;
    use ecg_serve::train::heartbeat::{
        self, Arch, HeartbeatOptions, HeartbeatTrainOptions, RowSplit,
    };
    let dir = std::env::temp_dir().join(format!("ecg-heartbeat-tiny-{}", std::process::id()));
    let data = dir.join("mitdb.csv");
    let written = heartbeat::write(&HeartbeatOptions {
        db: common::fixtures().join("mitdb"),
        out: data.clone(),
        records: None,
        lead: "MLII".into(),
    })
    .unwrap();
    assert!(written.rows > 2000, "{written:?}");
    let set = heartbeat::load_csv(&data).unwrap();
    assert_eq!(set.len(), written.rows);
    assert_eq!(set.records[0], "100", "records from the side file");
    let options = |arch, split, out| HeartbeatTrainOptions {
        data: data.clone(),
        test: None,
        split,
        arch,
        out,
        name: "tiny-heartbeat".into(),
        version: "0.0.0".into(),
        epochs: 1,
        batch_size: 32,
        lr: 1e-3,
        lr_decay: 0.9,
        patience: 1,
        class_weight_power: 0.0,
        noise_std: 0.0,
        seed: 7,
        max_rows: Some(300),
        max_train_rows: None,
        network: vec![],
    };
    let mut cards = Vec::new();
    for arch in [
        Arch::KachueeResnet,
        Arch::AttentionCnn,
        Arch::CnnLstm,
        Arch::CrtNet,
    ] {
        let out = dir.join(format!("{arch:?}"));
        let mut opts = options(arch, RowSplit::Random, out.clone());
        if arch == Arch::CrtNet {
            // Hyper-parameters from the options reach the network and its card.
            opts.network = vec!["heads=4".into(), "dense=16".into()];
        }
        let card = heartbeat::run(&opts).unwrap();
        let (card, _) = ModelCard::open(&card.with_extension("onnx")).unwrap();
        card.heartbeat().unwrap();
        let network = &card.training.config["network"];
        match arch {
            Arch::CrtNet => assert_eq!(
                (&network["heads"], &network["dense"]),
                (&4.into(), &16.into())
            ),
            Arch::AttentionCnn => assert_eq!(network["heads"], 8, "the default: {network}"),
            _ => assert_eq!(network["dense"], 32, "the default: {network}"),
        }
        assert_eq!(card.input.shape, vec![-1, 1, 187]);
        let parity = card.metrics["parity"]["max_abs_diff_logits"]
            .as_f64()
            .unwrap();
        assert!(parity < PARITY_TOLERANCE, "{arch:?}: {parity}");
        assert!(card.split.kind.contains("RANDOM"), "{}", card.split.kind);
        cards.push(out.join("tiny-heartbeat.onnx"));
    }
    finetuning_keeps_a_frozen_backbone(&dir, &cards[0]);
    // Hyper-parameters that make no network are refused before training, named.
    for (arch, items, says) in [
        (Arch::CrtNet, "heads=3", "heads 3 must divide"),
        (Arch::CnnLstm, "kernel=4", "kernel 4 must be odd"),
        (
            Arch::KachueeResnet,
            "filter=8",
            "no such hyper-parameter; accepted: ",
        ),
        (Arch::KachueeResnet, "classes=3", "set by the rows"),
        (
            Arch::AttentionCnn,
            "dense=0",
            "a whole number of at least 1",
        ),
        (Arch::AttentionCnn, "heads", "expected key=value"),
    ] {
        let mut opts = options(arch, RowSplit::Random, dir.join("bad"));
        opts.network = vec![items.into()];
        let err = format!("{:#}", heartbeat::run(&opts).unwrap_err());
        assert!(err.contains(says), "{arch:?} {items}: {err}");
    }
    // An inter-patient split needs DS1 and DS2 records: record 100 alone is refused.
    let err = heartbeat::run(&options(
        Arch::KachueeResnet,
        RowSplit::InterPatient,
        dir.join("ip"),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("DS1 and DS2"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ONNX initializer `name` of the model at `path`.
fn initializer(path: &std::path::Path, name: &str) -> Vec<u8> {
    use prost::Message;
    let model = onnx::proto::ModelProto::decode(&*std::fs::read(path).unwrap()).unwrap();
    let graph = model.graph.unwrap();
    let t = graph
        .initializer
        .into_iter()
        .find(|t| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no initializer {name}"));
    t.raw_data.unwrap()
}

/// `ecg-train finetune --freeze backbone` from the tiny residual CNN, on
/// record 100 and held-out "100c" (a copy under another name): the
/// convolutions keep their trained weights, the dense head moves, and the
/// held-out rows are measured before and after.
fn finetuning_keeps_a_frozen_backbone(dir: &std::path::Path, from: &std::path::Path) {
    use ecg_serve::model::ModelCard;
    use ecg_serve::train::heartbeat::{self, FinetuneOptions, Freeze};
    let db = dir.join("db");
    std::fs::create_dir_all(&db).unwrap();
    let fixtures = common::fixtures().join("mitdb");
    for ext in ["hea", "dat", "atr"] {
        std::fs::copy(
            fixtures.join(format!("100.{ext}")),
            db.join(format!("100.{ext}")),
        )
        .unwrap();
        std::fs::copy(
            fixtures.join(format!("100.{ext}")),
            db.join(format!("100c.{ext}")),
        )
        .unwrap();
    }
    let hea = std::fs::read_to_string(fixtures.join("100.hea")).unwrap();
    let renamed = hea
        .replacen("100 ", "100c ", 1)
        .replace("100.dat", "100c.dat");
    std::fs::write(db.join("100c.hea"), renamed).unwrap();
    let out = dir.join("finetuned");
    let opts = |records: Vec<String>| FinetuneOptions {
        from: from.to_path_buf(),
        freeze: Freeze::Backbone,
        data: None,
        test: None,
        db: Some(db.clone()),
        records,
        test_records: vec!["100c".into()],
        lead: "MLII".into(),
        labels: vec![],
        out: out.clone(),
        name: "tiny-finetuned".into(),
        version: "0.0.1".into(),
        epochs: 1,
        batch_size: 32,
        lr: 1e-2,
        lr_decay: 0.9,
        patience: 1,
        seed: 3,
        max_rows: Some(300),
    };
    let err = heartbeat::finetune(&opts(vec!["100".into(), "100c".into()])).unwrap_err();
    assert!(err.to_string().contains("held out"), "{err}");
    let card = heartbeat::finetune(&opts(vec!["100".into()])).unwrap();
    let (card, _) = ModelCard::open(&card.with_extension("onnx")).unwrap();
    assert_eq!(card.training.config["finetuned_from"]["freeze"], "backbone");
    assert!(card.metrics["test_before_finetuning"]["accuracy"].is_number());
    let after = out.join("tiny-finetuned.onnx");
    for frozen in ["stem.weight", "block0.conv1.weight", "block4.conv2.bias"] {
        assert_eq!(
            initializer(from, frozen),
            initializer(&after, frozen),
            "{frozen} moved"
        );
    }
    assert_ne!(
        initializer(from, "head.weight"),
        initializer(&after, "head.weight")
    );
}

//! `ecg-train stack`: the segment network stacked with a logistic regression on
//! its own rhythm features, built into the ONNX graph.
//!
//! The served score is `logit(P_net) + w · z_LR`: `z_LR` is a class-balanced,
//! L2-penalised logistic regression on the window's standardised rhythm
//! features, fitted on the network's own training records (never on its
//! validation or test records). The regression is a linear function of the
//! `features` input, so it goes into the graph as one MatMul + Add on the
//! Abnormal logit ([`super::onnx::add_feature_logit`]); the server needs no new
//! code and the card describes it. `w = 1` was chosen by a two-fold record-wise
//! cross-validation over DS1 (`scripts/stack_cv.py`; README, "The model").
//! The regression itself is [`super::logistic::Logistic`].

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde_json::json;

use super::data::{load_windows, WindowSet, ABNORMAL};
use super::inference::{column, logits_onnx};
use super::lift_2d::lift_model;
use super::logistic::Logistic;
use super::metrics::BinaryReport;
use super::onnx::add_feature_logit;
use super::segment::per_record;
use crate::engine::{softmax, Provider, Runtime};
use crate::model::card::sha256_hex;
use crate::model::{ModelCard, ModelKind};

/// The regression's weight that the cross-validation over DS1 chose.
pub const DEFAULT_WEIGHT: f64 = 1.0;

/// Everything `ecg-train stack` needs (its command-line options too).
#[derive(Debug, Clone, clap::Args)]
pub struct StackOptions {
    /// The segment network's .onnx; its card is the .json beside it.
    #[arg(long, default_value = "models/ecg-segment-net.onnx")]
    pub model: PathBuf,
    /// Folder of MIT-BIH records (.hea, .dat, .atr).
    #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
    pub db: PathBuf,
    /// Output folder for <name>.onnx, <name>.json (card) and <name>.report.json.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    #[arg(long, default_value = "ecg-segment")]
    pub name: String,
    #[arg(long, default_value = "2.1.1")]
    pub version: String,
    /// The regression's weight in logit(P_net) + weight * z (1: chosen by a
    /// 2-fold cross-validation over DS1, scripts/stack_cv.py).
    #[arg(long, default_value_t = DEFAULT_WEIGHT)]
    pub weight: f64,
    /// Inverse L2 strength of the regression (scikit-learn's C).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
}

/// P(Abnormal) of each row of `[n × 2]` logits, as the server computes it.
fn abnormal_probs(logits: &[f32]) -> Vec<f64> {
    let probs: Vec<f32> = logits.chunks(2).flat_map(softmax).collect();
    column(&probs, 2, 1)
}

/// One held-out set through the network alone and through the stacked graph:
/// both reports, and the largest gap between the stacked graph's logit margin
/// and the network's margin plus `w · z_LR` computed here in f64.
struct Measured {
    net: BinaryReport,
    stacked: BinaryReport,
    stacked_probs: Vec<f64>,
    max_abs_diff: f64,
}

fn measure(
    net_logits: &[f32],
    stacked_logits: &[f32],
    set: &WindowSet,
    lr: &Logistic,
    weight: f64,
    threshold: f64,
) -> Measured {
    let margin = |l: &[f32]| l[1] as f64 - l[0] as f64;
    let max_abs_diff = net_logits
        .chunks(2)
        .zip(stacked_logits.chunks(2))
        .enumerate()
        .map(|(i, (a, b))| (margin(b) - margin(a) - weight * lr.decision(set.feature_row(i))).abs())
        // A NaN gap (a non-finite logit) must fail the check, not vanish in `max`.
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max);
    let stacked_probs = abnormal_probs(stacked_logits);
    Measured {
        net: BinaryReport::new(&abnormal_probs(net_logits), &set.labels, threshold),
        stacked: BinaryReport::new(&stacked_probs, &set.labels, threshold),
        stacked_probs,
        max_abs_diff,
    }
}

/// Largest accepted gap between the graph's stacked margin and the f64 sum
/// (the graph computes in f32).
pub const STACK_TOLERANCE: f64 = 1e-3;

/// Fits the regression on the card's training records, writes the stacked
/// `<out>/<name>.onnx`, its card and `<name>.report.json`, and prints the
/// validation and test reports of the network alone and stacked. Returns the
/// new card's path.
pub fn run(opts: &StackOptions) -> Result<PathBuf> {
    let (base, bytes) = ModelCard::open(&opts.model)?;
    let kind = base.segment()?;
    let names = kind
        .preprocessing
        .window_features
        .as_ref()
        .map(|f| f.names.clone())
        .context("the model has no rhythm features (`preprocessing.window_features`) to stack")?;
    ensure!(
        base.training.stack.is_none(),
        "{} {} is already stacked",
        base.name,
        base.version
    );
    ensure!(opts.weight.is_finite(), "the weight must be finite");
    let onnx_path = opts.out.join(format!("{}.onnx", opts.name));
    ensure!(
        !same_file(&onnx_path, &opts.model),
        "the output would overwrite the network it stacks ({}); give another --name or --out",
        opts.model.display()
    );
    let fraction = kind.label_rule.abnormal_fraction;
    let load = |records: &[String]| load_windows(&opts.db, records, &kind.preprocessing, fraction);
    let split = &base.split;
    eprintln!(
        "loading the network's {} training, {} validation and {} test records",
        split.train_records.len(),
        split.validation_records.len(),
        split.test_records.len()
    );
    let train = load(&split.train_records)?;
    let lr = Logistic::fit(&train.features, names.len(), &train.labels, opts.c)?;
    print_fit(&lr, &train, &names);
    let stacked = stacked_graph(&bytes, &lr, opts.weight, names.len())?;
    let runtime = Runtime::get()?;
    let mut net = runtime.session(&bytes, 2, Provider::Cpu)?;
    let mut both = runtime.session(&stacked, 2, Provider::Cpu)?;
    let threshold = kind.decision.threshold;
    let mut run_set = |set: &WindowSet| -> Result<Measured> {
        let a = logits_onnx(&mut net, set, 64)?;
        let b = logits_onnx(&mut both, set, 64)?;
        Ok(measure(&a, &b, set, &lr, opts.weight, threshold))
    };
    let val = load(&split.validation_records)?;
    let val_m = run_set(&val)?;
    let test = load(&split.test_records)?;
    let test_m = run_set(&test)?;
    let max_abs_diff = val_m.max_abs_diff.max(test_m.max_abs_diff);
    ensure!(
        max_abs_diff < STACK_TOLERANCE,
        "the stacked graph's margin differs from network + w * regression by {max_abs_diff}"
    );
    for (title, m) in [("validation", &val_m), ("test", &test_m)] {
        print!("{}", m.net.table(&format!("{title}: network alone")));
        print!(
            "{}",
            m.stacked
                .table(&format!("{title}: stacked (w = {})", opts.weight))
        );
    }
    let checked = Checked {
        lr,
        names,
        train,
        sets: [(val, val_m), (test, test_m)],
        max_abs_diff,
    };
    let card = stacked_card(opts, &base, &stacked, checked)?;
    write(opts, &onnx_path, &stacked, card)
}

/// The fitted regression, its held-out measurements and the sets they came from.
struct Checked {
    lr: Logistic,
    names: Vec<String>,
    train: WindowSet,
    /// Validation and test.
    sets: [(WindowSet, Measured); 2],
    max_abs_diff: f64,
}

/// Prints the regression's coefficients.
fn print_fit(lr: &Logistic, train: &WindowSet, names: &[String]) {
    println!(
        "logistic regression on {} training windows ({} Abnormal), C = {}, {} Newton steps",
        train.len(),
        train.labels.iter().filter(|&&l| l == ABNORMAL).count(),
        lr.c,
        lr.iterations
    );
    println!(
        "{:<20} {:>10} {:>10} {:>12}",
        "feature", "mean", "sd", "coefficient"
    );
    for (k, name) in names.iter().enumerate() {
        println!(
            "{name:<20} {:>10.4} {:>10.4} {:>12.4}",
            lr.mean[k], lr.scale[k], lr.coef[k]
        );
    }
    println!("{:<20} {:>34.4}", "intercept", lr.intercept);
}

/// The network's graph with `weight` x the regression added to its Abnormal
/// logit, its 1-D convolutions written in 2-D (a network exported before
/// [`lift_model`] existed runs ~1.6x as fast so).
fn stacked_graph(bytes: &[u8], lr: &Logistic, weight: f64, width: usize) -> Result<Vec<u8>> {
    let (raw, bias) = lr.raw();
    let weights: Vec<f32> = raw.iter().map(|v| (weight * v) as f32).collect();
    let note = format!(
        "; stacked: Abnormal logit + {weight} x a logistic regression on its {width} rhythm features (ecg-train stack)"
    );
    add_feature_logit(
        &lift_model(bytes)?,
        ABNORMAL as usize,
        &weights,
        (weight * bias) as f32,
        &note,
    )
}

/// The stacked model's card: the network's, with the stack recorded in
/// `training.stack`, the held-out figures of both, and the new file's digest.
fn stacked_card(
    opts: &StackOptions,
    base: &ModelCard,
    stacked: &[u8],
    checked: Checked,
) -> Result<ModelCard> {
    let Checked {
        lr,
        names,
        train,
        sets: [(val, val_m), (test, test_m)],
        max_abs_diff,
    } = checked;
    let kind = base.segment()?;
    let split = &base.split;
    let stack = json!({
        "score": "logit(P_net(Abnormal)) + weight * z, z = intercept + coef . (features - mean) / scale",
        "weight": opts.weight,
        "weight_chosen_by": if opts.weight == DEFAULT_WEIGHT {
            "2-fold record-wise cross-validation over DS1 (scripts/stack_cv.py): mean held-out ROC AUC 0.904 at weight 0, 0.922 at 1 (chosen), 0.916 at 2"
        } else {
            "given on the command line (--weight), not the cross-validated 1"
        },
        "features": names,
        "logistic": lr,
        "class_weight": "balanced",
        "fitted_on": {"records": split.train_records, "windows": train.summary()},
        "base": {"name": base.name, "version": base.version, "sha256": base.sha256},
        "graph": "the base network's graph with its 1-D convolutions and pools written as height-1 2-D ones (train::lift_2d, for ONNX Runtime's NCHWc kernels: the same arithmetic, outputs within ~1e-6), then the regression's three nodes",
    });
    let mut metrics = base.metrics.clone();
    if let Some(m) = metrics.as_object_mut() {
        m.insert("test".into(), serde_json::to_value(&test_m.stacked)?);
        m.insert("validation".into(), serde_json::to_value(&val_m.stacked)?);
        m.insert(
            "test_per_record".into(),
            per_record(&test, &test_m.stacked_probs, kind.decision.threshold),
        );
        m.insert(
            "network_alone".into(),
            json!({"test": test_m.net, "validation": val_m.net}),
        );
        m.insert(
            "stack_check".into(),
            json!({"max_abs_diff_margin": max_abs_diff, "windows": val.len() + test.len()}),
        );
        m.insert(
            "measured_with".into(),
            json!(format!(
                "ecg-train stack (ONNX Runtime, {} test windows)",
                test.len()
            )),
        );
    }
    let mut card = base.clone();
    card.name = opts.name.clone();
    card.version = opts.version.clone();
    card.file = format!("{}.onnx", opts.name);
    card.sha256 = sha256_hex(stacked);
    card.training.stack = Some(stack);
    card.metrics = metrics;
    card.created_by = format!("ecg-train {} stack", env!("CARGO_PKG_VERSION"));
    if let ModelKind::Segment(s) = &mut card.kind {
        s.decision.chosen_by = format!(
            "{}, kept from {} {} and applied to the stacked logits",
            kind.decision.chosen_by, base.name, base.version
        );
    }
    if let Some(logits) = card.outputs.iter_mut().find(|o| o.name == "logits") {
        logits.description = format!(
            "class logits; softmax gives probabilities in `labels` order. The Abnormal logit is the network's plus {} x a logistic regression on `features` (training.stack)",
            opts.weight
        );
    }
    Ok(card)
}

/// Writes the stacked `.onnx`, its report and its card; returns the card's path.
fn write(
    opts: &StackOptions,
    onnx_path: &Path,
    stacked: &[u8],
    card: ModelCard,
) -> Result<PathBuf> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    std::fs::write(onnx_path, stacked)?;
    let base_path = opts.out.join(&opts.name);
    std::fs::write(
        base_path.with_extension("report.json"),
        serde_json::to_string_pretty(&card.metrics)?,
    )?;
    let new_card = base_path.with_extension("json");
    card.write(&new_card)?;
    eprintln!("wrote {} and {}", onnx_path.display(), new_card.display());
    Ok(new_card)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

//! What the segment and the beat trainers share: the options of a run, the
//! train / validation / test sets of a split, and the model card of a trained
//! network. Neither trainer imports the other; both import this.

use anyhow::{bail, Result};

use super::data::{SplitMix, WindowSet, DS1, DS2, PACED};
use super::training::TrainingConfig;
use crate::model::card::{sha256_hex, AttentionMap, Split, TensorSpec, TrainingRecord};
use crate::model::{ModelCard, ModelKind};
use std::path::PathBuf;

/// How records become train / validation / test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    /// DS1 trains (minus validation records), DS2 tests (de Chazal 2004).
    InterPatient,
    /// Windows of all non-paced records pooled and split 80/10/10 at random.
    /// Leaks patients between sets: only for comparison with papers that do it.
    Random,
}

/// Everything `ecg-train segment` and `ecg-train beat` need.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub db: PathBuf,
    pub out: PathBuf,
    pub name: String,
    pub version: String,
    pub split: SplitKind,
    pub validation_records: Vec<String>,
    pub training: TrainingConfig,
    /// Cap on windows per set (tiny CI runs); `None` uses everything.
    pub max_windows: Option<usize>,
}

/// The three sets of a run and the split that made them.
pub struct Sets {
    pub split: Split,
    pub train: WindowSet,
    pub val: WindowSet,
    pub test: WindowSet,
}

/// Owned copies of a list of record names.
pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Loads the examples of some records; `true` for the training set.
pub type Loader<'a> = &'a dyn Fn(&[String], bool) -> Result<WindowSet>;

fn cap(set: WindowSet, max: Option<usize>, seed: u64) -> WindowSet {
    match max {
        Some(m) if m < set.len() => {
            let mut idx: Vec<usize> = (0..set.len()).collect();
            SplitMix::new(seed).shuffle(&mut idx);
            idx.truncate(m);
            idx.sort();
            set.subset(&idx)
        }
        _ => set,
    }
}

/// The train / validation / test sets of `opts.split`, each from `load`.
pub fn build_sets(opts: &TrainOptions, load: Loader) -> Result<Sets> {
    let seed = opts.training.seed;
    match opts.split {
        SplitKind::InterPatient => {
            let val_names = opts.validation_records.clone();
            if let Some(r) = val_names.iter().find(|r| !DS1.contains(&r.as_str())) {
                bail!("validation record {r} is not in DS1; validation must come from the training patients' set");
            }
            let train_names: Vec<String> = strings(&DS1)
                .into_iter()
                .filter(|r| !val_names.contains(r))
                .collect();
            eprintln!(
                "loading DS1 ({} train + {} validation records) and DS2 ({} test records)",
                train_names.len(),
                val_names.len(),
                DS2.len()
            );
            let train = cap(load(&train_names, true)?, opts.max_windows, seed);
            let val = cap(load(&val_names, false)?, opts.max_windows, seed);
            let test = cap(load(&strings(&DS2), false)?, opts.max_windows, seed);
            let split = Split {
                kind: "inter-patient: DS1 -> DS2 (de Chazal 2004)".into(),
                train_records: train_names,
                validation_records: val_names,
                test_records: strings(&DS2),
                excluded_records: strings(&PACED),
            };
            Ok(Sets {
                split,
                train,
                val,
                test,
            })
        }
        SplitKind::Random => {
            let all: Vec<String> = strings(&DS1).into_iter().chain(strings(&DS2)).collect();
            eprintln!("loading {} non-paced records for a RANDOM split", all.len());
            let pooled = load(&all, false)?;
            let mut idx: Vec<usize> = (0..pooled.len()).collect();
            SplitMix::new(seed).shuffle(&mut idx);
            let (n_test, n_val) = (pooled.len() / 10, pooled.len() / 10);
            let (test_idx, rest) = idx.split_at(n_test);
            let (val_idx, train_idx) = rest.split_at(n_val);
            let split = Split {
                kind: "RANDOM split of windows or beats 80/10/10 (patients leak between sets; figures are inflated, not inter-patient)".into(),
                train_records: all.clone(),
                validation_records: all.clone(),
                test_records: all,
                excluded_records: strings(&PACED),
            };
            let m = opts.max_windows;
            Ok(Sets {
                split,
                train: cap(pooled.subset(train_idx), m, seed),
                val: cap(pooled.subset(val_idx), m, seed),
                test: cap(pooled.subset(test_idx), m, seed),
            })
        }
    }
}

/// What differs between the segment and the beat model's cards.
pub struct CardSpecifics {
    pub labels: Vec<String>,
    pub input_description: String,
    /// The kind, with its preprocessing, decision and label rule.
    pub kind: ModelKind,
}

/// The model card of a trained network: the parts both models share (name,
/// file digest, tensor shapes, attention map, split, training configuration,
/// metrics) plus their `specifics`.
pub fn model_card(
    opts: &TrainOptions,
    cfg: &TrainingConfig,
    split: Split,
    bytes: &[u8],
    metrics: serde_json::Value,
    specifics: CardSpecifics,
) -> ModelCard {
    let m = &cfg.model;
    let spt = m.samples_per_token();
    ModelCard {
        name: opts.name.clone(),
        version: opts.version.clone(),
        file: format!("{}.onnx", opts.name),
        sha256: sha256_hex(bytes),
        labels: specifics.labels,
        input: TensorSpec {
            name: "signal".into(),
            shape: vec![-1, m.input_channels as i64, m.input_samples as i64],
            description: specifics.input_description,
        },
        outputs: vec![
            TensorSpec {
                name: "logits".into(),
                shape: vec![-1, m.classes as i64],
                description: "class logits; softmax gives probabilities in `labels` order".into(),
            },
            TensorSpec {
                name: "attention".into(),
                shape: vec![-1, m.tokens() as i64],
                description: "attention each token receives, averaged over heads and queries"
                    .into(),
            },
        ],
        attention: Some(AttentionMap {
            tokens: m.tokens(),
            samples_per_token: spt,
            token_s: spt as f64 / specifics.kind.sample_rate_hz(),
        }),
        kind: specifics.kind,
        split,
        training: TrainingRecord {
            config: match serde_json::to_value(cfg) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => Default::default(),
            },
            stack: None,
        },
        metrics,
        created_by: format!("ecg-train {}", env!("CARGO_PKG_VERSION")),
    }
}

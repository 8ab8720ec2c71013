//! `ecg-train sweep FILE`: hyper-parameter search over an `ecg-train` command,
//! from a Weights & Biases-style sweep file:
//!
//! ```yaml
//! command: beat                  # the ecg-train command each trial runs
//! config: runs/beat.yaml         # its run config (optional)
//! method: bayes                  # grid | random | bayes (TPE)
//! metric: {name: cv_score, goal: maximize}
//! parameters:
//!   only: {value: all}
//!   learning-rate: {min: 0.0003, max: 0.01, distribution: log_uniform_values}
//!   hidden: {values: [[64, 32], [128, 64]]}
//!   epochs: {min: 6, max: 20}          # whole bounds: int_uniform
//! early_terminate: {type: median, min_iter: 2, min_trials: 5}   # or hyperband (min_iter, max_iter, eta)
//! run_cap: 20
//! ```
//!
//! **A trial** is `ecg-train <command> --config <config> --<parameter>=<value>
//! ... --out <study>/trial-<n>` as a child process, so a trial is exactly what
//! a user would run, and its effective run config is written beside it. A
//! command that has `--cv-only` gets it: a sweep chooses by cross-validation
//! and its trials never read the test set.
//!
//! **Metrics.** A trial's metrics (what the trainers give
//! [`super::tracking::log_metrics`]) come back through a JSON-lines file
//! ([`METRICS_ENV`]). The trial's value is the best value of `metric.name` it
//! reported, in the goal's direction: the candidate the beat trainer keeps, the
//! epoch the segment trainer keeps. The pruner sees the metric's intermediate
//! values: for `ecg-train beat`, the `fold_*` figure pooled over the folds
//! scored so far (`cv_score` is pruned on `fold_score`); for the per-epoch
//! trainers, the metric itself by epoch. A value is judged only at steps that a
//! completed trial went past, so a trial's last step is never judged and the
//! decisions do not depend on how fast the sweep reads the file: a study is the
//! same each time it is run.
//!
//! **The optimiser** is the `optimizer` crate: TPE (`bayes`) and random
//! sampling, median and Hyperband pruning. `grid` is W&B's: every combination of
//! the `values`, in order, each queued as one trial (the crate's own grid
//! sampler steps each parameter separately). Its journal
//! (`<study>/study.jsonl`) is the study file: running the sweep again resumes
//! it (a grid skips the combinations it holds; the samplers' seeds move on by
//! the trials held). With MLflow tracking on, the sweep is a run and each
//! trial a child run of it. At the end: a table of the trials, and the best
//! trial's run config as `<study>/best.yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use optimizer::parameter::{
    CategoricalParam, FloatParam, IntParam, ParamId, ParamValue, Parameter,
};
use optimizer::pruner::{HyperbandPruner, MedianPruner, NopPruner, Pruner};
use optimizer::sampler::random::RandomSampler;
use optimizer::sampler::tpe::TpeSamplerBuilder;
use optimizer::sampler::{CompletedTrial, Sampler};
use optimizer::storage::JournalStorage;
use optimizer::{Direction, Study, Trial, TrialState};
use serde::Deserialize;
use serde_json::Value;

use super::run_config::{self, flag_text, Options};

/// The environment variable naming the file a trial appends its metrics to
/// (JSON lines: `{"key", "value", "step"}`).
pub const METRICS_ENV: &str = "ECG_TRAIN_METRICS";

/// A sweep file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// The `ecg-train` command a trial runs (`beat`, `segment`, `beat-net`).
    pub command: String,
    /// Its run config, relative to the working folder.
    pub config: Option<PathBuf>,
    pub method: Method,
    pub metric: Metric,
    pub parameters: BTreeMap<String, ParamSpec>,
    pub early_terminate: Option<EarlyTerminate>,
    /// Trials in the study at most.
    pub run_cap: Option<usize>,
    /// Seed of the random and TPE samplers (default 0).
    pub seed: Option<u64>,
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Grid,
    Random,
    Bayes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    pub goal: Goal,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Maximize,
    Minimize,
}

/// One parameter: a fixed `value`, a list of `values`, or a `min`..`max` range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub value: Option<Value>,
    pub values: Option<Vec<Value>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `uniform`, `int_uniform`, `q_uniform` (with `q`), `log_uniform_values`;
    /// default: `int_uniform` when both bounds are whole numbers, else `uniform`.
    pub distribution: Option<String>,
    pub q: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyTerminate {
    /// `median` or `hyperband`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Steps before a trial may be pruned (median), or the least resource (hyperband).
    pub min_iter: Option<u64>,
    pub max_iter: Option<u64>,
    pub eta: Option<u64>,
    /// Median: completed trials with a value at a step before a trial may be
    /// pruned there (default 5, as Optuna's `n_startup_trials`; with fewer,
    /// one lucky first trial prunes everything after it).
    pub min_trials: Option<u64>,
}

/// A parameter ready to sample.
enum Space {
    Fixed(String),
    Choice(CategoricalParam<String>),
    Float(FloatParam),
    Int(IntParam),
}

impl Space {
    fn id(&self) -> Option<ParamId> {
        match self {
            Space::Fixed(_) => None,
            Space::Choice(p) => Some(p.id()),
            Space::Float(p) => Some(p.id()),
            Space::Int(p) => Some(p.id()),
        }
    }

    fn suggest(&self, trial: &mut Trial) -> Result<String> {
        Ok(match self {
            Space::Fixed(v) => v.clone(),
            Space::Choice(p) => p.suggest(trial)?,
            Space::Float(p) => p.suggest(trial)?.to_string(),
            Space::Int(p) => p.suggest(trial)?.to_string(),
        })
    }
}

/// The metrics a command reports as it runs, each with the metric its
/// intermediate values are read from.
fn metrics_of(command: &str) -> &'static [(&'static str, &'static str)] {
    match command {
        "beat" => &[
            ("cv_score", "fold_score"),
            ("cv_S_F1", "fold_S_F1"),
            ("cv_V_F1", "fold_V_F1"),
            ("cv_accuracy", "fold_accuracy"),
        ],
        "segment" | "beat-net" => &[
            ("val_score", "val_score"),
            ("val_loss", "val_loss"),
            ("val_accuracy", "val_accuracy"),
            ("train_loss", "train_loss"),
        ],
        _ => &[],
    }
}

/// Flags a sweep sets itself.
const OWN_FLAGS: [&str; 3] = ["out", "config", "cv-only"];

impl SweepFile {
    /// Reads and checks a sweep file against the commands of `cli`; every
    /// error is one line naming the field.
    pub fn read(path: &Path, cli: &clap::Command) -> Result<SweepFile> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
        let sweep: SweepFile =
            serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let sub = cli
            .get_subcommands()
            .find(|s| s.get_name() == sweep.command && s.get_name() != "sweep")
            .with_context(|| {
                format!(
                    "{name}: command: `{}` is not an ecg-train command a sweep can run; accepted: {}",
                    sweep.command,
                    ["beat", "segment", "beat-net"].join(", ")
                )
            })?;
        let produced = metrics_of(&sweep.command);
        if !produced.iter().any(|(m, _)| *m == sweep.metric.name) {
            bail!(
                "{name}: metric.name: `ecg-train {}` does not report `{}`; it reports {}",
                sweep.command,
                sweep.metric.name,
                if produced.is_empty() {
                    "nothing while it runs".to_string()
                } else {
                    produced
                        .iter()
                        .map(|(m, _)| *m)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
        if let Some(config) = &sweep.config {
            run_config::read(config).map_err(|e| anyhow::anyhow!("{name}: config: {e}"))?;
        }
        ensure_positive(&name, "run_cap", sweep.run_cap.map(|v| v as u64))?;
        for (key, spec) in &sweep.parameters {
            let field = format!("{name}: parameters.{key}");
            let long = key.replace('_', "-");
            if OWN_FLAGS.contains(&long.as_str()) {
                bail!("{field}: the sweep sets --{long} itself");
            }
            if !sub
                .get_arguments()
                .any(|a| a.get_long() == Some(long.as_str()))
            {
                bail!(
                    "{field}: `ecg-train {}` has no flag --{long}",
                    sweep.command
                );
            }
            match (&spec.value, &spec.values, spec.min, spec.max) {
                (Some(_), None, None, None) => {}
                (None, Some(v), None, None) if !v.is_empty() => {}
                (None, None, Some(lo), Some(hi)) => {
                    if sweep.method == Method::Grid {
                        bail!("{field}: a grid takes `values` (or `value`), not a range");
                    }
                    if lo > hi {
                        bail!("{field}: min {lo} is more than max {hi}");
                    }
                    match spec.distribution.as_deref() {
                        None | Some("uniform" | "int_uniform") => {}
                        Some("q_uniform") if spec.q.is_some_and(|q| q > 0.0) => {}
                        Some("q_uniform") => bail!("{field}: q_uniform needs a `q` above 0"),
                        Some("log_uniform_values") if lo > 0.0 => {}
                        Some("log_uniform_values") => {
                            bail!("{field}: log_uniform_values needs min > 0")
                        }
                        Some(other) => bail!(
                            "{field}: distribution `{other}`; accepted: uniform, int_uniform, q_uniform, log_uniform_values"
                        ),
                    }
                }
                _ => bail!("{field}: give `value`, a non-empty `values`, or `min` and `max`"),
            }
        }
        if let Some(e) = &sweep.early_terminate {
            match e.kind.as_str() {
                "median" => ensure_positive(&name, "early_terminate.min_trials", e.min_trials)?,
                "hyperband" => {
                    ensure_positive(&name, "early_terminate.min_iter", e.min_iter)?;
                    ensure_positive(&name, "early_terminate.max_iter", e.max_iter)?;
                    if e.eta.is_some_and(|eta| eta < 2) {
                        bail!("{name}: early_terminate.eta: at least 2");
                    }
                    if let (Some(lo), Some(hi)) = (e.min_iter, e.max_iter) {
                        if lo > hi {
                            bail!(
                                "{name}: early_terminate: min_iter {lo} is more than max_iter {hi}"
                            );
                        }
                    }
                }
                other => {
                    bail!("{name}: early_terminate.type: `{other}`; accepted: median, hyperband")
                }
            }
        }
        Ok(sweep)
    }

    /// The parameters in file order (sorted by name), each sampled by its name.
    fn spaces(&self) -> Vec<(String, Space)> {
        self.parameters
            .iter()
            .map(|(key, s)| {
                let long = key.replace('_', "-");
                let space = if let Some(v) = &s.value {
                    Space::Fixed(flag_text(v))
                } else if let Some(vs) = &s.values {
                    Space::Choice(
                        CategoricalParam::new(vs.iter().map(flag_text).collect()).name(&long),
                    )
                } else {
                    let (lo, hi) = (s.min.unwrap_or(0.0), s.max.unwrap_or(0.0));
                    let whole = lo.fract() == 0.0 && hi.fract() == 0.0;
                    match s.distribution.as_deref() {
                        Some("log_uniform_values") => {
                            Space::Float(FloatParam::new(lo, hi).log_scale().name(&long))
                        }
                        Some("q_uniform") => Space::Float(
                            FloatParam::new(lo, hi).step(s.q.unwrap_or(1.0)).name(&long),
                        ),
                        Some("int_uniform") => {
                            Space::Int(IntParam::new(lo as i64, hi as i64).name(&long))
                        }
                        None if whole => {
                            Space::Int(IntParam::new(lo as i64, hi as i64).name(&long))
                        }
                        _ => Space::Float(FloatParam::new(lo, hi).name(&long)),
                    }
                };
                (long, space)
            })
            .collect()
    }

    fn direction(&self) -> Direction {
        match self.metric.goal {
            Goal::Maximize => Direction::Maximize,
            Goal::Minimize => Direction::Minimize,
        }
    }

    fn pruner(&self) -> Box<dyn Pruner> {
        let d = self.direction();
        match &self.early_terminate {
            Some(e) if e.kind == "median" => Box::new(
                MedianPruner::new(d)
                    .n_warmup_steps(e.min_iter.unwrap_or(0))
                    .n_min_trials(e.min_trials.unwrap_or(5).max(1) as usize),
            ),
            Some(e) => Box::new(
                HyperbandPruner::new()
                    .min_resource(e.min_iter.unwrap_or(1))
                    .max_resource(e.max_iter.unwrap_or(27))
                    .reduction_factor(e.eta.unwrap_or(3))
                    .direction(d),
            ),
            None => Box::new(NopPruner),
        }
    }

    /// The sampler; its seed moves on by the trials the study already holds,
    /// so that a resumed study does not draw its first trials again.
    fn sampler(&self, held: usize) -> Result<Box<dyn Sampler>> {
        let seed = self.seed.unwrap_or(0).wrapping_add(held as u64);
        Ok(match self.method {
            // Every trial of a grid is queued; the sampler draws none.
            Method::Grid | Method::Random => Box::new(RandomSampler::with_seed(seed)),
            Method::Bayes => Box::new(TpeSamplerBuilder::new().seed(seed).build()?),
        })
    }

    /// The metric the trials' intermediate values are read from.
    fn intermediate(&self) -> &'static str {
        metrics_of(&self.command)
            .iter()
            .find(|(m, _)| *m == self.metric.name)
            .map_or("", |(_, i)| *i)
    }

    /// Whether `a` is better than `b` for the goal.
    fn better(&self, a: f64, b: f64) -> bool {
        match self.metric.goal {
            Goal::Maximize => a > b,
            Goal::Minimize => a < b,
        }
    }
}

fn ensure_positive(file: &str, field: &str, v: Option<u64>) -> Result<()> {
    if v == Some(0) {
        bail!("{file}: {field}: at least 1");
    }
    Ok(())
}

/// Where a sweep runs and what it may do.
pub struct SweepRun<'a> {
    pub file: &'a Path,
    /// The study folder: trials' outputs, the journal, the best config.
    pub study: PathBuf,
    /// Trials to have in the study in all (completed and pruned ones of an
    /// earlier run count); `run_cap` bounds it, and so does a grid's size.
    pub trials: usize,
    /// The `ecg-train` binary.
    pub exe: PathBuf,
    /// MLflow: the tracking URI and experiment.
    pub mlflow: Option<(String, String)>,
}

/// One trial as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    pub number: u64,
    pub state: &'static str,
    pub value: Option<f64>,
    pub params: Vec<(String, String)>,
}

/// What a sweep ends with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub metric: String,
    pub rows: Vec<TrialRow>,
    pub best: Option<TrialRow>,
    /// `<study>/best.yaml`, when a trial completed.
    pub best_config: Option<PathBuf>,
}

impl Outcome {
    /// The table of trials and the best one.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:>5}  {:<9} {:>10}  parameters\n",
            "trial", "state", self.metric
        );
        for r in &self.rows {
            let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!(
                "{:>5}  {:<9} {:>10}  {}\n",
                r.number,
                r.state,
                r.value.map_or("-".to_string(), |v| format!("{v:.4}")),
                params.join(" ")
            ));
        }
        match (&self.best, &self.best_config) {
            (Some(b), Some(path)) => s.push_str(&format!(
                "best: trial {} ({} {:.4}); its run config: {}\n",
                b.number,
                self.metric,
                b.value.unwrap_or(f64::NAN),
                path.display()
            )),
            _ => s.push_str("no trial completed\n"),
        }
        s
    }
}

/// The user attribute a trial keeps each parameter's text in.
fn attr(long: &str) -> String {
    format!("param:{long}")
}

/// Runs (or resumes) the sweep.
pub fn run(cli: &clap::Command, opts: &SweepRun) -> Result<Outcome> {
    let sweep = SweepFile::read(opts.file, cli)?;
    let sub = cli
        .find_subcommand(&sweep.command)
        .context("the command is gone")?;
    std::fs::create_dir_all(&opts.study)
        .with_context(|| format!("cannot make {}", opts.study.display()))?;
    let journal = opts.study.join("study.jsonl");
    let storage = JournalStorage::<f64>::open(&journal)
        .map_err(|e| anyhow::anyhow!("{}: {e}", journal.display()))?;
    // Parameters are made before the study reads its trials back, in the same
    // order each time, so their ids are those the journal holds.
    let spaces = sweep.spaces();
    let held = {
        let probe: Study<f64> = Study::with_sampler_and_storage(
            sweep.direction(),
            RandomSampler::new(),
            JournalStorage::<f64>::open(&journal)
                .map_err(|e| anyhow::anyhow!("{}: {e}", journal.display()))?,
        );
        probe.trials()
    };
    check_same_sweep(&held, &spaces, &journal)?;
    let study: Study<f64> = Study::with_sampler_pruner_and_storage(
        sweep.direction(),
        BoxedSampler(sweep.sampler(held.len())?),
        BoxedPruner(sweep.pruner()),
        storage,
    );
    let mut goal = opts.trials.min(sweep.run_cap.unwrap_or(usize::MAX));
    if sweep.method == Method::Grid {
        let combos = grid(&sweep, &spaces);
        goal = goal.min(combos.len());
        let tried: Vec<Vec<String>> = held.iter().map(|t| values_of(t, &spaces)).collect();
        for combo in combos {
            let texts: Vec<String> = combo.iter().map(|(_, _, t)| t.clone()).collect();
            if !tried.contains(&texts) {
                study.enqueue(
                    combo
                        .into_iter()
                        .filter_map(|(id, v, _)| Some((id?, v)))
                        .collect(),
                );
            }
        }
    }
    if !held.is_empty() {
        eprintln!(
            "resuming {}: {} trials already in it",
            journal.display(),
            held.len()
        );
    }
    let parent = opts.mlflow.as_ref().and_then(|(uri, experiment)| {
        let name = sweep.name.clone().unwrap_or_else(|| {
            format!(
                "sweep {}",
                opts.file.file_stem().unwrap_or_default().to_string_lossy()
            )
        });
        let params = [
            ("sweep".to_string(), opts.file.display().to_string()),
            ("command".to_string(), sweep.command.clone()),
            (
                "method".to_string(),
                format!("{:?}", sweep.method).to_lowercase(),
            ),
            ("metric".to_string(), sweep.metric.name.clone()),
        ];
        let tags = [(
            "mlflow.source.git.commit".to_string(),
            env!("ECG_GIT_SHA").to_string(),
        )];
        super::tracking::start(uri, experiment, &name, &params, &tags);
        super::tracking::run_id()
    });
    let bar = indicatif::ProgressBar::new(goal as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("trials {bar:30} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    let mut failed = 0;
    let in_study = |study: &Study<f64>| study.trials().len();
    bar.set_position(in_study(&study).min(goal) as u64);
    let outcome = (|| -> Result<()> {
        while in_study(&study) + failed < goal {
            let mut trial = study.ask();
            let number = trial.id();
            let mut params = Vec::new();
            for (long, space) in &spaces {
                let value = space.suggest(&mut trial)?;
                trial.set_user_attr(attr(long), value.clone());
                params.push((long.clone(), value));
            }
            let shown = params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            say(&bar, format!("trial {number}: {shown}"));
            // Only steps that a completed trial went past are judged.
            let judged_below = study
                .trials()
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .flat_map(|t| t.intermediate_values.iter().map(|(s, _)| *s))
                .max()
                .unwrap_or(0);
            let ran = run_trial(
                &sweep,
                sub,
                opts,
                &parent,
                number,
                &params,
                &mut trial,
                judged_below,
            )?;
            match ran {
                Ran::Pruned(step) => {
                    say(&bar, format!("trial {number}: pruned at step {step}"));
                    study.prune_trial(trial);
                }
                Ran::Complete(v) => {
                    say(
                        &bar,
                        format!("trial {number}: {} {v:.4}", sweep.metric.name),
                    );
                    super::tracking::log_metrics(&[("trial_value", v)], number);
                    study.tell(trial, Ok::<_, String>(v));
                }
                Ran::Failed(why) => {
                    say(&bar, format!("trial {number}: failed: {why}"));
                    failed += 1;
                    study.tell(trial, Err::<f64, _>(why));
                }
            }
            bar.set_position((in_study(&study) + failed).min(goal) as u64);
            if let Ok(best) = study.best_value() {
                super::tracking::log_metrics(&[("best_value", best)], number);
                bar.set_message(format!("best {} {best:.4}", sweep.metric.name));
            }
        }
        Ok(())
    })();
    bar.finish_and_clear();
    if parent.is_some() {
        super::tracking::finish(if outcome.is_ok() {
            "FINISHED"
        } else {
            "FAILED"
        });
    }
    outcome?;
    let rows: Vec<TrialRow> = study
        .trials()
        .into_iter()
        .map(|t| TrialRow {
            number: t.id,
            state: match t.state {
                TrialState::Complete => "complete",
                TrialState::Pruned => "pruned",
                TrialState::Failed => "failed",
                TrialState::Running => "running",
            },
            value: (t.state == TrialState::Complete).then_some(t.value),
            params: spaces
                .iter()
                .map(|(long, _)| (long.clone(), param_text(&t, long)))
                .collect(),
        })
        .collect();
    let best = study
        .best_trial()
        .ok()
        .and_then(|b| rows.iter().find(|r| r.number == b.id).cloned());
    let best_config = match &best {
        Some(b) => Some(write_best(&sweep, opts, b)?),
        None => None,
    };
    Ok(Outcome {
        metric: sweep.metric.name.clone(),
        rows,
        best,
        best_config,
    })
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a
/// terminal: a log keeps every trial).
fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// What one trial came to.
enum Ran {
    Complete(f64),
    Pruned(u64),
    Failed(String),
}

/// Runs trial `number` as a child process, reporting its intermediate values
/// to the pruner as they come; only steps below `judged_below` may prune it.
#[allow(clippy::too_many_arguments)]
fn run_trial(
    sweep: &SweepFile,
    sub: &clap::Command,
    opts: &SweepRun,
    parent: &Option<String>,
    number: u64,
    params: &[(String, String)],
    trial: &mut Trial,
    judged_below: u64,
) -> Result<Ran> {
    let out = opts.study.join(format!("trial-{number}"));
    std::fs::create_dir_all(&out)?;
    let metrics = out.join("metrics.jsonl");
    let _ = std::fs::remove_file(&metrics);
    let mut cmd = Process::new(&opts.exe);
    cmd.arg(&sweep.command);
    if let Some(c) = &sweep.config {
        cmd.arg("--config").arg(c);
    }
    for (k, v) in params {
        let arg = sub
            .get_arguments()
            .find(|a| a.get_long() == Some(k.as_str()));
        if arg.is_some_and(|a| !a.get_action().takes_values()) {
            // A switch: given or not.
            if v == "true" {
                cmd.arg(format!("--{k}"));
            }
        } else {
            cmd.arg(format!("--{k}={v}"));
        }
    }
    if sub.get_arguments().any(|a| a.get_long() == Some("cv-only")) {
        cmd.arg("--cv-only");
    }
    cmd.arg("--out").arg(&out).env(METRICS_ENV, &metrics);
    match &opts.mlflow {
        Some((uri, experiment)) => {
            cmd.args(["--mlflow-uri", uri, "--mlflow-experiment", experiment])
                .env(super::tracking::RUN_NAME_ENV, format!("trial-{number}"));
            if let Some(p) = parent {
                cmd.env(super::tracking::PARENT_ENV, p);
            }
        }
        None => {
            cmd.env_remove("MLFLOW_TRACKING_URI");
        }
    }
    let log_path = out.join("trial.log");
    let log = std::fs::File::create(&log_path)?;
    cmd.stdout(log.try_clone()?).stderr(log);
    let mut child = cmd.spawn().context("cannot start a trial")?;
    let intermediate = sweep.intermediate();
    let mut read = 0usize;
    let mut best: Option<f64> = None;
    let mut pruned = None;
    let status = loop {
        let finished = child.try_wait()?;
        if let Ok(all) = std::fs::read_to_string(&metrics) {
            let end = all.rfind('\n').map_or(read, |i| i + 1);
            for line in all.get(read..end).unwrap_or_default().lines() {
                let Ok(m) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let (Some(key), Some(v), Some(step)) =
                    (m["key"].as_str(), m["value"].as_f64(), m["step"].as_u64())
                else {
                    continue;
                };
                if key == sweep.metric.name && best.is_none_or(|b| sweep.better(v, b)) {
                    best = Some(v);
                }
                if key == intermediate && pruned.is_none() {
                    trial.report(step, v);
                    if step < judged_below && trial.should_prune() {
                        pruned = Some(step);
                    }
                }
            }
            read = end;
        }
        if let Some(step) = pruned {
            if finished.is_none() {
                stop(&mut child);
            }
            return Ok(Ran::Pruned(step));
        }
        if let Some(status) = finished {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(match (status.success(), best) {
        (true, Some(v)) => Ran::Complete(v),
        (true, None) => Ran::Failed(format!(
            "it reported no {} (log: {})",
            sweep.metric.name,
            log_path.display()
        )),
        (false, _) => Ran::Failed(format!("{status} (log: {})", log_path.display())),
    })
}

/// Stops a pruned trial: SIGTERM first, so that it marks its MLflow run
/// KILLED, then SIGKILL after 10 s.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid, which it still is: the
            // child has not been waited for.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Every combination of the parameters' values, in order (the first
/// parameter slowest): each value's id, the sampler's value and its text.
fn grid(
    sweep: &SweepFile,
    spaces: &[(String, Space)],
) -> Vec<Vec<(Option<ParamId>, ParamValue, String)>> {
    let mut combos: Vec<Vec<(Option<ParamId>, ParamValue, String)>> = vec![Vec::new()];
    for (long, space) in spaces {
        let choices: Vec<(ParamValue, String)> = match space {
            Space::Fixed(v) => vec![(ParamValue::Int(0), v.clone())],
            Space::Choice(_) => sweep.parameters[&key_of(sweep, long)]
                .values
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, v)| (ParamValue::Categorical(i), flag_text(v)))
                .collect(),
            // A grid has only values (checked when the file was read).
            Space::Float(_) | Space::Int(_) => Vec::new(),
        };
        combos = combos
            .into_iter()
            .flat_map(|c| {
                choices.iter().map(move |(v, t)| {
                    let mut c = c.clone();
                    c.push((space.id(), v.clone(), t.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// The file's key of the flag `long` (`lr_decay` or `lr-decay`).
fn key_of(sweep: &SweepFile, long: &str) -> String {
    sweep
        .parameters
        .keys()
        .find(|k| k.replace('_', "-") == long)
        .cloned()
        .unwrap_or_default()
}

/// A held trial's parameter text.
fn param_text(t: &CompletedTrial<f64>, long: &str) -> String {
    match t.user_attrs.get(&attr(long)) {
        Some(optimizer::AttrValue::String(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn values_of(t: &CompletedTrial<f64>, spaces: &[(String, Space)]) -> Vec<String> {
    spaces.iter().map(|(long, _)| param_text(t, long)).collect()
}

/// A journal written by another sweep file would feed the sampler values of
/// other parameters under the same ids: refuse it.
fn check_same_sweep(
    held: &[CompletedTrial<f64>],
    spaces: &[(String, Space)],
    journal: &Path,
) -> Result<()> {
    for t in held {
        for (long, space) in spaces {
            let Some(id) = space.id() else { continue };
            if t.param_labels.get(&id).is_some_and(|l| l != long)
                || !t.user_attrs.contains_key(&attr(long))
            {
                bail!(
                    "{}: the study holds trials of other parameters than this sweep file's (no `{long}` in trial {}); give another --study",
                    journal.display(),
                    t.id
                );
            }
        }
    }
    Ok(())
}

/// `<study>/best.yaml`: the best trial's effective run config (as the trial
/// wrote it), with `--out` back to the sweep's config's and `--cv-only` off.
fn write_best(sweep: &SweepFile, opts: &SweepRun, best: &TrialRow) -> Result<PathBuf> {
    let dir = opts.study.join(format!("trial-{}", best.number));
    let written = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".run.yaml"))
        .with_context(|| {
            format!(
                "trial {} wrote no run config in {}",
                best.number,
                dir.display()
            )
        })?;
    let mut options: Options = run_config::read(&written)?;
    let base = match &sweep.config {
        Some(c) => run_config::read(c)?,
        None => Options::new(),
    };
    match base.get("out") {
        Some(out) => options.insert("out".into(), out.clone()),
        None => options.remove("out"),
    };
    if options.contains_key("cv-only") {
        options.insert("cv-only".into(), Value::Bool(false));
    }
    let path = opts.study.join("best.yaml");
    let header = format!(
        "# The best trial ({}) of the sweep {}: {} {:.6}.\n# ecg-train {} --config {}\n",
        best.number,
        opts.file.display(),
        sweep.metric.name,
        best.value.unwrap_or(f64::NAN),
        sweep.command,
        path.display()
    );
    run_config::write(&path, &options, &header)?;
    Ok(path)
}

/// A boxed sampler as the study takes one.
struct BoxedSampler(Box<dyn Sampler>);

impl Sampler for BoxedSampler {
    fn sample(
        &self,
        distribution: &optimizer::distribution::Distribution,
        trial_id: u64,
        history: &[CompletedTrial],
    ) -> ParamValue {
        self.0.sample(distribution, trial_id, history)
    }
}

/// A boxed pruner as the study takes one.
struct BoxedPruner(Box<dyn Pruner>);

impl Pruner for BoxedPruner {
    fn should_prune(
        &self,
        trial_id: u64,
        step: u64,
        intermediate_values: &[(u64, f64)],
        completed_trials: &[CompletedTrial],
    ) -> bool {
        self.0
            .should_prune(trial_id, step, intermediate_values, completed_trials)
    }
}

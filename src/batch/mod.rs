//! `ecg-serve analyze`: folders of records through the service's own pipeline,
//! without HTTP.
//!
//! 1. [`discover`] walks the paths given (files or folders, recursively, in
//!    sorted order) for records: a WFDB header (`.hea`, with the signal file it
//!    names and its `.atr` when one lies beside it), an `.edf` or a `.csv`.
//! 2. `--shard i/n` keeps every n-th record from the i-th (0-based; an indexed
//!    Kubernetes Job passes `$(JOB_COMPLETION_INDEX)/n`), so that n machines
//!    split an archive without talking to each other.
//! 3. Each record's files become the parts of an upload and go to
//!    [`Analyser::analyse`], the call `/predict` makes; `--jobs` records are in
//!    flight at once (one's signal work overlaps another's inference on the
//!    process's one ONNX Runtime thread pool).
//! 4. Each answer is written as `<out>/<record>.json` (to a temporary name,
//!    then renamed: an interrupted run leaves no half answer), and a row of
//!    the summary table (`summary.csv` and `summary.jsonl`, or
//!    `summary-<i>-of-<n>.*` for a shard). A record that fails is a row with
//!    its error; the others go on. `--skip-existing` keeps answers already
//!    written (their rows are read back from them), so a run can resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::server::config::Config;
use crate::server::{start_beat_pool, start_pool, start_runtime};
use crate::service::answer::{Include, PredictResponse, Summary};
use crate::service::pipeline::{Analyser, AnalysisRequest};
use crate::service::pool::Readiness;
use crate::service::Analysis;
use crate::signal::upload::{ReadRequest, UploadPart};
use crate::signal::wfdb::parse_header;

/// `ecg-serve analyze` settings (the model flags are the server's).
#[derive(Debug, Clone, Args, Serialize)]
pub struct AnalyzeArgs {
    /// Records or folders of records (WFDB `.hea` + `.dat`, `.edf`, `.csv`),
    /// searched recursively.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Folder for the answers (one JSON per record) and the summary table.
    #[arg(long, env = "ECG_OUT")]
    pub out: PathBuf,
    /// Keep answers already in --out (resume an interrupted run).
    #[arg(long, env = "ECG_SKIP_EXISTING")]
    pub skip_existing: bool,
    /// Analyse only shard i of n (0 <= i < n): every n-th record from the i-th.
    #[arg(long, env = "ECG_SHARD", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Records in flight at once (default: the CPUs this process may use).
    #[arg(long, env = "ECG_JOBS")]
    pub jobs: Option<usize>,
    /// Lead to analyse, by name or index (default: the model's, MLII; falls
    /// back to the first lead with a warning, as /predict does).
    #[arg(long, env = "ECG_LEAD")]
    pub lead: Option<String>,
    /// Do not verify WFDB checksums.
    #[arg(long, env = "ECG_NO_VERIFY_CHECKSUMS")]
    pub no_verify_checksums: bool,
    /// Exit 0 although some records failed (they are in the summary with
    /// their errors); without it a run with failures exits 1.
    #[arg(long, env = "ECG_TOLERATE_FAILURES")]
    pub tolerate_failures: bool,
}

/// One shard of an archive: `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("`{text}`: expected i/n with 0 <= i < n, e.g. 0/4");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    (index < count)
        .then_some(Shard { index, count })
        .ok_or_else(bad)
}

/// A record found on disk: its name in the answers and the file that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Path of the answer under `--out`, without `.json` (the record's path
    /// under the folder it was found in).
    pub id: String,
    /// The `.hea`, `.edf` or `.csv`.
    pub path: PathBuf,
}

/// The extensions that start a record.
const RECORD_EXTENSIONS: [&str; 3] = ["hea", "edf", "csv"];

fn record_extension(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    RECORD_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// The records under `paths`, sorted within each path; a file given by name
/// that is not a record is an error, other files in folders are passed over.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    for root in paths {
        let meta = std::fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
        if meta.is_file() {
            record_extension(root).ok_or_else(|| {
                format!(
                    "{}: not a record file (accepted: .hea with its .dat, .edf, .csv)",
                    root.display()
                )
            })?;
            let stem = root.file_stem().unwrap_or_default().to_string_lossy();
            found.push((stem.to_string(), root.clone()));
        } else {
            let mut files = Vec::new();
            walk(root, &mut files).map_err(|e| format!("{}: {e}", root.display()))?;
            files.sort();
            for path in files {
                let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
                let id = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                found.push((id, path));
            }
        }
    }
    // Two records with one name (100.hea and 100.edf side by side) keep their
    // extensions in their answers' names.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (id, _) in &found {
        *seen.entry(id.clone()).or_default() += 1;
    }
    Ok(found
        .into_iter()
        .map(|(id, path)| {
            let id = if seen[&id] > 1 {
                let ext = record_extension(&path).unwrap_or_default();
                format!("{id}.{ext}")
            } else {
                id
            };
            Found { id, path }
        })
        .collect())
}

/// Record files under `dir`, recursively (symbolic links to folders are not
/// followed, so a link loop cannot trap the walk).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if record_extension(&path).is_some() && std::fs::metadata(&path)?.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// The records of shard `shard` (all without one).
pub fn shard_of(found: Vec<Found>, shard: Option<Shard>) -> Vec<Found> {
    match shard {
        None => found,
        Some(s) => found
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % s.count == s.index)
            .map(|(_, f)| f)
            .collect(),
    }
}

/// The upload parts of a record on disk: a header with the signal file it
/// names (and `<record>.atr` when present), or the file itself.
fn parts_of(path: &Path) -> Result<Vec<UploadPart>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let part = |field: &str, p: &Path, bytes: Vec<u8>| UploadPart {
        field: field.to_string(),
        file_name: p.file_name().map(|n| n.to_string_lossy().into_owned()),
        content_type: None,
        bytes,
    };
    let ext = record_extension(path).unwrap_or_default();
    if ext != "hea" {
        return Ok(vec![part(&ext, path, read(path)?)]);
    }
    let bytes = read(path)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let header =
        parse_header(&name, &String::from_utf8_lossy(&bytes)).map_err(|e| e.to_string())?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut parts = vec![part("hea", path, bytes)];
    for file in header.signal_files() {
        // The header's file name is a name, not a path: nothing outside the folder.
        let base = Path::new(file).file_name().unwrap_or_default();
        let dat = dir.join(base);
        parts.push(part("dat", &dat, read(&dat)?));
    }
    let atr = path.with_extension("atr");
    if atr.is_file() {
        parts.push(part("atr", &atr, read(&atr)?));
    }
    Ok(parts)
}

/// What the summary reads from an answer (written now, or earlier and kept).
#[derive(Debug, Clone, Deserialize)]
struct Digest {
    record: DigestRecord,
    summary: Summary,
    warnings: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct DigestRecord {
    lead: String,
    sampling_rate_hz: f64,
    duration_s: f64,
}

impl Digest {
    fn of(answer: &PredictResponse) -> Digest {
        Digest {
            record: DigestRecord {
                lead: answer.record.lead.clone(),
                sampling_rate_hz: answer.record.sampling_rate_hz,
                duration_s: answer.record.duration_s,
            },
            summary: answer.summary.clone(),
            warnings: answer.warnings.clone(),
        }
    }
}

/// One row of the summary table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub record: String,
    pub path: String,
    /// `ok`, `skipped` (answer kept from an earlier run) or `failed`.
    pub status: &'static str,
    pub lead: Option<String>,
    pub sampling_rate_hz: Option<f64>,
    pub duration_s: Option<f64>,
    pub beats: Option<usize>,
    pub heart_rate_bpm: Option<f64>,
    #[serde(rename = "N")]
    pub n: Option<usize>,
    #[serde(rename = "S")]
    pub s: Option<usize>,
    #[serde(rename = "V")]
    pub v: Option<usize>,
    #[serde(rename = "F")]
    pub f: Option<usize>,
    #[serde(rename = "Q")]
    pub q: Option<usize>,
    /// Percentage of beats that are S or V.
    pub ectopic_burden_pct: Option<f64>,
    pub segments: Option<usize>,
    pub abnormal_segments: Option<usize>,
    /// The answer's warnings, joined by ` | `.
    pub warnings: String,
    pub error: String,
}

impl Row {
    fn new(found: &Found, status: &'static str, digest: Option<&Digest>, error: String) -> Row {
        let summary = digest.map(|d| &d.summary);
        let count = |c: &str| {
            summary
                .and_then(|s| s.beat_counts.as_ref())
                .map(|m| m.get(c).copied().unwrap_or(0))
        };
        Row {
            record: found.id.clone(),
            path: found.path.display().to_string(),
            status,
            lead: digest.map(|d| d.record.lead.clone()),
            sampling_rate_hz: digest.map(|d| d.record.sampling_rate_hz),
            duration_s: digest.map(|d| d.record.duration_s),
            beats: summary.map(|s| s.beats),
            heart_rate_bpm: summary.and_then(|s| s.heart_rate_bpm),
            n: count("N"),
            s: count("S"),
            v: count("V"),
            f: count("F"),
            q: count("Q"),
            ectopic_burden_pct: summary.and_then(|s| s.ectopic_burden),
            segments: summary.map(|s| s.segments),
            abnormal_segments: summary.map(|s| s.abnormal_segments),
            warnings: digest.map(|d| d.warnings.join(" | ")).unwrap_or_default(),
            error,
        }
    }
}

/// How a run went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rows: Vec<Row>,
    /// The summary table (`.csv`; the `.jsonl` lies beside it).
    pub summary: PathBuf,
    pub seconds: f64,
}

impl Outcome {
    pub fn count(&self, status: &str) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }
}

fn answer_path(out: &Path, found: &Found) -> PathBuf {
    out.join(format!("{}.json", found.id))
}

/// Analyses one record into `<out>/<id>.json`.
async fn analyse_one(
    analyser: &Analyser,
    args: &AnalyzeArgs,
    found: &Found,
) -> Result<Digest, String> {
    let path = found.path.clone();
    let parts = tokio::task::spawn_blocking(move || parts_of(&path))
        .await
        .map_err(|e| e.to_string())??;
    let request = AnalysisRequest {
        parts,
        read: ReadRequest {
            verify_checksums: !args.no_verify_checksums,
            ..ReadRequest::default()
        },
        lead: args.lead.clone(),
        include: Include::default(),
        warnings: Vec::new(),
        received: Instant::now(),
    };
    let answer = match analyser.analyse(request).await.map_err(|e| e.to_string())? {
        Analysis::Recording(r) => *r,
        Analysis::Heartbeats(_) => {
            return Err(
                "heartbeat rows are labelled by POST /predict, not by the batch runner".into(),
            )
        }
    };
    let digest = Digest::of(&answer);
    let target = answer_path(&args.out, found);
    tokio::task::spawn_blocking(move || write_answer(&target, &answer))
        .await
        .map_err(|e| e.to_string())??;
    Ok(digest)
}

fn write_answer(target: &Path, answer: &PredictResponse) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", target.display());
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let partial = target.with_extension("json.partial");
    let file = std::fs::File::create(&partial).map_err(|e| fail(&e))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut w, answer).map_err(|e| fail(&e))?;
    std::io::Write::flush(&mut w).map_err(|e| fail(&e))?;
    std::fs::rename(&partial, target).map_err(|e| fail(&e))
}

/// A kept answer's digest, when `--skip-existing` finds one that reads.
fn kept(out: &Path, found: &Found) -> Option<Digest> {
    let file = std::fs::File::open(answer_path(out, found)).ok()?;
    serde_json::from_reader(std::io::BufReader::new(file)).ok()
}

/// Runs `ecg-serve analyze`: every record, the summary table.
pub async fn run(config: &Config, args: &AnalyzeArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let found = shard_of(
        discover(&args.paths).map_err(anyhow::Error::msg)?,
        args.shard,
    );
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", args.out.display()))?;
    let jobs = args
        .jobs
        .unwrap_or_else(crate::engine::available_cpus)
        .max(1);
    let mut config = config.clone();
    config.queue_size = config.queue_size.max(jobs);
    start_runtime(&config);
    let analyser = Arc::new(Analyser {
        segment: start_pool(&config),
        beat: start_beat_pool(&config),
        // Recordings only: heartbeat rows are answered by `POST /predict`.
        heartbeat: None,
        max_duration_s: config.max_duration_s,
    });
    loop {
        match analyser.readiness() {
            Readiness::Ready { .. } => break,
            Readiness::Failed(reason) => anyhow::bail!("the models did not load: {reason}"),
            Readiness::Loading => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let bar = ProgressBar::new(found.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} records, {per_sec}, ETA {eta} {msg}")
            .expect("a valid template"),
    );
    let args = Arc::new(args.clone());
    let gate = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rows: Vec<Option<Row>> = vec![None; found.len()];
    for (k, f) in found.into_iter().enumerate() {
        if args.skip_existing {
            if let Some(digest) = kept(&args.out, &f) {
                rows[k] = Some(Row::new(&f, "skipped", Some(&digest), String::new()));
                bar.inc(1);
                continue;
            }
        }
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let (analyser, args, bar) = (Arc::clone(&analyser), Arc::clone(&args), bar.clone());
        tasks.spawn(async move {
            let row = match analyse_one(&analyser, &args, &f).await {
                Ok(digest) => Row::new(&f, "ok", Some(&digest), String::new()),
                Err(error) => {
                    bar.println(format!("{}: {error}", f.id));
                    Row::new(&f, "failed", None, error)
                }
            };
            drop(permit);
            bar.inc(1);
            (k, row)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (k, row) = done?;
        rows[k] = Some(row);
    }
    bar.finish_and_clear();
    let rows: Vec<Row> = rows.into_iter().flatten().collect();
    let stem = match args.shard {
        Some(s) => format!("summary-{}-of-{}", s.index, s.count),
        None => "summary".to_string(),
    };
    let summary = args.out.join(format!("{stem}.csv"));
    write_summary(&summary, &args.out.join(format!("{stem}.jsonl")), &rows)?;
    Ok(Outcome {
        rows,
        summary,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn write_summary(csv_path: &Path, jsonl_path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_path(csv_path)?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(jsonl_path)?);
    for row in rows {
        csv.serialize(row)?;
        serde_json::to_writer(&mut jsonl, row)?;
        std::io::Write::write_all(&mut jsonl, b"\n")?;
    }
    csv.flush()?;
    std::io::Write::flush(&mut jsonl)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_an_archive_without_overlap() {
        assert_eq!(parse_shard("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let found: Vec<Found> = (0..10)
            .map(|k| Found {
                id: k.to_string(),
                path: PathBuf::from(format!("{k}.csv")),
            })
            .collect();
        let mut all: Vec<String> = (0..3)
            .flat_map(|i| shard_of(found.clone(), Some(Shard { index: i, count: 3 })))
            .map(|f| f.id)
            .collect();
        all.sort_by_key(|id| id.parse::<usize>().unwrap());
        assert_eq!(all, (0..10).map(|k| k.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn discovery_walks_folders_and_keeps_names_apart() {
        let dir = std::env::temp_dir().join(format!("ecg-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("night/b")).unwrap();
        for f in [
            "night/100.hea",
            "night/100.dat",
            "night/100.edf",
            "night/b/x.csv",
            "night/notes.txt",
        ] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let found = discover(&[dir.join("night")]).unwrap();
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["100.edf", "100.hea", "b/x"]);
        let err = discover(&[dir.join("night/notes.txt")]).unwrap_err();
        assert!(err.contains("not a record file"), "{err}");
        assert!(discover(&[dir.join("missing")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

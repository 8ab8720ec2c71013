//! `ecg-train dataset heartbeat`: any WFDB database we read, written in the
//! heartbeat format of Kachuee et al. 2018 ([`crate::signal::heartbeat`], the
//! steps there) as the Kaggle `mitbih_train.csv` spells it: one beat per row,
//! 187 values then the class (0-4 = N S V F Q, AAMI), no header. The rows are
//! the database's reference beats, so each keeps its label; a side file
//! (`<out>.rows.csv`: row, record, sample, symbol, class) keeps its record and
//! place, so that inter-patient splits (DS1 / DS2) remain possible, which the
//! Kaggle files do not allow.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::data::load_record;
use crate::signal::heartbeat::heartbeat_rows;

/// `ecg-train dataset heartbeat`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct HeartbeatOptions {
    /// Folder of WFDB records (`.hea`, `.dat`, `.atr`).
    #[arg(long, env = "ECG_DB", default_value = "../shared/data/mitdb")]
    pub db: PathBuf,
    /// The CSV to write; its side file is <out without .csv>.rows.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Records to write (comma-separated; default: every record with an .atr).
    #[arg(long, value_delimiter = ',')]
    pub records: Option<Vec<String>>,
    /// The lead (MLII for MIT-BIH; another name falls back to the first lead
    /// with a warning).
    #[arg(long, default_value = "MLII")]
    pub lead: String,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: usize,
    /// Rows per class, N S V F Q.
    pub per_class: [usize; 5],
    /// Reference beats with no row (lonely, flat or in a record's last, short window).
    pub left_out: usize,
    pub side_file: PathBuf,
}

/// The side file beside `out`.
pub fn side_file(out: &Path) -> PathBuf {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!("{stem}.rows.csv"))
}

/// Writes the data set.
pub fn write(opts: &HeartbeatOptions) -> Result<Written> {
    let records = match &opts.records {
        Some(r) => r.clone(),
        None => {
            let mut names: Vec<String> = std::fs::read_dir(&opts.db)
                .map_err(|e| anyhow::anyhow!("--db: cannot read {}: {e}", opts.db.display()))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".atr").map(str::to_string))
                .collect();
            names.sort();
            names
        }
    };
    anyhow::ensure!(
        !records.is_empty(),
        "--db: no records with annotations (.atr) in {}",
        opts.db.display()
    );
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let open = |p: &Path| -> Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ))
    };
    let side = side_file(&opts.out);
    let (mut csv, mut rows_csv) = (open(&opts.out)?, open(&side)?);
    writeln!(rows_csv, "row,record,sample,symbol,class")?;
    let mut written = Written {
        rows: 0,
        per_class: [0; 5],
        left_out: 0,
        side_file: side.clone(),
    };
    for name in &records {
        let (rec, ann) = load_record(&opts.db, name)?;
        let choice = rec.select_lead(&opts.lead, true)?;
        if let Some(w) = &choice.fallback_warning {
            eprintln!("warning: {name}: {w}");
        }
        let beats: Vec<_> = ann.iter().filter(|a| a.is_beat()).collect();
        let at: Vec<usize> = beats.iter().map(|a| a.sample as usize).collect();
        let rows = heartbeat_rows(&rec.leads[choice.index].samples, rec.sampling_rate, &at)?;
        written.left_out += beats.len() - rows.len();
        for row in rows {
            let a = beats[row.beat];
            let class = a.aami().map_or(4, |c| c.index());
            let values: Vec<String> = row.samples.iter().map(|v| v.to_string()).collect();
            writeln!(csv, "{},{class}", values.join(","))?;
            writeln!(
                rows_csv,
                "{},{name},{},{},{class}",
                written.rows, a.sample, a.symbol
            )?;
            written.rows += 1;
            written.per_class[class] += 1;
        }
        eprintln!("{name}: {} rows so far", written.rows);
    }
    csv.flush()?;
    rows_csv.flush()?;
    Ok(written)
}

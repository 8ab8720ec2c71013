//! CSV recordings: one column per lead, optionally a sample-index or time column.
//!
//! Accepts comma, semicolon or tab delimiters (detected from the first line),
//! an optional header row (detected: any non-numeric cell), PhysioNet-style
//! quoting (`'sample #','MLII','V5'`) and a units row under the header
//! (`'hh:mm:ss.mmm','mV','mV'`). The first column is an index or time column when
//! its header says so (`sample`, `#`, `index`, `time`, `sec`, `t`). The sampling
//! rate comes from the caller or from the time column. Empty, NaN, infinite or
//! non-numeric cells and ragged rows are errors naming row and column (1-based, as
//! a spreadsheet counts them).

use crate::signal::error::{Result, SignalError};
use crate::signal::{Lead, Recording};

/// Most lead columns accepted.
pub const MAX_COLUMNS: usize = 64;

/// How to read a CSV file; everything is detected when left `None`.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Samples per second; required unless the file has a time column.
    pub sampling_rate: Option<f64>,
    pub delimiter: Option<u8>,
    pub has_header: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum IndexColumn {
    None,
    Sample,
    Seconds,
}

/// Reads a CSV recording. `file` names it in errors and becomes the record name.
pub fn read_csv(file: &str, bytes: &[u8], options: &CsvOptions) -> Result<Recording> {
    let err = |row: usize, column: usize, message: String| SignalError::Csv {
        file: file.to_string(),
        row,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let row = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        err(row, 0, "the file is not UTF-8 text".into())
    })?;
    let text = text.trim_start_matches('\u{feff}');
    let first_line = text.lines().next().unwrap_or_default();
    if first_line.trim().is_empty() {
        return Err(err(1, 0, "the file is empty".into()));
    }
    let delimiter = options
        .delimiter
        .unwrap_or_else(|| detect_delimiter(first_line));
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows = reader.records();
    let first = match rows.next() {
        Some(r) => r.map_err(|e| err(1, 0, e.to_string()))?,
        None => return Err(err(1, 0, "the file is empty".into())),
    };
    let n_cols = first.len();
    if n_cols > MAX_COLUMNS + 1 {
        return Err(err(
            1,
            n_cols,
            format!(
                "{n_cols} columns; at most {MAX_COLUMNS} leads (plus a time column) are accepted"
            ),
        ));
    }
    let first: Vec<String> = first.iter().map(unquote).collect();
    let has_header = options
        .has_header
        .unwrap_or_else(|| first.iter().any(|c| parse_cell(c).is_none()));
    let index = if has_header {
        index_kind(&first[0])
    } else {
        IndexColumn::None
    };
    let lead_start = usize::from(index != IndexColumn::None);
    if lead_start >= n_cols {
        return Err(err(
            1,
            1,
            "no lead columns: the only column is a time or index column".into(),
        ));
    }
    let names: Vec<String> = (lead_start..n_cols)
        .map(|c| match has_header {
            true if !first[c].is_empty() => first[c].clone(),
            _ => format!("signal {}", c - lead_start),
        })
        .collect();
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); n_cols];
    let mut pending = if has_header { None } else { Some(first) };
    let mut row_no = 1;
    let mut units_row_allowed = has_header;
    loop {
        let cells: Vec<String> = match pending.take() {
            Some(c) => c,
            None => match rows.next() {
                Some(r) => {
                    row_no += 1;
                    r.map_err(|e| err(row_no, 0, e.to_string()))?
                        .iter()
                        .map(unquote)
                        .collect()
                }
                None => break,
            },
        };
        if cells.len() == 1 && cells[0].is_empty() {
            continue;
        }
        if cells.len() != n_cols {
            return Err(err(
                row_no,
                cells.len().min(n_cols) + 1,
                format!("row has {} cells, the first row has {n_cols}", cells.len()),
            ));
        }
        if std::mem::take(&mut units_row_allowed) && cells.iter().all(|c| parse_cell(c).is_none()) {
            continue;
        }
        for (c, cell) in cells.iter().enumerate() {
            let value = if c == 0 && index == IndexColumn::Seconds {
                parse_time(cell)
            } else {
                parse_cell(cell)
            };
            match value {
                Some(v) if v.is_finite() => columns[c].push(v),
                Some(v) => return Err(err(row_no, c + 1, format!("`{v}` is not a finite number"))),
                None if cell.is_empty() => {
                    return Err(err(
                        row_no,
                        c + 1,
                        "empty cell; every cell must hold a number".into(),
                    ))
                }
                None => return Err(err(row_no, c + 1, format!("`{cell}` is not a number"))),
            }
        }
    }
    if columns[0].is_empty() {
        return Err(err(row_no, 0, "the file has no data rows".into()));
    }
    let sampling_rate = match (options.sampling_rate, index) {
        (Some(fs), _) => fs,
        (None, IndexColumn::Seconds) => rate_from_times(&columns[0]).ok_or_else(|| {
            SignalError::parameter(
                "fs",
                "the time column does not give a steady sampling rate; pass the rate",
            )
        })?,
        (None, _) => {
            return Err(SignalError::parameter(
                "fs",
                "the CSV has no time column, so the sampling rate must be given (e.g. fs=360)",
            ))
        }
    };
    if !(sampling_rate.is_finite() && sampling_rate > 0.0) {
        return Err(SignalError::parameter(
            "fs",
            format!("{sampling_rate} is not a positive rate in Hz"),
        ));
    }
    let leads = names
        .into_iter()
        .zip(columns.drain(lead_start..))
        .map(|(name, samples)| Lead {
            name,
            units: "mV".into(),
            samples,
        })
        .collect();
    Ok(Recording {
        name: file.trim_end_matches(".csv").to_string(),
        sampling_rate,
        leads,
    })
}

fn detect_delimiter(line: &str) -> u8 {
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&d| line.bytes().filter(|&b| b == d).count())
        .filter(|&d| line.as_bytes().contains(&d))
        .unwrap_or(b',')
}

fn unquote(cell: &str) -> String {
    let c = cell.trim();
    c.strip_prefix('\'')
        .and_then(|c| c.strip_suffix('\''))
        .unwrap_or(c)
        .trim()
        .to_string()
}

fn parse_cell(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok()
}

fn index_kind(name: &str) -> IndexColumn {
    let n = name.to_ascii_lowercase();
    if n.contains("sample") || n.contains('#') || n.contains("index") {
        IndexColumn::Sample
    } else if n.contains("time") || n.contains("sec") || n == "t" || n == "s" {
        IndexColumn::Seconds
    } else {
        IndexColumn::None
    }
}

/// Seconds, `m:ss.sss` or `h:mm:ss.sss`.
fn parse_time(cell: &str) -> Option<f64> {
    cell.split(':')
        .try_fold((0.0, 0), |(acc, n), part| {
            part.parse::<f64>().ok().map(|v| (acc * 60.0 + v, n + 1))
        })
        .filter(|&(_, n)| n <= 3)
        .map(|(v, _)| v)
}

/// The rate implied by a time column: 1 / median step, if steps are steady (within 1 %).
fn rate_from_times(times: &[f64]) -> Option<f64> {
    let mut steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_by(f64::total_cmp);
    let median = steps[steps.len() / 2];
    let steady = median > 0.0
        && steps
            .iter()
            .filter(|s| ((*s - median) / median).abs() > 0.01)
            .count()
            * 100
            <= steps.len();
    steady.then(|| 1.0 / median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(fs: Option<f64>) -> CsvOptions {
        CsvOptions {
            sampling_rate: fs,
            ..Default::default()
        }
    }

    #[test]
    fn physionet_sample_column_with_quotes() {
        let text = "'sample #','MLII','V5'\n0,995,1011\n1,995,1011\n2,995,1011\n";
        let r = read_csv("100.csv", text.as_bytes(), &opts(Some(360.0))).unwrap();
        assert_eq!(r.name, "100");
        assert_eq!(r.leads.len(), 2);
        assert_eq!(r.leads[0].name, "MLII");
        assert_eq!(r.leads[1].samples, vec![1011.0; 3]);
        let err = read_csv("100.csv", text.as_bytes(), &opts(None)).unwrap_err();
        assert_eq!(err.field(), "fs");
    }

    #[test]
    fn time_column_gives_the_rate_and_units_row_is_skipped() {
        let mut text = String::from("'Elapsed time','MLII'\n'hh:mm:ss.mmm','mV'\n");
        for i in 0..500 {
            text.push_str(&format!("'0:{:06.3}',{}\n", i as f64 / 250.0, i));
        }
        let r = read_csv("x.csv", text.as_bytes(), &opts(None)).unwrap();
        assert!(
            (r.sampling_rate - 250.0).abs() < 1e-6,
            "{}",
            r.sampling_rate
        );
        assert_eq!(r.leads[0].samples.len(), 500);
    }

    #[test]
    fn delimiters_and_headerless() {
        for d in [",", ";", "\t"] {
            let text = format!("1.5{d}2\n-3{d}4e-1\n");
            let r = read_csv("x.csv", text.as_bytes(), &opts(Some(500.0))).unwrap();
            assert_eq!(r.leads[0].name, "signal 0");
            assert_eq!(r.leads[1].samples, vec![2.0, 0.4]);
        }
    }

    #[test]
    fn bad_cells_name_row_and_column() {
        let cases = [
            ("MLII,V5\n1,2\n3,\n", 3, 2, "empty"),
            ("MLII,V5\n1,2\n3,NaN\n", 3, 2, "finite"),
            ("MLII,V5\n1,2\n3,inf\n", 3, 2, "finite"),
            ("MLII,V5\n1,2\nx,3\n", 3, 1, "not a number"),
            ("MLII,V5\n1,2\n3\n", 3, 2, "cells"),
            ("MLII,V5\n1,2,3\n", 2, 3, "cells"),
        ];
        for (text, row, column, what) in cases {
            match read_csv("x.csv", text.as_bytes(), &opts(Some(360.0))) {
                Err(SignalError::Csv {
                    row: r,
                    column: c,
                    message,
                    ..
                }) => {
                    assert_eq!((r, c), (row, column), "{text:?}: {message}");
                    assert!(message.contains(what), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(read_csv("x.csv", b"", &opts(Some(360.0))).is_err());
        assert!(read_csv("x.csv", b"MLII\n", &opts(Some(360.0))).is_err());
    }
}

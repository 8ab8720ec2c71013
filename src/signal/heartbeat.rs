//! The "heartbeat" beat format of Kachuee, Fazeli & Sarrafzadeh 2018 ("ECG
//! Heartbeat Classification: A Deep Transferable Representation", arXiv
//! 1805.00794, section III.A), the format of the Kaggle `mitbih_train.csv`
//! that many notebooks read: one beat per row, 187 samples at 125 Hz in
//! [0, 1], zero-padded.
//!
//! The steps, as the paper lists them:
//! 1. the lead at 125 Hz ([`super::resample`]), cut into 10 s windows (1,250
//!    samples, side by side; a last, shorter window is left out);
//! 2. each window scaled to [0, 1] (its minimum to 0, its maximum to 1);
//! 3. the R peaks in the window (the paper finds them as local maxima above 0.9
//!    of the scaled window; we take them as given, e.g. a database's reference
//!    beats, so that each row keeps its label and its place in the record);
//! 4. `T`, the median of the window's R-R intervals (a window needs two beats);
//! 5. from each R peak, `1.2 T` samples (cut at the window's end);
//! 6. each part zero-padded (or cut) to 187 samples.

use crate::signal::error::{Result, SignalError};
use crate::signal::resample::{map_index, resample};

/// The format's sampling rate.
pub const RATE_HZ: f64 = 125.0;
/// The windows' length (10 s at 125 Hz).
pub const WINDOW: usize = 1250;
/// Samples in a row.
pub const LENGTH: usize = 187;
/// A row spans this many median R-R intervals from its R peak.
pub const SPAN_RR: f64 = 1.2;

/// One row: which of the given beats it is, and its [`LENGTH`] samples.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRow {
    /// Index into the `beats` given to [`heartbeat_rows`].
    pub beat: usize,
    pub samples: Vec<f32>,
}

/// The rows of `lead` (at `rate_hz`) for the R peaks `beats` (sample indices
/// at `rate_hz`, ascending). A beat in a window with fewer than two beats, in
/// a flat window, or in the last, short window has no row.
pub fn heartbeat_rows(lead: &[f64], rate_hz: f64, beats: &[usize]) -> Result<Vec<HeartbeatRow>> {
    let x = resample(lead, rate_hz, RATE_HZ)?;
    let at: Vec<usize> = beats
        .iter()
        .map(|&b| map_index(b, rate_hz, RATE_HZ))
        .collect();
    let mut rows = Vec::new();
    let mut first = 0; // the first beat not before the window
    for start in (0..x.len() / WINDOW).map(|w| w * WINDOW) {
        let end = start + WINDOW;
        while first < at.len() && at[first] < start {
            first += 1;
        }
        let mut last = first;
        while last < at.len() && at[last] < end {
            last += 1;
        }
        let inside = first..last;
        if inside.len() < 2 {
            continue;
        }
        let window = &x[start..end];
        let (lo, hi) = window
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if hi - lo <= 0.0 || !(hi - lo).is_finite() {
            continue;
        }
        let mut rr: Vec<usize> = at[inside.clone()].windows(2).map(|w| w[1] - w[0]).collect();
        rr.sort_unstable();
        let t = if rr.len() % 2 == 1 {
            rr[rr.len() / 2] as f64
        } else {
            (rr[rr.len() / 2 - 1] + rr[rr.len() / 2]) as f64 / 2.0
        };
        let span = ((SPAN_RR * t).round() as usize).min(LENGTH);
        for beat in inside {
            let from = at[beat];
            let to = (from + span).min(end);
            let mut samples = vec![0f32; LENGTH];
            for (o, &v) in samples.iter_mut().zip(&x[from..to]) {
                *o = ((v - lo) / (hi - lo)) as f32;
            }
            rows.push(HeartbeatRow { beat, samples });
        }
        first = last;
    }
    Ok(rows)
}

/// Classes a row's label column may hold: 0-4 = N S V F Q (AAMI).
pub const CLASSES: usize = 5;

/// Rows read from a heartbeat CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatTable {
    /// `[rows * LENGTH]`, in the file's order.
    pub values: Vec<f32>,
    /// Each row's class (0-4) when the file has a 188th column.
    pub labels: Option<Vec<u8>>,
}

impl HeartbeatTable {
    pub fn rows(&self) -> usize {
        self.values.len() / LENGTH
    }
}

/// Whether `bytes` look like heartbeat rows and not a recording: the first
/// line is [`LENGTH`] or [`LENGTH`] + 1 comma-separated numbers (no header, no
/// time column). A recording's CSV has a handful of lead columns.
pub fn looks_like_rows(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    let Some(line) = head
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
    else {
        return false;
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let cells: Vec<&str> = line.trim().split(',').collect();
    (cells.len() == LENGTH || cells.len() == LENGTH + 1)
        && cells.iter().all(|c| c.trim().parse::<f64>().is_ok())
}

/// Reads heartbeat rows (the Kaggle `mitbih_*.csv` layout): no header, every
/// row [`LENGTH`] values in [0, 1], or [`LENGTH`] + 1 with the class (0-4,
/// written as an integer or as `1.0e+00`) last; blank lines are skipped. An
/// error names the row and column (from 1) and what is accepted.
pub fn read_rows(file: &str, bytes: &[u8]) -> Result<HeartbeatTable> {
    let err = |row: usize, column: usize, message: String| SignalError::Csv {
        file: file.to_string(),
        row,
        column,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let (mut values, mut labels, mut width) = (Vec::new(), Vec::new(), None);
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let record = record.map_err(|e| err(row, 0, format!("not CSV: {e}")))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let w = *width.get_or_insert(record.len());
        if record.len() != w || !(w == LENGTH || w == LENGTH + 1) {
            return Err(err(
                row,
                record.len().min(w) + 1,
                format!(
                    "{} columns; every row has {LENGTH} values (187 samples at 125 Hz in [0, 1]) or {} with the class (0-4 = N S V F Q) last{}",
                    record.len(),
                    LENGTH + 1,
                    if record.len() != w { format!(", as row 1 has {w}") } else { String::new() }
                ),
            ));
        }
        for (c, cell) in record.iter().enumerate() {
            let v: f64 = cell
                .parse()
                .map_err(|_| err(row, c + 1, format!("`{cell}` is not a number")))?;
            if c == LENGTH {
                if v.fract() != 0.0 || !(0.0..CLASSES as f64).contains(&v) {
                    return Err(err(
                        row,
                        c + 1,
                        format!("class `{cell}` is not one of 0, 1, 2, 3, 4 (N S V F Q)"),
                    ));
                }
                labels.push(v as u8);
            } else if !(-1e-6..=1.0 + 1e-6).contains(&v) {
                return Err(err(
                    row,
                    c + 1,
                    format!("{v} is outside [0, 1]; heartbeat rows are scaled to [0, 1] (each 10 s window's minimum to 0, maximum to 1)"),
                ));
            } else {
                values.push(v as f32);
            }
        }
    }
    if values.is_empty() {
        return Err(err(1, 0, "no rows".into()));
    }
    Ok(HeartbeatTable {
        values,
        labels: (width == Some(LENGTH + 1)).then_some(labels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: f32, label: Option<&str>) -> String {
        let mut cells: Vec<String> = (0..LENGTH).map(|_| format!("{v:e}")).collect();
        cells.extend(label.map(str::to_string));
        cells.join(",")
    }

    #[test]
    fn rows_are_read_with_or_without_their_class() {
        let text = format!(
            "{}\n\n{}\n",
            row(0.5, Some("1.000000000000000000e+00")),
            row(0.25, Some("4"))
        );
        assert!(looks_like_rows(text.as_bytes()));
        let t = read_rows("x.csv", text.as_bytes()).unwrap();
        assert_eq!(t.rows(), 2);
        assert_eq!(t.labels, Some(vec![1, 4]));
        assert_eq!(t.values[LENGTH], 0.25);
        let t = read_rows("x.csv", row(0.0, None).as_bytes()).unwrap();
        assert_eq!((t.rows(), t.labels), (1, None));
        // A recording's CSV is not taken for rows.
        assert!(!looks_like_rows(b"time,MLII\n0,0.1\n"));
        assert!(!looks_like_rows(b"0.1,0.2\n"));
    }

    #[test]
    fn bad_rows_name_their_row_and_column() {
        let case = |text: String| match read_rows("x.csv", text.as_bytes()) {
            Err(SignalError::Csv {
                row,
                column,
                message,
                ..
            }) => (row, column, message),
            other => panic!("{other:?}"),
        };
        let (r, c, m) = case(format!("{}\n{}", row(0.5, Some("0")), row(0.5, None)));
        assert_eq!((r, c), (2, 188), "{m}");
        let (r, c, m) = case(row(0.5, Some("7")));
        assert_eq!((r, c), (1, 188));
        assert!(m.contains("0, 1, 2, 3, 4"), "{m}");
        let (_, c, _) = case(row(0.5, Some("1.5")));
        assert_eq!(c, 188);
        let (r, c, m) = case(row(0.5, None).replacen("5e-1", "abc", 1));
        assert_eq!((r, c), (1, 1));
        assert!(m.contains("`abc`"), "{m}");
        let (_, c, m) = case(row(3.0, None));
        assert_eq!(c, 1);
        assert!(m.contains("[0, 1]"), "{m}");
        let (_, c, m) = case("0.1,0.2\n".into());
        assert_eq!(c, 3);
        assert!(m.contains("187"), "{m}");
        assert!(read_rows("x.csv", b"\n\n").is_err());
    }

    /// A 125 Hz train of spikes (1.1) every `rr` samples on a baseline of
    /// 0.1, with a 0 at each window's start (the windows scale to [0, 1.1]).
    fn spikes(n: usize, rr: usize) -> (Vec<f64>, Vec<usize>) {
        let beats: Vec<usize> = (rr / 2..n).step_by(rr).collect();
        let mut x = vec![0.1; n];
        for &b in &beats {
            x[b] = 1.1;
        }
        for w in (0..n).step_by(WINDOW) {
            x[w] = 0.0;
        }
        (x, beats)
    }

    #[test]
    fn rows_start_at_the_r_peak_span_1_2_rr_and_are_zero_padded() {
        let (x, beats) = spikes(WINDOW * 3 + 100, 96);
        let rows = heartbeat_rows(&x, RATE_HZ, &beats).unwrap();
        // Three whole windows; the beats of the short tail have no row.
        let in_windows = beats.iter().filter(|&&b| b < 3 * WINDOW).count();
        assert_eq!(rows.len(), in_windows);
        for r in &rows {
            assert_eq!(r.samples.len(), LENGTH);
            assert!(r.samples.iter().all(|v| (0.0..=1.0).contains(v)));
            // The R peak is the window's maximum: 1 at the row's start.
            assert!((r.samples[0] - 1.0).abs() < 1e-6, "{:?}", &r.samples[..3]);
        }
        // round(1.2 x 96) = 115 samples of signal then zeros (not at a window's end).
        let r = &rows[1];
        assert!(r.samples[114] > 0.0 && r.samples[115..].iter().all(|&v| v == 0.0));
        // The row indices name the given beats, in order.
        let order: Vec<usize> = rows.iter().map(|r| r.beat).collect();
        assert_eq!(order, (0..in_windows).collect::<Vec<_>>());
    }

    #[test]
    fn other_rates_are_resampled_and_lonely_or_flat_windows_give_no_row() {
        // 360 Hz: the same spikes land at 125 Hz positions.
        let (x125, beats125) = spikes(WINDOW * 2, 125);
        let x360 = resample(&x125, RATE_HZ, 360.0).unwrap();
        let beats360: Vec<usize> = beats125
            .iter()
            .map(|&b| map_index(b, RATE_HZ, 360.0))
            .collect();
        let rows = heartbeat_rows(&x360, 360.0, &beats360).unwrap();
        assert_eq!(rows.len(), beats125.len());
        // One beat in a window: no T, no row. A flat window: no row.
        assert!(heartbeat_rows(&x125, RATE_HZ, &[300]).unwrap().is_empty());
        assert!(
            heartbeat_rows(&vec![0.5; WINDOW], RATE_HZ, &[100, 300, 500])
                .unwrap()
                .is_empty()
        );
        // A long R-R: the row is cut at 187 samples.
        let (x, beats) = spikes(WINDOW, 400);
        let rows = heartbeat_rows(&x, RATE_HZ, &beats).unwrap();
        assert!(rows[0].samples[LENGTH - 1] > 0.0);
    }
}

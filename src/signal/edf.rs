//! EDF and EDF+ files (European Data Format; Kemp et al. 1992, Kemp & Olivan
//! 2003): the header, every signal's physical scaling and sampling rate, and
//! EDF+ annotations (time-stamped annotation lists, TALs).
//!
//! [`read_edf`] turns the bytes of one file into a [`Recording`] of its ECG
//! signals in millivolts, plus the file's annotations as [`Event`]s. A file
//! may mix signals at different rates (a sleep study's EEG at 256 Hz, its ECG
//! at 512 Hz, oxygen saturation at 1 Hz): the recording keeps the ECG signals
//! at one rate and the warnings name what was left out. Discontinuous files
//! (EDF+D) are refused: their records are not one stretch of time.
//!
//! Our own reader rather than a crate: `edf-rs` (0.1) reads only from a path
//! on disk and its header parser unwraps on malformed input, while uploads
//! arrive as bytes in memory and bad bytes must be a clear error, never a
//! panic. This one parses bytes it is given, decodes only the signals it
//! keeps, and is fuzzed (`fuzz/fuzz_targets/edf.rs`).

use crate::signal::error::{Result, SignalError};
use crate::signal::{Lead, Recording};

/// Size of the fixed part of the header, and of each signal's part of it.
const BLOCK: usize = 256;

/// The label EDF+ gives its annotation signals.
pub const ANNOTATIONS_LABEL: &str = "EDF Annotations";

/// Most samples per signal we decode (about 24 h at 1 kHz), as for WFDB.
pub const MAX_SAMPLES_PER_SIGNAL: usize = crate::signal::wfdb::MAX_SAMPLES_PER_SIGNAL;

/// Which flavour of EDF a header declares (its reserved field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Plain EDF (1992).
    Edf,
    /// EDF+, continuous (`EDF+C`).
    PlusContinuous,
    /// EDF+, discontinuous (`EDF+D`): not read.
    PlusDiscontinuous,
}

/// One signal of the header.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfSignal {
    pub label: String,
    pub transducer: String,
    /// Physical dimension (`uV`, `mV`, ...).
    pub dimension: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub digital_min: f64,
    pub digital_max: f64,
    pub prefiltering: String,
    pub samples_per_record: usize,
}

impl EdfSignal {
    /// An EDF+ annotation signal (holds TALs, not samples).
    pub fn is_annotations(&self) -> bool {
        self.label.trim() == ANNOTATIONS_LABEL
    }

    /// An ECG lead, by its label or its transducer: `ECG ...`, `EKG ...`,
    /// a standard lead name (`I`, `II`, `aVR`, `V1`, `MLII`, `Lead II`), or a
    /// transducer that says ECG.
    pub fn is_ecg(&self) -> bool {
        let label = squash(&self.label);
        let bare = label.strip_prefix("LEAD").unwrap_or(&label);
        let transducer = squash(&self.transducer);
        label.starts_with("ECG")
            || label.starts_with("EKG")
            || STANDARD_LEADS.contains(&bare)
            || ["ECG", "EKG", "ELECTROCARDIO"]
                .iter()
                .any(|w| transducer.contains(w))
    }
}

/// Lead names (as [`squash`] writes them) that are ECG whatever the transducer says.
const STANDARD_LEADS: [&str; 18] = [
    "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6", "MLI", "MLII",
    "MLIII", "V", "CM5", "CC5",
];

/// Upper-case letters and digits only (`ECG II` and `ecg-ii` are both `ECGII`).
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// An EDF header.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfHeader {
    pub variant: Variant,
    pub patient: String,
    pub recording: String,
    /// `dd.mm.yy` as written.
    pub start_date: String,
    /// `hh.mm.ss` as written.
    pub start_time: String,
    pub header_bytes: usize,
    /// Data records in the file (counted from its length when the header says -1).
    pub records: usize,
    /// Seconds per data record.
    pub record_duration_s: f64,
    pub signals: Vec<EdfSignal>,
}

impl EdfHeader {
    /// Bytes of one data record (2 per sample of every signal).
    pub fn record_bytes(&self) -> usize {
        self.signals.iter().map(|s| 2 * s.samples_per_record).sum()
    }

    /// Samples per second of signal `i`.
    pub fn sampling_rate(&self, i: usize) -> f64 {
        self.signals[i].samples_per_record as f64 / self.record_duration_s
    }
}

/// An annotation of the recording (EDF+ TAL): what happened when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Seconds from the start of the file.
    #[schema(example = 12.5)]
    pub onset_s: f64,
    /// Seconds, when the annotation gives a duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[schema(example = "Sleep stage 2")]
    pub text: String,
}

/// What [`read_edf`] read.
#[derive(Debug, Clone)]
pub struct EdfRead {
    pub recording: Recording,
    pub events: Vec<Event>,
    /// Signals left out, annotations skipped, units assumed.
    pub warnings: Vec<String>,
}

/// Whether `bytes` start like an EDF file (version `0` and seven spaces).
pub fn looks_like_edf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"0       ")
}

fn error(file: &str, field: impl Into<String>, message: impl Into<String>) -> SignalError {
    SignalError::Edf {
        file: file.to_string(),
        field: field.into(),
        message: message.into(),
    }
}

/// The header fields, in order, as `(name, width)`; each signal field repeats
/// once per signal.
const SIGNAL_FIELDS: [(&str, usize); 10] = [
    ("label", 16),
    ("transducer type", 80),
    ("physical dimension", 8),
    ("physical minimum", 8),
    ("physical maximum", 8),
    ("digital minimum", 8),
    ("digital maximum", 8),
    ("prefiltering", 80),
    ("samples per data record", 8),
    ("reserved", 32),
];

/// A cursor over the header's fixed-width ASCII fields.
struct Fields<'a> {
    file: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn text(&mut self, name: &str, width: usize) -> Result<String> {
        let field = self.bytes.get(self.at..self.at + width).ok_or_else(|| {
            error(
                self.file,
                name,
                format!(
                    "the file ends at byte {} inside the header (field at bytes {}..{})",
                    self.bytes.len(),
                    self.at,
                    self.at + width
                ),
            )
        })?;
        self.at += width;
        Ok(String::from_utf8_lossy(field).trim().to_string())
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str, width: usize) -> Result<T> {
        let at = self.at;
        let text = self.text(name, width)?;
        text.parse().map_err(|_| {
            error(
                self.file,
                name,
                format!("`{text}` at byte {at} is not a number"),
            )
        })
    }
}

/// Parses the header of the EDF file `bytes` (named `file` in errors).
pub fn parse_edf_header(file: &str, bytes: &[u8]) -> Result<EdfHeader> {
    if bytes.starts_with(b"\xffBIOSEMI") {
        return Err(error(
            file,
            "version",
            "a BDF file (24-bit samples); we read EDF and EDF+ (16-bit): export it as EDF",
        ));
    }
    let mut f = Fields { file, bytes, at: 0 };
    let version = f.text("version", 8)?;
    if version != "0" {
        return Err(error(
            file,
            "version",
            format!("`{version}`: an EDF file starts with version `0`"),
        ));
    }
    let patient = f.text("patient", 80)?;
    let recording = f.text("recording", 80)?;
    let start_date = f.text("start date", 8)?;
    let start_time = f.text("start time", 8)?;
    let header_bytes: usize = f.number("header bytes", 8)?;
    let reserved = f.text("reserved", 44)?;
    let variant = if reserved.starts_with("EDF+D") {
        Variant::PlusDiscontinuous
    } else if reserved.starts_with("EDF+C") {
        Variant::PlusContinuous
    } else {
        Variant::Edf
    };
    let declared_records: i64 = f.number("number of data records", 8)?;
    let record_duration_s: f64 = f.number("duration of a data record", 8)?;
    let n_signals: usize = f.number("number of signals", 4)?;
    if n_signals == 0 {
        return Err(error(file, "number of signals", "the file has no signals"));
    }
    // Each signal takes 256 header bytes: a count the file cannot hold is refused
    // before anything is allocated for it.
    let expected = n_signals
        .checked_add(1)
        .and_then(|n| n.checked_mul(BLOCK))
        .filter(|&n| n <= bytes.len())
        .ok_or_else(|| {
            error(
                file,
                "number of signals",
                format!(
                    "{n_signals} signal(s) need a {}-byte header and the file has {} bytes",
                    (n_signals as u128 + 1) * BLOCK as u128,
                    bytes.len()
                ),
            )
        })?;
    if header_bytes != expected {
        return Err(error(
            file,
            "header bytes",
            format!("the header says it is {header_bytes} bytes; with {n_signals} signal(s) it is {expected}"),
        ));
    }
    let mut columns: Vec<Vec<String>> = Vec::with_capacity(SIGNAL_FIELDS.len());
    for (name, width) in SIGNAL_FIELDS {
        let column = (0..n_signals)
            .map(|_| f.text(name, width))
            .collect::<Result<Vec<_>>>()?;
        columns.push(column);
    }
    // The header holds each field for every signal in turn; one row per signal here.
    let rows: Vec<Vec<String>> = (0..n_signals)
        .map(|i| {
            columns
                .iter_mut()
                .map(|c| std::mem::take(&mut c[i]))
                .collect()
        })
        .collect();
    let mut signals = Vec::with_capacity(n_signals);
    for (i, row) in rows.into_iter().enumerate() {
        let number = |field: usize| -> Result<f64> {
            let text = &row[field];
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    error(
                        file,
                        format!("signal {i} (`{}`): {}", row[0], SIGNAL_FIELDS[field].0),
                        format!("`{text}` is not a number"),
                    )
                })
        };
        let samples = &row[8];
        let signal = EdfSignal {
            label: row[0].clone(),
            transducer: row[1].clone(),
            dimension: row[2].clone(),
            physical_min: number(3)?,
            physical_max: number(4)?,
            digital_min: number(5)?,
            digital_max: number(6)?,
            prefiltering: row[7].clone(),
            samples_per_record: samples.parse().map_err(|_| {
                error(
                    file,
                    format!("signal {i} (`{}`): samples per data record", row[0]),
                    format!("`{samples}` is not a whole number"),
                )
            })?,
        };
        let field = |name: &str| format!("signal {i} (`{}`): {name}", signal.label);
        if signal.samples_per_record > bytes.len() {
            return Err(error(
                file,
                field("samples per data record"),
                format!(
                    "{} samples per record, more than the file's {} bytes hold",
                    signal.samples_per_record,
                    bytes.len()
                ),
            ));
        }
        if signal.samples_per_record == 0 {
            return Err(error(
                file,
                field("samples per data record"),
                "0: every signal needs at least one sample per data record",
            ));
        }
        if signal.digital_max <= signal.digital_min {
            return Err(error(
                file,
                field("digital maximum"),
                format!(
                    "{} is not above the digital minimum {}",
                    signal.digital_max, signal.digital_min
                ),
            ));
        }
        if signal.physical_max == signal.physical_min {
            return Err(error(
                file,
                field("physical maximum"),
                format!(
                    "equals the physical minimum ({}): the scaling is undefined",
                    signal.physical_min
                ),
            ));
        }
        signals.push(signal);
    }
    let has_samples = signals.iter().any(|s| !s.is_annotations());
    if has_samples && !(record_duration_s > 0.0 && record_duration_s.is_finite()) {
        return Err(error(
            file,
            "duration of a data record",
            format!("{record_duration_s} s: must be more than 0 for a file with signals"),
        ));
    }
    let mut header = EdfHeader {
        variant,
        patient,
        recording,
        start_date,
        start_time,
        header_bytes,
        records: 0,
        record_duration_s,
        signals,
    };
    let record_bytes = header.record_bytes();
    let data = bytes.len() - header_bytes;
    let whole = data / record_bytes;
    header.records = match usize::try_from(declared_records) {
        Ok(n) if n > whole => {
            return Err(error(
                file,
                "number of data records",
                format!(
                    "the header says {n} records of {record_bytes} bytes ({} bytes of data) and the file holds {data}: it is truncated",
                    n as u128 * record_bytes as u128
                ),
            ))
        }
        Ok(n) => n,
        // -1: still being recorded when the header was written; the file's length says.
        Err(_) if declared_records == -1 => whole,
        Err(_) => {
            return Err(error(
                file,
                "number of data records",
                format!("{declared_records}: must be a count, or -1 for unknown"),
            ))
        }
    };
    Ok(header)
}

/// Millivolts per unit of a physical dimension, when it is a voltage.
fn millivolts_per(dimension: &str) -> Option<f64> {
    match dimension.trim() {
        "uV" | "µV" | "μV" | "microV" | "UV" => Some(1e-3),
        "mV" | "MV" | "mv" => Some(1.0),
        "V" | "v" => Some(1e3),
        "nV" => Some(1e-6),
        _ => None,
    }
}

/// Reads the ECG signals and annotations of the EDF/EDF+ file `bytes`.
pub fn read_edf(name: &str, bytes: &[u8]) -> Result<EdfRead> {
    let file = format!("{name}.edf");
    let header = parse_edf_header(&file, bytes)?;
    if header.variant == Variant::PlusDiscontinuous {
        return Err(error(
            &file,
            "reserved",
            "EDF+D: a discontinuous recording (its data records have gaps); we read continuous EDF and EDF+C",
        ));
    }
    let mut warnings = Vec::new();
    let ecg: Vec<usize> = (0..header.signals.len())
        .filter(|&i| header.signals[i].is_ecg())
        .collect();
    let labels = |which: &mut dyn Iterator<Item = usize>| -> String {
        which
            .map(|i| format!("`{}`", header.signals[i].label))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(rate) = ecg
        .iter()
        .map(|&i| header.sampling_rate(i))
        .max_by(f64::total_cmp)
    else {
        let all =
            labels(&mut (0..header.signals.len()).filter(|&i| !header.signals[i].is_annotations()));
        return Err(error(
            &file,
            "label",
            format!(
                "no ECG signal among {}: we read signals labelled `ECG ...`, `EKG ...` or a lead name (I, II, III, aVR, aVL, aVF, V1-V6, MLII)",
                if all.is_empty() { "none (annotations only)".to_string() } else { all }
            ),
        ));
    };
    let (kept, other_rate): (Vec<usize>, Vec<usize>) =
        ecg.iter().partition(|&&i| header.sampling_rate(i) == rate);
    let left_out: Vec<usize> = (0..header.signals.len())
        .filter(|&i| !header.signals[i].is_ecg() && !header.signals[i].is_annotations())
        .collect();
    if !left_out.is_empty() {
        warnings.push(format!(
            "EDF: signals that are not ECG left out: {}",
            labels(&mut left_out.into_iter())
        ));
    }
    if !other_rate.is_empty() {
        warnings.push(format!(
            "EDF: ECG signals at another rate than {rate} Hz left out: {}",
            labels(&mut other_rate.into_iter())
        ));
    }
    let total = header
        .records
        .saturating_mul(header.signals[kept[0]].samples_per_record);
    if total > MAX_SAMPLES_PER_SIGNAL {
        return Err(error(
            &file,
            "number of data records",
            format!("{total} samples per signal; at most {MAX_SAMPLES_PER_SIGNAL} are read"),
        ));
    }
    // Where each signal starts within a data record.
    let offsets: Vec<usize> = header
        .signals
        .iter()
        .scan(0, |at, s| {
            let here = *at;
            *at += 2 * s.samples_per_record;
            Some(here)
        })
        .collect();
    let record_bytes = header.record_bytes();
    let data = &bytes[header.header_bytes..];
    let extra = data.len() - header.records * record_bytes;
    if extra > 0 {
        warnings.push(format!(
            "EDF: {extra} bytes after the {} data records the header declares were not read",
            header.records
        ));
    }
    let mut leads = Vec::with_capacity(kept.len());
    for &i in &kept {
        let s = &header.signals[i];
        let (scale, units) = match millivolts_per(&s.dimension) {
            Some(mv) => (mv, "mV"),
            None => {
                warnings.push(format!(
                    "EDF: signal `{}` has physical dimension `{}`, not a voltage; its values are read as mV",
                    s.label, s.dimension
                ));
                (1.0, "mV")
            }
        };
        // physical = (digital - dmin) * gain + pmin, in mV.
        let gain = (s.physical_max - s.physical_min) / (s.digital_max - s.digital_min);
        let (a, b) = (
            gain * scale,
            (s.physical_min - s.digital_min * gain) * scale,
        );
        let mut samples = Vec::with_capacity(header.records * s.samples_per_record);
        for r in 0..header.records {
            let at = r * record_bytes + offsets[i];
            let chunk = &data[at..at + 2 * s.samples_per_record];
            samples.extend(
                chunk
                    .chunks_exact(2)
                    .map(|p| f64::from(i16::from_le_bytes([p[0], p[1]])) * a + b),
            );
        }
        leads.push(Lead {
            name: s.label.clone(),
            units: units.to_string(),
            samples,
        });
    }
    let mut events = Vec::new();
    let mut skipped = 0usize;
    for (i, _) in header
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_annotations())
    {
        let n = 2 * header.signals[i].samples_per_record;
        for r in 0..header.records {
            let at = r * record_bytes + offsets[i];
            skipped += read_tals(&data[at..at + n], &mut events);
        }
    }
    if skipped > 0 {
        warnings.push(format!(
            "EDF+: {skipped} annotations that are not well-formed TALs were skipped"
        ));
    }
    Ok(EdfRead {
        recording: Recording {
            name: name.to_string(),
            sampling_rate: rate,
            leads,
        },
        events,
        warnings,
    })
}

/// The TALs of one data record's annotation bytes, appended to `events`
/// (time-keeping TALs, which have no text, are not events); returns how many
/// malformed TALs were skipped.
fn read_tals(bytes: &[u8], events: &mut Vec<Event>) -> usize {
    let mut skipped = 0;
    for tal in bytes.split(|&b| b == 0).filter(|t| !t.is_empty()) {
        let mut parts = tal.split(|&b| b == 0x14);
        let Some(time) = parts.next().and_then(parse_time) else {
            skipped += 1;
            continue;
        };
        let (onset_s, duration_s) = time;
        for text in parts.filter(|t| !t.is_empty()) {
            events.push(Event {
                onset_s,
                duration_s,
                text: String::from_utf8_lossy(text).trim().to_string(),
            });
        }
    }
    skipped
}

/// `+onset[\x15duration]`: onset with its sign, duration without.
fn parse_time(bytes: &[u8]) -> Option<(f64, Option<f64>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (onset, duration) = match text.split_once('\u{15}') {
        Some((o, d)) => (o, Some(d)),
        None => (text, None),
    };
    let number = |s: &str| {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.'))
            .then(|| s.parse::<f64>().ok())
            .flatten()
    };
    let sign = match onset.as_bytes().first()? {
        b'+' => 1.0,
        b'-' => -1.0,
        _ => return None,
    };
    let onset_s = sign * number(&onset[1..])?;
    let duration_s = match duration {
        Some(d) => Some(number(d)?),
        None => None,
    };
    Some((onset_s, duration_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal EDF(+) file: `signals` as (label, dimension, samples per
    /// record), `records` records of 1 s, samples counting up.
    fn edf(reserved: &str, signals: &[(&str, &str, usize)], records: usize) -> Vec<u8> {
        let field = |s: &str, w: usize| format!("{s:<w$}");
        let n = signals.len();
        let mut h = String::new();
        h += &field("0", 8);
        h += &field("X X X X", 80);
        h += &field("Startdate X X X X", 80);
        h += &field("01.01.00", 8);
        h += &field("00.00.00", 8);
        h += &field(&(256 * (n + 1)).to_string(), 8);
        h += &field(reserved, 44);
        h += &field(&records.to_string(), 8);
        h += &field("1", 8);
        h += &field(&n.to_string(), 4);
        let each = |f: &dyn Fn(&(&str, &str, usize)) -> String, w: usize| -> String {
            signals.iter().map(|s| field(&f(s), w)).collect()
        };
        h += &each(&|s| s.0.to_string(), 16);
        h += &each(&|_| String::new(), 80);
        h += &each(&|s| s.1.to_string(), 8);
        h += &each(&|_| "-3276.8".into(), 8);
        h += &each(&|_| "3276.7".into(), 8);
        h += &each(&|_| "-32768".into(), 8);
        h += &each(&|_| "32767".into(), 8);
        h += &each(&|_| String::new(), 80);
        h += &each(&|s| s.2.to_string(), 8);
        h += &each(&|_| String::new(), 32);
        let mut bytes = h.into_bytes();
        for r in 0..records {
            for s in signals {
                if s.0 == ANNOTATIONS_LABEL {
                    let mut tal = format!("+{r}\x14\x14\x00").into_bytes();
                    if r == 1 {
                        tal.extend(b"+1.5\x150.25\x14Arousal\x14\x00");
                    }
                    tal.resize(2 * s.2, 0);
                    bytes.extend(tal);
                } else {
                    for k in 0..s.2 {
                        bytes.extend(((r * s.2 + k) as i16).to_le_bytes());
                    }
                }
            }
        }
        bytes
    }

    #[test]
    fn reads_ecg_signals_in_millivolts_and_annotations() {
        let bytes = edf(
            "EDF+C",
            &[
                ("EEG Fpz-Cz", "uV", 4),
                ("ECG II", "uV", 8),
                ("ECG V1", "mV", 8),
                (ANNOTATIONS_LABEL, "", 30),
            ],
            3,
        );
        let read = read_edf("x", &bytes).unwrap();
        let rec = &read.recording;
        assert_eq!(rec.sampling_rate, 8.0);
        let names: Vec<&str> = rec.leads.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["ECG II", "ECG V1"]);
        // gain 0.1 physical units per digital unit: digital k is 0.1 k uV, 1e-4 k mV.
        let lead = &rec.leads[0].samples;
        assert_eq!(lead.len(), 24);
        assert!((lead[10] - 10.0 * 0.1e-3).abs() < 1e-12, "{}", lead[10]);
        assert!((rec.leads[1].samples[10] - 1.0).abs() < 1e-9);
        assert_eq!(
            read.events,
            [Event {
                onset_s: 1.5,
                duration_s: Some(0.25),
                text: "Arousal".into()
            }]
        );
        assert!(
            read.warnings[0].contains("`EEG Fpz-Cz`"),
            "{:?}",
            read.warnings
        );
    }

    #[test]
    fn bad_files_are_named_errors() {
        let good = edf("", &[("ECG", "uV", 10)], 2);
        let msg = |b: &[u8]| read_edf("x", b).unwrap_err().to_string();
        assert!(msg(&good[..good.len() - 1]).contains("truncated"));
        assert!(msg(&good[..300]).contains("need a 512-byte header"));
        assert!(msg(&good[..100]).contains("inside the header"));
        assert!(msg(b"not an edf").contains("version"));
        let d = edf("EDF+D", &[("ECG", "uV", 10)], 2);
        assert!(msg(&d).contains("EDF+D"));
        let eeg = edf("", &[("EEG C3", "uV", 10)], 2);
        assert!(msg(&eeg).contains("no ECG signal among `EEG C3`"));
        let mut zero = good.clone();
        // Signal 0's samples per record: after label, transducer, five 8-byte fields, prefiltering.
        let at = 256 + 16 + 80 + 5 * 8 + 80;
        zero[at..at + 8].copy_from_slice(b"0       ");
        assert!(
            msg(&zero).contains("samples per data record"),
            "{}",
            msg(&zero)
        );
        let mut size = good.clone();
        size[184..192].copy_from_slice(b"1024    ");
        assert!(msg(&size).contains("header says it is 1024 bytes"));
        let mut count = good.clone();
        count[252..256].copy_from_slice(b"9999");
        assert!(msg(&count).contains("9999 signal(s) need"));
    }

    #[test]
    fn unknown_record_count_comes_from_the_length() {
        let mut b = edf("", &[("II", "mV", 5)], 3);
        b[236..244].copy_from_slice(b"-1      ");
        assert_eq!(read_edf("x", &b).unwrap().recording.n_samples(), 15);
    }

    #[test]
    fn tals() {
        let mut events = Vec::new();
        let bad = read_tals(
            b"+0\x14\x14\x00+3\x14A\x14B\x14\x00x\x14y\x14\x00-2.5\x1510\x14C\x14\x00\x00\x00",
            &mut events,
        );
        assert_eq!(bad, 1);
        let texts: Vec<(&str, f64)> = events
            .iter()
            .map(|e| (e.text.as_str(), e.onset_s))
            .collect();
        assert_eq!(texts, [("A", 3.0), ("B", 3.0), ("C", -2.5)]);
        assert_eq!(events[2].duration_s, Some(10.0));
    }
}

//! WFDB header (`.hea`) parsing.
//!
//! Reads the record line and every field of each signal line as PhysioNet's
//! `header(5)` describes them, with WFDB's defaults for omitted fields. CRLF and
//! LF line endings and `#` comments are accepted. Multi-segment records are
//! rejected with a clear error: they need a directory of files, not an upload.

use super::format::Format;
use crate::signal::error::{Result, SignalError};

/// Most signals a header may declare; real recordings have at most a few dozen.
pub const MAX_SIGNALS: usize = 256;

/// A parsed WFDB header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub record_name: String,
    pub n_signals: usize,
    /// Samples per second per signal (WFDB default 250 when omitted).
    pub sampling_frequency: f64,
    pub counter_frequency: Option<f64>,
    pub base_counter: Option<f64>,
    /// Samples per signal; `None` when the header omits it (read to end of file).
    pub n_samples: Option<usize>,
    pub base_time: Option<String>,
    pub base_date: Option<String>,
    pub signals: Vec<SignalSpec>,
    /// Comment lines, without the leading `#`.
    pub comments: Vec<String>,
}

impl Header {
    /// The signal files the header names, in order, each once where
    /// consecutive signals share it (as interleaved signals do).
    pub fn signal_files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = self.signals.iter().map(|s| s.file_name.as_str()).collect();
        files.dedup();
        files
    }
}

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    pub file_name: String,
    pub format: Format,
    pub samples_per_frame: usize,
    pub skew: usize,
    pub byte_offset: usize,
    /// ADC units per physical unit (WFDB default 200 when omitted or zero).
    pub adc_gain: f64,
    /// ADC value of 0 physical units (defaults to `adc_zero`).
    pub baseline: i64,
    pub units: String,
    pub adc_resolution: u32,
    pub adc_zero: i64,
    pub initial_value: i64,
    /// Header checksum, as written (signed or unsigned 16-bit form).
    pub checksum: Option<i64>,
    pub block_size: usize,
    pub description: String,
}

impl SignalSpec {
    /// Multiplier from this signal's physical units to millivolts, if known.
    pub fn to_millivolts(&self) -> f64 {
        match self.units.as_str() {
            "uV" | "\u{3bc}V" | "\u{b5}V" => 1e-3,
            "V" => 1e3,
            _ => 1.0,
        }
    }
}

struct Ctx<'a> {
    file: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> SignalError {
        SignalError::Header {
            file: self.file.to_string(),
            line: self.line,
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn num<T: std::str::FromStr>(&self, field: &str, text: &str, expected: &str) -> Result<T> {
        text.parse()
            .map_err(|_| self.err(field, format!("`{text}` is not {expected}")))
    }
}

/// Parses the text of a `.hea` file. `file` names it in error messages.
pub fn parse_header(file: &str, text: &str) -> Result<Header> {
    let mut comments = Vec::new();
    let mut content = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        if let Some(c) = line.strip_prefix('#') {
            comments.push(c.trim().to_string());
        } else if !line.is_empty() {
            content.push((i + 1, line));
        }
    }
    let Some(&(line_no, record_line)) = content.first() else {
        return Err(Ctx { file, line: 1 }.err("record line", "the header is empty"));
    };
    let mut header = parse_record_line(
        &Ctx {
            file,
            line: line_no,
        },
        record_line,
    )?;
    let declared = header.n_signals;
    let signal_lines = &content[1..];
    if signal_lines.len() < declared {
        return Err(Ctx {
            file,
            line: line_no,
        }
        .err(
            "number of signals",
            format!(
                "the record line declares {declared} signals but {} signal lines follow",
                signal_lines.len()
            ),
        ));
    }
    for &(line, text) in &signal_lines[..declared] {
        header
            .signals
            .push(parse_signal_line(&Ctx { file, line }, text)?);
    }
    header.comments = comments;
    Ok(header)
}

fn parse_record_line(ctx: &Ctx, line: &str) -> Result<Header> {
    let mut fields = line.split_whitespace();
    let name = fields.next().unwrap_or_default();
    if name.contains('/') {
        return Err(ctx.err(
            "record name",
            "multi-segment records are not supported; upload a single-segment record",
        ));
    }
    let n_signals: usize = match fields.next() {
        Some(t) => ctx.num("number of signals", t, "a non-negative integer")?,
        None => {
            return Err(ctx.err(
                "number of signals",
                "missing (expected e.g. `100 2 360 650000`)",
            ))
        }
    };
    if n_signals == 0 || n_signals > MAX_SIGNALS {
        return Err(ctx.err(
            "number of signals",
            format!("{n_signals} is out of range; accepted: 1 to {MAX_SIGNALS}"),
        ));
    }
    let mut header = Header {
        record_name: name.to_string(),
        n_signals,
        sampling_frequency: 250.0,
        counter_frequency: None,
        base_counter: None,
        n_samples: None,
        base_time: None,
        base_date: None,
        signals: Vec::with_capacity(n_signals),
        comments: Vec::new(),
    };
    if let Some(freq) = fields.next() {
        parse_frequency(ctx, freq, &mut header)?;
    }
    if let Some(n) = fields.next() {
        let n: usize = ctx.num("number of samples", n, "a non-negative integer")?;
        header.n_samples = (n > 0).then_some(n);
    }
    header.base_time = fields.next().map(str::to_string);
    header.base_date = fields.next().map(str::to_string);
    Ok(header)
}

fn parse_frequency(ctx: &Ctx, text: &str, header: &mut Header) -> Result<()> {
    let (fs, counter) = match text.split_once('/') {
        Some((fs, c)) => (fs, Some(c)),
        None => (text, None),
    };
    let fs: f64 = ctx.num("sampling frequency", fs, "a number")?;
    if !(fs.is_finite() && fs > 0.0) {
        return Err(ctx.err(
            "sampling frequency",
            format!("{fs} Hz is not a positive rate"),
        ));
    }
    header.sampling_frequency = fs;
    if let Some(c) = counter {
        let (freq, base) = match c.split_once('(') {
            Some((f, b)) => (f, Some(b.trim_end_matches(')'))),
            None => (c, None),
        };
        header.counter_frequency = Some(ctx.num("counter frequency", freq, "a number")?);
        if let Some(b) = base {
            header.base_counter = Some(ctx.num("base counter value", b, "a number")?);
        }
    }
    Ok(())
}

fn parse_signal_line(ctx: &Ctx, line: &str) -> Result<SignalSpec> {
    // The description is the rest of the line after the 8th field and may hold spaces.
    let mut rest = line;
    let mut fields = Vec::with_capacity(8);
    while fields.len() < 8 {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            break;
        }
        let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
        fields.push(&trimmed[..end]);
        rest = &trimmed[end..];
    }
    let description = rest.trim().to_string();
    let file_name = fields[0].to_string();
    let Some(&format_field) = fields.get(1) else {
        return Err(ctx.err("format", "missing (expected e.g. `212`)"));
    };
    let (format, samples_per_frame, skew, byte_offset) = parse_format_field(ctx, format_field)?;
    let mut spec = SignalSpec {
        file_name,
        format,
        samples_per_frame,
        skew,
        byte_offset,
        adc_gain: 200.0,
        baseline: 0,
        units: "mV".to_string(),
        adc_resolution: format.default_resolution(),
        adc_zero: 0,
        initial_value: 0,
        checksum: None,
        block_size: 0,
        description,
    };
    let mut baseline = None;
    if let Some(gain) = fields.get(2) {
        baseline = parse_gain_field(ctx, gain, &mut spec)?;
    }
    if let Some(res) = fields.get(3) {
        let r: u32 = ctx.num("ADC resolution", res, "a non-negative integer")?;
        if r > 32 {
            return Err(ctx.err("ADC resolution", format!("{r} bits is out of range (0-32)")));
        }
        if r > 0 {
            spec.adc_resolution = r;
        }
    }
    if let Some(zero) = fields.get(4) {
        spec.adc_zero = ctx.num("ADC zero", zero, "an integer")?;
    }
    spec.initial_value = match fields.get(5) {
        Some(v) => ctx.num("initial value", v, "an integer")?,
        None => spec.adc_zero,
    };
    if let Some(sum) = fields.get(6) {
        let c: i64 = ctx.num("checksum", sum, "an integer")?;
        if !(-32768..=65535).contains(&c) {
            return Err(ctx.err("checksum", format!("{c} is not a 16-bit value")));
        }
        spec.checksum = Some(c);
    }
    if let Some(block) = fields.get(7) {
        spec.block_size = ctx.num("block size", block, "a non-negative integer")?;
    }
    spec.baseline = baseline.unwrap_or(spec.adc_zero);
    Ok(spec)
}

fn parse_format_field(ctx: &Ctx, text: &str) -> Result<(Format, usize, usize, usize)> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let code: u32 = ctx.num("format", &text[..digits_end], "a WFDB format number")?;
    let format = Format::from_code(code).ok_or_else(|| {
        ctx.err(
            "format",
            format!(
                "format {code} is not supported; accepted: {}",
                Format::ACCEPTED
            ),
        )
    })?;
    let (mut spf, mut skew, mut offset) = (1usize, 0usize, 0usize);
    let mut rest = &text[digits_end..];
    while let Some(tag) = rest.chars().next() {
        if !matches!(tag, 'x' | ':' | '+') {
            return Err(ctx.err("format", format!("unexpected `{tag}` in `{text}`")));
        }
        // The tags are ASCII, so the body starts one byte on (found by fuzzing:
        // slicing after a multi-byte character panicked).
        let body = &rest[tag.len_utf8()..];
        let end = body.find(['x', ':', '+']).unwrap_or(body.len());
        let value: usize = ctx.num("format", &body[..end], "a non-negative integer")?;
        match tag {
            'x' => spf = value,
            ':' => skew = value,
            _ => offset = value,
        }
        rest = &body[end..];
    }
    if spf != 1 {
        return Err(ctx.err(
            "format",
            format!("{spf} samples per frame is not supported; accepted: 1"),
        ));
    }
    Ok((format, spf, skew, offset))
}

/// Parses `gain[(baseline)][/units]`; returns the baseline if given.
fn parse_gain_field(ctx: &Ctx, text: &str, spec: &mut SignalSpec) -> Result<Option<i64>> {
    let (gain_part, units) = match text.split_once('/') {
        Some((g, u)) => (g, Some(u)),
        None => (text, None),
    };
    let (gain_text, baseline) = match gain_part.split_once('(') {
        Some((g, b)) => {
            let b = b
                .strip_suffix(')')
                .ok_or_else(|| ctx.err("baseline", "missing `)`"))?;
            (g, Some(ctx.num("baseline", b, "an integer")?))
        }
        None => (gain_part, None),
    };
    let gain: f64 = ctx.num("ADC gain", gain_text, "a number")?;
    if !gain.is_finite() || gain < 0.0 {
        return Err(ctx.err("ADC gain", format!("{gain} is not a non-negative number")));
    }
    if gain > 0.0 {
        spec.adc_gain = gain;
    }
    if let Some(u) = units {
        spec.units = u.to_string();
    }
    Ok(baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MITDB_100: &str = "100 2 360 650000\r\n100.dat 212 200 11 1024 995 -22131 0 MLII\r\n100.dat 212 200 11 1024 1011 20052 0 V5\r\n# 69 M 1085 1629 x1\r\n# Aldomet, Inderal\r\n";

    #[test]
    fn parses_mitdb_header_with_crlf_and_comments() {
        let h = parse_header("100.hea", MITDB_100).unwrap();
        assert_eq!(h.record_name, "100");
        assert_eq!(h.n_signals, 2);
        assert_eq!(h.sampling_frequency, 360.0);
        assert_eq!(h.n_samples, Some(650000));
        assert_eq!(h.comments, vec!["69 M 1085 1629 x1", "Aldomet, Inderal"]);
        let s = &h.signals[0];
        assert_eq!(s.file_name, "100.dat");
        assert_eq!(s.format, Format::F212);
        assert_eq!(s.adc_gain, 200.0);
        assert_eq!(s.adc_resolution, 11);
        assert_eq!(s.adc_zero, 1024);
        assert_eq!(s.baseline, 1024);
        assert_eq!(s.initial_value, 995);
        assert_eq!(s.checksum, Some(-22131));
        assert_eq!(s.block_size, 0);
        assert_eq!(s.description, "MLII");
        assert_eq!(h.signals[1].description, "V5");
    }

    #[test]
    fn parses_full_field_syntax() {
        let text = "rec 1 500/1000(3) 10 12:00:00 01/01/2000\nrec.dat 16x1:2+512 1000(-5)/uV 16 0 7 123 0 Lead II, chest\n";
        let h = parse_header("rec.hea", text).unwrap();
        assert_eq!(h.sampling_frequency, 500.0);
        assert_eq!(h.counter_frequency, Some(1000.0));
        assert_eq!(h.base_counter, Some(3.0));
        assert_eq!(h.base_time.as_deref(), Some("12:00:00"));
        assert_eq!(h.base_date.as_deref(), Some("01/01/2000"));
        let s = &h.signals[0];
        assert_eq!((s.skew, s.byte_offset), (2, 512));
        assert_eq!(s.baseline, -5);
        assert_eq!(s.units, "uV");
        assert_eq!(s.to_millivolts(), 1e-3);
        assert_eq!(s.description, "Lead II, chest");
    }

    #[test]
    fn defaults_for_omitted_fields() {
        let h = parse_header("r.hea", "r 1\nr.dat 16\n").unwrap();
        assert_eq!(h.sampling_frequency, 250.0);
        assert_eq!(h.n_samples, None);
        let s = &h.signals[0];
        assert_eq!((s.adc_gain, s.baseline, s.adc_resolution), (200.0, 0, 16));
    }

    #[test]
    fn rejects_bad_headers_with_field_names() {
        let cases = [
            ("", "record line"),
            ("r 0 360\n", "number of signals"),
            ("r 1000000 360\n", "number of signals"),
            ("r 1 0\nr.dat 16\n", "sampling frequency"),
            ("r 1 -360\nr.dat 16\n", "sampling frequency"),
            ("r 2 360\nr.dat 16\n", "number of signals"),
            ("r 1 360\nr.dat 999\n", "format"),
            ("r 1 360\nr.dat 16x2\n", "format"),
            ("r 1 360\nr.dat 16 abc\n", "ADC gain"),
            ("r 1 360\nr.dat 16 200 11 0 0 99999\n", "checksum"),
            ("r/2 1 360\n", "record name"),
        ];
        for (text, field) in cases {
            match parse_header("x.hea", text) {
                Err(SignalError::Header { field: f, .. }) => assert_eq!(f, field, "{text:?}"),
                other => panic!("{text:?}: expected a header error, got {other:?}"),
            }
        }
    }
}

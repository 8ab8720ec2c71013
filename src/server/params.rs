//! The query parameters of `/predict` and what they turn into: how to read the
//! upload ([`ReadRequest`]), what to analyse ([`AnalysisRequest`]) and what to
//! answer with ([`OutputFormat`], from `format` or `Accept`).
//!
//! Every parameter's accepted values are declared in the OpenAPI document
//! (enums, ranges, patterns) and checked here with the same bounds, so a
//! request the document allows is one the server takes.

use serde::Deserialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::IntoParams;

use super::error::ApiError;
use crate::service::Include;
use crate::signal::upload::{DatRequest, ReadRequest};
use crate::signal::wfdb::Format;

/// Accepted values of `include`.
pub const INCLUDES: [&str; 2] = ["signal", "beat_attention"];

/// Query parameters of `/predict`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredictParams {
    /// Sampling rate in Hz: required for a CSV without a time column and for a `.dat`
    /// alone (default 360 there); ignored for a WFDB pair (the header says).
    #[param(minimum = 1.0, maximum = 100000.0)]
    pub fs: Option<f64>,
    /// Lead to analyse, by name (`MLII`, default) or index; falls back to the first lead with a warning.
    #[param(min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1F\x7F]+$")]
    pub lead: Option<String>,
    /// The answer's format: `json` (default), `csv` (the beat table; also
    /// `Accept: text/csv`) or `svg` (a picture of `start_s`..`end_s`; also
    /// `Accept: image/svg+xml`). A WFDB format code here (`format=212`) is the
    /// old spelling of `dat_format`: still read, with a warning.
    #[param(schema_with = format_schema)]
    pub format: Option<String>,
    /// `.dat` alone: its WFDB format code (default 212).
    #[param(schema_with = dat_format_schema)]
    pub dat_format: Option<u32>,
    /// `.dat` alone: interleaved channels (default 2).
    #[param(minimum = 1, maximum = 64)]
    pub channels: Option<usize>,
    /// `.dat` alone: ADC units per mV (default 200).
    #[param(minimum = 0.001, maximum = 1000000.0)]
    pub gain: Option<f64>,
    /// `.dat` alone: ADC value of 0 mV (default 1024).
    #[param(minimum = -8388608, maximum = 8388607)]
    pub baseline: Option<i64>,
    /// Extra response parts, comma-separated: `signal` (filtered signal for
    /// plotting), `beat_attention` (each beat's attention weights).
    #[param(pattern = r"^\s*(signal|beat_attention)?\s*(,\s*(signal|beat_attention)?\s*)*$")]
    pub include: Option<String>,
    /// Verify WFDB checksums (default true).
    pub verify_checksums: Option<bool>,
    /// `format=svg`: first second shown (default: the most abnormal segment's start).
    #[param(minimum = 0.0, maximum = 1000000.0)]
    pub start_s: Option<f64>,
    /// `format=svg`: last second shown (default: `start_s` + 10 s, at most 120 s after it).
    #[param(minimum = 0.0, maximum = 1000000.0)]
    pub end_s: Option<f64>,
}

/// The schema of `format`: an answer format, or (the old spelling of
/// `dat_format`) a WFDB format code.
fn format_schema() -> Object {
    let names = OutputFormat::NAMES.iter().map(|(n, _)| n.to_string());
    let codes = Format::ALL.iter().map(|f| f.code().to_string());
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The answer's format: `json` (default), `csv` (the beat table; also `Accept: text/csv`) or `svg` (a picture of `start_s`..`end_s`; also `Accept: image/svg+xml`). A WFDB format code here (`format=212`) is the old spelling of `dat_format`: still read, with a warning."))
        .enum_values(Some(names.chain(codes)))
        .build()
}

/// The schema of `dat_format`: the WFDB format codes we read.
fn dat_format_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some("`.dat` alone: its WFDB format code (default 212)."))
        .enum_values(Some(Format::ALL.iter().map(|f| f.code())))
        .build()
}

/// What `/predict` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    /// The beat table.
    Csv,
    /// A picture of a time range.
    Svg,
}

impl OutputFormat {
    const NAMES: [(&'static str, OutputFormat); 3] = [
        ("json", OutputFormat::Json),
        ("csv", OutputFormat::Csv),
        ("svg", OutputFormat::Svg),
    ];
}

/// What the parameters ask for, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub read: ReadRequest,
    pub output: OutputFormat,
    pub include: Include,
    pub lead: Option<String>,
    /// Said in the answer's `warnings` (an old parameter spelling).
    pub warnings: Vec<String>,
}

fn code(field: &str, code: u32) -> Result<Format, ApiError> {
    Format::from_code(code).ok_or_else(|| {
        ApiError::bad_request(
            format!(
                "{field}={code} is not a WFDB format we read; accepted: {}",
                Format::ACCEPTED
            ),
            field,
        )
    })
}

fn within(field: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), ApiError> {
    match value {
        Some(v) if !(v.is_finite() && (min..=max).contains(&v)) => Err(ApiError::bad_request(
            format!("{field}={v} is out of range; accepted: {min} to {max}"),
            field,
        )),
        _ => Ok(()),
    }
}

impl PredictParams {
    /// Checks every parameter against the bounds the OpenAPI document states,
    /// and says what the request asks for (`accept`: the `Accept` header).
    pub fn check(&self, accept: Option<&str>) -> Result<Checked, ApiError> {
        within("fs", self.fs, 1.0, 100_000.0)?;
        within("gain", self.gain, 0.001, 1_000_000.0)?;
        within("start_s", self.start_s, 0.0, 1_000_000.0)?;
        within("end_s", self.end_s, 0.0, 1_000_000.0)?;
        within("channels", self.channels.map(|c| c as f64), 1.0, 64.0)?;
        within(
            "baseline",
            self.baseline.map(|b| b as f64),
            -8_388_608.0,
            8_388_607.0,
        )?;
        if let Some(lead) = &self.lead {
            let chars = lead.chars().count();
            if !(1..=64).contains(&chars) || lead.chars().any(|c| c.is_ascii_control()) {
                return Err(ApiError::bad_request(
                    "lead must be 1 to 64 characters without control characters: a lead name (MLII) or index (0)",
                    "lead",
                ));
            }
        }
        let mut warnings = Vec::new();
        let mut dat_format = self.dat_format.map(|c| code("dat_format", c)).transpose()?;
        let mut output = None;
        if let Some(f) = self.format.as_deref().map(str::trim) {
            let named = OutputFormat::NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(f));
            match (named, f.parse::<u32>()) {
                (Some((_, o)), _) => output = Some(*o),
                (None, Ok(c)) if self.dat_format.is_none() => {
                    dat_format = Some(code("format", c)?);
                    warnings.push(format!(
                        "format={c} for a .dat's layout is deprecated; send dat_format={c} (format names the answer: json, csv, svg)"
                    ));
                }
                (None, Ok(c)) => warnings.push(format!(
                    "format={c} ignored: dat_format gives the .dat's WFDB format (format names the answer: json, csv, svg)"
                )),
                (None, Err(_)) => {
                    return Err(ApiError::bad_request(
                        format!(
                            "format `{f}` is not an answer format; accepted: json, csv, svg (a .dat's WFDB format goes in dat_format: {})",
                            Format::ACCEPTED
                        ),
                        "format",
                    ))
                }
            }
        }
        let include = self.include()?;
        let output = output.unwrap_or_else(|| from_accept(accept));
        Ok(Checked {
            read: ReadRequest {
                fs: self.fs,
                dat: DatRequest {
                    format: dat_format,
                    channels: self.channels,
                    gain: self.gain,
                    baseline: self.baseline,
                },
                verify_checksums: self.verify_checksums.unwrap_or(true),
            },
            include: Include {
                signal: include.signal || output == OutputFormat::Svg,
                ..include
            },
            output,
            lead: self.lead.clone(),
            warnings,
        })
    }

    /// `include`, checked against [`INCLUDES`].
    fn include(&self) -> Result<Include, ApiError> {
        let mut include = Include::default();
        for part in self.include.iter().flat_map(|i| i.split(',')) {
            match part.trim() {
                "" => {}
                "signal" => include.signal = true,
                "beat_attention" => include.beat_attention = true,
                bad => {
                    return Err(ApiError::bad_request(
                        format!(
                            "unknown part `{bad}` in include; accepted: {} (comma-separated)",
                            INCLUDES.join(", ")
                        ),
                        "include",
                    ))
                }
            }
        }
        Ok(include)
    }
}

/// The answer format an `Accept` header asks for (JSON unless it names CSV or SVG).
fn from_accept(accept: Option<&str>) -> OutputFormat {
    let wants = |media: &str| {
        accept.is_some_and(|a| {
            a.split(',')
                .any(|m| m.split(';').next().is_some_and(|t| t.trim() == media))
        })
    };
    if wants("text/csv") {
        OutputFormat::Csv
    } else if wants("image/svg+xml") {
        OutputFormat::Svg
    } else {
        OutputFormat::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> PredictParams {
        let uri: axum::http::Uri = format!("/predict?{query}").parse().unwrap();
        axum::extract::Query::<PredictParams>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[test]
    fn format_names_the_answer_or_the_old_dat_layout() {
        let c = params("format=csv").check(None).unwrap();
        assert_eq!(c.output, OutputFormat::Csv);
        assert!(c.warnings.is_empty());
        let c = params("format=16").check(None).unwrap();
        assert_eq!(c.output, OutputFormat::Json);
        assert_eq!(c.read.dat.format, Format::from_code(16));
        assert!(c.warnings[0].contains("dat_format=16"), "{:?}", c.warnings);
        let c = params("dat_format=16").check(Some("text/csv")).unwrap();
        assert_eq!(
            (c.output, c.read.dat.format),
            (OutputFormat::Csv, Format::from_code(16))
        );
        assert!(c.warnings.is_empty());
        let c = params("format=16&dat_format=212").check(None).unwrap();
        assert_eq!(c.read.dat.format, Format::from_code(212));
        assert!(c.warnings[0].contains("ignored"), "{:?}", c.warnings);
        for bad in ["format=", "format=pdf", "format=999", "dat_format=999"] {
            assert!(params(bad).check(None).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_and_includes() {
        for bad in [
            "fs=0",
            "fs=-1",
            "fs=NaN",
            "gain=0",
            "channels=0",
            "start_s=-1",
            "include=x",
            "include=signal,pdf",
            "lead=",
        ] {
            assert!(params(bad).check(None).is_err(), "{bad}");
        }
        let c = params("include=beat_attention&format=svg")
            .check(None)
            .unwrap();
        assert!(c.include.beat_attention && c.include.signal);
        let c = params("lead=D%C3%A9rivation%20II").check(None).unwrap();
        assert_eq!(c.lead.as_deref(), Some("Dérivation II"));
        assert!(params("lead=a%0Ab").check(None).is_err());
        let c = params("include=signal,%20").check(None).unwrap();
        assert!(c.include.signal && !c.include.beat_attention);
        let c = params("").check(Some("image/svg+xml")).unwrap();
        assert_eq!(c.output, OutputFormat::Svg);
    }
}

//! Uploaded files to a [`Recording`]: which part is which (by field name, file
//! extension, content type or signature), then the matching reader: a WFDB
//! pair, a `.dat` alone with a stated layout, an EDF/EDF+ file, or a CSV. Files arrive as names and bytes; how
//! they travelled (HTTP multipart, a folder) is not this module's business.

use crate::signal::csv::{read_csv, CsvOptions};
use crate::signal::edf::{looks_like_edf, read_edf, Event};
use crate::signal::wfdb::{
    parse_header, read_annotations, read_headerless, read_record, Annotation, DatLayout, Format,
    ReadOptions,
};
use crate::signal::{Recording, SignalError};

/// The file types `/predict` accepts, for error messages.
pub const ACCEPTED: &str = "a WFDB pair (.hea + .dat; or the .hea and each signal file it names, by its file name: PTB's .dat + .xyz), a .dat alone (layout in query parameters), an .edf (EDF or EDF+), or a .csv of leads; optionally a .atr; or a .csv of heartbeat rows (187 values in [0, 1] per row, or 188 with the class last; no header)";

/// One part of a multipart upload.
#[derive(Debug, Clone)]
pub struct UploadPart {
    pub field: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Header,
    Data,
    Csv,
    Edf,
    Annotations,
}

impl PartKind {
    fn from_word(word: &str) -> Option<PartKind> {
        match word.to_ascii_lowercase().as_str() {
            "hea" => Some(PartKind::Header),
            "dat" => Some(PartKind::Data),
            "csv" | "file" => Some(PartKind::Csv),
            "edf" => Some(PartKind::Edf),
            "atr" => Some(PartKind::Annotations),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PartKind::Header => "hea",
            PartKind::Data => "dat",
            PartKind::Csv => "csv",
            PartKind::Edf => "edf",
            PartKind::Annotations => "atr",
        }
    }
}

impl UploadPart {
    /// The part's kind: its file extension, else its field name, else its
    /// content type; a part that would be read as a CSV (or not at all) but
    /// starts like an EDF file is one.
    pub fn kind(&self) -> Option<PartKind> {
        match self.named_kind() {
            Some(PartKind::Csv) | None if looks_like_edf(&self.bytes) => Some(PartKind::Edf),
            kind => kind,
        }
    }

    fn named_kind(&self) -> Option<PartKind> {
        let ext = self
            .file_name
            .as_deref()
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(_, e)| PartKind::from_word(e));
        let content = match self.content_type.as_deref() {
            Some(t) if t.starts_with("text/csv") => Some(PartKind::Csv),
            _ => None,
        };
        ext.or_else(|| PartKind::from_word(&self.field)).or(content)
    }

    /// The file name when its extension is neither `.csv` nor `.txt` (for
    /// error messages about a part read as CSV).
    fn foreign_extension(&self) -> Option<String> {
        let name = self.file_name.as_deref()?;
        let (_, ext) = name.rsplit_once('.')?;
        let csv_like = ["csv", "txt"].iter().any(|e| ext.eq_ignore_ascii_case(e));
        (!csv_like).then(|| name.rsplit(['/', '\\']).next().unwrap_or(name).to_string())
    }

    /// The file's name without its directories (the field's when it has none).
    pub fn base_name(&self) -> String {
        let name = self.file_name.as_deref().unwrap_or(&self.field);
        name.rsplit(['/', '\\']).next().unwrap_or(name).to_string()
    }

    /// The file's base name without directories or extension (never a path).
    pub fn stem(&self) -> String {
        let name = self.file_name.as_deref().unwrap_or("upload");
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
        let clean: String = stem
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_ ".contains(*c))
            .take(64)
            .collect();
        if clean.is_empty() {
            "upload".into()
        } else {
            clean
        }
    }
}

/// How to read an upload: what the files themselves do not say.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReadRequest {
    /// Sampling rate in Hz: for a CSV without a time column, and a `.dat` alone.
    pub fs: Option<f64>,
    /// The layout of a `.dat` alone; MIT-BIH defaults (with a warning) where unset.
    pub dat: DatRequest,
    /// Verify WFDB checksums.
    pub verify_checksums: bool,
}

/// The stated layout of a `.dat` alone (each unset field takes the MIT-BIH
/// default of [`DatLayout::default`], and the answer's warnings say so).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DatRequest {
    pub format: Option<Format>,
    pub channels: Option<usize>,
    pub gain: Option<f64>,
    pub baseline: Option<i64>,
}

/// Why an upload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("no file in the upload; send {ACCEPTED}")]
    NoFile,
    #[error("part `{field}` ({name}) is not a file type we read; send {ACCEPTED}")]
    UnsupportedType { field: String, name: String },
    #[error("more than one `{0}` file in the upload")]
    Duplicate(&'static str),
    #[error("{what}")]
    Missing { field: &'static str, what: String },
    #[error("{file} is empty")]
    Empty { file: String },
    #[error("{name} was sent as part `file`, which is read as a CSV recording, and it is not one ({reason}); send {ACCEPTED}")]
    NotCsv { name: String, reason: SignalError },
    #[error(transparent)]
    Signal(#[from] SignalError),
}

/// A recording read from an upload, with what the reader had to assume.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub recording: Recording,
    /// `wfdb`, `dat`, `edf` or `csv`.
    pub source: &'static str,
    pub annotations: Option<Vec<Annotation>>,
    /// The recording's own annotations (EDF+ TALs); empty for other formats.
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
}

struct Parts<'a> {
    header: Option<&'a UploadPart>,
    /// Signal files: the `.dat` parts and, beside a header that names them,
    /// parts of any other type (PTB's `.xyz`, the Challenge's `.mat`).
    data: Vec<&'a UploadPart>,
    csv: Option<&'a UploadPart>,
    edf: Option<&'a UploadPart>,
    annotations: Option<&'a UploadPart>,
}

fn sort_parts(parts: &[UploadPart]) -> Result<Parts<'_>, UploadError> {
    let mut out = Parts {
        header: None,
        data: Vec::new(),
        csv: None,
        edf: None,
        annotations: None,
    };
    let mut other = Vec::new();
    for p in parts {
        if p.bytes.is_empty() {
            return Err(UploadError::Empty {
                file: p.file_name.clone().unwrap_or_else(|| p.field.clone()),
            });
        }
        let Some(kind) = p.kind() else {
            other.push(p);
            continue;
        };
        let slot = match kind {
            PartKind::Data => {
                out.data.push(p);
                continue;
            }
            PartKind::Header => &mut out.header,
            PartKind::Csv => &mut out.csv,
            PartKind::Edf => &mut out.edf,
            PartKind::Annotations => &mut out.annotations,
        };
        if slot.replace(p).is_some() {
            return Err(UploadError::Duplicate(kind.name()));
        }
    }
    // Several signal files only as the header names them (an unreadable
    // header is left for its reader to explain).
    let named = out
        .header
        .and_then(|h| parse_header(&h.base_name(), &String::from_utf8_lossy(&h.bytes)).ok())
        .map(|h| {
            h.signal_files()
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for p in other {
        if !named.contains(&p.base_name()) {
            return Err(UploadError::UnsupportedType {
                field: p.field.clone(),
                name: p.file_name.clone().unwrap_or_else(|| "no file name".into()),
            });
        }
        out.data.push(p);
    }
    if named.len() < 2 && out.data.len() > 1 {
        return Err(UploadError::Duplicate("dat"));
    }
    Ok(out)
}

/// Reads the recording in `parts` as `request` says.
pub fn decode(parts: &[UploadPart], request: &ReadRequest) -> Result<Decoded, UploadError> {
    let p = sort_parts(parts)?;
    let mut warnings = Vec::new();
    let options = ReadOptions {
        verify_checksums: request.verify_checksums,
    };
    let mut events = Vec::new();
    let (recording, source) = match (p.header, p.data.first(), p.csv, p.edf) {
        (Some(hea), Some(_), None, None) => (read_wfdb(hea, &p.data, options)?, "wfdb"),
        (None, Some(dat), None, None) => (read_dat(dat, request, &mut warnings)?, "dat"),
        (None, None, None, Some(edf)) => {
            let read = read_edf(&edf.stem(), &edf.bytes)?;
            if request.fs.is_some() {
                warnings.push("fs ignored: an EDF file states its signals' rates".into());
            }
            warnings.extend(read.warnings);
            events = read.events;
            (read.recording, "edf")
        }
        (None, None, Some(csv), None) => {
            let opts = CsvOptions {
                sampling_rate: request.fs,
                ..Default::default()
            };
            let rec = read_csv(&format!("{}.csv", csv.stem()), &csv.bytes, &opts).map_err(|e| {
                // A part `file` is read as the CSV it is documented as; a file
                // named otherwise (report.pdf) is told so in its own name.
                match csv.foreign_extension() {
                    Some(name) => UploadError::NotCsv { name, reason: e },
                    None => e.into(),
                }
            })?;
            if request.fs.is_none() {
                warnings.push(format!(
                    "sampling rate {:.3} Hz taken from the CSV's time column",
                    rec.sampling_rate
                ));
            }
            (rec, "csv")
        }
        (Some(hea), None, None, None) => {
            return Err(UploadError::Missing {
                field: "dat",
                what: format!(
                    "{} needs its signal file: upload the .dat as part `dat`",
                    hea.file_name.as_deref().unwrap_or("the header")
                ),
            })
        }
        (None, None, None, None) => return Err(UploadError::NoFile),
        _ => {
            return Err(UploadError::Missing {
                field: "file",
                what: format!("send one recording: {ACCEPTED}"),
            })
        }
    };
    let annotations = match p.annotations {
        Some(atr) => Some(read_annotations(
            &format!("{}.atr", atr.stem()),
            &atr.bytes,
        )?),
        None => None,
    };
    Ok(Decoded {
        recording,
        source,
        annotations,
        events,
        warnings,
    })
}

fn read_wfdb(
    hea: &UploadPart,
    data: &[&UploadPart],
    options: ReadOptions,
) -> Result<Recording, UploadError> {
    let name = format!("{}.hea", hea.stem());
    let text = String::from_utf8_lossy(&hea.bytes);
    let header = parse_header(&name, &text)?;
    let files = header.signal_files();
    if let ([_], [dat]) = (&files[..], data) {
        // The one signal file the header names is the uploaded .dat, whatever it was called.
        return Ok(read_record(&header, |_| Some(&dat.bytes[..]), options)?);
    }
    // Several: each part by its file name (PTB's `s0010_re.dat` + `s0010_re.xyz`).
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| data.iter().all(|p| p.base_name() != *f))
        .collect();
    if !missing.is_empty() {
        return Err(UploadError::Missing {
            field: "dat",
            what: format!(
                "the header names {} signal files ({}); upload each as a part with that file name (curl -F hea=@{} -F dat=@{} -F dat=@{} ...); missing: {}",
                files.len(),
                files.join(", "),
                hea.base_name(),
                files[0],
                files.get(1).unwrap_or(&files[0]),
                missing.join(", ")
            ),
        });
    }
    if let Some(extra) = data
        .iter()
        .find(|p| !files.contains(&p.base_name().as_str()))
    {
        return Err(UploadError::Missing {
            field: "dat",
            what: format!(
                "{} is not a signal file the header names ({}): upload those, by their names",
                extra.base_name(),
                files.join(", ")
            ),
        });
    }
    Ok(read_record(
        &header,
        |file| {
            data.iter()
                .find(|p| p.base_name() == file)
                .map(|p| &p.bytes[..])
        },
        options,
    )?)
}

fn read_dat(
    dat: &UploadPart,
    request: &ReadRequest,
    warnings: &mut Vec<String>,
) -> Result<Recording, UploadError> {
    let defaults = DatLayout::default();
    let stated = request.dat;
    let layout = DatLayout {
        format: stated.format.unwrap_or(defaults.format),
        n_signals: stated.channels.unwrap_or(defaults.n_signals),
        sampling_rate: request.fs.unwrap_or(defaults.sampling_rate),
        gain: stated.gain.unwrap_or(defaults.gain),
        baseline: stated.baseline.unwrap_or(defaults.baseline),
    };
    let assumed: Vec<String> = [
        (
            stated.format.is_none(),
            "dat_format",
            layout.format.code().to_string(),
        ),
        (
            stated.channels.is_none(),
            "channels",
            layout.n_signals.to_string(),
        ),
        (request.fs.is_none(), "fs", layout.sampling_rate.to_string()),
        (stated.gain.is_none(), "gain", layout.gain.to_string()),
        (
            stated.baseline.is_none(),
            "baseline",
            layout.baseline.to_string(),
        ),
    ]
    .into_iter()
    .filter(|(unset, ..)| *unset)
    .map(|(_, name, value)| format!("{name}={value}"))
    .collect();
    if !assumed.is_empty() {
        warnings.push(format!(
            ".dat without a header: assumed MIT-BIH defaults {}",
            assumed.join(", ")
        ));
    }
    Ok(read_headerless(&dat.stem(), &dat.bytes, &layout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(field: &str, name: Option<&str>, bytes: &[u8]) -> UploadPart {
        UploadPart {
            field: field.into(),
            file_name: name.map(String::from),
            content_type: None,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn kinds_by_extension_field_or_content_type() {
        assert_eq!(
            part("x", Some("100.HEA"), b"").kind(),
            Some(PartKind::Header)
        );
        assert_eq!(part("dat", None, b"").kind(), Some(PartKind::Data));
        assert_eq!(part("file", Some("a.csv"), b"").kind(), Some(PartKind::Csv));
        let mut p = part("file", Some("upload"), b"");
        p.content_type = Some("text/csv; charset=utf-8".into());
        assert_eq!(p.kind(), Some(PartKind::Csv));
        assert_eq!(part("upload", Some("x.pdf"), b"").kind(), None);
    }

    #[test]
    fn stems_never_keep_paths() {
        assert_eq!(
            part("f", Some("../../etc/passwd.csv"), b"").stem(),
            "passwd"
        );
        assert_eq!(part("f", Some("..\\..\\x.hea"), b"").stem(), "x");
        assert_eq!(part("f", Some("../"), b"").stem(), "upload");
    }

    #[test]
    fn upload_errors() {
        let p = ReadRequest::default();
        assert!(matches!(decode(&[], &p), Err(UploadError::NoFile)));
        assert!(matches!(
            decode(&[part("f", Some("x.pdf"), b"1")], &p),
            Err(UploadError::UnsupportedType { .. })
        ));
        let pdf = decode(&[part("file", Some("report.pdf"), b"%PDF")], &p).unwrap_err();
        assert!(matches!(pdf, UploadError::NotCsv { .. }), "{pdf}");
        assert!(
            pdf.to_string()
                .starts_with("report.pdf was sent as part `file`"),
            "{pdf}"
        );
        assert!(matches!(
            decode(&[part("f", Some("x.csv"), b"")], &p),
            Err(UploadError::Empty { .. })
        ));
        assert!(matches!(
            decode(&[part("hea", None, b"x 1"),], &p),
            Err(UploadError::Missing { .. })
        ));
        let two = [
            part("a", Some("a.csv"), b"1"),
            part("b", Some("b.csv"), b"1"),
        ];
        assert!(matches!(
            decode(&two, &p),
            Err(UploadError::Duplicate("csv"))
        ));
    }

    /// A header that names two signal files (PTB's `.dat` and `.xyz`, the
    /// committed fixture) takes each by its file name, whatever its field; a
    /// missing one, or a file it does not name, is told by name.
    #[test]
    fn several_signal_files_by_their_names() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ptb/patient001");
        let file = |ext: &str| std::fs::read(dir.join(format!("s0001_re.{ext}"))).unwrap();
        let (hea, dat, xyz) = (file("hea"), file("dat"), file("xyz"));
        let p = ReadRequest::default();
        let parts = [
            part("hea", Some("s0001_re.hea"), &hea),
            part("xyz", Some("s0001_re.xyz"), &xyz),
            part("dat", Some("s0001_re.dat"), &dat),
        ];
        let read = decode(&parts, &p).unwrap();
        let rec = &read.recording;
        assert_eq!(
            (rec.leads.len(), rec.sampling_rate, rec.n_samples()),
            (15, 1000.0, 12000)
        );
        assert_eq!(rec.leads[14].name, "vz");
        // Both as `dat` parts (what `ecg-serve analyze` sends) read the same.
        let both_dat = [
            part("hea", Some("s0001_re.hea"), &hea),
            part("dat", Some("s0001_re.dat"), &dat),
            part("dat", Some("s0001_re.xyz"), &xyz),
        ];
        let again = decode(&both_dat, &p).unwrap().recording;
        assert_eq!(again.leads[14].samples, rec.leads[14].samples);
        let missing = decode(&parts[..2], &p).unwrap_err().to_string();
        assert!(missing.contains("missing: s0001_re.dat"), "{missing}");
        let renamed = [
            parts[0].clone(),
            parts[1].clone(),
            part("dat", Some("other.dat"), &dat),
        ];
        let e = decode(&renamed, &p).unwrap_err().to_string();
        assert!(e.contains("missing: s0001_re.dat"), "{e}");
        let stray = [parts[0].clone(), part("x", Some("notes.xyz2"), b"1")];
        assert!(matches!(
            decode(&stray, &p),
            Err(UploadError::UnsupportedType { .. })
        ));
        // Without a header, a second .dat is still a duplicate.
        let dats = [
            part("dat", Some("a.dat"), b"12"),
            part("dat", Some("b.dat"), b"12"),
        ];
        assert!(matches!(
            decode(&dats, &p),
            Err(UploadError::Duplicate("dat"))
        ));
    }
}

//! Entry points of the fuzz targets (`fuzz/`), here so that the regression test
//! over `tests/fixtures/fuzz/<target>/` replays crashes through the very same
//! code. Each takes arbitrary bytes and must return, never panic.

use super::csv::{read_csv, CsvOptions};
use super::edf::read_edf;
use super::wfdb::{
    parse_header, read_annotations, read_headerless, read_record, DatLayout, Format, ReadOptions,
};

/// `.hea` parser on any text.
pub fn header(data: &[u8]) {
    let _ = parse_header("fuzz.hea", &String::from_utf8_lossy(data));
}

/// Every `.dat` format: the first byte picks the format, the second the channel
/// count, the rest is the file, decoded directly and through the header-less reader.
pub fn dat(data: &[u8]) {
    const FORMATS: [u32; 7] = [212, 16, 80, 61, 24, 310, 311];
    let [pick, channels, bytes @ ..] = data else {
        return;
    };
    let Some(format) = Format::from_code(FORMATS[*pick as usize % FORMATS.len()]) else {
        return;
    };
    // A trailing partial group may still hold whole samples, so `bytes_for` (whole
    // groups) can exceed the length; it must hold at least the samples counted.
    let n = format.samples_in(bytes.len());
    assert!(format.samples_in(format.bytes_for(n)) >= n);
    assert_eq!(format.decode(bytes, n).len(), n);
    let layout = DatLayout {
        format,
        n_signals: (*channels as usize % 5).max(1),
        ..DatLayout::default()
    };
    let _ = read_headerless("fuzz", bytes, &layout);
}

/// A whole record: header text up to the first NUL byte, the `.dat` after it
/// (served under any name the header asks for), checksums verified.
pub fn record(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (text, dat) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(header) = parse_header("fuzz.hea", &String::from_utf8_lossy(text)) else {
        return;
    };
    let _ = read_record(&header, |_| Some(dat), ReadOptions::default());
}

/// MIT-format annotations.
pub fn atr(data: &[u8]) {
    let _ = read_annotations("fuzz.atr", data);
}

/// CSV, with a given sampling rate or without (the first byte decides).
pub fn csv(data: &[u8]) {
    let [pick, bytes @ ..] = data else {
        return;
    };
    let options = CsvOptions {
        sampling_rate: (pick % 2 == 0).then_some(360.0),
        ..CsvOptions::default()
    };
    let _ = read_csv("fuzz.csv", bytes, &options);
}

/// An EDF or EDF+ file.
pub fn edf(data: &[u8]) {
    let _ = read_edf("fuzz", data);
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/Cargo.toml` names them.
pub const TARGETS: [(&str, Target); 6] = [
    ("header", header),
    ("dat", dat),
    ("record", record),
    ("atr", atr),
    ("csv", csv),
    ("edf", edf),
];

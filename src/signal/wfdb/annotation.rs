//! MIT-format annotation files (`.atr` and friends).
//!
//! Each annotation is a 16-bit little-endian word: 6 bits of code, 10 bits of
//! time increment. Codes 59-63 are pseudo-codes: SKIP (a 32-bit increment),
//! NUM, SUB, CHN (fields of the annotation just read) and AUX (a byte string).
//! As in WFDB, `chan` and `num` carry over from one annotation to the next.

use crate::signal::aami::{symbol_for_code, AamiClass};
use crate::signal::error::{Result, SignalError};

/// One annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Sample index (at the record's sampling rate).
    pub sample: u64,
    /// WFDB annotation code (1-49).
    pub code: u8,
    /// WFDB mnemonic, e.g. `N`, `V`, `+`.
    pub symbol: &'static str,
    pub subtype: i16,
    pub chan: u16,
    pub num: i16,
    /// Auxiliary text, e.g. a rhythm `(AFIB`.
    pub aux: Option<String>,
}

impl Annotation {
    /// The AAMI class of a beat annotation; `None` for non-beat annotations.
    pub fn aami(&self) -> Option<AamiClass> {
        AamiClass::from_symbol(self.symbol)
    }

    /// Whether this annotation marks a heartbeat (WFDB `isqrs`).
    pub fn is_beat(&self) -> bool {
        self.aami().is_some()
    }
}

const SKIP: u16 = 59;
const NUM: u16 = 60;
const SUB: u16 = 61;
const CHN: u16 = 62;
const AUX: u16 = 63;

/// Reads every annotation in `bytes`. `file` names the file in errors.
pub fn read_annotations(file: &str, bytes: &[u8]) -> Result<Vec<Annotation>> {
    let err = |offset: usize, message: String| SignalError::Annotation {
        file: file.to_string(),
        offset,
        message,
    };
    let word = |at: usize| -> Result<u16> {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| err(at, "file ends in the middle of an annotation word".into()))
    };
    let mut out: Vec<Annotation> = Vec::new();
    // Signed: WFDB writers emit `SKIP -1` then a 1-sample step back to 0 after
    // a header note at time 0 (svdb); only an annotation may not fall before 0.
    let (mut time, mut chan, mut num) = (0i64, 0u16, 0i16);
    let mut pos = 0;
    while pos < bytes.len() {
        let w = word(pos)?;
        let (code, data) = (w >> 10, w & 0x3ff);
        pos += 2;
        match code {
            0 if data == 0 => break,
            0 => time += data as i64,
            1..=49 => {
                time += data as i64;
                let sample = u64::try_from(time).map_err(|_| {
                    err(
                        pos - 2,
                        format!("annotation at sample {time}, before the record start"),
                    )
                })?;
                out.push(Annotation {
                    sample,
                    code: code as u8,
                    symbol: symbol_for_code(code as u8),
                    subtype: 0,
                    chan,
                    num,
                    aux: None,
                });
            }
            SKIP => {
                let hi = word(pos)? as u32;
                let lo = word(pos + 2)? as u32;
                pos += 4;
                time += ((hi << 16) | lo) as i32 as i64;
            }
            NUM | SUB | CHN => {
                let last = out.last_mut().ok_or_else(|| {
                    err(pos - 2, format!("pseudo-code {code} before any annotation"))
                })?;
                let signed = ((data << 6) as i16) >> 6;
                match code {
                    NUM => {
                        num = signed;
                        last.num = signed;
                    }
                    SUB => last.subtype = signed,
                    _ => {
                        chan = data;
                        last.chan = data;
                    }
                }
            }
            AUX => {
                let len = data as usize;
                let text = bytes.get(pos..pos + len).ok_or_else(|| {
                    err(pos, format!("AUX string of {len} bytes runs past the end"))
                })?;
                pos += len + (len & 1);
                if let Some(last) = out.last_mut() {
                    let s = text.split(|&b| b == 0).next().unwrap_or_default();
                    last.aux = Some(String::from_utf8_lossy(s).into_owned());
                }
            }
            _ => return Err(err(pos - 2, format!("unknown annotation code {code}"))),
        }
    }
    Ok(out)
}

/// Encodes annotations in MIT format (for fixtures and tests).
pub fn write_annotations(annotations: &[Annotation]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut time, mut chan, mut num) = (0u64, 0u16, 0i16);
    for a in annotations {
        let mut delta = a.sample - time;
        if delta > 1023 {
            out.extend_from_slice(&(SKIP << 10).to_le_bytes());
            let d = delta as u32;
            out.extend_from_slice(&((d >> 16) as u16).to_le_bytes());
            out.extend_from_slice(&(d as u16).to_le_bytes());
            delta = 0;
        }
        out.extend_from_slice(&(((a.code as u16) << 10) | delta as u16).to_le_bytes());
        if a.subtype != 0 {
            out.extend_from_slice(&((SUB << 10) | (a.subtype as u16 & 0x3ff)).to_le_bytes());
        }
        if a.chan != chan {
            out.extend_from_slice(&((CHN << 10) | (a.chan & 0x3ff)).to_le_bytes());
            chan = a.chan;
        }
        if a.num != num {
            out.extend_from_slice(&((NUM << 10) | (a.num as u16 & 0x3ff)).to_le_bytes());
            num = a.num;
        }
        if let Some(aux) = &a.aux {
            let b = aux.as_bytes();
            out.extend_from_slice(&((AUX << 10) | b.len() as u16).to_le_bytes());
            out.extend_from_slice(b);
            if b.len() % 2 == 1 {
                out.push(0);
            }
        }
        time = a.sample;
    }
    out.extend_from_slice(&[0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(sample: u64, code: u8, aux: Option<&str>) -> Annotation {
        Annotation {
            sample,
            code,
            symbol: symbol_for_code(code),
            subtype: 0,
            chan: 0,
            num: 0,
            aux: aux.map(str::to_string),
        }
    }

    #[test]
    fn round_trips_skip_aux_sub_chan_num() {
        let mut list = vec![
            ann(18, 28, Some("(N")),
            ann(77, 1, None),
            ann(5000, 5, None),
            ann(5_000_000, 8, Some("(AFIB")),
        ];
        list[2].subtype = -1;
        list[2].chan = 1;
        list[2].num = 3;
        list[3].chan = 1;
        list[3].num = 3;
        let bytes = write_annotations(&list);
        let back = read_annotations("t.atr", &bytes).unwrap();
        assert_eq!(back, list);
        assert_eq!(back[1].symbol, "N");
        assert_eq!(back[2].aami(), Some(AamiClass::V));
        assert!(!back[0].is_beat());
    }

    #[test]
    fn a_skip_back_to_zero_after_a_header_note() {
        // The first 40 bytes of svdb 801.atr: a NOTE at 0 with its AUX text,
        // SKIP -1, a 1-sample step (code 0) back to 0, then N beats.
        let mut bytes = vec![0, 88, 23, 252];
        bytes.extend(b"## time resolution: 128\0");
        bytes.extend([0, 236, 255, 255, 255, 255, 1, 0, 46, 4, 66, 20, 0, 0]);
        let a = read_annotations("801.atr", &bytes).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!((a[0].sample, a[0].code), (0, 22));
        assert_eq!(a[0].aux.as_deref(), Some("## time resolution: 128"));
        assert_eq!((a[1].sample, a[1].symbol), (46, "N"));
        assert_eq!(a[2].sample, 46 + 66);
        // A beat that would fall before the record start is an error.
        let early = [0, 236, 255, 255, 255, 255, 0, 4, 0, 0];
        let e = read_annotations("x.atr", &early).unwrap_err().to_string();
        assert!(e.contains("before the record start"), "{e}");
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let bytes = write_annotations(&[ann(5_000_000, 1, Some("hello"))]);
        for cut in 1..bytes.len() - 2 {
            let _ = read_annotations("t.atr", &bytes[..cut]);
        }
        assert!(read_annotations("t.atr", &bytes[..3]).is_err());
    }
}

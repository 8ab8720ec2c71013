//! A lossless 16-bit copy of a signal that takes few distinct values.
//!
//! A recording's samples come from an ADC: a lead of 12- or 16-bit values
//! holds at most 65,536 distinct numbers however long it is. [`Codes`] keeps
//! each sample as the index of its value in a table of the distinct values,
//! a quarter of the f64 signal's memory, and gives back the very same bits.
//! The server keeps one while the R-peak detector band-passes the lead in
//! place, then rebuilds the lead for the models' filter: a 24-hour lead then
//! needs 250 MB + 62 MB instead of two 250 MB signals at once.
//!
//! Written here rather than with a hashing crate: the table is an
//! open-addressing map on the values' bits sized for the 65,536 limit, which
//! is all this needs.

/// Each sample as a 16-bit index into `values`.
#[derive(Debug, Clone)]
pub struct Codes {
    values: Vec<f64>,
    codes: Vec<u16>,
}

/// Slots of the map (a power of two, four times the most distinct values).
const SLOTS: usize = 1 << 18;
/// Most distinct values a code can index.
const MOST: usize = 1 << 16;

impl Codes {
    /// The codes of `x`, or `None` when `x` holds more than 65,536 distinct
    /// values (bit patterns: `0.0` and `-0.0` are two, every NaN its own).
    pub fn new(x: &[f64]) -> Option<Codes> {
        let mut slots: Vec<(u64, u16)> = vec![(0, 0); SLOTS];
        let mut used = vec![false; SLOTS];
        let mut values = Vec::new();
        let mut codes = Vec::with_capacity(x.len());
        let mut last: Option<(u64, u16)> = None;
        for &v in x {
            let bits = v.to_bits();
            // Neighbouring samples are often equal: skip the map for those.
            if let Some((b, c)) = last {
                if b == bits {
                    codes.push(c);
                    continue;
                }
            }
            let mut slot = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 46) as usize;
            let code = loop {
                if !used[slot] {
                    if values.len() == MOST {
                        return None;
                    }
                    let code = values.len() as u16;
                    values.push(v);
                    used[slot] = true;
                    slots[slot] = (bits, code);
                    break code;
                }
                if slots[slot].0 == bits {
                    break slots[slot].1;
                }
                slot = (slot + 1) & (SLOTS - 1);
            };
            last = Some((bits, code));
            codes.push(code);
        }
        Some(Codes { values, codes })
    }

    /// The signal again, bit for bit.
    pub fn expand(&self) -> Vec<f64> {
        self.codes
            .iter()
            .map(|&c| self.values[c as usize])
            .collect()
    }

    /// Samples.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_the_same_bits() {
        // An ADC-like signal (12-bit steps in mV), with the awkward values.
        let mut x: Vec<f64> = (0..200_000)
            .map(|i| ((i * 37 % 4096) as f64 - 1024.0) / 200.0)
            .collect();
        x.extend([
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1e-310,
        ]);
        let codes = Codes::new(&x).unwrap();
        assert_eq!(codes.len(), x.len());
        let back = codes.expand();
        assert!(x.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(Codes::new(&[]).unwrap().is_empty());
    }

    #[test]
    fn refuses_more_than_65536_values() {
        let x: Vec<f64> = (0..MOST).map(|i| i as f64).collect();
        assert!(Codes::new(&x).is_some());
        let more: Vec<f64> = (0..=MOST).map(|i| i as f64 * 0.5).collect();
        assert!(Codes::new(&more).is_none());
    }
}

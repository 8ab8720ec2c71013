//! WFDB annotation codes and their AAMI EC57 beat classes.
//!
//! AAMI EC57 groups MIT-BIH beat labels into five classes: N (N, L, R, e, j),
//! S (A, a, J, S), V (V, E), F (F) and Q (/, f, Q). The four other beat labels
//! WFDB knows are mapped as EC57 does for them: B (bundle branch block beat) to N,
//! n (supraventricular escape) to S, r (R-on-T PVC) to V and ? (unclassified) to Q.
//! Non-beat codes (rhythm, noise, waves, comments) map to no class.

use serde::{Deserialize, Serialize};

/// An AAMI EC57 heartbeat class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AamiClass {
    N,
    S,
    V,
    F,
    Q,
}

impl AamiClass {
    /// The five classes, in index order.
    pub const ALL: [AamiClass; 5] = [
        AamiClass::N,
        AamiClass::S,
        AamiClass::V,
        AamiClass::F,
        AamiClass::Q,
    ];

    /// The class of a WFDB beat symbol; `None` for non-beat symbols.
    pub fn from_symbol(symbol: &str) -> Option<AamiClass> {
        Some(match symbol {
            "N" | "L" | "R" | "e" | "j" | "B" => AamiClass::N,
            "A" | "a" | "J" | "S" | "n" => AamiClass::S,
            "V" | "E" | "r" => AamiClass::V,
            "F" => AamiClass::F,
            "/" | "f" | "Q" | "?" => AamiClass::Q,
            _ => return None,
        })
    }

    /// Index in [`AamiClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class letter.
    pub fn as_str(self) -> &'static str {
        ["N", "S", "V", "F", "Q"][self as usize]
    }
}

/// WFDB mnemonics by annotation code (`ecgcodes.h`); unused codes are `""`.
const SYMBOLS: [&str; 50] = [
    "", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", "", "|", "", "s",
    "T", "*", "D", "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n", "@", "x",
    "f", "(", ")", "r", "", "", "", "", "", "", "", "",
];

/// The WFDB mnemonic of annotation `code`.
pub fn symbol_for_code(code: u8) -> &'static str {
    SYMBOLS.get(code as usize).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_mapping_holds() {
        let expect = [
            ("NLRej", AamiClass::N),
            ("AaJS", AamiClass::S),
            ("VE", AamiClass::V),
            ("F", AamiClass::F),
            ("/fQ", AamiClass::Q),
        ];
        for (symbols, class) in expect {
            for c in symbols.chars() {
                assert_eq!(AamiClass::from_symbol(&c.to_string()), Some(class), "{c}");
            }
        }
        for non_beat in ["+", "~", "|", "x", "[", "!", "\"", ""] {
            assert_eq!(AamiClass::from_symbol(non_beat), None);
        }
        assert_eq!(symbol_for_code(1), "N");
        assert_eq!(symbol_for_code(5), "V");
        assert_eq!(symbol_for_code(28), "+");
        assert_eq!(symbol_for_code(38), "f");
    }
}

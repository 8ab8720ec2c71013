//! The clinical summary in the header comments of a PTB Diagnostic ECG
//! Database record (PhysioNet `ptbdb`: 15 signals at 1000 Hz, the 12 standard
//! leads in `<record>.dat` and the Frank leads `vx vy vz` in `<record>.xyz`,
//! read by [`super::read_record`] like any WFDB record), and the diagnostic
//! class Kachuee et al. 2018 transfer to: myocardial infarction against
//! healthy controls. The Challenge 2020 copies of PTB state the diagnosis as
//! SNOMED CT codes (`#Dx: 164865005`) instead; both are read.

use super::Header;

/// The two classes of the MI transfer task (in the Kaggle `ptbdb_*.csv`
/// files: 0 normal, 1 abnormal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtbClass {
    HealthyControl,
    MyocardialInfarction,
}

impl PtbClass {
    /// The class index (0 healthy, 1 MI).
    pub fn index(self) -> u8 {
        match self {
            PtbClass::HealthyControl => 0,
            PtbClass::MyocardialInfarction => 1,
        }
    }

    /// Class names in index order.
    pub const LABELS: [&'static str; 2] = ["healthy", "MI"];
}

/// SNOMED CT: myocardial infarction.
const SNOMED_MI: &str = "164865005";

/// A header comment's value for `key` (`# Reason for admission: ...`;
/// case and spacing as PTB and the Challenge write them).
pub fn comment_value<'a>(header: &'a Header, key: &str) -> Option<&'a str> {
    header.comments.iter().find_map(|c| {
        let (k, v) = c.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim())
            .filter(|v| !v.is_empty())
    })
}

/// The record's class: PTB's `Reason for admission` (`Myocardial infarction`,
/// `Healthy control`) or the Challenge's `Dx` codes; `None` for the other
/// diagnoses (cardiomyopathy, bundle branch block, ...) and unknown ones.
pub fn class(header: &Header) -> Option<PtbClass> {
    if let Some(reason) = comment_value(header, "Reason for admission") {
        let r = reason.to_ascii_lowercase();
        return if r.starts_with("myocardial infarction") {
            Some(PtbClass::MyocardialInfarction)
        } else if r.starts_with("healthy control") {
            Some(PtbClass::HealthyControl)
        } else {
            None
        };
    }
    let dx = comment_value(header, "Dx")?;
    dx.split(',')
        .any(|c| c.trim() == SNOMED_MI)
        .then_some(PtbClass::MyocardialInfarction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::wfdb::parse_header;

    fn header(comments: &str) -> Header {
        let text = format!("s0010_re 1 1000 10\ns0010_re.dat 16 2000 16 0 0 0 0 i\n{comments}");
        parse_header("s0010_re.hea", &text).unwrap()
    }

    #[test]
    fn reason_for_admission_and_challenge_codes_give_the_class() {
        let mi = header("# age: 81\n# Reason for admission: Myocardial infarction\n# Acute infarction (localization): infero-latera\n");
        assert_eq!(class(&mi), Some(PtbClass::MyocardialInfarction));
        assert_eq!(comment_value(&mi, "age"), Some("81"));
        let hc = header("# Reason for admission: Healthy control\n");
        assert_eq!(class(&hc), Some(PtbClass::HealthyControl));
        assert_eq!(
            class(&header("# Reason for admission: Cardiomyopathy\n")),
            None
        );
        assert_eq!(
            class(&header("#Dx: 164865005\n")),
            Some(PtbClass::MyocardialInfarction)
        );
        assert_eq!(class(&header("#Dx: 426783006,59118001\n")), None);
        assert_eq!(class(&header("# Reason for admission:\n")), None);
    }
}

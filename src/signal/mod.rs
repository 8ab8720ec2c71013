//! Signal library: one source of truth for turning a recording into model input.
//!
//! Readers ([`wfdb`], [`edf`], [`csv`], and [`upload`] for a set of named files) produce a
//! [`Recording`] in millivolts; [`resample`] brings any rate to the model's;
//! [`filter`] band-passes with zero phase exactly as scipy's `sosfiltfilt` does;
//! [`qrs`] finds the heartbeats; [`rr`] computes RR features; [`window`] cuts
//! windows for the models. `model::model_inputs` composes them, for the trainer
//! and the server alike, so a model never sees data prepared differently from
//! how it was trained.
//! Nothing here does I/O beyond parsing bytes it is given, and nothing panics on
//! bad input.

pub mod aami;
pub mod beat_features;
pub mod csv;
pub mod edf;
pub mod error;
pub mod filter;
#[doc(hidden)]
pub mod fuzzing;
pub mod heartbeat;
pub mod qrs;
pub mod resample;
pub mod rr;
pub mod upload;
pub mod wfdb;
pub mod window;

pub use aami::AamiClass;
pub use error::{Result, SignalError};

/// One recorded lead, in millivolts.
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// The lead's name (WFDB description or CSV column header), e.g. `MLII`.
    pub name: String,
    pub units: String,
    pub samples: Vec<f64>,
}

/// A multi-lead recording at one sampling rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub name: String,
    /// Samples per second.
    pub sampling_rate: f64,
    pub leads: Vec<Lead>,
}

/// The lead chosen by [`Recording::select_lead`], and why.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadChoice {
    pub index: usize,
    /// Set when the requested lead was absent and another one was used.
    pub fallback_warning: Option<String>,
}

/// The lead the models were trained on.
pub const DEFAULT_LEAD: &str = "MLII";

impl Recording {
    /// Samples per lead.
    pub fn n_samples(&self) -> usize {
        self.leads.first().map_or(0, |l| l.samples.len())
    }

    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.n_samples() as f64 / self.sampling_rate
    }

    /// Finds a lead by name (case, spaces and punctuation ignored: `ML II` is
    /// `MLII`) or by index (`"0"`, `"1"`...). With `fallback`, a missing name
    /// falls back to the first lead and says so; without it, it is an error.
    pub fn select_lead(&self, requested: &str, fallback: bool) -> Result<LeadChoice> {
        let key = normalise(requested);
        if let Some(index) = self.leads.iter().position(|l| normalise(&l.name) == key) {
            return Ok(LeadChoice {
                index,
                fallback_warning: None,
            });
        }
        if let Ok(index) = requested.trim().parse::<usize>() {
            if index < self.leads.len() {
                return Ok(LeadChoice {
                    index,
                    fallback_warning: None,
                });
            }
        }
        let available: Vec<String> = self.leads.iter().map(|l| l.name.clone()).collect();
        // `MLII` asked for, `II` or `ECG II` recorded (12-lead and EDF files):
        // the same limb lead, by its name without the modification or with a
        // signal-type prefix.
        if fallback {
            if let Some(index) = self
                .leads
                .iter()
                .position(|l| same_lead(&l.name, requested))
            {
                return Ok(LeadChoice {
                    index,
                    fallback_warning: Some(format!(
                        "lead `{requested}` not found (available: {}); used `{}`, the same limb lead under another name or electrode placement",
                        available.join(", "),
                        self.leads[index].name
                    )),
                });
            }
        }
        if fallback && !self.leads.is_empty() {
            return Ok(LeadChoice {
                index: 0,
                fallback_warning: Some(format!(
                    "lead `{requested}` not found (available: {}); used `{}` instead",
                    available.join(", "),
                    self.leads[0].name
                )),
            });
        }
        Err(SignalError::LeadNotFound {
            requested: requested.to_string(),
            available,
        })
    }
}

/// Whether lead names `a` and `b` name the same lead once a signal-type
/// prefix (`ECG`, `EKG`, `Lead`) and the Mason-Likar `ML` are set aside:
/// `MLII`, `II`, `ECG II`, `Lead II`. Channel numbers (`ECG1`) name no lead.
fn same_lead(a: &str, b: &str) -> bool {
    fn bare(name: &str) -> String {
        let n = normalise(name);
        let n = ["ECG", "EKG", "LEAD"]
            .iter()
            .find_map(|p| n.strip_prefix(p))
            .unwrap_or(&n);
        let n = n.strip_prefix("ML").unwrap_or(n);
        n.to_string()
    }
    let (a, b) = (bare(a), bare(b));
    matches!(a.as_str(), "I" | "II" | "III") && a == b
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(names: &[&str]) -> Recording {
        Recording {
            name: "r".into(),
            sampling_rate: 360.0,
            leads: names
                .iter()
                .map(|n| Lead {
                    name: n.to_string(),
                    units: "mV".into(),
                    samples: vec![0.0; 10],
                })
                .collect(),
        }
    }

    #[test]
    fn selects_mlii_wherever_it_is() {
        assert_eq!(
            rec(&["V5", "MLII"])
                .select_lead("MLII", false)
                .unwrap()
                .index,
            1
        );
        assert_eq!(
            rec(&["ml ii", "V1"])
                .select_lead("MLII", false)
                .unwrap()
                .index,
            0
        );
        assert_eq!(rec(&["V5", "V1"]).select_lead("1", false).unwrap().index, 1);
        let err = rec(&["V5", "V1"]).select_lead("MLII", false).unwrap_err();
        assert!(err.to_string().contains("V5, V1"), "{err}");
        let pick = rec(&["V5", "V1"]).select_lead("MLII", true).unwrap();
        assert_eq!(pick.index, 0);
        assert!(pick.fallback_warning.unwrap().contains("used `V5`"));
        let twelve = rec(&["I", "II", "III", "aVR"]);
        let pick = twelve.select_lead("MLII", true).unwrap();
        assert_eq!(pick.index, 1);
        assert!(pick
            .fallback_warning
            .unwrap()
            .contains("used `II`, the same limb lead"));
        assert_eq!(
            rec(&["ECG I", "ECG II"])
                .select_lead("MLII", true)
                .unwrap()
                .index,
            1
        );
        assert_eq!(
            rec(&["ECG1", "ECG2"])
                .select_lead("MLII", true)
                .unwrap()
                .index,
            0
        );
        assert!(twelve.select_lead("MLII", false).is_err());
    }
}

//! Scoring what we find against reference annotations: beat detection in the
//! manner of WFDB's `bxb` ([`bxb`]) and the QRS benchmark over a WFDB database
//! ([`qrs`]). Used by the `ecg-eval` binary and the full-database tests.

pub mod bxb;
pub mod qrs;

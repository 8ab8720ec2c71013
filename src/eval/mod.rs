//! Scoring against reference annotations.

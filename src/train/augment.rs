//! Training records as other devices would have recorded them: real noise and
//! another sampling rate.
//!
//! [`augmented`] makes one copy of a record: a stretch of one of the MIT-BIH
//! Noise Stress Test Database's noise recordings (`bw` baseline wander, `em`
//! electrode motion, `ma` muscle artefact), chosen at random, added to every
//! lead at a random signal-to-noise ratio of [`SNR_DB`], then the whole record
//! resampled to a random rate in [`RATE_HZ`], its annotations moved with it.
//! The copy then goes through the same [`crate::model::model_inputs`] as any
//! upload: the detector runs on the noisy signal, and beats are labelled by the
//! 150 ms rule, so training sees what a noisy device would give the server.
//! SNR here is the ratio of the lead's variance to the added noise's variance.

use std::path::Path;

use anyhow::{Context, Result};

use crate::eval::load_signals;

use super::data::SplitMix;
use crate::signal::resample::{map_index, resample};
use crate::signal::wfdb::Annotation;
use crate::signal::Recording;

/// Signal-to-noise ratios a copy gets one of (dB), nstdb's range down to 6 dB.
pub const SNR_DB: [f64; 4] = [24.0, 18.0, 12.0, 6.0];
/// The range of sampling rates a copy is resampled to (Hz).
pub const RATE_HZ: (f64, f64) = (125.0, 1000.0);
/// The noise recordings of nstdb.
pub const NOISE: [&str; 3] = ["bw", "em", "ma"];

/// The noise recordings of the nstdb folder `dir`.
pub fn load_noise(dir: &Path) -> Result<Vec<Recording>> {
    NOISE.iter().map(|name| load_signals(dir, name)).collect()
}

/// What a copy was made with (for the card and the logs).
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub noise: &'static str,
    pub snr_db: f64,
    pub rate_hz: f64,
}

fn variance(x: &[f64]) -> f64 {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
}

/// A noisy, resampled copy of `rec` and its annotations `ann`, drawn from `rng`.
pub fn augmented(
    rec: &Recording,
    ann: &[Annotation],
    noise: &[Recording],
    rng: &mut SplitMix,
) -> Result<(Recording, Vec<Annotation>, Made)> {
    let pick = (rng.next_u64() % noise.len().max(1) as u64) as usize;
    let source = noise.get(pick).context("no noise recordings")?;
    let snr_db = SNR_DB[(rng.next_u64() % SNR_DB.len() as u64) as usize];
    let rate_hz = (RATE_HZ.0 + rng.unit() * (RATE_HZ.1 - RATE_HZ.0)).round();
    let fs = rec.sampling_rate;
    let mut copy = rec.clone();
    for (k, lead) in copy.leads.iter_mut().enumerate() {
        let channel = &source.leads[k % source.leads.len()].samples;
        let n = resample(channel, source.sampling_rate, fs)?;
        if n.is_empty() {
            continue;
        }
        let start = (rng.next_u64() % n.len() as u64) as usize;
        let noise_at = |i: usize| n[(start + i) % n.len()];
        let stretch: Vec<f64> = (0..lead.samples.len().min(n.len())).map(noise_at).collect();
        let (ps, pn) = (variance(&lead.samples), variance(&stretch));
        let scale = if pn > 0.0 {
            (ps / (pn * 10f64.powf(snr_db / 10.0))).sqrt()
        } else {
            0.0
        };
        for (i, v) in lead.samples.iter_mut().enumerate() {
            *v += scale * noise_at(i);
        }
        lead.samples = resample(&lead.samples, fs, rate_hz)?;
    }
    copy.sampling_rate = rate_hz;
    let moved = ann
        .iter()
        .map(|a| Annotation {
            sample: map_index(a.sample as usize, fs, rate_hz) as u64,
            ..a.clone()
        })
        .collect();
    let made = Made {
        noise: NOISE[pick % NOISE.len()],
        snr_db,
        rate_hz,
    };
    Ok((copy, moved, made))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Lead;

    #[test]
    fn a_copy_has_the_drawn_rate_noise_and_moved_annotations() {
        let fs = 360.0;
        let tone = |f: f64, n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| (i as f64 * f / fs * std::f64::consts::TAU).sin())
                .collect()
        };
        let rec = Recording {
            name: "r".into(),
            sampling_rate: fs,
            leads: vec![Lead {
                name: "MLII".into(),
                units: "mV".into(),
                samples: tone(1.0, 3600),
            }],
        };
        let noise = vec![Recording {
            name: "em".into(),
            sampling_rate: fs,
            leads: vec![Lead {
                name: "noise1".into(),
                units: "mV".into(),
                samples: tone(7.0, 1000),
            }],
        }];
        let ann = vec![Annotation {
            sample: 1800,
            code: 1,
            symbol: "N",
            subtype: 0,
            chan: 0,
            num: 0,
            aux: None,
        }];
        let mut rng = SplitMix::new(3);
        let (copy, moved, made) = augmented(&rec, &ann, &noise, &mut rng).unwrap();
        assert!((RATE_HZ.0..=RATE_HZ.1).contains(&made.rate_hz));
        assert_eq!(copy.sampling_rate, made.rate_hz);
        let expected = (3600.0 * made.rate_hz / fs).round() as usize;
        assert!(copy.leads[0].samples.len().abs_diff(expected) <= 1);
        assert_eq!(moved[0].sample, (1800.0 * made.rate_hz / fs).round() as u64);
        // The added noise has the drawn SNR (variance ratio).
        let clean = resample(&rec.leads[0].samples, fs, made.rate_hz).unwrap();
        let added: Vec<f64> = copy.leads[0]
            .samples
            .iter()
            .zip(&clean)
            .map(|(a, b)| a - b)
            .collect();
        let snr = 10.0 * (variance(&clean) / variance(&added)).log10();
        assert!(
            (snr - made.snr_db).abs() < 0.5,
            "{snr} dB, drawn {}",
            made.snr_db
        );
        let mut again = SplitMix::new(3);
        let (_, _, same) = augmented(&rec, &ann, &noise, &mut again).unwrap();
        assert_eq!(same, made, "the same seed, the same copy");
        assert!(SNR_DB.contains(&made.snr_db));
    }
}

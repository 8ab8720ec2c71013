//! Zero-phase Butterworth band-pass filtering, matching `scipy.signal.sosfiltfilt`.
//!
//! The band-pass is a 4th-order Butterworth high-pass followed by a 4th-order
//! Butterworth low-pass, each two `biquad` sections with Q = 0.5412 and 1.3066
//! (1 / (2 cos(pi/8)) and 1 / (2 cos(3 pi/8))), designed by the bilinear transform
//! with pre-warping exactly as scipy's `butter` does. [`ZeroPhase::apply`] runs the
//! cascade forward and backward with scipy's edge handling: odd extension of
//! `3 * (2 * sections + 1)` samples and steady-state initial conditions
//! (`sosfilt_zi`) scaled by the first sample. The samples run through all
//! sections in one pass (sections fused per sample) so the recursions of the four
//! sections overlap in the CPU instead of running one after another.

use biquad::{Coefficients, ToHertz, Type};

use crate::signal::error::{Result, SignalError};

/// Q factors of the two sections of a 4th-order Butterworth filter.
pub const BUTTERWORTH_Q4: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_7];

/// A cascade of second-order sections applied with zero phase.
#[derive(Debug, Clone)]
pub struct ZeroPhase {
    sections: Vec<Coefficients<f64>>,
    /// The same cascade with each numerator divided by its `b0` when every section
    /// is a Butterworth high-pass (`b0 [1, -2, 1]`) or low-pass (`b0 [1, 2, 1]`);
    /// the product of the `b0`s is applied once per output. Two multiplies fewer
    /// per section and sample.
    unit: Option<(Vec<Coefficients<f64>>, f64)>,
}

/// The band-pass used by the models: 4th-order Butterworth high-pass at `low_hz`
/// and 4th-order Butterworth low-pass at `high_hz`.
pub fn band_pass(sampling_rate: f64, low_hz: f64, high_hz: f64) -> Result<ZeroPhase> {
    let nyquist = sampling_rate / 2.0;
    if !(sampling_rate.is_finite() && sampling_rate > 0.0) {
        return Err(SignalError::parameter(
            "fs",
            format!("{sampling_rate} is not a positive rate"),
        ));
    }
    if !(low_hz > 0.0 && low_hz < high_hz && high_hz < nyquist) {
        return Err(SignalError::parameter(
            "band",
            format!("need 0 < low ({low_hz} Hz) < high ({high_hz} Hz) < Nyquist ({nyquist} Hz)"),
        ));
    }
    let mut sections = Vec::with_capacity(4);
    for (kind, f0) in [(Type::HighPass, low_hz), (Type::LowPass, high_hz)] {
        for q in BUTTERWORTH_Q4 {
            let c = Coefficients::<f64>::from_params(kind, sampling_rate.hz(), f0.hz(), q)
                .map_err(|e| SignalError::parameter("band", format!("{e:?}")))?;
            sections.push(c);
        }
    }
    Ok(ZeroPhase::new(sections))
}

impl ZeroPhase {
    /// A zero-phase filter from second-order sections (a0 normalised to 1).
    pub fn new(sections: Vec<Coefficients<f64>>) -> Self {
        let symmetric = sections
            .iter()
            .all(|c| c.b0 != 0.0 && c.b2 == c.b0 && (c.b1 == 2.0 * c.b0 || c.b1 == -2.0 * c.b0));
        let unit = symmetric.then(|| {
            let gain = sections.iter().map(|c| c.b0).product();
            let unit = sections
                .iter()
                .map(|c| Coefficients {
                    b0: 1.0,
                    b1: c.b1 / c.b0,
                    b2: 1.0,
                    ..*c
                })
                .collect();
            (unit, gain)
        });
        ZeroPhase { sections, unit }
    }

    /// Samples of odd extension at each end (scipy's default `padlen`).
    pub fn pad_len(&self) -> usize {
        3 * (2 * self.sections.len() + 1)
    }

    /// Filters `x` forward and backward. Signals too short for the full padding
    /// are padded with `len - 1` samples (where scipy would raise instead).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        if n < 2 {
            return x.to_vec();
        }
        let pad = self.pad_len().min(n - 1);
        let mut y = Vec::with_capacity(n + 2 * pad);
        y.extend((1..=pad).rev().map(|i| 2.0 * x[0] - x[i]));
        y.extend_from_slice(x);
        y.extend((1..=pad).map(|i| 2.0 * x[n - 1] - x[n - 1 - i]));
        // Forward over [left, x, right], then backward from the end of `right`.
        self.pass(&mut y, false);
        self.pass(&mut y, true);
        y.truncate(pad + n);
        y.drain(..pad);
        y
    }

    /// Samples after which the filter has forgotten where it started: its
    /// slowest pole decays to `1e-32` of its size. `None` for a filter with a
    /// pole on or outside the unit circle (it never forgets).
    pub fn warm_up(&self) -> Option<usize> {
        let radius = self
            .sections
            .iter()
            .map(|c| {
                let disc = c.a1 * c.a1 - 4.0 * c.a2;
                if disc < 0.0 {
                    c.a2.sqrt()
                } else {
                    (c.a1.abs() + disc.sqrt()) / 2.0
                }
            })
            .fold(0.0, f64::max);
        (radius < 1.0).then(|| (32.0 * std::f64::consts::LN_10 / -radius.ln()).ceil() as usize + 1)
    }

    /// One pass of the cascade over `data` in place (forward, or backward when
    /// `rev`), starting from the steady state of its first sample, as scipy does.
    ///
    /// A long signal is cut into [`LANES`] stretches filtered side by side: the
    /// recursion is serial within a stretch, but the stretches are independent,
    /// so each operation works on all of them at once (SIMD) and their
    /// latencies overlap. Every stretch but the first starts [`Self::warm_up`]
    /// samples early, from the steady state of its first input, so by the time
    /// it reaches its own samples its start is forgotten (< 1e-32 of the
    /// signal): the output is that of one serial pass up to rounding (checked
    /// against it in the tests, and against scipy on a whole record).
    fn pass(&self, data: &mut [f64], rev: bool) {
        let len = data.len();
        if let (Some((unit, gain)), Some(warm)) = (&self.unit, self.warm_up()) {
            // Lanes only where the warm-up costs little (< 1/4 of the work).
            let enough = (LANES - 1) * warm * 4 <= len && (len - warm) / LANES >= BLOCK;
            if enough && matches!(unit.len(), 2 | 4) {
                let history = std::array::from_fn(|lane| {
                    let first = lane * ((len - warm) / LANES);
                    self.steady_state(data[if rev { len - 1 - first } else { first }])
                });
                return run_lanes(unit, *gain, warm, history, data, rev);
            }
        }
        let mut history = self.steady_state(data[if rev { len - 1 } else { 0 }]);
        if rev {
            self.run(&mut history, data.iter_mut().rev());
        } else {
            self.run(&mut history, data.iter_mut());
        }
    }

    /// Filter history for a constant input `x0` (the steady state scipy's
    /// `sosfilt_zi * x0` stands for), in direct form I: the last two inputs of
    /// the cascade, then the last two outputs of each section. A section's
    /// input history is the previous section's output history, so a cascade
    /// of `n` sections holds `2 (n + 1)` values, not `4 n`.
    fn steady_state(&self, x0: f64) -> Vec<[f64; 2]> {
        let sections = self.unit.as_ref().map_or(&self.sections, |(unit, _)| unit);
        let mut u = x0;
        let mut history = vec![[u, u]];
        for c in sections {
            u *= (c.b0 + c.b1 + c.b2) / (1.0 + c.a1 + c.a2);
            history.push([u, u]);
        }
        history
    }

    /// One serial pass over `samples` in place, in the order given, continuing `history`.
    fn run<'a>(&self, history: &mut [[f64; 2]], samples: impl Iterator<Item = &'a mut f64>) {
        match &self.unit {
            Some((unit, gain)) => samples.for_each(|v| *v = *gain * unit_step(unit, history, *v)),
            None => samples.for_each(|v| {
                let mut x = *v;
                for (k, c) in self.sections.iter().enumerate() {
                    let ([x1, x2], [y1, y2]) = (history[k], history[k + 1]);
                    let y = c.b0 * x + c.b1 * x1 + c.b2 * x2 - c.a1 * y1 - c.a2 * y2;
                    history[k] = [x, x1];
                    x = y;
                }
                let last = history.len() - 1;
                history[last] = [x, history[last][0]];
                *v = x;
            }),
        }
    }
}

/// Stretches filtered side by side in the lane pass (four f64: one AVX register).
const LANES: usize = 4;

/// Steps of the lane pass per block (see [`run_lanes`]): 2 KiB, well inside L1.
const BLOCK: usize = 64;

/// Levels of history in the lane pass: the input and up to four sections.
const MAX_LEVELS: usize = 5;

/// One direct-form-I step of a cascade of sections with numerators
/// `[1, b1, 1]`, the gain left out. `history` as in [`ZeroPhase::steady_state`].
/// Each output is `(x + known) - a1 y1`, with `known` (`x2 + b1 x1 - a2 y2`)
/// ready before `x` arrives: from a section's input to its output are two
/// operations, and from one output to the next a multiply and a subtraction.
#[inline(always)]
fn unit_step(sections: &[Coefficients<f64>], history: &mut [[f64; 2]], x: f64) -> f64 {
    let mut u = x;
    for (k, c) in sections.iter().enumerate() {
        let ([x1, x2], [y1, y2]) = (history[k], history[k + 1]);
        let known = (x2 + c.b1 * x1) - c.a2 * y2;
        history[k] = [u, x1];
        u = (u + known) - c.a1 * y1;
    }
    let last = history.len() - 1;
    history[last] = [u, history[last][0]];
    u
}

/// One step of [`run_lanes`]: input `x` of every lane through the `N` sections.
#[inline(always)]
fn lanes_step<const N: usize>(
    b1: &[f64; N],
    a1: &[f64; N],
    a2: &[f64; N],
    h1: &mut [[f64; LANES]; MAX_LEVELS],
    h2: &mut [[f64; LANES]; MAX_LEVELS],
    x: [f64; LANES],
) -> [f64; LANES] {
    let mut u = x;
    for k in 0..N {
        let mut y = [0.0; LANES];
        for lane in 0..LANES {
            let known = (h2[k][lane] + b1[k] * h1[k][lane]) - a2[k] * h2[k + 1][lane];
            y[lane] = (u[lane] + known) - a1[k] * h1[k + 1][lane];
        }
        h2[k] = h1[k];
        h1[k] = u;
        u = y;
    }
    h2[N] = h1[N];
    h1[N] = u;
    u
}

/// [`ZeroPhase::pass`] over [`LANES`] stretches of `data` at once (in place),
/// for 2 or 4 sections with numerators `[1, b1, 1]` and one overall `gain`,
/// each lane starting from its `history`.
///
/// With `m = (len - warm) / LANES`, lane `l` starts at `l m` (in the pass's
/// direction) and runs `warm + m` steps: lane 0 from the true start, the
/// others warming up over their first `warm` steps (outputs dropped) and then
/// writing `[warm + l m, warm + (l + 1) m)`. In place is safe: a lane writes
/// a sample in the step it reads it, and the next lane's warm-up reads it
/// `m` steps earlier. The last lane finishes the remainder alone.
///
/// Compiled twice: for the baseline and for AVX, chosen at run time (same
/// operations in the same order, so the same results; AVX holds the four
/// lanes in one register and the whole history in registers).
#[multiversion::multiversion(targets("x86_64+avx"))]
fn run_lanes(
    sections: &[Coefficients<f64>],
    gain: f64,
    warm: usize,
    history: [Vec<[f64; 2]>; LANES],
    data: &mut [f64],
    rev: bool,
) {
    match (sections.len(), rev) {
        (2, false) => lanes::<2, false>(sections, gain, warm, history, data),
        (2, true) => lanes::<2, true>(sections, gain, warm, history, data),
        (_, false) => lanes::<4, false>(sections, gain, warm, history, data),
        (_, true) => lanes::<4, true>(sections, gain, warm, history, data),
    }
}

/// [`run_lanes`] for `N` sections in one direction.
#[inline(always)]
fn lanes<const N: usize, const REV: bool>(
    sections: &[Coefficients<f64>],
    gain: f64,
    warm: usize,
    history: [Vec<[f64; 2]>; LANES],
    data: &mut [f64],
) {
    let len = data.len();
    let m = (len - warm) / LANES;
    // Physical index of the pass's `i`-th sample.
    let at = |i: usize| if REV { len - 1 - i } else { i };
    let b1: [f64; N] = std::array::from_fn(|k| sections[k].b1);
    let a1: [f64; N] = std::array::from_fn(|k| sections[k].a1);
    let a2: [f64; N] = std::array::from_fn(|k| sections[k].a2);
    // h1[level][lane], h2[level][lane]: the last and second-last value of each
    // level (0: the input, k + 1: section k's output).
    // Built and read back with indices known at compile time only, so that
    // the compiler can keep them in registers.
    let value =
        |lane: usize, level: usize, i: usize| history[lane].get(level).map_or(0.0, |v| v[i]);
    let mut h1: [[f64; LANES]; MAX_LEVELS] =
        std::array::from_fn(|level| std::array::from_fn(|lane| value(lane, level, 0)));
    let mut h2: [[f64; LANES]; MAX_LEVELS] =
        std::array::from_fn(|level| std::array::from_fn(|lane| value(lane, level, 1)));
    // Block by block: each lane's samples are copied into `block` (one row per
    // step, lanes side by side), filtered there row by row, and copied back.
    // Gathering the four lanes straight from `data` at every step built each
    // row through the stack, a stalled load per step (2.5x slower). A block
    // is read before it is written, and the next lane's warm-up reads a
    // sample `m >= BLOCK` steps before this lane writes it.
    let mut block = [[0.0; LANES]; BLOCK];
    for start in (0..warm + m).step_by(BLOCK) {
        let rows = BLOCK.min(warm + m - start);
        for lane in 0..LANES {
            for (j, row) in block[..rows].iter_mut().enumerate() {
                row[lane] = data[at(lane * m + start + j)];
            }
        }
        for row in &mut block[..rows] {
            let y = lanes_step::<N>(&b1, &a1, &a2, &mut h1, &mut h2, *row);
            *row = y.map(|v| gain * v);
        }
        for lane in 0..LANES {
            // Lanes other than the first drop their warm-up outputs.
            let skip = if lane == 0 {
                0
            } else {
                warm.saturating_sub(start).min(rows)
            };
            for (j, row) in block[..rows].iter().enumerate().skip(skip) {
                data[at(lane * m + start + j)] = row[lane];
            }
        }
    }
    // The remainder, on the last lane's history.
    let last = LANES - 1;
    let levels: [[f64; 2]; MAX_LEVELS] = std::array::from_fn(|l| [h1[l][last], h2[l][last]]);
    let mut history = levels[..=N].to_vec();
    for i in warm + LANES * m..len {
        data[at(i)] = gain * unit_step(sections, &mut history, data[at(i)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_constant_inputs() {
        let f = band_pass(360.0, 0.5, 50.0).unwrap();
        assert!(f.apply(&[]).is_empty());
        assert_eq!(f.apply(&[3.0]), vec![3.0]);
        let y = f.apply(&[1.0; 5]);
        assert!(y.iter().all(|v| v.abs() < 1e-9), "{y:?}");
        // A constant is in the stop band: steady-state start leaves nothing.
        let y = f.apply(&vec![2.5; 5000]);
        assert!(y.iter().all(|v| v.abs() < 1e-9));
    }

    /// The lane pass (stretches side by side, warmed up) against one serial
    /// pass of the general direct form I on the same sections.
    #[test]
    fn lanes_give_the_serial_answer() {
        let fs = 360.0;
        let n = 400_000;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                (2.0 * std::f64::consts::PI * 1.1 * t).sin()
                    + 0.3 * (2.0 * std::f64::consts::PI * 0.07 * t).sin()
                    + 2.0 * ((i * 7919) % 1000) as f64 / 1000.0
            })
            .collect();
        let section = |kind, hz: f64| {
            Coefficients::<f64>::from_params(
                kind,
                fs.hz(),
                hz.hz(),
                std::f64::consts::FRAC_1_SQRT_2,
            )
            .unwrap()
        };
        // The models' band-pass, another band, and the detector's two sections (4-18 Hz).
        for f in [
            band_pass(fs, 0.5, 50.0).unwrap(),
            band_pass(fs, 0.5, 40.0).unwrap(),
            ZeroPhase::new(vec![
                section(Type::HighPass, 4.0),
                section(Type::LowPass, 18.0),
            ]),
        ] {
            assert!(f.warm_up().unwrap() * 4 * (LANES - 1) <= n + 2 * f.pad_len());
            let serial = ZeroPhase {
                sections: f.sections.clone(),
                unit: None,
            };
            let err = f
                .apply(&x)
                .iter()
                .zip(serial.apply(&x))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-10, "{err}");
        }
    }

    #[test]
    fn warm_up_follows_the_slowest_pole() {
        // 0.5 Hz at 360 Hz: the slower section's poles have radius ~0.9967,
        // 1e-32 after ~22,000 samples (one minute).
        let w = band_pass(360.0, 0.5, 50.0).unwrap().warm_up().unwrap();
        assert!((15_000..30_000).contains(&w), "{w}");
        let unstable = ZeroPhase::new(vec![Coefficients {
            a1: -2.0,
            a2: 1.0,
            b0: 1.0,
            b1: 0.0,
            b2: 0.0,
        }]);
        assert_eq!(unstable.warm_up(), None);
    }

    #[test]
    fn rejects_bands_outside_nyquist() {
        assert!(band_pass(360.0, 0.5, 200.0).is_err());
        assert!(band_pass(360.0, 50.0, 0.5).is_err());
        assert!(band_pass(0.0, 0.5, 50.0).is_err());
    }

    #[test]
    fn passes_the_band_and_stops_the_rest() {
        let fs = 360.0;
        let f = band_pass(fs, 0.5, 50.0).unwrap();
        let tone = |hz: f64| -> f64 {
            let x: Vec<f64> = (0..36000)
                .map(|i| (2.0 * std::f64::consts::PI * hz * i as f64 / fs).sin())
                .collect();
            let y = f.apply(&x);
            let mid = &y[3600..32400];
            (mid.iter().map(|v| v * v).sum::<f64>() / mid.len() as f64 * 2.0).sqrt()
        };
        assert!((tone(10.0) - 1.0).abs() < 1e-3);
        assert!(tone(0.05) < 1e-6);
        assert!(tone(120.0) < 1e-4);
        // Zero phase: both cut-offs are -6 dB (two passes of -3 dB).
        assert!((tone(50.0) - 0.5).abs() < 0.01, "{}", tone(50.0));
    }
}

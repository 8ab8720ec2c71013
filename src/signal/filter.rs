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
        self.apply_with(x, avx_available())
    }

    /// [`Self::apply`] over `x` itself: the same output, bit for bit, and no
    /// second signal in memory (a 24-hour lead is 250 MB).
    pub fn apply_in_place(&self, x: &mut [f64]) {
        self.apply_in_place_with(x, avx_available())
    }

    /// [`Self::apply`], on the AVX kernel or not (`avx` only where the CPU has it).
    ///
    /// The odd extensions are never joined to the signal: each is filtered on
    /// its own, serially (a few dozen samples), and its end state carries the
    /// pass on. Forward: the left extension (outputs unneeded), the signal
    /// into the answer, the right extension into `tail`. Backward: `tail`
    /// (outputs unneeded), then the answer in place. No copy of the signal,
    /// and the answer is written before it is read (never cleared first).
    fn apply_with(&self, x: &[f64], avx: bool) -> Vec<f64> {
        let n = x.len();
        if n < 2 {
            return x.to_vec();
        }
        let (start, right) = self.edges(x);
        let mut out = Vec::with_capacity(n);
        let io = OutOfPlace {
            src: x,
            dst: &mut out.spare_capacity_mut()[..n],
        };
        let end = self.pass(io, false, avx, Some(start));
        // SAFETY: a pass writes every output (`pass`), and `OutOfPlace` wrote them
        // into the first `n` places of `out`'s capacity.
        unsafe { out.set_len(n) };
        self.backward(&mut out, end, &right, avx);
        out
    }

    /// [`Self::apply_with`] in place: the forward pass reads and writes `x`.
    fn apply_in_place_with(&self, x: &mut [f64], avx: bool) {
        if x.len() < 2 {
            return;
        }
        let (start, right) = self.edges(x);
        let end = self.pass(InPlace(x), false, avx, Some(start));
        self.backward(x, end, &right, avx);
    }

    /// The forward pass's history after the left odd extension of `x`
    /// (`x.len() >= 2`), and the right extension's inputs (taken before the
    /// signal is overwritten).
    fn edges(&self, x: &[f64]) -> (Vec<[f64; 2]>, Vec<f64>) {
        let n = x.len();
        let pad = self.pad_len().min(n - 1);
        let mut history = self.steady_state(2.0 * x[0] - x[pad]);
        for i in (1..=pad).rev() {
            self.step(&mut history, 2.0 * x[0] - x[i]);
        }
        let right = (1..=pad).map(|i| 2.0 * x[n - 1] - x[n - 1 - i]).collect();
        (history, right)
    }

    /// The rest after the forward pass over the signal, which ended in
    /// `history`: the right extension `right`, then backward over it (outputs
    /// unneeded) and over the signal `out`, in place.
    fn backward(&self, out: &mut [f64], mut history: Vec<[f64; 2]>, right: &[f64], avx: bool) {
        let tail: Vec<f64> = right.iter().map(|&v| self.step(&mut history, v)).collect();
        let mut history = self.steady_state(tail[tail.len() - 1]);
        for &v in tail.iter().rev() {
            self.step(&mut history, v);
        }
        self.pass(InPlace(out), true, avx, Some(history));
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
    ///
    /// The pass starts from `start` (a history as in [`Self::steady_state`])
    /// or, without one, from the steady state of its first sample; it returns
    /// the history after its last sample. Every output is written.
    fn pass(
        &self,
        mut io: impl Samples,
        rev: bool,
        avx: bool,
        start: Option<Vec<[f64; 2]>>,
    ) -> Vec<[f64; 2]> {
        let len = io.len();
        if let (Some((unit, gain)), Some(warm)) = (&self.unit, self.warm_up()) {
            // Whole groups of four steps for the AVX kernel.
            let warm = warm.next_multiple_of(4);
            // Lanes only where the warm-up costs little (< 1/4 of the work).
            let m = len.saturating_sub(warm) / LANES;
            let enough = (LANES - 1) * warm * 4 <= len && m >= BLOCK;
            if enough && matches!(unit.len(), 2 | 4) {
                let layout = LaneLayout { len, m, warm };
                let mut start = start;
                let history = std::array::from_fn(|lane| match start.take() {
                    Some(history) if lane == 0 => history,
                    _ => self.steady_state(io.read(layout.at_rev(rev, lane, 0))),
                });
                return run_lanes(unit, *gain, layout, history, io, rev, avx);
            }
        }
        let mut history =
            start.unwrap_or_else(|| self.steady_state(io.read(if rev { len - 1 } else { 0 })));
        for k in 0..len {
            let i = if rev { len - 1 - k } else { k };
            let y = self.step(&mut history, io.read(i));
            io.write(i, y);
        }
        history
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

    /// One serial step of the cascade: input `x`, continuing `history`.
    fn step(&self, history: &mut [[f64; 2]], x: f64) -> f64 {
        match &self.unit {
            Some((unit, gain)) => *gain * unit_step(unit, history, x),
            None => {
                let mut x = x;
                for (k, c) in self.sections.iter().enumerate() {
                    let ([x1, x2], [y1, y2]) = (history[k], history[k + 1]);
                    let y = c.b0 * x + c.b1 * x1 + c.b2 * x2 - c.a1 * y1 - c.a2 * y2;
                    history[k] = [x, x1];
                    x = y;
                }
                let last = history.len() - 1;
                history[last] = [x, history[last][0]];
                x
            }
        }
    }
}

/// Where a pass reads its input and writes its output: in place, or from one
/// buffer into another of the same length (the lane pass's kernels are
/// generic over it).
trait Samples {
    /// Input samples.
    fn len(&self) -> usize;
    fn read(&self, i: usize) -> f64;
    /// The output of input sample `i`.
    fn write(&mut self, i: usize, v: f64);
    /// For the AVX kernel: the input and the output (`len` samples each).
    fn raw(&mut self) -> (*const f64, *mut f64);
}

/// Output over input.
struct InPlace<'a>(&'a mut [f64]);

impl Samples for InPlace<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline(always)]
    fn read(&self, i: usize) -> f64 {
        self.0[i]
    }
    #[inline(always)]
    fn write(&mut self, i: usize, v: f64) {
        self.0[i] = v;
    }
    fn raw(&mut self) -> (*const f64, *mut f64) {
        let p = self.0.as_mut_ptr();
        (p, p)
    }
}

/// Input `src[i]` to output `dst[i]`; `dst` starts uninitialised.
struct OutOfPlace<'a> {
    src: &'a [f64],
    dst: &'a mut [std::mem::MaybeUninit<f64>],
}

impl Samples for OutOfPlace<'_> {
    fn len(&self) -> usize {
        self.src.len()
    }
    #[inline(always)]
    fn read(&self, i: usize) -> f64 {
        self.src[i]
    }
    #[inline(always)]
    fn write(&mut self, i: usize, v: f64) {
        self.dst[i].write(v);
    }
    fn raw(&mut self) -> (*const f64, *mut f64) {
        assert_eq!(self.src.len(), self.dst.len());
        (self.src.as_ptr(), self.dst.as_mut_ptr().cast())
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

/// [`ZeroPhase::pass`] over [`LANES`] stretches of the input at once (in
/// place or into another buffer, as `io` says), for 2 or 4 sections with
/// numerators `[1, b1, 1]` and one overall `gain`, each lane starting from
/// its `history`; returns the history after the last sample.
///
/// With `m = (len - warm) / LANES`, lane `l` starts at `l m` (in the pass's
/// direction) and runs `warm + m` steps: lane 0 from the true start, the
/// others warming up over their first `warm` steps (outputs dropped) and then
/// writing `[warm + l m, warm + (l + 1) m)`. In place is safe: a lane writes
/// a sample in the step it reads it, and the next lane's warm-up reads it
/// `m` steps earlier. The last lane finishes the remainder alone.
///
/// On a CPU with AVX and FMA the steps run in [`avx::steps`] (hand-written,
/// four lanes in one register, products fused into additions); elsewhere,
/// and for the last few steps, in [`portable_steps`]. The two agree to
/// rounding (a test checks).
fn run_lanes(
    sections: &[Coefficients<f64>],
    gain: f64,
    layout: LaneLayout,
    history: [Vec<[f64; 2]>; LANES],
    io: impl Samples,
    rev: bool,
    avx: bool,
) -> Vec<[f64; 2]> {
    match (sections.len(), rev) {
        (2, false) => lanes::<2, false>(sections, gain, layout, history, io, avx),
        (2, true) => lanes::<2, true>(sections, gain, layout, history, io, avx),
        (_, false) => lanes::<4, false>(sections, gain, layout, history, io, avx),
        (_, true) => lanes::<4, true>(sections, gain, layout, history, io, avx),
    }
}

/// Whether this CPU runs the AVX kernel of the lane pass (AVX and FMA: every
/// x86-64 CPU since 2013; older ones take the portable pass).
fn avx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The state of the lane pass: the sections' coefficients and, per level
/// (0: the input, `k + 1`: section `k`'s output), its last (`h1`) and
/// second-last (`h2`) value in each lane.
struct LaneState<const N: usize> {
    b1: [f64; N],
    a1: [f64; N],
    a2: [f64; N],
    gain: f64,
    h1: [[f64; LANES]; MAX_LEVELS],
    h2: [[f64; LANES]; MAX_LEVELS],
}

/// Where the lane pass reads and writes: lane `l`'s `i`-th step is the pass's
/// sample `l m + i`, at input `l m + i` forward and `len - 1 - l m - i`
/// backward.
#[derive(Clone, Copy)]
struct LaneLayout {
    len: usize,
    m: usize,
    warm: usize,
}

impl LaneLayout {
    #[inline(always)]
    fn at<const REV: bool>(self, lane: usize, step: usize) -> usize {
        self.at_rev(REV, lane, step)
    }

    #[inline(always)]
    fn at_rev(self, rev: bool, lane: usize, step: usize) -> usize {
        let i = lane * self.m + step;
        if rev {
            self.len - 1 - i
        } else {
            i
        }
    }
}

/// [`run_lanes`] for `N` sections in one direction.
#[inline(always)]
fn lanes<const N: usize, const REV: bool>(
    sections: &[Coefficients<f64>],
    gain: f64,
    layout: LaneLayout,
    history: [Vec<[f64; 2]>; LANES],
    mut io: impl Samples,
    avx: bool,
) -> Vec<[f64; 2]> {
    let LaneLayout { len, warm, .. } = layout;
    let value =
        |lane: usize, level: usize, i: usize| history[lane].get(level).map_or(0.0, |v| v[i]);
    let mut state = LaneState::<N> {
        b1: std::array::from_fn(|k| sections[k].b1),
        a1: std::array::from_fn(|k| sections[k].a1),
        a2: std::array::from_fn(|k| sections[k].a2),
        gain,
        h1: std::array::from_fn(|level| std::array::from_fn(|lane| value(lane, level, 0))),
        h2: std::array::from_fn(|level| std::array::from_fn(|lane| value(lane, level, 1))),
    };
    let steps = warm + layout.m;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: the caller saw AVX and FMA on this CPU (`avx_available`).
        done = unsafe { avx::steps::<N, REV>(&mut state, layout, &mut io) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx;
    portable_steps::<N, REV>(&mut state, layout, &mut io, done..steps);
    // The remainder, on the last lane's history.
    let last = LANES - 1;
    let levels: [[f64; 2]; MAX_LEVELS] =
        std::array::from_fn(|l| [state.h1[l][last], state.h2[l][last]]);
    let mut history = levels[..=N].to_vec();
    for i in warm + LANES * layout.m..len {
        let at = layout.at::<REV>(0, i);
        let y = gain * unit_step(sections, &mut history, io.read(at));
        io.write(at, y);
    }
    history
}

/// Steps `range` of the lane pass, block by block: each lane's samples are
/// copied into `block` (one row per step, lanes side by side), filtered there
/// row by row, and copied back. Gathering the four lanes straight from `data`
/// at every step built each row through the stack, a stalled load per step
/// (2.5x slower). A block is read before it is written, and the next lane's
/// warm-up reads a sample `m >= BLOCK` steps before this lane writes it.
fn portable_steps<const N: usize, const REV: bool>(
    s: &mut LaneState<N>,
    layout: LaneLayout,
    io: &mut impl Samples,
    range: std::ops::Range<usize>,
) {
    let mut block = [[0.0; LANES]; BLOCK];
    for start in range.clone().step_by(BLOCK) {
        let rows = BLOCK.min(range.end - start);
        for lane in 0..LANES {
            for (j, row) in block[..rows].iter_mut().enumerate() {
                row[lane] = io.read(layout.at::<REV>(lane, start + j));
            }
        }
        for row in &mut block[..rows] {
            let y = lanes_step::<N>(&s.b1, &s.a1, &s.a2, &mut s.h1, &mut s.h2, *row);
            *row = y.map(|v| s.gain * v);
        }
        for lane in 0..LANES {
            // Lanes other than the first drop their warm-up outputs.
            let skip = if lane == 0 {
                0
            } else {
                layout.warm.saturating_sub(start).min(rows)
            };
            for (j, row) in block[..rows].iter().enumerate().skip(skip) {
                io.write(layout.at::<REV>(lane, start + j), row[lane]);
            }
        }
    }
}

/// The lane pass in AVX intrinsics. LLVM's own vectorisation of
/// [`portable_steps`] kept the history in 128-bit halves and spilled it to
/// the stack; here the four lanes of each level are one 256-bit register
/// for the whole pass, and each lane's samples move four at a time: one
/// load per lane, a 4x4 transpose makes four steps' rows, and the outputs go
/// back the same way. The operations are those of [`lanes_step`], in the
/// same order, with each product fused into its addition (FMA: one rounding
/// instead of two, and a step of the recursion waits on one operation, not
/// two): the results differ from the portable pass only in rounding (1e-12
/// on a test signal of amplitude ~3; the test allows 1e-10), and on all 96
/// leads of MIT-BIH the R peaks are the same.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{LaneLayout, LaneState, Samples, LANES, MAX_LEVELS};
    use std::arch::x86_64::*;

    /// Rows of four lanes to lanes of four rows (and back).
    #[target_feature(enable = "avx,fma")]
    #[inline]
    fn transpose(r: [__m256d; 4]) -> [__m256d; 4] {
        let t0 = _mm256_unpacklo_pd(r[0], r[1]);
        let t1 = _mm256_unpackhi_pd(r[0], r[1]);
        let t2 = _mm256_unpacklo_pd(r[2], r[3]);
        let t3 = _mm256_unpackhi_pd(r[2], r[3]);
        [
            _mm256_permute2f128_pd(t0, t2, 0x20),
            _mm256_permute2f128_pd(t1, t3, 0x20),
            _mm256_permute2f128_pd(t0, t2, 0x31),
            _mm256_permute2f128_pd(t1, t3, 0x31),
        ]
    }

    /// The whole groups of four steps of the lane pass; returns the steps done
    /// (the rest is left to the portable loop).
    ///
    /// # Safety
    /// The CPU must support AVX and FMA.
    #[target_feature(enable = "avx,fma")]
    pub(super) unsafe fn steps<const N: usize, const REV: bool>(
        s: &mut LaneState<N>,
        layout: LaneLayout,
        io: &mut impl Samples,
    ) -> usize {
        let total = layout.warm + layout.m;
        let groups = total / 4;
        // The warm-up ends on a group boundary or the groups stop before it.
        if groups == 0 || !layout.warm.is_multiple_of(4) {
            return 0;
        }
        let v = |a: [f64; LANES]| _mm256_setr_pd(a[0], a[1], a[2], a[3]);
        let b1: [__m256d; N] = std::array::from_fn(|k| _mm256_set1_pd(s.b1[k]));
        let a1: [__m256d; N] = std::array::from_fn(|k| _mm256_set1_pd(s.a1[k]));
        let a2: [__m256d; N] = std::array::from_fn(|k| _mm256_set1_pd(s.a2[k]));
        let gain = _mm256_set1_pd(s.gain);
        let mut h1: [__m256d; MAX_LEVELS] = std::array::from_fn(|l| v(s.h1[l]));
        let mut h2: [__m256d; MAX_LEVELS] = std::array::from_fn(|l| v(s.h2[l]));
        // The four consecutive samples of `lane` from step `g * 4`: ascending
        // in memory forward, descending backward (so backward the rows come
        // out of the transpose in reverse order).
        let first = |lane: usize, step: usize| {
            if REV {
                layout.at::<REV>(lane, step + 3)
            } else {
                layout.at::<REV>(lane, step)
            }
        };
        let (src, dst) = io.raw();
        for g in 0..groups {
            let step = g * 4;
            // SAFETY: steps < warm + m keep every lane inside the input
            // (`warm + LANES m <= len`), four samples from `first` on.
            let loaded: [__m256d; LANES] =
                std::array::from_fn(|lane| unsafe { _mm256_loadu_pd(src.add(first(lane, step))) });
            let mut rows = transpose(loaded);
            if REV {
                rows.reverse();
            }
            for row in rows.iter_mut() {
                let mut u = *row;
                for k in 0..N {
                    // (x2 + b1 x1) - a2 y2, then (u + known) - a1 y1, each
                    // product fused with its addition (one rounding, not two).
                    let known =
                        _mm256_fnmadd_pd(a2[k], h2[k + 1], _mm256_fmadd_pd(b1[k], h1[k], h2[k]));
                    let y = _mm256_fnmadd_pd(a1[k], h1[k + 1], _mm256_add_pd(u, known));
                    h2[k] = h1[k];
                    h1[k] = u;
                    u = y;
                }
                h2[N] = h1[N];
                h1[N] = u;
                *row = _mm256_mul_pd(gain, u);
            }
            if REV {
                rows.reverse();
            }
            let out = transpose(rows);
            // Lanes other than the first drop their warm-up outputs.
            let lanes = if step < layout.warm { 1 } else { LANES };
            for (lane, o) in out.iter().enumerate().take(lanes) {
                // SAFETY: the four samples just loaded from this lane, in
                // the output (as long as the input).
                unsafe { _mm256_storeu_pd(dst.add(first(lane, step)), *o) };
            }
        }
        let mut back = [[0.0; LANES]; MAX_LEVELS];
        for (b, h) in back.iter_mut().zip(&h1) {
            // SAFETY: `b` holds four f64.
            unsafe { _mm256_storeu_pd(b.as_mut_ptr(), *h) };
        }
        s.h1 = back;
        for (b, h) in back.iter_mut().zip(&h2) {
            // SAFETY: as above.
            unsafe { _mm256_storeu_pd(b.as_mut_ptr(), *h) };
        }
        s.h2 = back;
        groups * 4
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
            let max_diff = |a: &[f64], b: &[f64]| {
                assert_eq!(a.len(), b.len());
                a.iter()
                    .zip(b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            };
            let err = max_diff(&f.apply_with(&x, false), &serial.apply(&x));
            assert!(err < 1e-10, "{err}");
            if avx_available() {
                // The AVX kernel (fused multiply-adds): the portable lanes'
                // answer up to rounding, at lengths that leave 0 to 3 steps
                // to the portable loop, and over the whole length (a wrong
                // lane, step or edge would be off by the signal's size, ~1).
                for cut in 0..4 {
                    let x = &x[cut..];
                    let err = max_diff(&f.apply_with(x, true), &f.apply_with(x, false));
                    assert!(err < 1e-10, "cut {cut}: {err}");
                }
            } else {
                eprintln!("no AVX + FMA on this CPU: AVX kernel not checked");
            }
        }
    }

    #[test]
    fn in_place_is_the_same_filter_bit_for_bit() {
        let fs = 360.0;
        let f = band_pass(fs, 0.5, 50.0).unwrap();
        // Long enough for the lane pass (and the AVX kernel where there is
        // one); short ones take the serial pass and the clipped padding.
        let long: Vec<f64> = (0..400_000)
            .map(|i| (i as f64 * 0.013).sin() + 0.3 * ((i as u64 * 7919) % 101) as f64 / 101.0)
            .collect();
        let cases: Vec<&[f64]> = vec![
            &long,
            &long[3..],
            &long[..1000],
            &long[..5],
            &long[..2],
            &long[..1],
        ];
        for x in cases {
            for avx in [false, avx_available()] {
                let mut y = x.to_vec();
                f.apply_in_place_with(&mut y, avx);
                assert!(y == f.apply_with(x, avx), "length {} avx {avx}", x.len());
            }
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

//! R-peak detection at any sampling rate.
//!
//! A Pan-Tompkins-style detector: zero-phase band-pass (QRS energy band),
//! derivative, squaring and a centred 150 ms moving-window integration give a
//! feature whose peaks are QRS candidates (the largest within a 200 ms refractory
//! period). Candidates are classified with adaptive signal / noise levels, a
//! T-wave slope test within 360 ms of the last beat, and search-back at a lower
//! threshold when no beat came for 1.66 mean RR intervals. Each beat is placed on
//! the largest absolute deflection of the band-passed signal near its candidate.
//! All times are in seconds and converted with the sampling rate, so the same
//! code serves 125 Hz and 1 kHz. A signal too short (< 1 s), too slowly sampled
//! (< 50 Hz), flat, or with a NaN or infinite sample (or values so large that
//! their squared slope overflows) returns no beats.

use crate::signal::filter::ZeroPhase;
use biquad::{Coefficients, ToHertz, Type};

/// Tunable parameters of the detector, in seconds and ratios.
#[derive(Debug, Clone, Copy)]
pub struct QrsConfig {
    pub band_hz: (f64, f64),
    pub integration_s: f64,
    pub refractory_s: f64,
    pub t_wave_s: f64,
    pub t_wave_slope_ratio: f64,
    pub search_back_rr: f64,
    pub threshold_ratio: f64,
    pub locate_s: f64,
    pub decay_after_rr: f64,
    pub decay: f64,
}

impl Default for QrsConfig {
    fn default() -> Self {
        QrsConfig {
            band_hz: (4.0, 18.0),
            integration_s: 0.15,
            refractory_s: 0.2,
            t_wave_s: 0.36,
            t_wave_slope_ratio: 0.5,
            search_back_rr: 1.5,
            threshold_ratio: 0.2,
            locate_s: 0.1,
            decay_after_rr: 2.0,
            decay: 0.7,
        }
    }
}

/// R-peak sample indices of `x` (any units) sampled at `fs` Hz, with the defaults.
pub fn detect_r_peaks(x: &[f64], fs: f64) -> Vec<usize> {
    detect_with(x, fs, &QrsConfig::default())
}

/// Signals from this many samples (3.2 h at 360 Hz) are searched a
/// [`STREAM_CHUNK`] at a time ([`detect_streamed`]): the detector then holds
/// a few MB instead of a band-passed copy of the whole lead (250 MB for 24
/// hours). Shorter ones are searched in one piece, as before.
pub const STREAM_FROM: usize = 1 << 22;

/// Samples per piece of a streamed search (48 min at 360 Hz).
pub const STREAM_CHUNK: usize = 1 << 20;

/// [`detect_r_peaks`] a piece of `chunk` samples at a time: each piece is
/// band-passed with [`margin`] samples of the signal on either side, its
/// energy's local maxima go through the refractory rule in order across the
/// pieces, and each candidate's slope and R peak are measured while its piece
/// is in memory. The same beats as in one piece (the band-passed values agree
/// to rounding; `tests`, and over the 48 MIT-BIH records in
/// `tests/signal_reference.rs`), in memory bounded by the chunk.
pub fn detect_streamed(x: &[f64], fs: f64, chunk: usize) -> Vec<usize> {
    detect_in_pieces(x, fs, &QrsConfig::default(), chunk.max(1))
}

/// A QRS candidate: a local maximum of the integrated energy that is the
/// largest within the refractory period.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    at: usize,
    energy: f64,
    /// The largest absolute slope of the band-passed signal near it (the
    /// T-wave test), once measured.
    slope: f64,
    /// Where its beat would lie: the largest deflection near it.
    peak: usize,
}

/// What the tracker reads: the integrated energy of the first 10 s (where it
/// learns its levels) and the candidates, in order, measured.
struct Features {
    learn: Vec<f64>,
    candidates: Vec<Candidate>,
}

/// The detector's band-pass at `fs` (`None` where the rate cannot have it).
fn band_pass(fs: f64, cfg: &QrsConfig) -> Option<ZeroPhase> {
    let section = |kind, hz: f64| {
        Coefficients::<f64>::from_params(kind, fs.hz(), hz.hz(), std::f64::consts::FRAC_1_SQRT_2)
            .ok()
    };
    Some(ZeroPhase::new(vec![
        section(Type::HighPass, cfg.band_hz.0)?,
        section(Type::LowPass, cfg.band_hz.1)?,
    ]))
}

/// Samples in the energy's window on each side of its centre.
fn half_window(fs: f64, cfg: &QrsConfig) -> usize {
    ((cfg.integration_s * fs) as usize / 2).max(1)
}

/// Radii (samples) of the slope test and of the R-peak search.
fn radii(fs: f64, cfg: &QrsConfig) -> (usize, usize) {
    let samples = |s: f64| (s * fs).round() as usize;
    (samples(0.075), samples(cfg.locate_s))
}

/// Measures the candidates from `first` on, from `band` (which starts at
/// sample `offset` and covers each one's radii).
fn measure(
    cs: &mut [Candidate],
    first: usize,
    band: &[f64],
    offset: usize,
    (slope, locate): (usize, usize),
) {
    for c in &mut cs[first..] {
        let at = c.at - offset;
        c.slope = max_slope(band, at, slope);
        c.peak = offset + self::locate(band, at, locate);
    }
}

fn features(x: &[f64], fs: f64, cfg: &QrsConfig) -> Option<Features> {
    let band = band_pass(fs, cfg)?.apply(x);
    let refractory = (cfg.refractory_s * fs).round() as usize;
    let learn_len = band.len().min((10.0 * fs) as usize);
    // `None` for a NaN or infinite sample: it makes the band-passed signal
    // NaN around it, and the energy's running sum NaN from there on.
    let mut rule = Refractory::new(refractory);
    let n = band.len();
    let learn = maxima(
        Energy::new(&band, fs, half_window(fs, cfg)),
        learn_len,
        (0..n, 0),
        &mut rule,
    )?;
    let mut candidates = rule.kept;
    measure(&mut candidates, 0, &band, 0, radii(fs, cfg));
    Some(Features { learn, candidates })
}

/// Samples of the signal around a piece that its band-pass and measures
/// read: the filter's warm-up (its start forgotten to 1e-32) and room for
/// the energy's window and the R-peak search, with 1 s to spare.
fn margin(filter: &ZeroPhase, fs: f64, cfg: &QrsConfig) -> Option<usize> {
    let (slope, locate) = radii(fs, cfg);
    Some(filter.warm_up()? + half_window(fs, cfg) + slope.max(locate) + fs.ceil() as usize + 2)
}

/// [`features`] a piece at a time ([`detect_streamed`]).
fn streamed_features(x: &[f64], fs: f64, cfg: &QrsConfig, chunk: usize) -> Option<Features> {
    let filter = band_pass(fs, cfg)?;
    let margin = margin(&filter, fs, cfg)?;
    let n = x.len();
    let refractory = (cfg.refractory_s * fs).round() as usize;
    let learn_len = n.min((10.0 * fs) as usize);
    let mut rule = Refractory::new(refractory);
    let mut learn = Vec::new();
    // One buffer for every piece: a new one per piece (8 MB each, 30 for
    // 24 hours) left the allocators holding ~70 MB more after each request.
    let mut band = Vec::with_capacity((chunk + 2 * margin).min(n));
    for a in (0..n).step_by(chunk) {
        let b = (a + chunk).min(n);
        let (from, to) = (a.saturating_sub(margin), (b + margin).min(n));
        band.clear();
        band.extend_from_slice(&x[from..to]);
        filter.apply_in_place(&mut band);
        let first = maxima(
            Energy::new(&band, fs, half_window(fs, cfg)),
            if a == 0 { learn_len } else { 0 },
            (a - from..b - from, from),
            &mut rule,
        )?;
        if a == 0 {
            learn = first;
        }
        // This piece's candidates: the last ones (the rule may have dropped
        // some of the pieces before, and kept the others as they were).
        let fresh = rule.kept.partition_point(|c| c.at < a);
        measure(&mut rule.kept, fresh, &band, from, radii(fs, cfg));
    }
    Some(Features {
        learn,
        candidates: rule.kept,
    })
}

/// The integrated energy of a band-passed signal, a chunk at a time: the
/// squared central derivative (0 at both ends) summed over a centred window
/// of `2 half + 1` samples, kept as a running sum (floored at 0). Never
/// stored whole: the detector needs it only at its candidates and over the
/// first seconds, and a 5 MB buffer written and read back (and cleared
/// first) cost more than the arithmetic.
struct Energy<'a> {
    band: &'a [f64],
    fs: f64,
    half: usize,
    sum: f64,
    /// The next sample to produce.
    next: usize,
    /// `[head, tail)`: where both ends of the window lie inside the
    /// derivative's range, so no edge tests are needed.
    head: usize,
    tail: usize,
}

impl<'a> Energy<'a> {
    fn new(band: &'a [f64], fs: f64, half: usize) -> Self {
        let n = band.len();
        let head = (half + 2).min(n);
        let mut e = Energy {
            band,
            fs,
            half,
            sum: 0.0,
            next: 0,
            head,
            tail: n.saturating_sub(half + 1).max(head),
        };
        e.sum = (0..half.min(n)).map(|i| e.d2(i)).sum();
        e
    }

    fn len(&self) -> usize {
        self.band.len()
    }

    /// Squared central derivative at `i` (0 at both ends and beyond).
    fn d2(&self, i: usize) -> f64 {
        if i == 0 || i + 1 >= self.band.len() {
            return 0.0;
        }
        squared_slope(self.band[i + 1], self.band[i - 1], self.fs)
    }

    /// Sample `i`'s change of the running sum: what enters minus what leaves,
    /// combined first, so the running sum waits on one addition per sample.
    fn change(&self, i: usize) -> f64 {
        let leave = if i > self.half {
            self.d2(i - self.half - 1)
        } else {
            0.0
        };
        self.d2(i + self.half) - leave
    }

    /// Samples `from..` into `out` with the edge tests of [`Self::change`].
    fn edge(&mut self, out: &mut [f64], from: usize) {
        for (e, i) in out.iter_mut().zip(from..) {
            self.sum += self.change(i);
            *e = self.sum.max(0.0);
        }
    }

    /// The next `out.len()` samples of the energy.
    fn fill(&mut self, out: &mut [f64]) {
        let (from, to) = (self.next, self.next + out.len());
        let (fast_from, fast_to) = (self.head.clamp(from, to), self.tail.clamp(from, to));
        self.edge(&mut out[..fast_from - from], from);
        if fast_from < fast_to {
            // Sample `j` adds the derivative at `j + half` (from the band
            // around it) and drops the one at `j - half - 1`.
            let h = self.half;
            self.sum = integrate(
                &self.band[fast_from + h - 1..],
                &self.band[fast_from - h - 2..],
                self.fs,
                &mut out[fast_from - from..fast_to - from],
                self.sum,
            );
        }
        self.edge(&mut out[fast_to - from..], fast_to);
        self.next = to;
    }
}

/// The squared central derivative from the samples after (`next`) and before
/// (`prev`): one expression for [`Energy::d2`] and [`integrate`], so the edge
/// and fast paths give the same bits.
#[inline(always)]
fn squared_slope(next: f64, prev: f64, fs: f64) -> f64 {
    let slope = (next - prev) * fs / 2.0;
    slope * slope
}

/// The middle of [`Energy::fill`]: `out[j]` is the running `sum` plus the
/// squared central derivative of `enter` at `j + 1` minus that of `leave`
/// at `j + 1`, floored at 0; returns the running sum. The changes first, in
/// a loop without a serial chain (it vectorises); then the running sum, a
/// serial chain of additions: one addition's latency per sample.
fn integrate(enter: &[f64], leave: &[f64], fs: f64, out: &mut [f64], mut sum: f64) -> f64 {
    let n = out.len();
    let (enter, leave) = (&enter[..n + 2], &leave[..n + 2]);
    for (j, o) in out.iter_mut().enumerate() {
        *o = squared_slope(enter[j + 2], enter[j], fs) - squared_slope(leave[j + 2], leave[j], fs);
    }
    for o in out.iter_mut() {
        sum += *o;
        *o = sum.max(0.0);
    }
    sum
}

/// The refractory rule over the energy's local maxima, offered in order:
/// a maximum replaces the candidates within `refractory` samples before it
/// that are smaller, and is kept when none larger lies that close.
struct Refractory {
    refractory: usize,
    kept: Vec<Candidate>,
}

impl Refractory {
    fn new(refractory: usize) -> Self {
        Refractory {
            refractory,
            kept: Vec::new(),
        }
    }

    fn offer(&mut self, i: usize, e: f64) {
        while let Some(last) = self.kept.last() {
            if i - last.at >= self.refractory || last.energy >= e {
                break;
            }
            self.kept.pop();
        }
        if self
            .kept
            .last()
            .is_none_or(|last| i - last.at >= self.refractory)
        {
            self.kept.push(Candidate {
                at: i,
                energy: e,
                slope: 0.0,
                peak: i,
            });
        }
    }
}

/// Streams `energy`: offers its local maxima at samples `core` to `rule`
/// (as sample `offset + j`), and returns its first `learn` samples. `None`
/// when the energy is not finite somewhere (its running sum, which every
/// sample enters, is not finite at the end).
fn maxima(
    mut energy: Energy,
    learn: usize,
    (core, offset): (std::ops::Range<usize>, usize),
    rule: &mut Refractory,
) -> Option<Vec<f64>> {
    // Chunk by chunk (the chunk stays in L1), after the last two samples of
    // the chunk before: first every local maximum, then the refractory rule
    // over those maxima only.
    const CHUNK: usize = 2048;
    let n = energy.len();
    let mut buf = vec![0.0; CHUNK + 2];
    let mut maxima = [0usize; CHUNK];
    let mut first = Vec::with_capacity(learn);
    // `buf[..carry]` holds the samples before `from`.
    let mut carry = 0;
    for from in (0..n).step_by(CHUNK) {
        let to = (from + CHUNK).min(n);
        energy.fill(&mut buf[carry..carry + to - from]);
        let chunk = &buf[..carry + to - from];
        first.extend_from_slice(&chunk[carry..carry + learn.saturating_sub(from).min(to - from)]);
        // The window centred on `chunk[j + 1]` is sample `base + j + 1`.
        let base = from - carry;
        // 64 samples at a time, a bit per local maximum (the comparisons
        // vectorise), then one step per set bit: maxima are a few per cent
        // of the samples of a smooth moving sum.
        let mut count = 0;
        let inner = chunk.len().saturating_sub(2);
        for at in (0..inner).step_by(64) {
            let w = &chunk[at..(at + 66).min(chunk.len())];
            let mut bits = 0u64;
            for k in 0..w.len() - 2 {
                let is_max = (w[k + 1] > w[k]) & (w[k + 1] >= w[k + 2]);
                bits |= u64::from(is_max) << k;
            }
            while bits != 0 {
                maxima[count] = at + bits.trailing_zeros() as usize + 1;
                count += 1;
                bits &= bits - 1;
            }
        }
        for &j in &maxima[..count] {
            if core.contains(&(base + j)) {
                rule.offer(offset + base + j, chunk[j]);
            }
        }
        let len = chunk.len();
        if len >= 2 {
            buf.copy_within(len - 2..len, 0);
            carry = 2;
        }
    }
    energy.sum.is_finite().then_some(first)
}

/// The largest of `f(0..n)`, all of them finite and >= 0, in four running
/// maxima side by side: they vectorise, where one fold over `f64::max`
/// waits on every comparison (and on its NaN tests).
#[inline(always)]
fn largest(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let whole = n - n % 4;
    let mut acc = [0.0; 4];
    for i in (0..whole).step_by(4) {
        for (k, m) in acc.iter_mut().enumerate() {
            let v = f(i + k);
            if v > *m {
                *m = v;
            }
        }
    }
    (whole..n)
        .map(f)
        .chain(acc)
        .fold(0.0, |m, v| if v > m { v } else { m })
}

/// Largest absolute slope of `y` within `radius` of `at`.
fn max_slope(y: &[f64], at: usize, radius: usize) -> f64 {
    let (a, b) = (
        at.saturating_sub(radius).max(1),
        (at + radius).min(y.len() - 1),
    );
    let (now, before) = (&y[a..b.max(a)], &y[a - 1..b.max(a) - 1]);
    largest(now.len(), |i| (now[i] - before[i]).abs())
}

/// Index of the largest |y| within `radius` of `at` (the last of equals).
fn locate(y: &[f64], at: usize, radius: usize) -> usize {
    let (a, b) = (at.saturating_sub(radius), (at + radius + 1).min(y.len()));
    let w = &y[a..b.max(a)];
    let top = largest(w.len(), |i| w[i].abs());
    w.iter().rposition(|v| v.abs() == top).map_or(at, |k| a + k)
}

/// The detector's running state: adaptive levels and the beats so far.
struct Tracker<'a> {
    cfg: &'a QrsConfig,
    fs: f64,
    /// Running QRS and noise peak levels of the integrated energy.
    signal: f64,
    noise: f64,
    /// Candidates accepted as QRS.
    beats: Vec<Candidate>,
    /// The last eight RR intervals, in samples.
    rr: Vec<f64>,
    /// Candidates rejected since the last beat (with their energy), for search-back.
    noise_since_beat: Vec<Candidate>,
}

impl<'a> Tracker<'a> {
    /// Initial levels from the median of the per-second maxima of the first 10 s.
    fn new(cfg: &'a QrsConfig, fs: f64, f: &'a Features) -> Option<Self> {
        let m = &f.learn;
        let learn = m.len();
        let mut maxima: Vec<f64> = m
            .chunks((fs as usize).max(1))
            .map(|c| c.iter().copied().fold(0.0, f64::max))
            .collect();
        maxima.sort_by(f64::total_cmp);
        let peak = maxima[maxima.len() / 2];
        (peak > f64::MIN_POSITIVE).then(|| Tracker {
            cfg,
            fs,
            signal: peak,
            noise: m.iter().sum::<f64>() / learn as f64 * 0.5,
            beats: Vec::new(),
            rr: Vec::new(),
            noise_since_beat: Vec::new(),
        })
    }

    fn samples(&self, seconds: f64) -> usize {
        (seconds * self.fs).round() as usize
    }

    fn threshold(&self) -> f64 {
        self.noise + self.cfg.threshold_ratio * (self.signal - self.noise)
    }

    fn accept(&mut self, c: Candidate) {
        if let Some(last) = self.beats.last() {
            self.rr.push((c.at - last.at) as f64);
            if self.rr.len() > 8 {
                self.rr.remove(0);
            }
        }
        self.beats.push(c);
    }

    /// A beat is overdue before candidate `c`: accept the best rejected candidate
    /// over half the threshold, or, with none, let the signal level decay.
    fn search_back(&mut self, c: usize) {
        while let Some(last) = self.beats.last().map(|b| b.at) {
            let mean_rr = match self.rr.len() {
                0 => self.fs,
                n => self.rr.iter().sum::<f64>() / n as f64,
            };
            let gap = (c - last) as f64;
            if gap < self.cfg.search_back_rr * mean_rr {
                return;
            }
            let floor = 0.5 * self.threshold();
            let earliest = last + self.samples(self.cfg.t_wave_s);
            let best = self
                .noise_since_beat
                .iter()
                .copied()
                .filter(|b| b.at > earliest && b.energy > floor)
                .max_by(|a, b| a.energy.total_cmp(&b.energy));
            let Some(b) = best else {
                // Nothing even at half threshold: the QRS amplitude has dropped
                // (lead change, gain change). Let the signal level follow it down.
                if gap > self.cfg.decay_after_rr * mean_rr {
                    self.signal = (self.signal * self.cfg.decay).max(self.noise);
                }
                return;
            };
            self.signal = 0.25 * b.energy + 0.75 * self.signal;
            self.noise_since_beat.retain(|r| r.at > b.at);
            self.accept(b);
        }
    }

    /// Classifies candidate `c` as QRS or noise, with the T-wave slope test.
    fn classify(&mut self, c: Candidate) {
        let m = c.energy;
        let is_qrs = m > self.threshold()
            && match self.beats.last() {
                Some(last) if c.at - last.at < self.samples(self.cfg.t_wave_s) => {
                    c.slope >= self.cfg.t_wave_slope_ratio * last.slope
                }
                _ => true,
            };
        if is_qrs {
            self.signal = 0.125 * m + 0.875 * self.signal;
            self.noise_since_beat.clear();
            self.accept(c);
        } else {
            self.noise = 0.125 * m + 0.875 * self.noise;
            self.noise_since_beat.push(c);
        }
    }

    /// R peaks: each beat moved to the largest deflection near it, strictly increasing.
    fn peaks(&self) -> Vec<usize> {
        let mut peaks: Vec<usize> = Vec::with_capacity(self.beats.len());
        for b in &self.beats {
            if peaks.last().is_none_or(|&q| b.peak > q) {
                peaks.push(b.peak);
            }
        }
        peaks
    }
}

/// R-peak detection with explicit parameters (a long signal a piece at a
/// time, [`STREAM_FROM`]).
pub fn detect_with(x: &[f64], fs: f64, cfg: &QrsConfig) -> Vec<usize> {
    if x.len() >= STREAM_FROM {
        return detect_in_pieces(x, fs, cfg, STREAM_CHUNK);
    }
    track(x, fs, cfg, || features(x, fs, cfg))
}

fn detect_in_pieces(x: &[f64], fs: f64, cfg: &QrsConfig, chunk: usize) -> Vec<usize> {
    track(x, fs, cfg, || streamed_features(x, fs, cfg, chunk))
}

/// The beats among the candidates of `x`'s `features`.
fn track(
    x: &[f64],
    fs: f64,
    cfg: &QrsConfig,
    features: impl FnOnce() -> Option<Features>,
) -> Vec<usize> {
    let usable = fs.is_finite() && fs >= 50.0 && x.len() as f64 >= fs;
    if !usable {
        return Vec::new();
    }
    let Some(f) = features() else {
        return Vec::new();
    };
    let Some(mut tracker) = Tracker::new(cfg, fs, &f) else {
        return Vec::new();
    };
    for &c in &f.candidates {
        tracker.search_back(c.at);
        tracker.classify(c);
    }
    tracker.peaks()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic ECG: narrow Gaussian QRS complexes plus T waves at `rr_s` spacing.
    fn synthetic(fs: f64, seconds: f64, rr_s: f64, amplitude: f64) -> (Vec<f64>, Vec<usize>) {
        let n = (fs * seconds) as usize;
        let beats: Vec<usize> = (1..)
            .map(|k| (k as f64 * rr_s * fs) as usize)
            .take_while(|&b| b + ((fs * 0.5) as usize) < n)
            .collect();
        let mut x = vec![0.0; n];
        for &b in &beats {
            for (i, v) in x.iter_mut().enumerate() {
                let t = (i as f64 - b as f64) / fs;
                *v += amplitude * (-(t / 0.012).powi(2)).exp()
                    + 0.3 * amplitude * (-((t - 0.25) / 0.05).powi(2)).exp();
            }
        }
        (x, beats)
    }

    #[test]
    fn finds_every_beat_at_any_rate_and_polarity() {
        for fs in [125.0, 250.0, 360.0, 500.0, 1000.0] {
            for amp in [1.0, -0.3, 0.05] {
                let (x, truth) = synthetic(fs, 20.0, 0.8, amp);
                let found = detect_r_peaks(&x, fs);
                assert_eq!(found.len(), truth.len(), "fs {fs} amp {amp}: {found:?}");
                for (f, t) in found.iter().zip(&truth) {
                    assert!(f.abs_diff(*t) as f64 <= 0.02 * fs, "fs {fs}: {f} vs {t}");
                }
            }
        }
    }

    /// The streamed energy and its candidates (chunks, carried samples, bit
    /// masks, fast middle) against the plain computation: the whole energy
    /// in one vector, then every local maximum, then the refractory rule.
    #[test]
    fn streamed_candidates_equal_the_plain_computation() {
        fn plain(band: &[f64], fs: f64, half: usize, refractory: usize) -> (Vec<f64>, Vec<usize>) {
            let n = band.len();
            let mut d2 = vec![0.0; n];
            for (d, w) in d2[1..].iter_mut().zip(band.windows(3)) {
                let slope = (w[2] - w[0]) * fs / 2.0;
                *d = slope * slope;
            }
            let mut sum: f64 = d2[..half.min(n)].iter().sum();
            let mut energy = vec![0.0; n];
            for (i, e) in energy.iter_mut().enumerate() {
                let enter = d2.get(i + half).copied().unwrap_or(0.0);
                let leave = if i > half { d2[i - half - 1] } else { 0.0 };
                sum += enter - leave;
                *e = sum.max(0.0);
            }
            let mut kept: Vec<usize> = Vec::new();
            for (w, i) in energy.windows(3).zip(1..) {
                if !(w[1] > w[0] && w[1] >= w[2]) {
                    continue;
                }
                while let Some(&last) = kept.last() {
                    if i - last >= refractory || energy[last] >= energy[i] {
                        break;
                    }
                    kept.pop();
                }
                if kept.last().is_none_or(|&last| i - last >= refractory) {
                    kept.push(i);
                }
            }
            (energy, kept)
        }
        // Lengths around the chunk size (2048) and the mask width (64).
        for (fs, n) in [
            (360.0, 2047),
            (360.0, 2048),
            (360.0, 2049),
            (360.0, 4161),
            (125.0, 700),
            (1000.0, 9000),
        ] {
            let (x, _) = synthetic(fs, n as f64 / fs, 0.7, 1.0);
            let band: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(i, v)| v + 0.01 * ((i * 7919) % 97) as f64 / 97.0)
                .collect();
            let half = ((0.15 * fs) as usize / 2).max(1);
            let refractory = (0.2 * fs) as usize;
            let learn = n.min((10.0 * fs) as usize);
            let mut rule = Refractory::new(refractory);
            let first = maxima(Energy::new(&band, fs, half), learn, (0..n, 0), &mut rule).unwrap();
            let found = rule.kept;
            let (energy, expected) = plain(&band, fs, half, refractory);
            assert_eq!(first, energy[..learn], "fs {fs} n {n}");
            let at: Vec<usize> = found.iter().map(|c| c.at).collect();
            assert_eq!(at, expected, "fs {fs} n {n}");
            assert!(found
                .iter()
                .all(|c| c.energy.to_bits() == energy[c.at].to_bits()));
            assert!(!expected.is_empty());
        }
    }

    /// The search a piece at a time finds the beats of the search in one
    /// piece: synthetic records with noise, a lead change and a pause, at
    /// several rates, cut into pieces of many sizes (pieces shorter than the
    /// margin, pieces ending on a beat); the committed record 100 in ten pieces.
    #[test]
    fn pieces_find_the_same_beats_as_one_piece() {
        for fs in [128.0, 360.0, 1000.0] {
            let (mut x, _) = synthetic(fs, 120.0, 0.73, 1.0);
            let n = x.len();
            for (i, v) in x.iter_mut().enumerate() {
                // Noise, and from 40 s a quarter of the amplitude.
                *v += 0.05 * (((i * 7919) % 101) as f64 / 101.0 - 0.5);
                if i as f64 > 40.0 * fs {
                    *v *= 0.25;
                }
            }
            // A 3 s pause (flat line) at 80 s.
            let pause = (80.0 * fs) as usize;
            x[pause..pause + (3.0 * fs) as usize].fill(0.0);
            let whole = track(&x, fs, &QrsConfig::default(), || {
                features(&x, fs, &QrsConfig::default())
            });
            assert!(whole.len() > 100, "fs {fs}");
            for chunk in [997, 4096, (10.0 * fs) as usize, n / 3, n - 1, n] {
                let pieces = detect_streamed(&x, fs, chunk);
                assert_eq!(pieces, whole, "fs {fs}, pieces of {chunk}");
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mitdb");
        let hea = std::fs::read_to_string(dir.join("100.hea")).unwrap();
        let header = crate::signal::wfdb::parse_header("100.hea", &hea).unwrap();
        let dat = std::fs::read(dir.join("100.dat")).unwrap();
        let rec = crate::signal::wfdb::read_record(&header, |_| Some(&dat[..]), Default::default())
            .unwrap();
        let x = &rec.leads[0].samples;
        let whole = detect_r_peaks(x, 360.0);
        assert!(whole.len() > 2200);
        assert_eq!(detect_streamed(x, 360.0, x.len() / 10 + 1), whole);
    }

    #[test]
    fn flat_short_and_bad_inputs_give_no_beats() {
        assert!(detect_r_peaks(&[], 360.0).is_empty());
        assert!(detect_r_peaks(&[0.0; 100], 360.0).is_empty());
        assert!(detect_r_peaks(&[1.5; 36000], 360.0).is_empty());
        assert!(detect_r_peaks(&[0.0; 36000], 0.0).is_empty());
        assert!(detect_r_peaks(&[f64::NAN; 3600], 360.0).is_empty());
        // One bad sample anywhere in a record full of beats (no finiteness
        // pass over the input: the energy's running sum carries it).
        let (x, truth) = synthetic(360.0, 60.0, 0.8, 1.0);
        assert_eq!(detect_r_peaks(&x, 360.0).len(), truth.len());
        for at in [0, 1, 5000, 10_000, x.len() - 2, x.len() - 1] {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
                let mut y = x.clone();
                y[at] = bad;
                assert!(detect_r_peaks(&y, 360.0).is_empty(), "{bad} at {at}");
                assert!(detect_streamed(&y, 360.0, 4000).is_empty(), "{bad} at {at}");
            }
        }
    }
}

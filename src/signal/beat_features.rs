//! Per-beat features that judge each beat against its own patient: timing
//! against the patient's normal rhythm, shape against the patient's dominant
//! beat, atrial activity before the QRS and the rhythm the beat sits in.
//!
//! Inter-patient beat classification fails where a model learns one patient's
//! shapes and rates; everything here is a ratio to the same record's normal
//! beats, or a correlation with them, or a time in seconds, so it carries to
//! patients, devices, gains and sampling rates the model never saw. The lead
//! is the band-passed one at the model rate; every duration is in seconds.
//!
//! **The dominant beat** is not the plain median beat (an ectopic-heavy
//! record, bigeminy or a run of atrial premature beats, shapes that): among up
//! to [`TEMPLATE_CANDIDATES`] beats spread over the record, the one with the
//! most look-alikes (QRS correlation >= [`SIMILAR`]) among the beats that are
//! not premature seeds it, and the template is the sample-wise median of those
//! look-alikes. **The normal RR** is the median previous RR of the same beats,
//! so a record where most beats come early still has the right yardstick.
//! Where runs of atrial beats outnumber the sinus beats, the dominant beat is
//! theirs and that yardstick is the run's; [`CONTEXT`] adds timing that does
//! not lean on the majority (the slow normal RR, the 5-minute average RR, the
//! onset ratio) and the P wave against the previous beat's.
//!
//! Atrial activity: an atrial premature beat has a P wave (earlier, often of
//! another shape); atrial fibrillation has none, and irregular RR around it.
//! `p_corr` (the P-wave region against the template's), `p_rms_rel`, and the
//! neighbours' mean `p_corr` and RR irregularity carry that evidence against
//! the record; [`ATRIAL`] against a population prior (a P wave is a smooth
//! bump before the QRS in any patient), which an ectopic majority cannot move.

use super::rr::RrFeatures;

/// Feature names, in [`beat_features`] order.
pub const NAMES: [&str; FEATURES] = [
    "pre_normal",
    "post_normal",
    "local_normal",
    "post_pre",
    "prev_pre_local",
    "next_pre_local",
    "rr_irregularity",
    "premature_share",
    "qrs_corr",
    "window_corr",
    "p_corr",
    "log_amplitude_rel",
    "p_rms_rel",
    "qrs_width_s",
    "qrs_width_rel",
    "difference_rms",
    "neighbour_p_corr",
    "prev_qrs_corr",
    "w00",
    "w01",
    "w02",
    "w03",
    "w04",
    "w05",
    "w06",
    "w07",
    "w08",
    "w09",
    "w10",
    "w11",
    "w12",
    "w13",
    "w14",
    "w15",
    "w16",
    "w17",
    "w18",
    "w19",
    "w20",
    "w21",
    "w22",
    "w23",
    "d00",
    "d01",
    "d02",
    "d03",
    "d04",
    "d05",
    "d06",
    "d07",
    "d08",
    "d09",
    "d10",
    "d11",
    "d12",
    "d13",
    "d14",
    "d15",
    "d16",
    "d17",
    "d18",
    "d19",
    "d20",
    "d21",
    "d22",
    "d23",
    "pre_slow",
    "local_slow",
    "pre_average",
    "pre_previous",
    "p_previous_corr",
    "p_fit",
    "p_fit_amplitude",
    "neighbour_p_fit",
];

/// Number of features per beat.
pub const FEATURES: usize = 18 + 2 * WAVE_POINTS + CONTEXT.len() + ATRIAL.len();

/// The rhythm-context features (after the waveform points), which do not
/// lean on the record's majority:
///
/// - `pre_slow`, `local_slow`: the previous and the local RR against the
///   record's *slow* normal RR, the [`SLOW_QUANTILE`] of the dominant beats'
///   previous RRs rather than their median. An ectopic atrial rhythm is faster
///   than the sinus rhythm it interrupts, so where runs of atrial beats
///   outnumber sinus beats (and seed the dominant beat) the sinus beats are
///   still the slow ones;
/// - `pre_average`: the previous RR against the mean RR within
///   [`AVERAGE_S`] seconds either side (de Chazal et al. 2004's average RR);
/// - `pre_previous`: the previous RR against the beat before's (the abrupt
///   onset of a run, which a sinus rhythm speeding up does not have);
/// - `p_previous_corr`: the P-wave region against the previous beat's (a
///   sinus beat that comes early keeps its P wave; an atrial premature beat
///   brings another).
pub const CONTEXT: [&str; 5] = [
    "pre_slow",
    "local_slow",
    "pre_average",
    "pre_previous",
    "p_previous_corr",
];
/// Atrial activity against a population prior, not against the record (the
/// last features): a P wave is a smooth bump of about [`P_FIT_S`] seconds
/// somewhere in the 0.25 s before the QRS, whatever the patient's majority
/// rhythm. Each beat's region before the QRS is searched for the best fit of a
/// Hann bump of that length, each placement's linear trend removed first:
///
/// - `p_fit`: the best placement's |correlation| with the bump (near 1 for a P
///   wave of either polarity, low for a flat or a fibrillating baseline);
/// - `p_fit_amplitude`: the fitted bump's height over the beat's own QRS
///   peak-to-peak amplitude;
/// - `neighbour_p_fit`: the mean `p_fit` of the 4 beats either side (atrial
///   fibrillation has no P wave before any of them; an atrial premature beat's
///   neighbours have theirs).
///
/// The slow onset of a wide QRS can fit the bump too; the shape features tell
/// those beats apart.
pub const ATRIAL: [&str; 3] = ["p_fit", "p_fit_amplitude", "neighbour_p_fit"];
/// Length, seconds, of the P-wave bump [`ATRIAL`] fits.
pub const P_FIT_S: f64 = 0.09;

/// Quantile of the dominant beats' previous RR taken as the slow normal RR.
pub const SLOW_QUANTILE: f64 = 0.75;
/// Half-width, seconds, of the window [`CONTEXT`]'s `pre_average` averages over.
pub const AVERAGE_S: f64 = 150.0;

/// Waveform points per beat (`w..`: the beat, `d..`: the beat minus the
/// template, both over the template's QRS amplitude), every [`WAVE_STEP_S`]
/// from [`WAVE_FROM_S`].
pub const WAVE_POINTS: usize = 24;
pub const WAVE_FROM_S: f64 = -0.2;
pub const WAVE_STEP_S: f64 = 0.025;

/// Most beats considered for the dominant beat (evenly spaced).
pub const TEMPLATE_CANDIDATES: usize = 240;
/// QRS correlation of two beats of one shape.
pub const SIMILAR: f64 = 0.9;
/// A beat whose previous RR is under this share of the local mean is premature.
pub const PREMATURE: f64 = 0.9;
/// Beats either side that make a beat's rhythm context.
pub const CONTEXT_BEATS: usize = 10;

/// Window around each peak, seconds.
const BEFORE_S: f64 = 0.25;
const AFTER_S: f64 = 0.45;
/// QRS region, seconds around the peak.
const QRS: (f64, f64) = (-0.08, 0.12);
/// P-wave region.
const P_WAVE: (f64, f64) = (-0.23, -0.09);
/// Where [`ATRIAL`]'s bump may lie: from the window's start to the QRS region.
const P_SEARCH: (f64, f64) = (-BEFORE_S, -0.08);
/// Region the QRS width is measured in.
const WIDTH: (f64, f64) = (-0.15, 0.15);

/// The features of every beat at `peaks` (samples of `x`, at `rate` Hz,
/// ascending) with `rr` its [`RrFeatures`] (one per peak). A record with fewer
/// than two beats gives zeros.
pub fn beat_features(
    x: &[f64],
    rate: f64,
    peaks: &[usize],
    rr: &[RrFeatures],
) -> Vec<[f32; FEATURES]> {
    let mut rows = Vec::with_capacity(peaks.len());
    beat_features_each(x, rate, peaks, rr, |row| rows.push(row));
    rows
}

/// [`beat_features`], each beat's row handed to `row` in order instead of
/// kept (the server writes them into the model's input: a 24-hour record's
/// rows are 31 MB).
pub fn beat_features_each(
    x: &[f64],
    rate: f64,
    peaks: &[usize],
    rr: &[RrFeatures],
    mut row: impl FnMut([f32; FEATURES]),
) {
    let n = peaks.len();
    if n < 2 || rr.len() != n || x.is_empty() || rate.is_nan() || rate <= 0.0 {
        (0..n).for_each(|_| row([0.0; FEATURES]));
        return;
    }
    let geometry = Geometry::new(rate);
    // Windows are cut again where needed rather than kept: a 24-hour record
    // has ~100,000 beats.
    let window = |i: usize| geometry.window(x, peaks[i]);
    let pre_local: Vec<f64> = rr.iter().map(|r| ratio(r.pre, r.local)).collect();
    let dominant = Dominant::find(&window, n, &pre_local, rr, &geometry);
    let t = &dominant.template;
    let amplitude = peak_to_peak(geometry.qrs(t)).max(1e-9);
    let t_width = geometry.qrs_width(t);
    let t_p_rms = rms(geometry.p_wave(t)).max(1e-9);
    let (mut qrs_corr, mut p_corr, mut p_previous) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut previous: Option<Vec<f64>> = None;
    let bump = Bump::new(rate);
    let mut p_fit = Vec::with_capacity(n);
    let mut p_fit_score = Vec::with_capacity(n);
    for i in 0..n {
        let w = window(i);
        let fit = bump.fit(geometry.p_search(&w), peak_to_peak(geometry.qrs(&w)));
        p_fit_score.push(fit.score);
        p_fit.push(fit);
        qrs_corr.push(correlation(geometry.qrs(&w), geometry.qrs(t)));
        p_corr.push(correlation(geometry.p_wave(&w), geometry.p_wave(t)));
        p_previous.push(previous.as_ref().map_or(1.0, |v| {
            correlation(geometry.p_wave(&w), geometry.p_wave(v))
        }));
        previous = Some(w);
    }
    let average = average_rr(peaks, rate, rr);
    (0..n)
        .map(|i| {
            let w = &window(i);
            let r = &rr[i];
            let normal = dominant.rr_s;
            let (from, to) = (
                i.saturating_sub(CONTEXT_BEATS),
                (i + CONTEXT_BEATS + 1).min(n),
            );
            let changes: Vec<f64> = (from.max(1)..to)
                .map(|k| (rr[k].pre - rr[k - 1].pre).abs())
                .collect();
            let premature = (from..to).filter(|&k| pre_local[k] < PREMATURE).count();
            let width = geometry.qrs_width(w);
            let difference: Vec<f64> = w.iter().zip(t).map(|(a, b)| a - b).collect();
            let mut f = [0.0f32; FEATURES];
            let head = [
                ratio(r.pre, normal),
                ratio(r.post, normal),
                ratio(r.local, normal),
                ratio(r.post, r.pre),
                pre_local[i.saturating_sub(1)],
                pre_local[(i + 1).min(n - 1)],
                ratio(median(&changes), r.local),
                premature as f64 / (to - from) as f64,
                qrs_corr[i],
                correlation(w, t),
                p_corr[i],
                (peak_to_peak(geometry.qrs(w)).max(1e-9) / amplitude)
                    .ln()
                    .clamp(-4.0, 4.0),
                (rms(geometry.p_wave(w)).max(1e-9) / t_p_rms)
                    .ln()
                    .clamp(-4.0, 4.0),
                width,
                ratio(width, t_width),
                rms(&difference) / amplitude,
                neighbour_mean(&p_corr, i),
                qrs_corr[i.saturating_sub(1)],
            ];
            for (slot, v) in f.iter_mut().zip(head) {
                *slot = v as f32;
            }
            for k in 0..WAVE_POINTS {
                let at = geometry.wave_index(k);
                f[18 + k] = (w[at] / amplitude).clamp(-8.0, 8.0) as f32;
                f[18 + WAVE_POINTS + k] = (difference[at] / amplitude).clamp(-8.0, 8.0) as f32;
            }
            let context = [
                ratio(r.pre, dominant.slow_rr_s),
                ratio(r.local, dominant.slow_rr_s),
                ratio(r.pre, average[i]),
                ratio(r.pre, rr[i.saturating_sub(1)].pre),
                p_previous[i],
            ];
            let atrial = [
                p_fit[i].score,
                p_fit[i].amplitude,
                neighbour_mean(&p_fit_score, i),
            ];
            let tail = context.into_iter().chain(atrial);
            for (slot, v) in f[18 + 2 * WAVE_POINTS..].iter_mut().zip(tail) {
                *slot = v as f32;
            }
            f
        })
        .for_each(row)
}

/// Sample offsets of the regions at one rate.
struct Geometry {
    rate: f64,
    before: usize,
    len: usize,
}

impl Geometry {
    fn new(rate: f64) -> Self {
        let before = (BEFORE_S * rate).round() as usize;
        let after = (AFTER_S * rate).round() as usize;
        Geometry {
            rate,
            before,
            len: before + after,
        }
    }

    /// The window around `p`, its mean removed (edges repeat the end samples).
    fn window(&self, x: &[f64], p: usize) -> Vec<f64> {
        let last = x.len() - 1;
        let mut w: Vec<f64> = (0..self.len)
            .map(|k| x[(p + k).saturating_sub(self.before).min(last)])
            .collect();
        let m = mean(&w);
        w.iter_mut().for_each(|v| *v -= m);
        w
    }

    fn index(&self, t: f64) -> usize {
        ((self.before as f64 + t * self.rate).round().max(0.0) as usize).min(self.len - 1)
    }

    fn region<'a>(&self, w: &'a [f64], (from, to): (f64, f64)) -> &'a [f64] {
        &w[self.index(from)..=self.index(to)]
    }

    fn qrs<'a>(&self, w: &'a [f64]) -> &'a [f64] {
        self.region(w, QRS)
    }

    fn p_wave<'a>(&self, w: &'a [f64]) -> &'a [f64] {
        self.region(w, P_WAVE)
    }

    fn p_search<'a>(&self, w: &'a [f64]) -> &'a [f64] {
        self.region(w, P_SEARCH)
    }

    fn wave_index(&self, k: usize) -> usize {
        self.index(WAVE_FROM_S + k as f64 * WAVE_STEP_S)
    }

    /// Seconds between 10 % and 90 % of the slope energy around the peak: wide
    /// for a ventricular beat, narrow for one conducted normally.
    fn qrs_width(&self, w: &[f64]) -> f64 {
        let r = self.region(w, WIDTH);
        let energy: Vec<f64> = r.windows(2).map(|p| (p[1] - p[0]).powi(2)).collect();
        let total: f64 = energy.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let (mut acc, mut lo, mut hi) = (0.0, None, 0);
        for (k, e) in energy.iter().enumerate() {
            acc += e;
            if lo.is_none() && acc >= 0.1 * total {
                lo = Some(k);
            }
            if acc <= 0.9 * total {
                hi = k + 1;
            }
        }
        hi.saturating_sub(lo.unwrap_or(0)) as f64 / self.rate
    }
}

/// The best fit of a P wave in one beat's region before the QRS ([`ATRIAL`]).
#[derive(Debug, Clone, Copy)]
struct PFit {
    score: f64,
    amplitude: f64,
}

/// A Hann bump of [`P_FIT_S`] at one rate, its linear trend removed (so that
/// its inner product with a segment ignores the segment's own trend).
struct Bump {
    shape: Vec<f64>,
    energy: f64,
    /// The middle index and the sum of squared distances to it (the line fit's).
    centre: f64,
    spread: f64,
}

impl Bump {
    fn new(rate: f64) -> Self {
        let m = ((P_FIT_S * rate).round() as usize).max(5) | 1;
        let hann =
            (0..m).map(|k| 0.5 - 0.5 * (std::f64::consts::TAU * k as f64 / (m - 1) as f64).cos());
        let mut shape: Vec<f64> = hann.collect();
        let centre = (m as f64 - 1.0) / 2.0;
        let spread: f64 = (0..m).map(|k| (k as f64 - centre).powi(2)).sum();
        // Its least-squares line removed: mean and slope about the centre.
        let level = mean(&shape);
        let slope = (0..m).map(|k| (k as f64 - centre) * shape[k]).sum::<f64>() / spread;
        for (k, v) in shape.iter_mut().enumerate() {
            *v -= level + slope * (k as f64 - centre);
        }
        let energy = shape.iter().map(|v| v * v).sum();
        Bump {
            shape,
            energy,
            centre,
            spread,
        }
    }

    /// The best placement in `region` (|correlation| after detrending), with
    /// its height over `qrs_amplitude`.
    fn fit(&self, region: &[f64], qrs_amplitude: f64) -> PFit {
        let m = self.shape.len();
        let none = PFit {
            score: 0.0,
            amplitude: 0.0,
        };
        if region.len() < m || self.energy <= 0.0 {
            return none;
        }
        let amplitude = qrs_amplitude.max(1e-9);
        let mut best = none;
        for seg in region.windows(m) {
            // One pass: the segment's sums give its energy about its own line.
            let (mut s0, mut s1, mut s2, mut product) = (0.0, 0.0, 0.0, 0.0);
            for (k, (&y, &h)) in seg.iter().zip(&self.shape).enumerate() {
                s0 += y;
                s1 += (k as f64 - self.centre) * y;
                s2 += y * y;
                product += y * h;
            }
            let detrended = s2 - s0 * s0 / m as f64 - s1 * s1 / self.spread;
            // A flat placement (below a millionth of the QRS) fits nothing.
            if detrended <= (1e-6 * amplitude).powi(2) * m as f64 {
                continue;
            }
            let score = (product / (detrended * self.energy).sqrt()).abs();
            if score > best.score {
                best = PFit {
                    score,
                    amplitude: (product / self.energy / amplitude).abs().min(2.0),
                };
            }
        }
        best
    }
}

/// The mean of `values` over the 4 beats either side of beat `i` (not `i`).
fn neighbour_mean(values: &[f64], i: usize) -> f64 {
    let around = i.saturating_sub(4)..(i + 5).min(values.len());
    mean(
        &around
            .filter(|&k| k != i)
            .map(|k| values[k])
            .collect::<Vec<_>>(),
    )
}

/// The mean previous RR of the beats within [`AVERAGE_S`] of each beat.
fn average_rr(peaks: &[usize], rate: f64, rr: &[RrFeatures]) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(rr.len() + 1);
    prefix.push(0.0);
    for r in rr {
        prefix.push(prefix[prefix.len() - 1] + r.pre);
    }
    let reach = (AVERAGE_S * rate).round() as usize;
    peaks
        .iter()
        .map(|&p| {
            let from = peaks.partition_point(|&q| q + reach < p);
            let to = peaks.partition_point(|&q| q <= p + reach);
            (prefix[to] - prefix[from]) / (to - from).max(1) as f64
        })
        .collect()
}

/// The record's dominant beat and its normal RR.
struct Dominant {
    template: Vec<f64>,
    rr_s: f64,
    /// The [`SLOW_QUANTILE`] of the same beats' previous RR.
    slow_rr_s: f64,
}

impl Dominant {
    /// The dominant beat among the `n` beats whose windows `window` cuts.
    fn find(
        window: &dyn Fn(usize) -> Vec<f64>,
        n: usize,
        pre_local: &[f64],
        rr: &[RrFeatures],
        g: &Geometry,
    ) -> Self {
        let step = n.div_ceil(TEMPLATE_CANDIDATES).max(1);
        let picked: Vec<usize> = (0..n).step_by(step).collect();
        let windows: Vec<Vec<f64>> = picked.iter().map(|&i| window(i)).collect();
        let similar: Vec<Vec<bool>> = windows
            .iter()
            .map(|a| {
                windows
                    .iter()
                    .map(|b| correlation(g.qrs(a), g.qrs(b)) >= SIMILAR)
                    .collect()
            })
            .collect();
        let regular = |k: usize| pre_local[picked[k]] >= PREMATURE;
        let seed = (0..picked.len())
            .max_by_key(|&a| {
                let alike = (0..picked.len()).filter(|&b| similar[a][b]);
                (alike.clone().filter(|&b| regular(b)).count(), alike.count())
            })
            .unwrap_or(0);
        let alike: Vec<usize> = (0..picked.len()).filter(|&b| similar[seed][b]).collect();
        let regular_alike: Vec<usize> = alike.iter().copied().filter(|&b| regular(b)).collect();
        let members: Vec<usize> = if regular_alike.len() >= 8 {
            regular_alike
        } else {
            alike
        };
        let template = (0..g.len)
            .map(|s| median(&members.iter().map(|&m| windows[m][s]).collect::<Vec<_>>()))
            .collect();
        let rr_members: Vec<f64> = members.iter().map(|&m| rr[picked[m]].pre).collect();
        let rr_s = match median(&rr_members) {
            v if v > 0.0 => v,
            _ => rr[0].record,
        };
        let slow_rr_s = match quantile(&rr_members, SLOW_QUANTILE) {
            v if v > 0.0 => v,
            _ => rr_s,
        };
        Dominant {
            template,
            rr_s,
            slow_rr_s,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() {
        (a / b).min(10.0)
    } else {
        1.0
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn rms(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

fn peak_to_peak(v: &[f64]) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if hi >= lo {
        hi - lo
    } else {
        0.0
    }
}

/// Pearson correlation (0 when either side is flat).
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x - ma, y - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa > 0.0 && bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        0.0
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The `q` quantile of `v` (linear between order statistics; 0 when empty).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n => {
            let at = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::rr::rr_features;

    /// A beat: a narrow QRS (or a wide one) and a P wave 0.16 s before it.
    fn beat(x: &mut [f64], at: usize, rate: f64, wide: bool, p_wave: bool) {
        let bump = |x: &mut [f64], centre: f64, width: f64, height: f64| {
            for (i, v) in x.iter_mut().enumerate() {
                let t = (i as f64 - centre) / rate;
                *v += height * (-(t / width).powi(2)).exp();
            }
        };
        let c = at as f64;
        if wide {
            bump(x, c, 0.04, -1.5);
        } else {
            bump(x, c, 0.012, 1.0);
        }
        if p_wave {
            bump(x, c - 0.16 * rate, 0.035, 0.15);
        }
    }

    fn record(rate: f64) -> (Vec<f64>, Vec<usize>, Vec<&'static str>) {
        // Sinus at 0.8 s; beat 10 is an atrial premature beat (early, with P),
        // beat 20 a ventricular one (early, wide, no P).
        let mut peaks = Vec::new();
        let mut kinds = Vec::new();
        let mut t = 0.5;
        for k in 0..40 {
            let (gap, kind) = match k {
                10 => (0.5, "S"),
                11 => (1.1, "N"),
                20 => (0.5, "V"),
                21 => (1.1, "N"),
                _ => (0.8, "N"),
            };
            t += gap;
            peaks.push((t * rate) as usize);
            kinds.push(kind);
        }
        let mut x = vec![0.0; ((t + 1.0) * rate) as usize];
        for (&p, &k) in peaks.iter().zip(&kinds) {
            beat(&mut x, p, rate, k == "V", k != "V");
        }
        (x, peaks, kinds)
    }

    fn column(f: &[[f32; FEATURES]], name: &str) -> Vec<f32> {
        let j = NAMES.iter().position(|n| *n == name).unwrap();
        f.iter().map(|r| r[j]).collect()
    }

    #[test]
    fn premature_beats_and_wide_beats_stand_out() {
        for rate in [128.0, 360.0, 500.0] {
            let (x, peaks, _) = record(rate);
            let rr = rr_features(&peaks, rate, 10);
            let f = beat_features(&x, rate, &peaks, &rr);
            assert_eq!(f.len(), peaks.len());
            assert!(f.iter().flatten().all(|v| v.is_finite()));
            let pre = column(&f, "pre_normal");
            assert!((pre[5] - 1.0).abs() < 0.05, "{rate}: {}", pre[5]);
            assert!(pre[10] < 0.7 && pre[20] < 0.7, "{rate}: {pre:?}");
            let qrs = column(&f, "qrs_corr");
            assert!(qrs[10] > 0.95, "{rate}: S beat QRS corr {}", qrs[10]);
            assert!(qrs[20] < 0.5, "{rate}: V beat QRS corr {}", qrs[20]);
            let width = column(&f, "qrs_width_rel");
            assert!(
                width[20] > 1.5 && (width[5] - 1.0).abs() < 0.2,
                "{rate}: {width:?}"
            );
            let p = column(&f, "p_corr");
            assert!(p[5] > 0.9, "{rate}: {}", p[5]);
        }
    }

    #[test]
    fn the_dominant_beat_survives_bigeminy() {
        // Every other beat ventricular: the template must still be the narrow beat.
        let rate = 250.0;
        let mut peaks = Vec::new();
        let mut t = 0.5;
        for k in 0..60 {
            t += if k % 2 == 0 { 1.1 } else { 0.5 };
            peaks.push((t * rate) as usize);
        }
        let mut x = vec![0.0; ((t + 1.0) * rate) as usize];
        for (k, &p) in peaks.iter().enumerate() {
            beat(&mut x, p, rate, k % 2 == 1, k % 2 == 0);
        }
        let rr = rr_features(&peaks, rate, 10);
        let f = beat_features(&x, rate, &peaks, &rr);
        let qrs = column(&f, "qrs_corr");
        assert!(qrs[10] > 0.95 && qrs[11] < 0.5, "{} {}", qrs[10], qrs[11]);
        // The normal RR is the narrow beats' previous RR (1.1 s).
        let pre = column(&f, "pre_normal");
        assert!((pre[10] - 1.0).abs() < 0.05, "{}", pre[10]);
    }

    #[test]
    fn a_run_of_atrial_beats_that_outnumbers_sinus_beats_is_still_fast() {
        // 20 sinus beats at 0.8 s, a run of 60 atrial beats at 0.45 s with no
        // visible P wave (the run seeds the dominant beat), 20 sinus beats.
        for rate in [128.0, 360.0] {
            let mut peaks = Vec::new();
            let mut t = 0.5;
            for k in 0..100 {
                t += if (20..80).contains(&k) { 0.45 } else { 0.8 };
                peaks.push((t * rate) as usize);
            }
            let mut x = vec![0.0; ((t + 1.0) * rate) as usize];
            for (k, &p) in peaks.iter().enumerate() {
                beat(&mut x, p, rate, false, !(20..80).contains(&k));
            }
            let rr = rr_features(&peaks, rate, 10);
            let f = beat_features(&x, rate, &peaks, &rr);
            let (normal, slow) = (column(&f, "pre_normal"), column(&f, "pre_slow"));
            // Against the median the run looks normal; against the slow RR it is fast.
            assert!((normal[50] - 1.0).abs() < 0.05, "{rate}: {}", normal[50]);
            assert!(slow[50] < 0.65, "{rate}: {}", slow[50]);
            assert!((slow[10] - 1.0).abs() < 0.05, "{rate}: {}", slow[10]);
            let local = column(&f, "local_slow");
            assert!(local[50] < 0.65 && local[5] > 0.9, "{rate}: {local:?}");
            // Its onset is abrupt; within it the RR holds.
            let previous = column(&f, "pre_previous");
            assert!(previous[20] < 0.6 && (previous[50] - 1.0).abs() < 0.05);
            // Over the whole record the run is faster than the average.
            let average = column(&f, "pre_average");
            assert!(
                average[50] < 0.9 && average[10] > 1.2,
                "{rate}: {average:?}"
            );
            // A sinus P wave follows a sinus P wave; the run's first beat has none.
            let p = column(&f, "p_previous_corr");
            assert!(p[10] > 0.9 && p[20] < 0.5, "{rate}: {} {}", p[10], p[20]);
        }
    }

    #[test]
    fn a_p_wave_is_found_against_a_population_prior() {
        // The sinus and atrial beats have a P wave 0.16 s before the QRS
        // (0.15 of its height); a narrow beat without one fits no bump.
        for rate in [128.0, 360.0, 500.0] {
            let (x, peaks, _) = record(rate);
            let rr = rr_features(&peaks, rate, 10);
            let f = beat_features(&x, rate, &peaks, &rr);
            let (fit, height) = (column(&f, "p_fit"), column(&f, "p_fit_amplitude"));
            assert!(fit[5] > 0.9 && fit[10] > 0.9, "{rate}: {fit:?}");
            assert!((0.04..0.25).contains(&height[5]), "{rate}: {height:?}");
            let near = column(&f, "neighbour_p_fit");
            assert!(near[20] > 0.8, "{rate}: {}", near[20]);
            // A narrow beat without a P wave.
            let mut bare = vec![0.0; x.len()];
            for (k, &p) in peaks.iter().enumerate() {
                beat(&mut bare, p, rate, false, k != 15);
            }
            let fit = column(&beat_features(&bare, rate, &peaks, &rr), "p_fit");
            assert!(fit[15] < 0.5 && fit[14] > 0.9, "{rate}: {fit:?}");
        }
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[], 0.75), 0.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0, 5.0], 0.75), 4.0);
        assert!((quantile(&[1.0, 2.0], 0.75) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn too_few_beats_give_zeros() {
        let rr = rr_features(&[10], 360.0, 10);
        assert_eq!(
            beat_features(&[0.0; 100], 360.0, &[10], &rr),
            vec![[0.0; FEATURES]]
        );
        assert!(beat_features(&[], 360.0, &[], &[]).is_empty());
    }
}

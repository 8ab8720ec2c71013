use ecg_serve::signal::resample::resample;
fn main() {
    for fs in [125.0, 128.0, 200.0, 250.0, 257.0, 500.0, 1000.0, 128.5] {
        let n = (fs * 20.0) as usize;
        let x: Vec<f64> = (0..n).map(|i| (2.0 * std::f64::consts::PI * 7.0 * i as f64 / fs).sin()).collect();
        let y = resample(&x, fs, 360.0).unwrap();
        let mut best = (0.0, f64::MAX);
        for lag10 in -50..50 {
            let lag = lag10 as f64 / 10.0;
            let e = (720..y.len()-720).map(|i| (y[i] - (2.0*std::f64::consts::PI*7.0*(i as f64 - lag)/360.0).sin()).abs()).fold(0.0, f64::max);
            if e < best.1 { best = (lag, e); }
        }
        let e0 = (720..y.len()-720).map(|i| (y[i] - (2.0*std::f64::consts::PI*7.0*(i as f64)/360.0).sin()).abs()).fold(0.0, f64::max);
        println!("{fs}: len {} best lag {} err {} ; err at 0 {}", y.len(), best.0, best.1, e0);
    }
}

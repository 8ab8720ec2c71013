//! Speed of the signal pipeline on one 30-minute MIT-BIH record (650,000 samples):
//! decode (header + format 212 + checksums + mV), band-pass (zero phase), R-peaks,
//! 10 s windows (z-scored), and all four together. Compare with
//! `scripts/bench_python.py`, run in the same session.

use criterion::{criterion_group, criterion_main, Criterion};
use ecg_serve::signal::filter::band_pass;
use ecg_serve::signal::qrs::{detect_r_peaks, detect_streamed};
use ecg_serve::signal::wfdb::{parse_header, read_record, ReadOptions};
use ecg_serve::signal::window::{windows, WindowSpec};
use ecg_serve::signal::Recording;
use std::hint::black_box;

// The allocator ecg-serve runs with (see src/bin/ecg-serve.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decode(hea: &str, dat: &[u8]) -> Recording {
    let header = parse_header("100.hea", hea).unwrap();
    read_record(&header, |_| Some(dat), ReadOptions::default()).unwrap()
}

fn pipeline(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mitdb");
    let hea = std::fs::read_to_string(format!("{dir}/100.hea")).unwrap();
    let dat = std::fs::read(format!("{dir}/100.dat")).unwrap();
    let rec = decode(&hea, &dat);
    let x = rec.leads[0].samples.clone();
    let filter = band_pass(360.0, 0.5, 50.0).unwrap();
    let filtered = filter.apply(&x);
    let spec = WindowSpec::MITDB_10S;

    let mut g = c.benchmark_group("record_100_30min");
    g.sample_size(20);
    g.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&hea), black_box(&dat)))
    });
    g.bench_function("bandpass", |b| b.iter(|| filter.apply(black_box(&x))));
    g.bench_function("rpeaks", |b| {
        b.iter(|| detect_r_peaks(black_box(&x), 360.0))
    });
    // The search a piece at a time (a long record's), in ten pieces here.
    g.bench_function("rpeaks_streamed", |b| {
        b.iter(|| detect_streamed(black_box(&x), 360.0, 1 << 16))
    });
    g.bench_function("windows", |b| {
        b.iter(|| {
            windows(
                black_box(&filtered),
                spec.length,
                &spec.starts(filtered.len()),
            )
        })
    });
    g.bench_function("total", |b| {
        b.iter(|| {
            let rec = decode(black_box(&hea), black_box(&dat));
            let x = &rec.leads[0].samples;
            let f = band_pass(360.0, 0.5, 50.0).unwrap().apply(x);
            let peaks = detect_r_peaks(x, 360.0);
            let w = windows(&f, spec.length, &spec.starts(f.len()));
            (peaks, w)
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);

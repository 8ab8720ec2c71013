//! CPU time of the beat model on record 100 (30 min, 2,273 beats): its inputs
//! (`model_inputs`: R peaks, filter, windows and features) and its inference
//! through ONNX Runtime (one session, one intra-op thread, batches of 256 as the
//! server runs them), for the shipped `ecg-beat` and the 1.0.0 network
//! `ecg-beat-net` side by side. Divide by 2,273 for the time per beat.
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`, as `scripts/fetch-ort.sh` prints).

use criterion::{criterion_group, criterion_main, Criterion};
use ecg_serve::engine::{Provider, Runtime};
use ecg_serve::model::{model_inputs, LeadRequest, ModelCard, Models};
use ecg_serve::signal::wfdb::{parse_header, read_record, ReadOptions};
use std::hint::black_box;
use std::path::Path;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn beat_model(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = format!("{root}/tests/fixtures/mitdb");
    let hea = std::fs::read_to_string(format!("{dir}/100.hea")).unwrap();
    let dat = std::fs::read(format!("{dir}/100.dat")).unwrap();
    let header = parse_header("100.hea", &hea).unwrap();
    let rec = read_record(&header, |_| Some(&dat[..]), ReadOptions::default()).unwrap();
    let lead = LeadRequest {
        name: "MLII",
        fallback: false,
    };
    let mut g = c.benchmark_group("beats_record_100");
    g.sample_size(10);
    for name in ["ecg-beat", "ecg-beat-net"] {
        let model = Path::new(root).join("models").join(format!("{name}.onnx"));
        let (card, bytes) = ModelCard::open(&model).unwrap();
        let pre = &card.beat().unwrap().preprocessing;
        let models = Models {
            segment: None,
            beat: Some(pre),
        };
        let label = format!("{name}-{}", card.version);
        g.bench_function(format!("{label}/inputs"), |b| {
            b.iter(|| model_inputs(black_box(&rec), lead, models).unwrap())
        });
        let inputs = model_inputs(&rec, lead, models).unwrap();
        let beat = inputs.beat.unwrap();
        let n = inputs.peaks.len();
        let tail = card.kind.input_shape();
        let (per, width) = (tail[0] * tail[1], pre.feature_width());
        let mut session = Runtime::get()
            .unwrap()
            .session(&bytes, 1, Provider::Cpu)
            .unwrap();
        g.bench_function(format!("{label}/inference"), |b| {
            b.iter(|| {
                for start in (0..n).step_by(256) {
                    let k = 256.min(n - start);
                    let input = &beat.windows[(start * per).min(beat.windows.len())
                        ..((start + k) * per).min(beat.windows.len())];
                    let features = &beat.features[start * width..(start + k) * width];
                    black_box(session.run(input, k, &tail, features).unwrap());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, beat_model);
criterion_main!(benches);

//! Parameter sweep of the R-peak detector over the MIT-BIH database, used to tune
//! `QrsConfig`: `cargo run --release --example qrs_sweep -- thr=0.2,sb=1.5 lo=4`.
//! Each argument is one configuration (keys: lo hi int ref tw tws sb thr loc da dc).

use ecg_serve::eval::bxb::{compare, excluded_intervals, DetectionCounts};
use ecg_serve::signal::qrs::{detect_with, QrsConfig};
use ecg_serve::signal::wfdb::*;
fn main() {
    let dir = std::path::Path::new("../shared/data/mitdb");
    let names = ecg_serve::eval::qrs::record_names(dir).unwrap();
    type Record = (String, Vec<f64>, Vec<u64>, Vec<(u64, u64)>);
    let data: Vec<Record> = names
        .iter()
        .map(|name| {
            let hea = std::fs::read_to_string(dir.join(format!("{name}.hea"))).unwrap();
            let h = parse_header("x", &hea).unwrap();
            let dat = std::fs::read(dir.join(format!("{name}.dat"))).unwrap();
            let rec = read_record(&h, |_| Some(&dat[..]), ReadOptions::default()).unwrap();
            let ann = read_annotations(
                "x",
                &std::fs::read(dir.join(format!("{name}.atr"))).unwrap(),
            )
            .unwrap();
            let lead = rec.select_lead("MLII", true).unwrap().index;
            (
                name.clone(),
                rec.leads[lead].samples.clone(),
                ann.iter()
                    .filter(|a| a.is_beat())
                    .map(|a| a.sample)
                    .collect(),
                excluded_intervals(&ann),
            )
        })
        .collect();
    let base = QrsConfig::default();
    let mut configs: Vec<(String, QrsConfig)> = vec![("base".into(), base)];
    for arg in std::env::args().skip(1) {
        let mut c = base;
        for kv in arg.split(',') {
            let (k, v) = kv.split_once('=').unwrap();
            let v: f64 = v.parse().unwrap();
            match k {
                "lo" => c.band_hz.0 = v,
                "hi" => c.band_hz.1 = v,
                "int" => c.integration_s = v,
                "ref" => c.refractory_s = v,
                "tw" => c.t_wave_s = v,
                "tws" => c.t_wave_slope_ratio = v,
                "sb" => c.search_back_rr = v,
                "thr" => c.threshold_ratio = v,
                "loc" => c.locate_s = v,
                "da" => c.decay_after_rr = v,
                "dc" => c.decay = v,
                _ => panic!("{k}"),
            }
        }
        configs.push((arg, c));
    }
    for (label, c) in configs {
        let mut pooled = DetectionCounts::default();
        let mut worst = vec![];
        for (name, x, refs, ex) in &data {
            let p: Vec<u64> = detect_with(x, 360.0, &c)
                .into_iter()
                .map(|v| v as u64)
                .collect();
            let r = compare(refs, &p, 54, 0, ex).counts;
            pooled.add(&r);
            worst.push((
                r.false_negatives + r.false_positives,
                name.clone(),
                r.false_negatives,
                r.false_positives,
            ));
        }
        worst.sort();
        worst.reverse();
        println!(
            "{label:<30} FN {:>4} FP {:>4} Se {:.3} +P {:.3}  worst {:?}",
            pooled.false_negatives,
            pooled.false_positives,
            100.0 * pooled.sensitivity(),
            100.0 * pooled.positive_predictivity(),
            &worst[..5]
                .iter()
                .map(|w| format!("{}:{}/{}", w.1, w.2, w.3))
                .collect::<Vec<_>>()
        );
    }
}

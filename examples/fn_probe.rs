use ecg_serve::eval::bxb::{compare, excluded_intervals};
use ecg_serve::signal::qrs::detect_r_peaks;
use ecg_serve::signal::wfdb::*;
fn main() {
    let name = std::env::args().nth(1).unwrap();
    let dir = "../shared/data/mitdb";
    let hea = std::fs::read_to_string(format!("{dir}/{name}.hea")).unwrap();
    let h = parse_header("x", &hea).unwrap();
    let dat = std::fs::read(format!("{dir}/{name}.dat")).unwrap();
    let rec = read_record(&h, |_| Some(&dat[..]), ReadOptions::default()).unwrap();
    let ann = read_annotations("x", &std::fs::read(format!("{dir}/{name}.atr")).unwrap()).unwrap();
    let lead = rec.select_lead("MLII", true).unwrap().index;
    let x = &rec.leads[lead].samples;
    let peaks: Vec<u64> = detect_r_peaks(x, 360.0).into_iter().map(|p| p as u64).collect();
    let beats: Vec<&Annotation> = ann.iter().filter(|a| a.is_beat()).collect();
    let refs: Vec<u64> = beats.iter().map(|a| a.sample).collect();
    let c = compare(&refs, &peaks, 54, 0, &excluded_intervals(&ann));
    let mut mr = vec![false; refs.len()]; let mut md = vec![false; peaks.len()];
    for m in &c.matches { mr[m.reference] = true; md[m.detection] = true; }
    for (i, b) in beats.iter().enumerate() { if !mr[i] {
        let prev = if i>0 {refs[i]-refs[i-1]} else {0}; let next = if i+1<refs.len(){refs[i+1]-refs[i]} else {0};
        println!("FN {} t={:.1}s {} rr_prev={} rr_next={}", b.sample, b.sample as f64/360.0, b.symbol, prev, next); } }
    for (j, p) in peaks.iter().enumerate() { if !md[j] { println!("FP {} t={:.1}s", p, *p as f64/360.0); } }
}

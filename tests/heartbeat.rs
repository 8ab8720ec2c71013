//! `ecg-train dataset heartbeat`: the committed record 100 written in Kachuee
//! et al.'s heartbeat format (188 columns, values in [0, 1], the class last,
//! the side file naming each row's reference beat); over the full MIT-BIH
//! database, where present, the class counts beside those of the Kaggle files
//! made the same way (`mitbih_train.csv` + `mitbih_test.csv`: 109,446 rows).

#![cfg(feature = "train")]

mod common;

use std::path::Path;
use std::process::Command;

fn write(db: &Path, out: &Path) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ecg-train"))
        .args(["dataset", "heartbeat", "--db"])
        .arg(db)
        .arg("--out")
        .arg(out)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn record_100_is_written_in_the_heartbeat_format_with_its_side_file() {
    let dir = std::env::temp_dir().join(format!("ecg-heartbeat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("hb.csv");
    let (ok, stdout, stderr) = write(&common::fixtures().join("mitdb"), &out);
    assert!(ok, "{stderr}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let side = std::fs::read_to_string(dir.join("hb.rows.csv")).unwrap();
    let (ecg, ann) = common::load(&common::fixtures().join("mitdb"), "100");
    let beats: Vec<u64> = ann
        .iter()
        .filter(|a| a.is_beat())
        .map(|a| a.sample)
        .collect();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    // Record 100 is 30 min 5.6 s: 180 whole windows of 10 s; the beats of the
    // last 5.6 s have no row, every other beat has one.
    assert!(ecg.duration_s() > 1805.0);
    let beats: Vec<u64> = beats
        .into_iter()
        .filter(|&b| (b as f64 * 125.0 / 360.0).round() < 180.0 * 1250.0)
        .collect();
    assert_eq!(rows.len(), beats.len(), "{stdout}");
    for r in &rows {
        assert_eq!(r.len(), 188);
        assert!(r[..187].iter().all(|v| (0.0..=1.0).contains(v)));
        assert!([0.0, 1.0, 2.0, 3.0, 4.0].contains(&r[187]));
        // 1.2 R-R (~0.96 s at 100's ~75 /min) of signal, then zero padding.
        assert_eq!(r[186], 0.0);
    }
    // Rows start at their R peak (the annotation, within 40 ms of the peak):
    // the row's first 5 samples hold its high point.
    let at_peak = rows
        .iter()
        .filter(|r| r[..5].iter().cloned().fold(0.0, f64::max) > 0.6)
        .count();
    assert!(
        at_peak * 100 >= rows.len() * 97,
        "{at_peak} of {}",
        rows.len()
    );
    // Record 100 (2,239 N, 33 A, 1 V) less the beats of its last 5.6 s.
    let count = |c: f64| rows.iter().filter(|r| r[187] == c).count();
    assert_eq!((count(0.0), count(1.0), count(2.0)), (2231, 33, 1));
    // The side file: one line per row, in order, at the reference beats.
    let lines: Vec<&str> = side.lines().collect();
    assert_eq!(lines[0], "row,record,sample,symbol,class");
    assert_eq!(lines.len(), rows.len() + 1);
    for (i, line) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], i.to_string());
        assert_eq!(f[1], "100");
        assert_eq!(f[2].parse::<u64>().unwrap(), beats[i]);
        assert_eq!(f[4].parse::<f64>().unwrap(), rows[i][187]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_whole_database_comes_close_to_the_kaggle_files() {
    let Some(db) = common::mitdb() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ecg-heartbeat-all-{}", std::process::id()));
    let out = dir.join("mitbih.csv");
    let (ok, stdout, stderr) = write(&db, &out);
    assert!(ok, "{stderr}");
    eprintln!("{stdout}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut counted = [0usize; 5];
    for line in csv.lines() {
        let class: usize = line.rsplit(',').next().unwrap().parse().unwrap();
        counted[class] += 1;
    }
    // The Kaggle files' counts (train + test): N 90,589, S 2,779, V 7,236,
    // F 803, Q 8,039. Theirs detect R peaks by threshold; ours are the
    // reference beats, so a few hundred differ.
    let kaggle = [90_589usize, 2_779, 7_236, 803, 8_039];
    for (ours, theirs) in counted.iter().zip(kaggle) {
        let off = (*ours as f64 - theirs as f64).abs() / theirs as f64;
        assert!(off < 0.01, "{counted:?} against {kaggle:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_database_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("ecg-heartbeat-none-{}", std::process::id()));
    let (ok, _, stderr) = write(&dir.join("nothing"), &dir.join("x.csv"));
    assert!(!ok);
    assert!(stderr.contains("--db: cannot read"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// `ecg-train beat --data FILE.csv --arch ...` (the commands of the
/// heartbeat-format projects) runs `ecg-train heartbeat`; a hyper-parameter
/// the network does not have is refused before training, naming the others.
#[test]
fn beat_with_heartbeat_rows_is_the_heartbeat_trainer() {
    let out = std::env::temp_dir().join(format!("ecg-heartbeat-alias-{}", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_ecg-train"))
        .args([
            "beat",
            "--arch",
            "crt-net",
            "--network",
            "hidden=3",
            "--data",
        ])
        .arg(common::fixtures().join("heartbeat/rows-100.csv"))
        .arg("--out")
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("running `ecg-train heartbeat`"), "{stderr}");
    assert!(
        stderr.contains(
            "--network hidden: crt-net has no such hyper-parameter; accepted: conv1_filters"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

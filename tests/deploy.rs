//! The deployment files say what the binary does: the Kubernetes manifests
//! validate against Kubernetes 1.33 and 1.37 (`kubernetes-validate --strict`,
//! PyPI, from `.venv-tools/`; the KServe InferenceService's containers as a
//! Pod's, its CRD not being in the validator), every `ECG_*` setting in them is
//! a flag's environment variable, and the batch Job's arguments parse.

mod common;

use std::path::Path;
use std::process::Command;

use clap::{CommandFactory, Parser};
use ecg_serve::server::config::{Command as Sub, Config};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

const MANIFESTS: [&str; 6] = [
    "deploy/kubernetes/configmap.yaml",
    "deploy/kubernetes/deployment.yaml",
    "deploy/kubernetes/service.yaml",
    "deploy/kubernetes/hpa.yaml",
    "deploy/kubernetes/pdb.yaml",
    "deploy/kubernetes/job-analyze.yaml",
];

#[test]
fn manifests_validate_against_kubernetes() {
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    for m in MANIFESTS
        .iter()
        .filter(|m| !m.ends_with("job-analyze.yaml"))
    {
        let name = Path::new(m).file_name().unwrap().to_str().unwrap();
        assert!(
            kustomization.contains(&format!("- {name}")),
            "{name} is not in kustomization.yaml"
        );
    }
    let Some(validate) =
        common::python_tool("kubernetes-validate", "the Kubernetes manifest check")
    else {
        return;
    };
    // The InferenceService's predictor containers, as a Pod's.
    let isvc = read("deploy/kserve/inferenceservice.yaml");
    let containers = isvc
        .split_once("    containers:\n")
        .expect("the InferenceService has containers")
        .1;
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kserve-predictor\nspec:\n  containers:\n{}",
        containers
            .lines()
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let pod_file = std::env::temp_dir().join(format!("ecg-kserve-pod-{}.yaml", std::process::id()));
    std::fs::write(&pod_file, pod).unwrap();
    for version in ["1.33.0", "1.37.0"] {
        let out = Command::new(&validate)
            .args(["--strict", "-k", version])
            .args(MANIFESTS.iter().map(|m| root().join(m)))
            .arg(&pod_file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        eprintln!("kubernetes {version}:\n{text}");
        assert!(
            out.status.success(),
            "kubernetes-validate {version}:\n{text}"
        );
        assert_eq!(
            text.matches("passed").count(),
            MANIFESTS.len() + 1,
            "{text}"
        );
    }
    std::fs::remove_file(pod_file).unwrap();
}

#[test]
fn every_setting_in_the_manifests_is_a_flag() {
    let command = Config::command();
    let mut envs: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    let analyze = command.find_subcommand("analyze").unwrap();
    envs.extend(
        analyze
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned())),
    );
    let mut checked = 0;
    for file in MANIFESTS
        .iter()
        .chain(&["deploy/kserve/inferenceservice.yaml", "docker-compose.yml"])
    {
        for word in read(file).split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            // ECG_GIT_SHA is the image's build argument (the commit /info reports).
            if word.starts_with("ECG_") && word.len() > 4 && word != "ECG_GIT_SHA" {
                assert!(
                    envs.iter().any(|e| e == word),
                    "{file}: {word} is not an ecg-serve setting"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "{checked}");
}

#[test]
fn the_batch_job_arguments_parse() {
    let job = read("deploy/kubernetes/job-analyze.yaml");
    let args: Vec<String> = job
        .split_once("          args:\n")
        .unwrap()
        .1
        .lines()
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .replace("$(JOB_COMPLETION_INDEX)", "3")
        })
        .collect();
    let config =
        Config::try_parse_from(std::iter::once("ecg-serve".to_string()).chain(args)).unwrap();
    let Some(Sub::Analyze(a)) = config.command else {
        panic!("not the analyze command")
    };
    assert_eq!(a.shard.map(|s| (s.index, s.count)), Some((3, 4)));
    assert!(a.skip_existing && a.tolerate_failures);
    assert!(job.contains("completions: 4") && job.contains("parallelism: 4"));
}

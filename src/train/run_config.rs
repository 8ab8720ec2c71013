//! Run configs: `ecg-train <command> --config FILE` reads the command's options
//! from a YAML (or, by extension, TOML) file whose keys are the flags' names
//! (`batch-size`, or `batch_size`). A flag on the command line, and an
//! environment variable, override the file; a key the command has no flag for
//! is an error naming it and the accepted ones.
//!
//! The file becomes command-line arguments placed before the user's ([`expand`]),
//! so that clap parses, checks and documents one set of options and nothing
//! reads the file by key. After parsing, [`effective`] writes every option the
//! run used (file, flags, environment, defaults) in the same form, beside the
//! model: that file, given back with `--config`, runs the same training.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, ArgMatches, Command};
use serde_json::Value;

/// Why a run config could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("--config needs a file name")]
    NoFile,
    #[error("--config goes after a command (ecg-train <command> --config FILE)")]
    NoCommand,
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}: unknown key `{key}` for `ecg-train {command}`; accepted: {accepted}")]
    UnknownKey {
        file: String,
        key: String,
        command: String,
        accepted: String,
    },
    #[error("{file}: key `{key}`: {message}")]
    Value {
        file: String,
        key: String,
        message: String,
    },
}

/// The options of a parsed file: flag name to value.
pub type Options = BTreeMap<String, Value>;

/// Reads a run config: YAML, or TOML when the name ends in `.toml`.
pub fn read(path: &Path) -> Result<Options, ConfigError> {
    let file = path.display().to_string();
    let err = |message: String| ConfigError::Read {
        file: file.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        serde_json::to_value(table).map_err(|e| err(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string()))?
    };
    match value {
        Value::Object(map) => Ok(map.into_iter().collect()),
        Value::Null => Ok(Options::new()),
        _ => Err(err(
            "a run config is a mapping of flag names to values".into()
        )),
    }
}

/// `argv` with the `--config FILE` given to a subcommand of `cli` replaced by
/// the file's options as flags, placed before the user's own (which win); a
/// key whose flag is on the command line or whose environment variable is set
/// is left to those.
pub fn expand(cli: &Command, argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let Some(at) = argv
        .iter()
        .position(|a| a == "--config" || a.to_string_lossy().starts_with("--config="))
    else {
        return Ok(argv);
    };
    let mut argv = argv;
    let flag = argv.remove(at).to_string_lossy().into_owned();
    let path = match flag.strip_prefix("--config=") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        Some(_) => return Err(ConfigError::NoFile),
        None if at < argv.len() => PathBuf::from(argv.remove(at)),
        None => return Err(ConfigError::NoFile),
    };
    let (sub_at, sub) = argv
        .iter()
        .enumerate()
        .skip(1)
        .find_map(|(i, a)| {
            let name = a.to_str()?;
            cli.find_subcommand(name).map(|s| (i, s))
        })
        .ok_or(ConfigError::NoCommand)?;
    let options = read(&path)?;
    let given: Vec<String> = argv[sub_at + 1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut tokens = Vec::new();
    for (key, value) in options {
        let long = key.replace('_', "-");
        let file = path.display().to_string();
        let arg = sub
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .ok_or_else(|| ConfigError::UnknownKey {
                file: file.clone(),
                key: key.clone(),
                command: sub.get_name().to_string(),
                accepted: accepted(sub).join(", "),
            })?;
        let on_command_line = given
            .iter()
            .any(|g| *g == format!("--{long}") || g.starts_with(&format!("--{long}=")));
        let from_env = arg.get_env().is_some_and(|e| std::env::var_os(e).is_some());
        if on_command_line || from_env {
            continue;
        }
        let bad = |message: &str| ConfigError::Value {
            file: file.clone(),
            key: key.clone(),
            message: message.to_string(),
        };
        let scalar = |v: &Value| -> Result<String, ConfigError> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(bad(
                    "must be a number, a string, a boolean or a list of them",
                )),
            }
        };
        match (arg.get_action(), &value) {
            (_, Value::Null) => {}
            (ArgAction::SetTrue, Value::Bool(true)) => tokens.push(format!("--{long}")),
            (ArgAction::SetTrue, Value::Bool(false)) => {}
            (ArgAction::SetTrue, _) => return Err(bad("is a switch: true or false")),
            // An empty list or mapping is the flag's default.
            (_, Value::Array(items)) if items.is_empty() => {}
            (_, Value::Object(map)) if map.is_empty() => {}
            // A mapping is a list of `key=value` items (`network: {heads: 4}`).
            (_, Value::Object(map)) => match arg.get_value_delimiter() {
                Some(d) => {
                    let parts = map
                        .iter()
                        .map(|(k, v)| Ok(format!("{k}={}", scalar(v)?)))
                        .collect::<Result<Vec<_>, ConfigError>>()?;
                    tokens.push(format!("--{long}={}", parts.join(&d.to_string())));
                }
                None => return Err(bad("takes one value, not a mapping")),
            },
            (_, Value::Array(items)) => match arg.get_value_delimiter() {
                Some(d) => {
                    let parts = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                    tokens.push(format!("--{long}={}", parts.join(&d.to_string())));
                }
                None if matches!(arg.get_action(), ArgAction::Append) => {
                    for item in items {
                        tokens.push(format!("--{long}={}", scalar(item)?));
                    }
                }
                None => return Err(bad("takes one value, not a list")),
            },
            (_, v) => tokens.push(format!("--{long}={}", scalar(v)?)),
        }
    }
    let tail = argv.split_off(sub_at + 1);
    argv.extend(tokens.into_iter().map(OsString::from));
    argv.extend(tail);
    Ok(argv)
}

/// The flags a run config may set for `sub`.
fn accepted(sub: &Command) -> Vec<String> {
    sub.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !["help", "version", "config"].contains(l))
        .map(String::from)
        .collect()
}

/// Every option of the command `matches` ran, as a run config (the flags'
/// names as keys; switches as booleans, lists as lists).
pub fn effective(sub: &Command, matches: &ArgMatches) -> Options {
    let mut out = Options::new();
    for arg in sub.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if ["help", "version", "config"].contains(&long) {
            continue;
        }
        let id = arg.get_id().as_str();
        let value = match arg.get_action() {
            ArgAction::SetTrue => Value::Bool(matches.get_flag(id)),
            _ => {
                let Ok(Some(raw)) = matches.try_get_raw(id) else {
                    continue;
                };
                let values: Vec<Value> = raw.map(|v| typed(&v.to_string_lossy())).collect();
                if matches!(arg.get_action(), ArgAction::Append)
                    || arg.get_value_delimiter().is_some()
                {
                    Value::Array(values)
                } else {
                    values.into_iter().next().unwrap_or(Value::Null)
                }
            }
        };
        out.insert(long.to_string(), value);
    }
    out
}

/// A value as the file would spell it: a number or a boolean when it reads as
/// one (`0.001`, `true`), else a string. [`expand`] gives every value back to
/// clap as text, so the run is the same either way.
fn typed(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => serde_json::from_str::<serde_json::Number>(text)
            .ok()
            .filter(|n| n.to_string() == text)
            .map_or_else(|| Value::String(text.to_string()), Value::Number),
    }
}

/// A value as its flag spells it on a command line or in an MLflow param: a
/// list comma-separated.
pub fn flag_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(flag_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Writes `options` as YAML to `path`.
pub fn write(path: &Path, options: &Options, header: &str) -> std::io::Result<()> {
    let yaml = serde_yaml_ng::to_string(options).map_err(std::io::Error::other)?;
    std::fs::write(path, format!("{header}{yaml}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, CommandFactory, Parser};

    #[derive(Parser, Debug, PartialEq)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand, Debug, PartialEq)]
    enum Sub {
        Train {
            #[arg(long, default_value_t = 32)]
            batch_size: usize,
            #[arg(long, default_value_t = 1e-3)]
            lr: f64,
            #[arg(long)]
            cv_only: bool,
            #[arg(long, value_delimiter = ',')]
            records: Vec<String>,
            #[arg(long, env = "ECG_TEST_RUN_CONFIG_DB", default_value = "db")]
            db: String,
        },
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("ecg-run-config-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn parse(args: &[&str]) -> Result<Sub, ConfigError> {
        let argv = args.iter().map(OsString::from).collect();
        let argv = expand(&Cli::command(), argv)?;
        Ok(Cli::try_parse_from(argv).unwrap().command)
    }

    #[test]
    fn the_file_sets_options_and_flags_override_it() {
        let yaml = file(
            "a.yaml",
            "batch_size: 8\nlr: 0.01\ncv-only: true\nrecords: [101, '124']\n",
        );
        let p = yaml.to_str().unwrap();
        let Sub::Train {
            batch_size,
            lr,
            cv_only,
            records,
            ..
        } = parse(&["t", "train", "--config", p]).unwrap();
        assert_eq!((batch_size, lr, cv_only), (8, 0.01, true));
        assert_eq!(records, ["101", "124"]);
        let Sub::Train {
            batch_size,
            records,
            ..
        } = parse(&[
            "t",
            "train",
            &format!("--config={p}"),
            "--batch-size",
            "4",
            "--records=9",
        ])
        .unwrap();
        assert_eq!((batch_size, records), (4, vec!["9".to_string()]));
        // A mapping becomes key=value items of a list flag.
        let empty = file("l.yaml", "records: []\n");
        let Sub::Train { records, .. } =
            parse(&["t", "train", "--config", empty.to_str().unwrap()]).unwrap();
        assert!(records.is_empty(), "{records:?}");
        let map = file("m.yaml", "records: {heads: 4, dense: 64}\n");
        let Sub::Train { records, .. } =
            parse(&["t", "train", "--config", map.to_str().unwrap()]).unwrap();
        assert_eq!(records, ["dense=64", "heads=4"]);
        let not_a_list = file("n.yaml", "lr: {a: 1}\n");
        let e = parse(&["t", "train", "--config", not_a_list.to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
        let toml = file("b.toml", "lr = 0.5\n");
        let Sub::Train { lr, .. } =
            parse(&["t", "train", "--config", toml.to_str().unwrap()]).unwrap();
        assert_eq!(lr, 0.5);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let unknown = file("c.yaml", "epochs: 3\n");
        let e = parse(&["t", "train", "--config", unknown.to_str().unwrap()]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("unknown key `epochs` for `ecg-train train`; accepted: batch-size, lr, cv-only, records, db"), "{text}");
        let list = file("d.yaml", "lr: [1, 2]\n");
        let e = parse(&["t", "train", "--config", list.to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("takes one value"), "{e}");
        let switch = file("e.yaml", "cv-only: 3\n");
        assert!(parse(&["t", "train", "--config", switch.to_str().unwrap()]).is_err());
        assert_eq!(parse(&["t", "train", "--config"]), Err(ConfigError::NoFile));
        assert_eq!(
            parse(&["t", "--config", "x.yaml"]),
            Err(ConfigError::NoCommand)
        );
        assert!(matches!(
            parse(&["t", "train", "--config", "/no/such.yaml"]),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn the_effective_config_runs_the_same_options() {
        let cmd = Cli::command().arg(Arg::new("unused").long("unused").hide(true));
        let matches = cmd.clone().get_matches_from([
            "t",
            "train",
            "--lr",
            "0.2",
            "--cv-only",
            "--records=1,2",
        ]);
        let (name, sub_matches) = matches.subcommand().unwrap();
        let sub = cmd.find_subcommand(name).unwrap();
        let options = effective(sub, sub_matches);
        let path =
            std::env::temp_dir().join(format!("ecg-run-config-{}-eff.yaml", std::process::id()));
        write(&path, &options, "# test\n").unwrap();
        let again = parse(&["t", "train", "--config", path.to_str().unwrap()]).unwrap();
        let first =
            Cli::try_parse_from(["t", "train", "--lr", "0.2", "--cv-only", "--records=1,2"])
                .unwrap()
                .command;
        assert_eq!(again, first);
    }
}

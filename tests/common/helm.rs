//! Rendering the Helm chart with the real helm (`.peers/bin/helm`), and
//! running the other chart tools, for the chart tests.

use super::peer;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The namespace every render uses.
pub const NAMESPACE: &str = "monitoring";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart() -> PathBuf {
    repo().join("charts/kubegate")
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(
    program: &Path,
    args: &[String],
    stdin: Option<&str>,
    envs: &[(String, String)],
) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn helm(args: &[String]) -> Output {
    // helm keeps caches and plugins under $HOME; a temp HOME keeps the
    // suite from touching the user's.
    let home = std::env::temp_dir().join("kubegate-test-helm-home");
    let envs = [
        ("HELM_CACHE_HOME", home.join("cache")),
        ("HELM_CONFIG_HOME", home.join("config")),
        ("HELM_DATA_HOME", home.join("data")),
    ]
    .map(|(k, v)| (k.to_owned(), v.display().to_string()));
    run(&peer("HELM"), args, None, &envs)
}

pub fn template(values: &[String]) -> Output {
    let mut args: Vec<String> = ["template", "kubegate", "--namespace", NAMESPACE]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(chart().display().to_string());
    args.extend(values.iter().cloned());
    helm(&args)
}

pub fn render(name: &str, values: &[String]) -> String {
    let out = template(values);
    assert_eq!(
        out.code, 0,
        "helm template ({name}) failed:\n{}",
        out.stderr
    );
    out.stdout
}

pub fn documents(manifests: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Option<Value>>(manifests)
        .expect("rendered manifests are YAML")
        .into_iter()
        .flatten()
        .collect()
}

pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

/// `--set` arguments.
pub fn sets(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
        .collect()
}

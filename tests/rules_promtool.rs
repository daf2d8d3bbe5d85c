//! The rule corpus (tests/rules_corpus and the default rules' tests) run
//! through Debian's `promtool test rules` and `kubegate test rules`: both
//! must pass every file, both must fail the negative files with the same
//! messages, and `check config` names file, line and rule.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules_corpus")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(program: &Path, args: &[&str], dir: &Path) -> Out {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn both(args: &[&str], dir: &Path) -> (Out, Out) {
    let promtool = run(&common::peer("PROMTOOL"), args, dir);
    let kubegate = run(&common::kubegate_bin(), args, dir);
    (promtool, kubegate)
}

fn test_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_passes_promtool_and_kubegate() {
    let dir = corpus();
    let files = test_files(&dir);
    assert!(files.len() >= 4, "corpus files: {files:?}");
    for f in &files {
        let (p, k) = both(&["test", "rules", f], &dir);
        assert_eq!(
            p.code, 0,
            "promtool fails {f} (the corpus is wrong):\n{}{}",
            p.stdout, p.stderr
        );
        assert_eq!(k.code, 0, "kubegate fails {f}:\n{}{}", k.stdout, k.stderr);
        assert_eq!(k.stdout, p.stdout, "{f}: stdout differs");
    }
}

#[test]
fn default_rules_pass_their_unit_tests_in_both() {
    let dir = corpus().join("defaults");
    let files = test_files(&dir);
    assert!(!files.is_empty(), "no tests in {}", dir.display());
    for f in &files {
        let (p, k) = both(&["test", "rules", f], &dir);
        assert_eq!(p.code, 0, "promtool fails {f}:\n{}{}", p.stdout, p.stderr);
        assert_eq!(k.code, 0, "kubegate fails {f}:\n{}{}", k.stdout, k.stderr);
    }
}

#[test]
fn wrong_expectations_fail_in_both_with_the_same_messages() {
    let dir = corpus();
    let (p, k) = both(
        &["test", "rules", "negative/wrong_expectations.test.yml"],
        &dir,
    );
    assert_eq!(p.code, 1, "promtool: {}{}", p.stdout, p.stderr);
    assert_eq!(k.code, 1, "kubegate: {}{}", k.stdout, k.stderr);
    assert_eq!(k.stdout, p.stdout);
    assert_eq!(k.stderr, p.stderr);
    assert!(k.stderr.contains("alertname: InstanceDown, time: 5m"));
}

#[test]
fn a_broken_rule_file_fails_both_naming_group_and_rule() {
    let dir = corpus();
    let (p, k) = both(&["test", "rules", "negative/bad_rules.test.yml"], &dir);
    assert_eq!(p.code, 1);
    assert_eq!(k.code, 1);
    let want = "group \"broken\", rule 1, \"Broken\": could not parse expression";
    assert!(p.stderr.contains(want), "promtool: {}", p.stderr);
    assert!(k.stderr.contains(want), "kubegate: {}", k.stderr);
    assert!(k.stderr.contains("bad.rules.yml:5:"), "line: {}", k.stderr);
}

#[test]
fn check_config_names_file_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kubegate.yaml"),
        "rule_files: ['rules/*.yml']\nglobal:\n  evaluation_interval: 30s\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/a.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Fine\n        expr: up == 0\n      - alert: Odd\n        expr: holt_winters(up[5m], 0.5, 0.5)\n      - record: 'not a name'\n        expr: up\n",
    )
    .unwrap();
    let out = run(
        &common::kubegate_bin(),
        &["check", "config", "kubegate.yaml"],
        dir.path(),
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("1 rule file(s)"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("rules/a.yml:7: group \"g\", rule 2, \"Odd\": could not parse expression:")
            && out.stdout.contains("not supported"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "rules/a.yml:8: group \"g\", rule 3, \"not a name\": invalid recording rule name"
        ),
        "{}",
        out.stdout
    );
    std::fs::write(
        dir.path().join("rules/a.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Fine\n        expr: up == 0\n",
    )
    .unwrap();
    let out = run(
        &common::kubegate_bin(),
        &["check", "config", "kubegate.yaml"],
        dir.path(),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("OK (1 group(s), 1 rule(s))"),
        "{}",
        out.stdout
    );
}

#[test]
fn hostile_test_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        (
            "a.test.yml",
            "tests: [{input_series: [{series: 'up{', values: '1'}]}]\n",
        ),
        (
            "b.test.yml",
            "tests: [{input_series: [{series: 'up', values: '1+x'}]}]\n",
        ),
        ("c.test.yml", "tests: [{unknown: 1}]\n"),
        ("d.test.yml", "\u{0}\u{1}{{{"),
        (
            "e.test.yml",
            "rule_files: [nothere.yml]\ntests: [{promql_expr_test: [{expr: 'up ==', eval_time: 1m}]}]\n",
        ),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
        let out = run(
            &common::kubegate_bin(),
            &["test", "rules", name],
            dir.path(),
        );
        assert_eq!(out.code, 1, "{name}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("FAILED"), "{name}: {}", out.stderr);
    }
}

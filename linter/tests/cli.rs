//! The `paver-lint` binary: exit codes, formats and `--explain`, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

fn paver_lint(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paver-lint"));
    cmd.args(args)
        .env_remove("GITHUB_WORKSPACE")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../platform-repo-example")
        .to_string_lossy()
        .into_owned()
}

fn broken_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let topics = dir.path().join("topics/orders");
    std::fs::create_dir_all(&topics).unwrap();
    std::fs::write(
        topics.join("v1.yaml"),
        "apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: orders\n  version: 1\n  owner: shop\nspec:\n  partitons: 6\n  replicationFactor: 3\n",
    )
    .unwrap();
    dir
}

#[test]
fn the_example_repo_lints_clean() {
    let out = paver_lint(&[&example()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("0 errors, 0 warnings"), "{stdout}");
}

#[test]
fn errors_exit_1_and_every_format_names_the_place() {
    let dir = broken_repo();
    let path = dir.path().to_str().unwrap();
    let human = paver_lint(&[path], &[]);
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("--> topics/orders/v1.yaml:8:3"), "{text}");
    assert!(text.contains("help: did you mean `partitions`?"), "{text}");

    let json = paver_lint(&[path, "--format", "json"], &[]);
    assert_eq!(json.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let first = &doc["diagnostics"][0];
    assert_eq!(first["file"], "topics/orders/v1.yaml");
    assert_eq!(first["rule"], "PV010");
    assert_eq!(first["severity"], "error");
    assert!(first["line"].as_u64().unwrap() >= 7);

    let sarif = paver_lint(&[path, "--format", "sarif"], &[]);
    let log: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "PV010");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "topics/orders/v1.yaml"
    );
}

#[test]
fn github_format_annotates_and_writes_the_job_summary() {
    let dir = broken_repo();
    // The platform repo is a subfolder of the checkout: annotations must carry the prefix.
    let checkout = dir.path().parent().unwrap();
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out = paver_lint(
        &[dir.path().to_str().unwrap(), "--format", "github"],
        &[
            ("GITHUB_WORKSPACE", checkout),
            ("GITHUB_STEP_SUMMARY", summary.path()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let name = dir.path().file_name().unwrap().to_string_lossy();
    let expected = format!("::error file={name}/topics/orders/v1.yaml,line=8,col=3,");
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains(
            "title=PV010 schema-violation::unknown field `partitons`%0Ahelp: did you mean"
        ),
        "{text}"
    );
    let md = std::fs::read_to_string(summary.path()).unwrap();
    assert!(
        md.contains("## paver-lint") && md.contains("| :x: |"),
        "{md}"
    );
}

#[test]
fn github_annotations_stay_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..15 {
        let topic = dir.path().join(format!("topics/t{i}"));
        std::fs::create_dir_all(&topic).unwrap();
        std::fs::write(topic.join("v1.yaml"), "kind: KafkaTopic\n").unwrap();
    }
    let out = paver_lint(&[dir.path().to_str().unwrap(), "--format", "github"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("::error ")).count(),
        10,
        "{text}"
    );
    assert!(text.contains("over GitHub's annotation limit"), "{text}");
}

#[test]
fn unreadable_repo_and_bad_arguments_exit_2() {
    let out = paver_lint(&["/nonexistent/platform"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the repo"));
    assert_eq!(paver_lint(&["--format", "xml"], &[]).status.code(), Some(2));
    assert_eq!(
        paver_lint(&["--explain", "PV999"], &[]).status.code(),
        Some(2)
    );
}

#[test]
fn explain_prints_the_rule_doc() {
    let out = paver_lint(&["--explain", "pv303"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("PV303 transform-query (error)"), "{text}");
    assert!(
        text.contains("## Why is this bad?") && text.contains("## Use instead"),
        "{text}"
    );
    let list = paver_lint(&["--list-rules"], &[]);
    assert!(String::from_utf8_lossy(&list.stdout).lines().count() >= 20);
}

#[test]
fn the_readme_lists_every_rule() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    for rule in paver_lint::rules::ALL {
        let m = rule.meta();
        let row = format!("| {} | {} | {} |", m.code, m.name, m.severity.as_str());
        assert!(readme.contains(&row), "README.md's rule table lacks `{row}`");
    }
}

//! The `paver-lint` binary: exit codes, formats and `--explain`, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

mod common;

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
fn a_folder_without_a_platform_repo_fails_unless_allowed() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "not a platform repo").unwrap();
    let dir = empty.path().to_str().unwrap();
    let out = paver_lint(&[dir], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no platform repo found in `{dir}`"))
            && stderr.contains("paver.yaml")
            && stderr.contains("pipelines/"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let allowed = paver_lint(&[dir, "--allow-empty"], &[]);
    assert_eq!(allowed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&allowed.stdout).contains("0 files checked"));
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
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for rule in paver_lint::rules::ALL {
        let m = rule.meta();
        let row = format!("| {} | {} | {} |", m.code, m.name, m.severity.as_str());
        assert!(
            readme.contains(&row),
            "README.md's rule table lacks `{row}`"
        );
    }
}

/// A real git repository: the example repo committed on `main`, then a pull-request commit
/// on `pr`, checked out; the binary runs with `--base main`.
fn pull_request(change: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::example(), dir.path());
    let repo = git2::Repository::init(dir.path()).unwrap();
    let base = common::commit(&repo, "base");
    repo.branch("main", &base, true).unwrap();
    change(dir.path());
    common::commit(&repo, "pull request");
    dir
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn base_refuses_edits_of_released_versions() {
    let dir = pull_request(|root| {
        let topic = root.join("topics/user-events/v1.yaml");
        let text = std::fs::read_to_string(&topic)
            .unwrap()
            .replace("partitions: 12", "partitions: 24");
        std::fs::write(topic, text).unwrap();
        std::fs::remove_file(root.join("pipelines/user-events-ingestion/v1.yaml")).unwrap();
    });
    let out = paver_lint(
        &[
            dir.path().to_str().unwrap(),
            "--base",
            "main",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    let found: Vec<(String, String)> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["rule"].as_str().unwrap().to_string(),
                d["file"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        found.contains(&("PV601".into(), "topics/user-events/v1.yaml".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "PV602".into(),
            "pipelines/user-events-ingestion/v1.yaml".into()
        )),
        "{found:?}"
    );
    let edit = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == "PV601")
        .unwrap();
    assert_eq!(edit["line"], 9);
    assert!(
        edit["message"]
            .as_str()
            .unwrap()
            .contains("+  partitions: 24"),
        "{edit}"
    );
}

#[test]
fn base_allows_new_versions_and_rollbacks_and_classifies_them() {
    let dir = pull_request(|root| {
        // A rollback: the newest pipeline version goes (what `git revert` of its merge does).
        std::fs::remove_file(root.join("pipelines/user-events-ingestion/v2.yaml")).unwrap();
        // A new topic version: more partitions (in place) and a longer retention.
        let v1 = std::fs::read_to_string(root.join("topics/user-events/v1.yaml")).unwrap();
        let v2 = v1
            .replace("version: 1", "version: 2")
            .replace("partitions: 12", "partitions: 24")
            .replace("\"604800000\"", "\"1209600000\"");
        std::fs::write(root.join("topics/user-events/v2.yaml"), v2).unwrap();
    });
    let out = paver_lint(
        &[
            dir.path().to_str().unwrap(),
            "--base",
            "main",
            "--format",
            "json",
        ],
        &[],
    );
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{doc}");
    let changes = doc["changes"].as_array().unwrap();
    let topic = changes.iter().find(|c| c["name"] == "user-events").unwrap();
    assert_eq!(
        (topic["from"].as_u64(), topic["to"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(topic["impact"], "in-place");
    assert!(
        topic["items"].to_string().contains("partitions 12 → 24"),
        "{topic}"
    );
    let rollback = changes
        .iter()
        .find(|c| c["name"] == "user-events-ingestion")
        .unwrap();
    assert!(
        rollback["items"][0]["what"]
            .as_str()
            .unwrap()
            .starts_with("rollback"),
        "{rollback}"
    );
}

#[test]
fn base_judges_schema_evolution_and_impossible_changes() {
    let dir = pull_request(|root| {
        // v3 of the subject drops a field that v1 and v2 readers need.
        let v2 = std::fs::read_to_string(root.join("schemas/user-events/v2.avsc")).unwrap();
        let mut schema: serde_json::Value = serde_json::from_str(&v2).unwrap();
        schema["fields"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "eventType");
        std::fs::write(
            root.join("schemas/user-events/v3.avsc"),
            serde_json::to_string_pretty(&schema).unwrap(),
        )
        .unwrap();
        // v2 of the topic shrinks it.
        let v1 = std::fs::read_to_string(root.join("topics/user-events/v1.yaml")).unwrap();
        let v2 = v1
            .replace("version: 1", "version: 2")
            .replace("partitions: 12", "partitions: 6");
        std::fs::write(root.join("topics/user-events/v2.yaml"), v2).unwrap();
    });
    let out = paver_lint(&[dir.path().to_str().unwrap(), "--base", "main"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[PV502]: READER_FIELD_MISSING_DEFAULT_VALUE: user-events@1 cannot read data written with user-events@3 (FORWARD_TRANSITIVE)"), "{text}");
    assert!(
        text.contains("user-events@2 cannot read data written with user-events@3"),
        "{text}"
    );
    assert!(
        text.contains("error[PV603]: v1 → v2: partitions 12 → 6"),
        "{text}"
    );
    assert!(text.contains("--> topics/user-events/v2.yaml:"), "{text}");
}

#[test]
fn an_unknown_base_exits_2() {
    let dir = pull_request(|_| {});
    let out = paver_lint(
        &[dir.path().to_str().unwrap(), "--base", "no-such-branch"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no commit `no-such-branch`"));
    let plain = tempfile::tempdir().unwrap();
    let out = paver_lint(&[plain.path().to_str().unwrap(), "--base", "main"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a git repository"));
}

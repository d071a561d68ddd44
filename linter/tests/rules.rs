//! Every rule has a fixture that triggers it and one that must not, under
//! `tests/fixtures/<PV###>/{bad,good}.txtar`, each a set of files written over
//! `tests/fixtures/_base.txtar`. The human and JSON outputs are snapshot-tested.
//!
//! A rule that judges a pull request against the released state has a third archive,
//! `base.txtar`: it is written over `_base.txtar` and committed to a real git repository,
//! then the case's files are written over the work tree and linted with `--base HEAD`.

use std::fs;
use std::path::{Path, PathBuf};

use paver_lint::{output, rules, Report};

mod common;

/// Files of a txtar archive: `-- path --` headers, each followed by the file's content;
/// `-- path -> target --` makes a symlink. Text before the first header is a comment.
fn parse_txtar(text: &str) -> Vec<(String, Option<String>, String)> {
    let mut files = Vec::new();
    let mut current: Option<(String, Option<String>, String)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end_matches('\n');
        if let Some(header) = trimmed
            .strip_prefix("-- ")
            .and_then(|h| h.strip_suffix(" --"))
        {
            files.extend(current.take());
            let (path, link) = match header.split_once(" -> ") {
                Some((p, t)) => (p.to_string(), Some(t.to_string())),
                None => (header.to_string(), None),
            };
            current = Some((path, link, String::new()));
        } else if let Some((_, _, content)) = current.as_mut() {
            content.push_str(line);
        }
    }
    files.extend(current);
    files
}

fn write_archive(root: &Path, archive: &Path) {
    let text = fs::read_to_string(archive).unwrap();
    for (path, link, content) in parse_txtar(&text) {
        let target = root.join(&path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&target);
        match link {
            Some(to) => std::os::unix::fs::symlink(to, &target).unwrap(),
            None if content.trim() == "<delete>" => {}
            None => fs::write(&target, content).unwrap(),
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn lint_fixture(code: &str, case: &str) -> (tempfile::TempDir, Report) {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path(), &fixtures().join("_base.txtar"));
    let released = fixtures().join(code).join("base.txtar");
    if released.exists() {
        write_archive(dir.path(), &released);
        commit_all(dir.path());
    }
    write_archive(
        dir.path(),
        &fixtures().join(code).join(format!("{case}.txtar")),
    );
    let report = if released.exists() {
        paver_lint::lint_dir_against(dir.path(), "HEAD").unwrap()
    } else {
        paver_lint::lint_dir(dir.path()).unwrap()
    };
    (dir, report)
}

/// `git init`, add everything, commit: the released state.
fn commit_all(root: &Path) {
    let repo = git2::Repository::init(root).unwrap();
    common::commit(&repo, "released");
}

#[test]
fn the_base_repo_lints_clean() {
    let dir = tempfile::tempdir().unwrap();
    write_archive(dir.path(), &fixtures().join("_base.txtar"));
    let report = paver_lint::lint_dir(dir.path()).unwrap();
    assert!(
        report.diagnostics.is_empty(),
        "{}",
        output::human::render(&report, false)
    );
}

/// A rule's fixtures: `bad.txtar` triggers it, `good.txtar` lints clean, and the human and
/// JSON outputs of `bad` match their snapshots (`human@PV###.snap`, `json@PV###.snap`).
fn check_rule(code: &str) {
    let rule = rules::find(code).unwrap_or_else(|| panic!("no rule {code} in rules::ALL"));
    assert_eq!(rule.meta().code, code);
    for case in ["bad", "good"] {
        let path = fixtures().join(code).join(format!("{case}.txtar"));
        assert!(path.exists(), "{} is missing", path.display());
    }
    let (_bad_dir, bad) = lint_fixture(code, "bad");
    assert!(
        bad.diagnostics.iter().any(|d| d.code == code),
        "{code}/bad.txtar does not trigger {code}:\n{}",
        output::human::render(&bad, false)
    );
    let (_good_dir, good) = lint_fixture(code, "good");
    assert!(
        good.diagnostics.is_empty(),
        "{code}/good.txtar must lint clean:\n{}",
        output::human::render(&good, false)
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_suffix(code);
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!("human", output::human::render(&bad, false));
        insta::assert_snapshot!("json", output::json::render(&bad));
    });
}

/// One `#[test]` per rule, named after its module, so that one failing rule hides none of
/// the others; `LISTED` is the list, checked against `rules::ALL` below.
macro_rules! rule_tests {
    ($($test:ident => $code:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_rule($code);
            }
        )*
        const LISTED: &[&str] = &[$($code),*];
    };
}

rule_tests! {
    pv001_invalid_yaml => "PV001",
    pv002_duplicate_key => "PV002",
    pv003_resource_limit => "PV003",
    pv004_symlink_escape => "PV004",
    pv005_unexpected_file => "PV005",
    pv010_schema_violation => "PV010",
    pv101_name_mismatch => "PV101",
    pv102_version_mismatch => "PV102",
    pv103_version_gap => "PV103",
    pv104_wrong_kind => "PV104",
    pv201_unknown_topic => "PV201",
    pv202_unknown_schema => "PV202",
    pv203_unknown_cluster => "PV203",
    pv204_shared_consumer_group => "PV204",
    pv205_unknown_receiver => "PV205",
    pv301_sql_identifier => "PV301",
    pv302_kafka_config => "PV302",
    pv303_transform_query => "PV303",
    pv304_unknown_column => "PV304",
    pv305_key_column => "PV305",
    pv401_topic_sanity => "PV401",
    pv402_cluster_sanity => "PV402",
    pv403_cost_budget => "PV403",
    pv501_invalid_avro => "PV501",
    pv502_incompatible_schema => "PV502",
    pv503_unresolved_type => "PV503",
    pv504_logical_type_change => "PV504",
    pv601_released_version_edited => "PV601",
    pv602_released_version_removed => "PV602",
    pv603_impossible_change => "PV603",
}

#[test]
fn every_rule_of_rules_all_has_its_test() {
    let all: Vec<&str> = rules::ALL.iter().map(|r| r.meta().code).collect();
    assert_eq!(
        LISTED,
        all.as_slice(),
        "rule_tests! must list every rule of rules::ALL, in its order"
    );
}

#[test]
fn every_fixture_folder_is_a_rule() {
    let mut strays = Vec::new();
    for entry in fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if fixtures().join(&name).is_dir() && rules::find(&name).is_none() {
            strays.push(name);
        }
    }
    assert!(strays.is_empty(), "fixture folders of no rule: {strays:?}");
}

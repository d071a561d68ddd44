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

#[test]
fn every_rule_has_fixtures_that_trigger_it_and_not() {
    let mut missing = Vec::new();
    for rule in rules::ALL {
        let code = rule.meta().code;
        if !fixtures().join(code).join("bad.txtar").exists()
            || !fixtures().join(code).join("good.txtar").exists()
        {
            missing.push(code);
            continue;
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
    assert!(
        missing.is_empty(),
        "rules without bad.txtar and good.txtar fixtures: {missing:?}"
    );
}

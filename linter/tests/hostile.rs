//! Hostile and broken input: every case names the file, line and column, and never stops
//! the other files from being checked.

use std::fs;
use std::path::Path;

use paver_lint::{diagnostic::Diagnostic, output, Report};

mod common;
use common::copy_dir;

const TOPIC: &str = "apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: orders\n  version: 1\n  owner: team-shop\nspec:\n  partitions: 6\n  replicationFactor: 3\n";

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "topics/orders/v1.yaml", TOPIC.as_bytes());
    dir
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let target = root.join(path);
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(target, bytes).unwrap();
}

fn lint(root: &Path) -> Report {
    paver_lint::lint_dir(root).unwrap()
}

fn only<'a>(report: &'a Report, file: &str) -> &'a Diagnostic {
    let found: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.file == file)
        .collect();
    assert_eq!(found.len(), 1, "{}", output::human::render(report, false));
    found[0]
}

#[test]
fn malformed_yaml_points_at_the_error() {
    let dir = repo();
    write(
        dir.path(),
        "topics/payments/v1.yaml",
        b"apiVersion: platform.paver.dev/v1\nkind: [KafkaTopic\nmetadata: {}\n",
    );
    let report = lint(dir.path());
    let d = only(&report, "topics/payments/v1.yaml");
    assert_eq!(d.code, "PV001");
    assert_eq!(d.span.start.line, 3, "{d:?}");
    // The valid file beside it is still checked, and clean.
    assert!(report
        .diagnostics
        .iter()
        .all(|d| d.file != "topics/orders/v1.yaml"));
}

#[test]
fn duplicate_keys_are_refused_with_both_places() {
    let dir = repo();
    let text = TOPIC.replace(
        "  replicationFactor: 3\n",
        "  replicationFactor: 3\n  partitions: 12\n",
    );
    write(dir.path(), "topics/orders/v1.yaml", text.as_bytes());
    let report = lint(dir.path());
    let d = only(&report, "topics/orders/v1.yaml");
    assert_eq!(
        (d.code, d.span.start.line, d.span.start.col),
        ("PV002", 10, 3)
    );
    assert_eq!(d.related[0].span.start.line, 8);
}

#[test]
fn an_alias_bomb_fails_fast_without_eating_memory() {
    let dir = repo();
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        text.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    write(dir.path(), "topics/bomb/v1.yaml", text.as_bytes());
    let report = lint(dir.path());
    let d = only(&report, "topics/bomb/v1.yaml");
    assert_eq!(d.code, "PV003");
    assert!(
        d.span.start.line <= 6,
        "stopped at line {}",
        d.span.start.line
    );
}

#[test]
fn a_huge_file_is_refused_unread() {
    let dir = repo();
    let mut text = TOPIC.to_string();
    let filler = format!("# {}\n", "x".repeat(1000));
    while text.len() < 20 << 20 {
        text.push_str(&filler);
    }
    write(dir.path(), "topics/huge/v1.yaml", text.as_bytes());
    let report = lint(dir.path());
    let d = only(&report, "topics/huge/v1.yaml");
    assert_eq!(d.code, "PV003");
    assert!(d.message.contains("20.0 MiB"), "{}", d.message);
}

#[test]
fn symlinks_out_of_the_repo_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.yaml", TOPIC.as_bytes());
    let dir = repo();
    fs::create_dir_all(dir.path().join("topics/leak")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        dir.path().join("topics/leak/v1.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("pipelines")).unwrap();
    // A link inside the repo is followed like the file itself.
    fs::create_dir_all(dir.path().join("topics/orders-copy")).unwrap();
    std::os::unix::fs::symlink(
        "../orders/v1.yaml",
        dir.path().join("topics/orders-copy/v1.yaml"),
    )
    .unwrap();
    let report = lint(dir.path());
    let leak = only(&report, "topics/leak/v1.yaml");
    assert_eq!(leak.code, "PV004");
    assert!(leak.message.contains("leaves the repo"));
    assert_eq!(only(&report, "pipelines").code, "PV004");
    // The copy is read: its name does not match its folder.
    assert_eq!(only(&report, "topics/orders-copy/v1.yaml").code, "PV101");
}

#[test]
fn non_utf8_is_refused_at_the_byte() {
    let dir = repo();
    let mut bytes = TOPIC.as_bytes().to_vec();
    let at = TOPIC.find("team-shop").unwrap();
    bytes[at + 4] = 0xFF;
    write(dir.path(), "topics/orders/v1.yaml", &bytes);
    let report = lint(dir.path());
    let d = only(&report, "topics/orders/v1.yaml");
    assert_eq!(
        (d.code, d.span.start.line, d.span.start.col),
        ("PV001", 6, 14)
    );
    assert!(d.message.contains("0xFF"));
}

#[test]
fn an_empty_file_is_an_error() {
    let dir = repo();
    write(dir.path(), "topics/empty/v1.yaml", b"");
    write(dir.path(), "topics/comments/v1.yaml", b"# nothing here\n");
    let report = lint(dir.path());
    assert_eq!(only(&report, "topics/empty/v1.yaml").code, "PV001");
    assert_eq!(only(&report, "topics/comments/v1.yaml").code, "PV001");
}

#[test]
fn sql_injection_through_keys_and_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // The example repo's pipeline, with an orderKey that closes the DDL and adds a statement.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-repo-example");
    copy_dir(&example, dir.path());
    let path = dir.path().join("pipelines/user-events-ingestion/v2.yaml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace(
            "orderKey: (userId, eventTime)",
            "orderKey: \"userId) ENGINE = Log; DROP TABLE analytics.users; --\"",
        )
        .replace(
            "table: analytics.user_events",
            "table: \"analytics.user_events; DROP TABLE x\"",
        );
    fs::write(&path, text).unwrap();
    let report = lint(dir.path());
    let codes: Vec<_> = report
        .diagnostics
        .iter()
        .filter(|d| d.file.ends_with("v2.yaml"))
        .map(|d| d.code)
        .collect();
    // The table fails its schema pattern, so the semantic rules skip the file: one finding
    // that names the field is enough to stop the merge.
    assert_eq!(
        codes,
        ["PV010"],
        "{}",
        output::human::render(&report, false)
    );
    fs::write(
        &path,
        fs::read_to_string(&path).unwrap().replace(
            "\"analytics.user_events; DROP TABLE x\"",
            "analytics.user_events",
        ),
    )
    .unwrap();
    let report = lint(dir.path());
    let d = only(&report, "pipelines/user-events-ingestion/v2.yaml");
    assert_eq!(d.code, "PV301", "{}", output::human::render(&report, false));
}

//! The scaffolding of paver's end-to-end suites: the binaries under test, the test servers'
//! addresses, real git commits, platform repos, process output.

pub mod browser;
pub mod receiver;
pub mod secured;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The path of one of the workspace's binaries (`paver`, `paver-lint`), built for this test
/// process.
///
/// `CARGO_BIN_EXE_<name>` only exists for a package's own binaries, and these suites live in
/// a package of their own. So the first call runs `cargo build` of the workspace's binaries
/// (the cargo that runs the tests, in the same profile) and reads the executables' paths from
/// its JSON messages, as escargot does: they are right wherever the target and build
/// directories are. Later calls reuse the paths. `cargo test` has released its lock by the
/// time tests run, and the build is a no-op when the binaries are fresh.
///
/// `PAVER_E2E_BIN_DIR=<dir>` uses `<dir>/<name>` instead, built beforehand (for a build
/// directory shared with other work trees, where a nested build may pick up another tree's
/// artifacts).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PAVER_E2E_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    static BINS: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    let bins = BINS.get_or_init(build_bins);
    match bins.get(name) {
        Some(path) => path.clone(),
        None => panic!("no binary {name} in the workspace (built: {bins:?})"),
    }
}

fn build_bins() -> BTreeMap<String, PathBuf> {
    // The cargo running the tests; a test binary started by hand falls back on the one that
    // compiled it.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let mut build = Command::new(cargo);
    // What cargo set for this test binary is not the build's: build scripts that rerun when
    // such a variable changes (ring's reads CARGO_PKG_*) would rebuild at every call.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            build.env_remove(key.as_ref());
        }
    }
    let out = build
        .args(["build", "--manifest-path"])
        .arg(&manifest)
        // The fast tier's selection (`cargo test --workspace --exclude paver-e2e
        // --all-targets`), so that the binaries are built with the same features as
        // everything else and are fresh already in CI: `-p paver --bins` alone leaves out
        // the dev-dependencies, resolves tokio's features otherwise and rebuilds half the
        // tree.
        .args([
            "--workspace",
            "--exclude",
            "paver-e2e",
            "--all-targets",
            "--profile",
            profile,
        ])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build of the binaries under test failed: {}",
        out.status
    );
    let mut bins = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        // The executables themselves, not the test harnesses of the same targets.
        if message["reason"] != "compiler-artifact"
            || message["profile"]["test"] != false
            || !message["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        {
            continue;
        }
        if let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            bins.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    for name in ["paver", "paver-lint"] {
        assert!(
            bins.get(name).is_some_and(|p| p.exists()),
            "cargo build reported no executable for {name}: {bins:?}"
        );
    }
    bins
}

/// ClickHouse of `scripts/test-servers` (or `PAVER_CLICKHOUSE_URL`).
pub fn clickhouse_url() -> String {
    std::env::var("PAVER_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// The broker of `scripts/test-servers` (or `PAVER_KAFKA_BROKERS`).
pub fn brokers() -> String {
    std::env::var("PAVER_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Stage the whole work tree (additions, edits, removals) and commit it on HEAD, after
/// `parent` (a sha) or the current HEAD when `None`; returns the new commit.
pub fn commit(repo: &git2::Repository, message: &str, parent: Option<&str>) -> String {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let who = git2::Signature::now("paver", "paver@example.com").unwrap();
    let parent = match parent {
        Some(sha) => Some(repo.find_commit(sha.parse().unwrap()).unwrap()),
        None => repo.head().ok().and_then(|h| h.peel_to_commit().ok()),
    };
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &who, &who, message, &tree, &parents)
        .unwrap()
        .to_string()
}

/// Push `main` to the `origin` remote (a bare repository on disk).
pub fn push_main(repo: &git2::Repository) {
    repo.find_remote("origin")
        .unwrap()
        .push(&["+refs/heads/main:refs/heads/main"], None)
        .unwrap();
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// stdout and stderr of a process, for assertions and their messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A platform repo for a test: a bare remote, a work tree that pushes to it, a state
/// store, and a prefix for names unique to the test (tests run in parallel on the same
/// servers).
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub work: std::path::PathBuf,
    pub remote_url: String,
    pub state: std::path::PathBuf,
    /// `<kind>-<test>-<pid>-<stamp>-<n>`.
    pub prefix: String,
}

impl Repo {
    pub fn new(kind: &str, test: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote.git");
        git2::Repository::init_bare(&remote).unwrap();
        let work = dir.path().join("work");
        let repo = git2::Repository::init(&work).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        let remote_url = format!("file://{}", remote.display());
        repo.remote("origin", &remote_url).unwrap();
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000;
        Repo {
            state: dir.path().join("state/paver.db"),
            prefix: format!("{kind}-{test}-{}-{stamp}-{n}", std::process::id()),
            dir,
            work,
            remote_url,
        }
    }

    pub fn write(&self, path: &str, text: &str) {
        let target = self.work.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, text).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.work.join(path)).unwrap();
    }

    /// Commit the work tree and push it to the remote's `main`; returns the commit.
    pub fn push(&self, message: &str) -> String {
        let repo = git2::Repository::open(&self.work).unwrap();
        let sha = commit(&repo, message, None);
        push_main(&repo);
        sha
    }

    /// `paver <args> --state <the test's store>`, pointed at the test servers, with no
    /// fault injection inherited.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("paver"));
        cmd.args(args)
            .args(["--state", self.state.to_str().unwrap()])
            .env("PAVER_CLICKHOUSE_URL", clickhouse_url())
            .env("PAVER_KAFKA_BROKERS", brokers())
            .env_remove("PAVER_FAULT_PAUSE_AFTER_STEPS")
            .env_remove("PAVER_FAULT_PAUSE_AFTER_INSERT")
            .env_remove("PAVER_FAULT_STOP_BEFORE_INSERT");
        cmd
    }
}

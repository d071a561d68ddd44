//! A real browser for the status page: Debian's chromium, headless, driven by its command
//! line (no WebDriver): `--dump-dom` gives the DOM after the page's scripts ran for a while
//! of virtual time, `--screenshot` a PNG of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The browser: `PAVER_CHROMIUM`, else the first of `chromium`, `chromium-browser`,
/// `google-chrome` on PATH. None is a failure that says how to get one.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("PAVER_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("no chromium on PATH (nor PAVER_CHROMIUM): scripts/setup installs Debian's `chromium`");
}

/// Where a test leaves what a person may want to look at afterwards (screenshots):
/// `PAVER_TEST_ARTIFACTS`, else `target/test-artifacts` of the workspace.
pub fn artifacts() -> PathBuf {
    let dir = match std::env::var_os("PAVER_TEST_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless chromium with a profile of its own (tests run in parallel), as root too.
fn headless(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-first-run")
        .arg("--disable-extensions")
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null());
    cmd
}

/// The DOM of `url` after its scripts ran for `virtual_ms` of virtual time (timers fire,
/// fetches are waited for).
pub fn dump_dom(url: &str, virtual_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = headless(profile.path())
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG of `url` (`width`x`height`) at `file`, after `virtual_ms` of its scripts.
pub fn screenshot(url: &str, file: &Path, width: u32, height: u32, virtual_ms: u32) {
    let profile = tempfile::tempdir().unwrap();
    let out = headless(profile.path())
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium --screenshot {url} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let png =
        std::fs::read(file).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", file.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "chromium wrote no PNG at {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

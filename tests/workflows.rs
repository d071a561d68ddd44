//! The GitHub side: the composite action (`action.yml`) and the example repo's workflows
//! (`pr-check.yml`, `deploy.yml`) validate against GitHub's own schemas, and their `run:`
//! steps, played here with the `GITHUB_*` variables a real run sets, do what they promise
//! against real git repositories, the real servers and a running `paver run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use paver_lint::yaml::{self, Node};

use paver_e2e::{bin, commit, copy_dir, text};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv of `scripts/setup-python` (check-jsonschema is there).
fn venv_bin(tool: &str) -> PathBuf {
    if let Ok(python) = std::env::var("PAVER_PYTHON") {
        let candidate = Path::new(&python).with_file_name(tool);
        if candidate.exists() {
            return candidate;
        }
    }
    let venv = std::env::var("PAVER_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/paver/venv")
        });
    let path = venv.join("bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-python",
        path.display()
    );
    path
}

#[test]
fn the_action_and_workflows_validate_against_githubs_schemas() {
    let check = venv_bin("check-jsonschema");
    let mut workflows: Vec<PathBuf> = ["pr-check.yml", "deploy.yml"]
        .iter()
        .map(|f| {
            root()
                .join("platform-repo-example/.github/workflows")
                .join(f)
        })
        .collect();
    workflows.push(root().join(".github/workflows/release.yml"));
    let out = Command::new(&check)
        .arg("--builtin-schema")
        .arg("vendor.github-workflows")
        .args(&workflows)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&check)
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(root().join("action.yml"))
        .arg(root().join("install/action.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And they can fail: a workflow with a typo'd key is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz:\n      - run: true\n",
    )
    .unwrap();
    let out = Command::new(&check)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The `run:` steps of a workflow job or a composite action, with their `env:`.
fn run_steps(file: &Path, job: Option<&str>) -> Vec<(String, String, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(file).unwrap();
    let doc = yaml::load(&text, yaml::Limits::default()).unwrap();
    let steps = match job {
        Some(job) => doc.path(&["jobs", job, "steps"]),
        None => doc.path(&["runs", "steps"]),
    }
    .unwrap();
    let job_env: BTreeMap<String, String> = job
        .and_then(|j| doc.path(&["jobs", j, "env"]))
        .map(Node::as_map)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((e.key.clone(), e.value.scalar_text()?)))
        .collect();
    steps
        .as_seq()
        .iter()
        .filter_map(|step| {
            let run = step.get("run")?.as_str()?.to_string();
            let name = step
                .get("name")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_string();
            let mut env = job_env.clone();
            for e in step.get("env").map(Node::as_map).unwrap_or_default() {
                env.insert(e.key.clone(), e.value.scalar_text().unwrap_or_default());
            }
            Some((name, run, env))
        })
        .collect()
}

/// `${{ x }}` replaced by the context's value (empty when unknown), as the runner does.
fn expand(text: &str, context: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .map_or(rest.len(), |e| start + e + 2);
        let expr = rest[start + 3..end - 2].trim();
        out.push_str(context.get(expr).map(String::as_str).unwrap_or(""));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A runner: the files GitHub gives a job, and the `GITHUB_*` variables.
struct Runner {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Runner {
    fn new() -> Runner {
        let dir = tempfile::tempdir().unwrap();
        for f in ["output", "path", "summary"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        // Both binaries on PATH, as the install steps would leave them (one cargo build
        // puts them side by side).
        let bins = bin("paver").parent().unwrap().to_path_buf();
        assert_eq!(bins, bin("paver-lint").parent().unwrap());
        Runner { dir, bin: bins }
    }

    fn summary(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("summary")).unwrap()
    }

    /// Run a step's script with bash, as `shell: bash` does (errexit, pipefail).
    fn step(
        &self,
        workspace: &Path,
        run: &str,
        env: &BTreeMap<String, String>,
        github: &[(&str, String)],
    ) -> Output {
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", run])
            .current_dir(workspace)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", workspace)
            .env("RUNNER_TEMP", self.dir.path())
            .env("GITHUB_OUTPUT", self.dir.path().join("output"))
            .env("GITHUB_PATH", self.dir.path().join("path"))
            .env("GITHUB_STEP_SUMMARY", self.dir.path().join("summary"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        for (k, v) in github {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

/// A checkout of the example repo: `main` is the base commit, the work tree is the pull
/// request after `change`, committed on a branch.
fn pull_request(change: impl FnOnce(&Path)) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("platform-repo-example"), dir.path());
    let repo = git2::Repository::init(dir.path()).unwrap();
    let base = commit(&repo, "base", None);
    repo.branch(
        "main",
        &repo.find_commit(base.parse().unwrap()).unwrap(),
        true,
    )
    .unwrap();
    change(dir.path());
    commit(&repo, "pull request", Some(&base));
    (dir, base)
}

/// Play the PR check: the action's steps with its inputs.
fn play_pr_check(runner: &Runner, workspace: &Path, base: &str) -> Vec<Output> {
    let context = BTreeMap::from([
        ("inputs.path", ".".to_string()),
        ("inputs.base", base.to_string()),
        ("inputs.version", "main".to_string()),
        (
            "inputs.repository",
            "https://github.com/paver-dev/paver".to_string(),
        ),
    ]);
    run_steps(&root().join("action.yml"), None)
        .into_iter()
        .map(|(name, run, env)| {
            let env = env
                .into_iter()
                .map(|(k, v)| (k, expand(&v, &context)))
                .collect();
            let out = runner.step(
                workspace,
                &run,
                &env,
                &[
                    ("GITHUB_EVENT_NAME", "pull_request".into()),
                    ("GITHUB_ACTION_PATH", root().display().to_string()),
                ],
            );
            eprintln!("step {name}: {:?}", out.status.code());
            out
        })
        .collect()
}

#[test]
fn a_pull_request_with_a_bad_change_fails_with_annotations_on_its_lines() {
    let (dir, base) = pull_request(|root| {
        let topic = root.join("topics/user-events/v1.yaml");
        let text = std::fs::read_to_string(&topic)
            .unwrap()
            .replace("partitions: 12", "partitions: 24");
        std::fs::write(topic, text).unwrap();
    });
    let runner = Runner::new();
    let steps = play_pr_check(&runner, dir.path(), &base);
    assert_eq!(
        steps[0].status.code(),
        Some(0),
        "install: {}",
        text(&steps[0])
    );
    let lint = &steps[1];
    assert_eq!(lint.status.code(), Some(1), "{}", text(lint));
    let out = text(lint);
    assert!(
        out.contains("::error file=topics/user-events/v1.yaml,line=9,col=1,"),
        "{out}"
    );
    assert!(
        out.contains("title=PV601 released-version-edited::"),
        "{out}"
    );
    let summary = runner.summary();
    assert!(
        summary.contains("## paver-lint") && summary.contains("PV601"),
        "{summary}"
    );
    let sarif: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runner.dir.path().join("paver-lint.sarif")).unwrap(),
    )
    .unwrap();
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "PV601");
}

#[test]
fn a_good_pull_request_passes_and_its_changes_are_in_the_summary() {
    let (dir, base) = pull_request(|root| {
        let v1 = std::fs::read_to_string(root.join("topics/user-events/v1.yaml")).unwrap();
        let v2 = v1
            .replace("version: 1", "version: 2")
            .replace("partitions: 12", "partitions: 24");
        std::fs::write(root.join("topics/user-events/v2.yaml"), v2).unwrap();
    });
    let runner = Runner::new();
    let steps = play_pr_check(&runner, dir.path(), &base);
    assert_eq!(steps[1].status.code(), Some(0), "{}", text(&steps[1]));
    let summary = runner.summary();
    assert!(summary.contains("### Changes"), "{summary}");
    assert!(
        summary.contains("`topics/user-events`") && summary.contains("partitions 12 → 24"),
        "{summary}"
    );
    assert!(summary.contains("No findings."), "{summary}");
}

/// Play the deploy workflow's steps for a pushed commit.
fn play_deploy(runner: &Runner, workspace: &Path, server: &str, sha: &str) -> Vec<Output> {
    let context = BTreeMap::from([
        ("vars.PAVER_SERVER", server.to_string()),
        ("secrets.PAVER_WEBHOOK_SECRET", "s3cret".to_string()),
    ]);
    let github = [
        ("GITHUB_SHA", sha.to_string()),
        ("GITHUB_REF", "refs/heads/main".to_string()),
        ("GITHUB_REPOSITORY", "acme/platform".to_string()),
        ("GITHUB_EVENT_NAME", "push".to_string()),
    ];
    run_steps(
        &root().join("platform-repo-example/.github/workflows/deploy.yml"),
        Some("deploy"),
    )
    .into_iter()
    .map(|(_, run, env)| {
        let env = env
            .into_iter()
            .map(|(k, v)| (k, expand(&v, &context)))
            .collect();
        runner.step(workspace, &run, &env, &github)
    })
    .collect()
}

#[test]
fn a_merge_deploys_through_the_webhook_and_a_revert_rolls_back() {
    // A platform repo of its own names (a topic), pushed to a bare remote.
    let dir = tempfile::tempdir().unwrap();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 1_000_000;
    let topic = format!("wf-{}-{stamp}-events", std::process::id());
    let work = dir.path().join("work");
    let topic_dir = work.join(format!("topics/{topic}"));
    std::fs::create_dir_all(&topic_dir).unwrap();
    let spec = |version: u32, retention: &str| {
        format!("apiVersion: platform.paver.dev/v1\nkind: KafkaTopic\nmetadata:\n  name: {topic}\n  version: {version}\n  owner: team-ci\nspec:\n  partitions: 3\n  replicationFactor: 3\n  config:\n    retention.ms: \"{retention}\"\n    min.insync.replicas: 2\n")
    };
    std::fs::write(topic_dir.join("v1.yaml"), spec(1, "604800000")).unwrap();
    let remote = dir.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let repo = git2::Repository::init(&work).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let remote_url = format!("file://{}", remote.display());
    repo.remote("origin", &remote_url).unwrap();
    let push = |message: &str| {
        let sha = commit(&repo, message, None);
        paver_e2e::push_main(&repo);
        sha
    };
    let first = push("initial");

    // The reconciler, polling rarely: only the workflow's webhook makes it move.
    let port = paver_e2e::free_port();
    let server = format!("http://127.0.0.1:{port}");
    let mut paver = Command::new(bin("paver"))
        .args([
            "run",
            "--repo",
            &remote_url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-seconds",
            "3600",
        ])
        .args(["--state", dir.path().join("state.db").to_str().unwrap()])
        .env("PAVER_CLICKHOUSE_URL", paver_e2e::clickhouse_url())
        .env("PAVER_KAFKA_BROKERS", paver_e2e::brokers())
        .env("PAVER_WEBHOOK_SECRET", "s3cret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runner = Runner::new();
    let steps = play_deploy(&runner, &work, &server, &first);
    let waited = steps.last().unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        steps.iter().map(text).collect::<Vec<_>>().join("\n")
    );

    // A merge: the topic's retention changes in v2.
    std::fs::write(topic_dir.join("v2.yaml"), spec(2, "1209600000")).unwrap();
    let merge = push("Merge pull request #2: longer retention");
    let steps = play_deploy(&runner, &work, &server, &merge);
    let out = steps.iter().map(text).collect::<Vec<_>>().join("\n");
    // The run steps (the install is `uses:`, played by the install tests): notify, wait.
    assert_eq!(steps[0].status.code(), Some(0), "notify: {out}");
    assert_eq!(steps[1].status.code(), Some(0), "wait: {out}");
    assert!(
        out.contains("retention.ms=1209600000") && out.contains(&format!("{merge} is applied")),
        "{out}"
    );

    // `git revert` of the merge: the file goes, the reconciler rolls the topic back.
    std::fs::remove_file(topic_dir.join("v2.yaml")).unwrap();
    let revert = push("Revert \"Merge pull request #2: longer retention\"");
    let steps = play_deploy(&runner, &work, &server, &revert);
    let out = steps.iter().map(text).collect::<Vec<_>>().join("\n");
    assert_eq!(steps[1].status.code(), Some(0), "{out}");
    assert!(
        out.contains("retention.ms=604800000") && out.contains(&format!("{revert} is applied")),
        "{out}"
    );

    let _ = paver.kill();
    let _ = paver.wait();
}

/// A static file server on loopback for `dir` (GitHub's release downloads, here): GET of a
/// path under it, 404 otherwise. Serves until the test process ends.
fn serve_files(dir: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            if BufReader::new(&stream).read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let file = dir.join(path.trim_start_matches('/'));
            let (status, body) = match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => ("200 OK", body),
                _ => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    address
}

/// The Rust target the installer picks on this machine.
fn this_target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-gnu",
        _ => "x86_64-unknown-linux-gnu",
    }
}

/// A release `version` of the binaries under test, as release.yml makes it (stripped, by
/// scripts/release-archive), served at `<address>/releases/download/<version>/`.
fn local_release(version: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    for tool in ["paver", "paver-lint"] {
        let copy = bins.join(tool);
        std::fs::copy(bin(tool), &copy).unwrap();
        let strip = Command::new("strip").arg(&copy).status().unwrap();
        assert!(strip.success());
    }
    let release = dir.path().join("site/releases/download").join(version);
    let out = Command::new(root().join("scripts/release-archive"))
        .args([version, this_target()])
        .arg(&bins)
        .arg(&release)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let address = serve_files(dir.path().join("site"));
    (dir, release, address)
}

/// The action's install step on a runner where paver-lint is not on PATH.
fn play_install(runner: &Path, version: &str, repository: &str, extra_path: &str) -> Output {
    let context = BTreeMap::from([
        ("inputs.version", version.to_string()),
        ("inputs.repository", repository.to_string()),
    ]);
    let (_, run, env) = run_steps(&root().join("action.yml"), None)
        .into_iter()
        .find(|(name, _, _)| name == "Install paver-lint")
        .expect("action.yml has an install step");
    let workspace = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &run])
        .current_dir(workspace.path())
        // A runner's PATH without paver: only the system's tools (curl, tar, sha256sum).
        .env("PATH", format!("{extra_path}/usr/local/bin:/usr/bin:/bin"))
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_ACTION_PATH", root())
        .env("RUNNER_TEMP", runner)
        .env("GITHUB_PATH", runner.join("path"));
    for (k, v) in env {
        cmd.env(k, expand(&v, &context));
    }
    cmd.output().unwrap()
}

#[test]
fn the_check_downloads_a_released_binary_and_verifies_its_checksum() {
    let version = "v9.9.9";
    let (_dir, release, address) = local_release(version);
    let runner = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = play_install(runner.path(), version, &address, "");
    let installed = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "{address}/releases/download/{version}/paver-{version}-{}.tar.gz",
            this_target()
        )) && said.contains("checksum ok"),
        "{said}"
    );
    let dest = runner.path().join("paver/bin");
    assert_eq!(
        std::fs::read_to_string(runner.path().join("path")).unwrap(),
        format!("{}\n", dest.display())
    );
    // Then the check itself, with the downloaded binary, on the example repo.
    let lint = Command::new(dest.join("paver-lint"))
        .arg(root().join("platform-repo-example"))
        .output()
        .unwrap();
    let checked = started.elapsed();
    assert_eq!(lint.status.code(), Some(0), "{}", text(&lint));
    eprintln!(
        "install from a release: {:.2} s; install and lint the example repo: {:.2} s",
        installed.as_secs_f64(),
        checked.as_secs_f64()
    );

    // A tampered archive is refused, and nothing is installed.
    let archive = release.join(format!("paver-{version}-{}.tar.gz", this_target()));
    let mut bytes = std::fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&archive, bytes).unwrap();
    let runner = tempfile::tempdir().unwrap();
    let out = play_install(runner.path(), version, &address, "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
    assert!(!runner.path().join("paver/bin/paver-lint").exists());

    // A release that does not exist fails the step (no silent fallback to a build).
    let out = play_install(runner.path(), "v0.0.0-missing", &address, "");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn the_check_builds_from_source_for_a_branch() {
    // A `cargo` that records how it was called.
    let fake = tempfile::tempdir().unwrap();
    let log = fake.path().join("cargo.log");
    std::fs::write(
        fake.path().join("cargo"),
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nroot=\"$(echo \"$@\" | sed 's/.*--root \\([^ ]*\\).*/\\1/')\"\nmkdir -p \"$root/bin\"\nprintf '#!/bin/sh\\necho paver-lint 0.0.0-branch\\n' > \"$root/bin/paver-lint\"\nchmod +x \"$root/bin/paver-lint\"\n",
            log.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(fake.path().join("cargo"))
        .status()
        .unwrap();
    let runner = tempfile::tempdir().unwrap();
    let out = play_install(
        runner.path(),
        "main",
        "https://github.com/paver-dev/paver",
        &format!("{}:", fake.path().display()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("building from source"),
        "{}",
        text(&out)
    );
    let called = std::fs::read_to_string(&log).unwrap();
    assert!(
        called.contains("install --locked --quiet --root")
            && called.contains("--git https://github.com/paver-dev/paver --branch main paver-lint"),
        "{called}"
    );
}

//! `paver wait --server`: the long poll of `paver run` (`/revisions/<sha>/wait`) and its
//! event stream (`/events`): an outcome is answered when it is recorded, with the exit code
//! that says which, and a server that goes away is waited for.

use std::io::{BufRead, BufReader, Write};

use super::*;

/// `paver run` on a port of its own, following the test's remote, polling once an hour
/// (only a webhook or a restart makes it reconcile), its log in `run.log`.
fn run(p: &Platform, port: u16) -> std::process::Child {
    run_repo(p, &p.remote_url, port)
}

/// `paver run` following `repo`.
fn run_repo(p: &Platform, repo: &str, port: u16) -> std::process::Child {
    p.command(&[
        "run",
        "--repo",
        repo,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--poll-seconds",
        "3600",
    ])
    .env("PAVER_WEBHOOK_SECRET", "s3cret")
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.dir.path().join("run.log"))
            .unwrap(),
    )
    .spawn()
    .unwrap()
}

/// Push v1, start `paver run` on a free port (see [`run`]) and wait for that revision's
/// outcome: its sha, the port, the server's URL, the server and `paver wait`'s output.
fn serve_v1(
    p: &Platform,
) -> (
    String,
    u16,
    String,
    std::process::Child,
    std::process::Output,
) {
    let first = p.push("v1");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = run(p, port);
    let out = start_wait(p, &url, &first, "180s")
        .wait_with_output()
        .unwrap();
    (first, port, url, server, out)
}

fn log(p: &Platform) -> String {
    std::fs::read_to_string(p.dir.path().join("run.log"))
        .unwrap_or_else(|e| format!("(no log of paver run: {e})"))
}

/// `paver wait --revision <sha> --server <url> --timeout <timeout>`, started (not awaited).
fn start_wait(p: &Platform, url: &str, sha: &str, timeout: &str) -> std::process::Child {
    p.command(&[
        "wait",
        "--revision",
        sha,
        "--timeout",
        timeout,
        "--server",
        url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn push_webhook(port: u16, sha: &str) {
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{sha}"}}"#).into_bytes();
    let (code, answer) = http(
        port,
        "POST",
        "/webhook",
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", signature(b"s3cret", &body)),
        ],
        &body,
    );
    assert_eq!(code, 202, "{answer}");
}

/// The server-sent events of `/events`, read on a thread: each `(event, data)` as it comes.
/// Returns once the server answered the request (from then on, nothing is missed).
fn subscribe(port: u16) -> std::sync::mpsc::Receiver<(String, serde_json::Value)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{head}");
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
        "{head}"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
                if tx.send((event.clone(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[test]
fn paver_wait_answers_with_the_outcome_of_the_revision_it_waits_for() {
    servers();
    let p = Platform::new("longpoll");
    p.base();
    let (_, port, url, mut server, out) = serve_v1(&p);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), log(&p));
    assert!(text(&out).contains("is applied"), "{}", text(&out));
    let events = subscribe(port);

    // Waiting before the commit is even announced: the long poll is held open through
    // "not seen", the reconcile and the apply, and answers with the outcome.
    p.write_topic("added", 1, 1, "86400000");
    let second = p.push("add a topic");
    let waiting = start_wait(&p, &url, &second, "120s");
    let (code, so_far) = http(
        port,
        "GET",
        &format!("/revisions/{second}/wait?timeout_ms=200"),
        &[],
        b"",
    );
    assert_eq!(code, 202, "{so_far}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&so_far).unwrap()["status"],
        "unknown"
    );
    push_webhook(port, &second);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), log(&p));
    assert!(
        text(&out).contains(&format!("paver: {second} is applied")),
        "{}",
        text(&out)
    );
    // The stream said the same: a reconcile started, then the revision's outcome.
    let mut heard = Vec::new();
    while let Ok((event, data)) = events.recv_timeout(Duration::from_secs(60)) {
        let done = event == "revision" && data["sha"] == second.as_str();
        heard.push((event, data));
        if done {
            break;
        }
    }
    assert!(
        heard.first().is_some_and(|(e, _)| e == "reconcile-started"),
        "{heard:?}"
    );
    let (_, outcome) = heard.last().unwrap();
    assert_eq!(outcome["status"], "applied", "{heard:?}");
    assert_eq!(outcome["steps"], 1, "{heard:?}");

    // A revision that does not lint (v1 of a topic edited in place): exit 1, refused.
    p.write_topic("events", 1, 3, "1");
    let third = p.push("edit a released version");
    let waiting = start_wait(&p, &url, &third, "120s");
    push_webhook(port, &third);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), log(&p));
    assert!(
        text(&out).contains(&format!("{third} was refused")),
        "{}",
        text(&out)
    );
    // An answer already recorded comes at once, whatever the timeout.
    let (code, record) = http(
        port,
        "GET",
        &format!("/revisions/{second}/wait?timeout_ms=60000"),
        &[],
        b"",
    );
    assert_eq!(code, 200, "{record}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&record).unwrap()["status"],
        "applied"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn paver_wait_hears_of_a_plan_refused_as_blocked() {
    let (ch, _) = servers();
    let p = Platform::new("blocked");
    p.base();
    // The pipeline's sink table exists already, made by someone else: the plan is blocked,
    // which the store does not record; the long poll still answers it.
    let rt = runtime();
    rt.block_on(ch.run(&format!("CREATE DATABASE {}", p.database())))
        .unwrap();
    rt.block_on(ch.run(&format!(
        "CREATE TABLE {}.events (x UInt8) ENGINE = Memory",
        p.database()
    )))
    .unwrap();
    let (_, _, _, mut server, out) = serve_v1(&p);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), log(&p));
    assert!(
        text(&out).contains("was refused") && text(&out).contains("paver did not create it"),
        "{}",
        text(&out)
    );
    server.kill().unwrap();
    server.wait().unwrap();
    rt.block_on(ch.run(&format!("DROP DATABASE {}", p.database())))
        .unwrap();
}

#[test]
fn paver_wait_outlives_a_server_that_goes_away() {
    servers();
    let p = Platform::new("away");
    p.base();
    let (_, port, url, mut server, out) = serve_v1(&p);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), log(&p));

    // A commit no webhook announces, and a wait held open for it; then the server dies.
    p.write_topic("later", 1, 1, "86400000");
    let second = p.push("add a topic");
    let waiting = start_wait(&p, &url, &second, "180s");
    // The wait is held by the server before it goes (an answer would say "unknown").
    let (code, _) = http(
        port,
        "GET",
        &format!("/revisions/{second}/wait?timeout_ms=100"),
        &[],
        b"",
    );
    assert_eq!(code, 202);
    server.kill().unwrap();
    server.wait().unwrap();

    // Nothing answers for a while: a short wait gives up with exit 2 and says why.
    let out = start_wait(&p, &url, &second, "1s")
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not seen by the reconciler") && text(&out).contains("cannot reach"),
        "{}",
        text(&out)
    );

    // The server comes back (a restart reconciles the branch's head): the long wait,
    // started before, hears of it.
    let mut server = run(&p, port);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), log(&p));
    assert!(
        text(&out).contains(&format!("paver: {second} is applied")),
        "{}",
        text(&out)
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A reconcile that fails before it has an outcome (here: the remote is not there yet) is
/// tried again within seconds, not at the next poll (an hour away here): the revision is
/// applied soon after the remote appears, without a webhook.
#[test]
fn a_reconcile_that_failed_is_tried_again_before_the_next_poll() {
    servers();
    let p = Platform::new("retry");
    p.base();
    let sha = p.push("v1");
    let remote = p.remote_url.trim_start_matches("file://").to_string();
    let missing = format!("{remote}-later");
    let port = free_port();
    let mut server = run_repo(&p, &format!("file://{missing}"), port);
    // The first reconcile fails: the remote is missing.
    let started = Instant::now();
    while !log(&p).contains("-later") {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", log(&p));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The remote appears; nothing announces it.
    let cloned = Command::new("git")
        .args(["clone", "-q", "--bare", &remote, &missing])
        .status()
        .unwrap();
    assert!(cloned.success());
    let out = start_wait(&p, &format!("http://127.0.0.1:{port}"), &sha, "90s")
        .wait_with_output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), log(&p));
}

#[test]
fn paver_wait_against_a_stopping_server_is_not_held_up() {
    servers();
    let p = Platform::new("stopping");
    p.base();
    let (_, port, _, mut server, out) = serve_v1(&p);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out), log(&p));
    // A long poll (30 s) and an event stream are open when SIGTERM comes: both end, and
    // the server stops without waiting for them.
    let mut poll = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    poll.write_all(
        b"GET /revisions/0000000000000000000000000000000000000000/wait?timeout_ms=30000 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let events = subscribe(port);
    // Room for the server to take the poll's connection (a tolerance, not a measurement).
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", log(&p));
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut poll, &mut answer).unwrap();
    // 503: ended by the stop, not by its 30 s (which would be 202).
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // The stream ended with the server.
    assert!(matches!(
        events.recv_timeout(Duration::from_secs(30)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
    ));
}

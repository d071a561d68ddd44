//! The status page of `paver run`, in a real headless browser (Debian's chromium), with
//! events flowing: what it shows, that its script refreshes it, that the user data it shows
//! (here a branch name that is HTML) is text, and a screenshot as the test's artifact.

use super::*;
use paver_e2e::browser;

/// A branch name git accepts that is also markup: shown, it must stay text.
const HOSTILE_BRANCH: &str = "page<svg/onload=document.title='pwned'>\"x";

/// Push the work tree's HEAD to `branch` of the remote too.
fn push_branch(p: &Platform, branch: &str) {
    let repo = git2::Repository::open(&p.work).unwrap();
    let mut remote = repo.find_remote("origin").unwrap();
    remote
        .push(&[format!("+refs/heads/main:refs/heads/{branch}")], None)
        .unwrap();
}

/// The `data-refreshes` count the page's script keeps on `<body>`.
fn refreshes(dom: &str) -> u32 {
    let n = dom
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no data-refreshes on <body>:\n{dom}"));
    n.parse()
        .unwrap_or_else(|e| panic!("data-refreshes=\"{n}\": {e}"))
}

/// The pipeline's row of the page.
fn row<'a>(dom: &'a str, pipeline: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr data-pipeline=\"{pipeline}\""))
        .unwrap_or_else(|| panic!("no row for {pipeline} in:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// Wait until the worker has reported `inserted` rows and `dead` dead letters.
fn wait_for_report(p: &Platform, inserted: usize, dead: usize) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let status = p.status();
        let pipeline = &status["pipelines"][0];
        if pipeline["inserted"] == inserted && pipeline["deadLettered"] == dead {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker never reported {inserted} inserted, {dead} dead letters: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_status_page_shows_the_revision_and_live_pipelines_in_a_real_browser() {
    let ch = ch();
    let p = Platform::new("page");
    p.base(2);
    let first = p.push("pipeline v1");
    push_branch(&p, HOSTILE_BRANCH);
    let (_server, url) = serve_with(&p, &["--branch", HOSTILE_BRANCH]);
    wait_applied(&p, &url, &first);
    let producer = Producer::new(&p.topic());
    let mut ledger = Ledger::default();
    produce(&producer, &mut ledger, 1, 200, None);
    wait_for_count(&ch, &p.table(), ledger.ids.len(), Duration::from_secs(60));
    // The worker counts the rows it inserted into the staging table: the noise too (the
    // views filter it out of the sink table), not the malformed ones (dead letters).
    let inserted = ledger.ids.len() + ledger.noise;
    wait_for_report(&p, inserted, ledger.malformed.len());

    // Ten virtual seconds: the script refreshes the page (every 2 s) from paver run.
    let dom = browser::dump_dom(&format!("{url}/"), 10_000);
    assert!(
        refreshes(&dom) >= 1,
        "the page's script never refreshed it:\n{dom}"
    );
    assert!(dom.contains("live · updated"), "{dom}");
    assert!(dom.contains(&first[..12]), "no active revision in:\n{dom}");
    assert!(dom.contains("data-outcome=\"applied\""), "{dom}");
    let pipeline = row(&dom, &p.pipeline());
    assert!(
        pipeline.contains("<td class=\"live-version\">v1</td>")
            && pipeline.contains("<td class=\"worker-version\">v1</td>"),
        "{pipeline}"
    );
    assert!(
        pipeline.contains(&format!("<td class=\"n\">{inserted}</td>")),
        "the row does not show {inserted} inserted: {pipeline}"
    );
    assert!(
        pipeline.contains(&format!(
            "<td class=\"n warn\">{}</td>",
            ledger.malformed.len()
        )),
        "the row does not show {} dead letters: {pipeline}",
        ledger.malformed.len()
    );
    assert!(
        dom.contains("create table") || dom.contains("CREATE"),
        "no plan of the active revision in:\n{dom}"
    );
    // The branch is shown as text: no element came of it, and no script of it ran.
    assert!(
        dom.contains("page&lt;svg/onload=document.title='pwned'&gt;\"x"),
        "{dom}"
    );
    assert!(!dom.contains("<svg"), "{dom}");
    assert!(!dom.contains("<title>pwned"), "{dom}");

    let shot = browser::artifacts().join("status-page.png");
    browser::screenshot(&format!("{url}/"), &shot, 1280, 900, 3_000);
    eprintln!("the status page: {}", shot.display());

    // v2 goes live: the page says so, and its history has both revisions.
    p.write_pipeline(
        2,
        "events@2",
        "SELECT id, kind, at, amount, region FROM source WHERE kind != 'noise'",
    );
    let second = p.push("pipeline v2: region");
    push_branch(&p, HOSTILE_BRANCH);
    wait_applied(&p, &url, &second);
    wait_for_worker(&p, 2, Duration::from_secs(60));
    let dom = browser::dump_dom(&format!("{url}/"), 3_000);
    let pipeline = row(&dom, &p.pipeline());
    assert!(
        pipeline.contains("<td class=\"live-version\">v2</td>"),
        "{pipeline}"
    );
    let history = &dom[dom.find("id=\"history\"").unwrap()..];
    for sha in [&first, &second] {
        assert!(history.contains(&sha[..12]), "{sha} not in:\n{history}");
    }
}

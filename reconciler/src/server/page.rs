//! The status page `paver run` serves at `/`: one HTML document rendered here from the same
//! JSON as `/status` and `/history`, every value escaped. Its script (`page/page.js`) fetches
//! `/` again every few seconds and swaps the `<main>` in, so the page follows the reconciler
//! without a reload and there is one renderer (and one escaping) only. No build step and no
//! external asset: the stylesheet and the script are compiled in and served by `paver run`.

use serde_json::Value;

/// The stylesheet, served at [`STYLE_PATH`].
pub const STYLE: &str = include_str!("page/page.css");
/// The refresh script, served at [`SCRIPT_PATH`].
pub const SCRIPT: &str = include_str!("page/page.js");
pub const STYLE_PATH: &str = "/assets/page.css";
pub const SCRIPT_PATH: &str = "/assets/page.js";
/// Only this origin's own style and script run: a value that escaped the escaping still
/// could not run as a script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// How often the script refreshes the page.
pub const REFRESH_SECONDS: u32 = 2;

/// Text made safe for HTML, in an element or in a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as text for a cell: nothing is a dash.
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => "–".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON list's items; anything else has none.
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// The first 12 characters of a revision (a commit sha or a content hash).
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// An outcome as a badge whose class gives its colour.
fn outcome(status: &str) -> String {
    let class = match status {
        "applied" => "ok",
        "applying" => "busy",
        "refused" | "rolled-back" => "bad",
        _ => "none",
    };
    format!(
        r#"<span class="badge {class}" data-outcome="{0}">{0}</span>"#,
        escape(status)
    )
}

/// A revision, short, with the whole sha in its title.
fn revision(sha: &str) -> String {
    format!(
        r#"<code class="sha" title="{}">{}</code>"#,
        escape(sha),
        escape(short(sha))
    )
}

/// One attempt: revision, outcome, when, steps.
fn attempt(record: &Value) -> String {
    let when = record["finished_at"]
        .as_str()
        .or_else(|| record["started_at"].as_str())
        .unwrap_or("–");
    let steps = record["steps"].as_i64().unwrap_or(0);
    format!(
        "{} {} <span class=\"when\">{}</span> <span class=\"steps\">{steps} step{}</span>",
        revision(record["sha"].as_str().unwrap_or("?")),
        outcome(record["status"].as_str().unwrap_or("?")),
        escape(when),
        if steps == 1 { "" } else { "s" }
    )
}

/// A `<dt>`/`<dd>` pair; `html` is already escaped.
fn fact(out: &mut String, id: &str, label: &str, html: &str) {
    out.push_str(&format!(
        "<dt>{}</dt><dd id=\"{id}\">{html}</dd>\n",
        escape(label)
    ));
}

/// The revisions: active, last attempt (with its error and what happens next), interrupted.
fn revisions(status: &Value) -> String {
    let mut out = String::from("<section id=\"revisions\"><h2>Revisions</h2><dl>\n");
    fact(
        &mut out,
        "active",
        "Active revision",
        &match &status["active"] {
            Value::Null => "none yet".to_string(),
            a => attempt(a),
        },
    );
    fact(
        &mut out,
        "last",
        "Last attempt",
        &match &status["last"] {
            Value::Null => "none yet".to_string(),
            a => attempt(a),
        },
    );
    if let Some(error) = status["last"]["error"].as_str() {
        fact(
            &mut out,
            "last-error",
            "Error",
            &format!("<pre class=\"error\">{}</pre>", escape(error)),
        );
    }
    let failure = &status["failure"];
    if failure.is_object() {
        let kind = text_of(&failure["kind"]);
        let retry = text_of(&failure["retry"]);
        let next = match failure["nextTry"].as_str() {
            Some(next) => format!("; next try {}", escape(next)),
            None => String::new(),
        };
        fact(
            &mut out,
            "failure",
            "Failure",
            &format!("{} — {}{next}", escape(&kind), escape(&retry)),
        );
    }
    if !status["interrupted"].is_null() {
        fact(
            &mut out,
            "interrupted",
            "Interrupted",
            &attempt(&status["interrupted"]),
        );
    }
    if let Some(error) = status["lastError"].as_str() {
        fact(
            &mut out,
            "reconcile-error",
            "Reconcile error",
            &format!("<pre class=\"error\">{}</pre>", escape(error)),
        );
    }
    if let Some(leader) = status["leader"].as_bool() {
        let role = if leader {
            "leader: applies revisions"
        } else {
            "follower: serves status only"
        };
        fact(&mut out, "role", "This replica", role);
    }
    fact(
        &mut out,
        "managed",
        "Managed resources",
        &escape(&text_of(&status["managed"])),
    );
    let firing = items(&status["alerts"]).len();
    fact(
        &mut out,
        "alerts-count",
        "Firing alerts",
        &if firing == 0 {
            "0".to_string()
        } else {
            format!("<span class=\"badge bad\">{firing}</span>")
        },
    );
    out.push_str("</dl></section>\n");
    out
}

/// One row per live pipeline, with the alerts that fire for it.
fn pipelines(status: &Value) -> String {
    let mut out = String::from("<section id=\"pipelines\"><h2>Pipelines</h2>\n");
    let list = items(&status["pipelines"]);
    if list.is_empty() {
        out.push_str("<p class=\"empty\">No pipelines.</p></section>\n");
        return out;
    }
    let alerts = items(&status["alerts"]);
    out.push_str(
        "<table><thead><tr><th>Pipeline</th><th>Live</th><th>Worker</th><th class=\"n\">Lag</th><th class=\"n\">Rows/s</th><th class=\"n\">Inserted</th><th class=\"n\">Dead letters</th><th>Alerts</th><th>Last error</th></tr></thead><tbody>\n",
    );
    let version = |v: &Value| match v {
        Value::Null => "–".to_string(),
        v => format!("v{}", escape(&text_of(v))),
    };
    for p in list {
        let name = text_of(&p["name"]);
        let firing: Vec<String> = alerts
            .iter()
            .filter(|a| a["pipeline"].as_str() == Some(name.as_str()))
            .map(|a| {
                format!(
                    "<span class=\"badge bad\" title=\"{}\">{}</span>",
                    escape(&text_of(&a["reason"])),
                    escape(&text_of(&a["alert"]))
                )
            })
            .collect();
        let dead = p["deadLettered"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "<tr data-pipeline=\"{0}\"><td class=\"name\">{0}<div class=\"topic\">{1}</div></td><td class=\"live-version\">{2}</td><td class=\"worker-version\">{3}</td><td class=\"n\">{4}</td><td class=\"n\">{5}</td><td class=\"n\">{6}</td><td class=\"n{7}\">{8}</td><td>{9}</td><td class=\"error\">{10}</td></tr>\n",
            escape(&name),
            escape(&text_of(&p["topic"])),
            version(&p["liveVersion"]),
            version(&p["workerVersion"]),
            escape(&text_of(&p["lag"])),
            escape(&text_of(&p["rowsPerSec"])),
            escape(&text_of(&p["inserted"])),
            if dead > 0 { " warn" } else { "" },
            escape(&text_of(&p["deadLettered"])),
            if firing.is_empty() { "–".to_string() } else { firing.join(" ") },
            escape(p["lastError"].as_str().unwrap_or("")),
        ));
    }
    out.push_str("</tbody></table></section>\n");
    out
}

/// The firing alerts, with their reasons.
fn alerts(status: &Value) -> String {
    let list = items(&status["alerts"]);
    if list.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<section id=\"alerts\"><h2>Firing alerts</h2><table><thead><tr><th>Pipeline</th><th>Alert</th><th>Owner</th><th>Since</th><th>Reason</th></tr></thead><tbody>\n",
    );
    for a in list {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>\n",
            escape(&text_of(&a["pipeline"])),
            escape(&text_of(&a["alert"])),
            escape(&text_of(&a["owner"])),
            escape(&text_of(&a["startsAt"])),
            escape(&text_of(&a["reason"])),
        ));
    }
    out.push_str("</tbody></table></section>\n");
    out
}

/// The plan the active revision applied, as it was printed when it started.
fn active_plan(status: &Value) -> String {
    let mut out = String::from("<section id=\"plan\"><h2>Plan of the active revision</h2>\n");
    match status["active"]["plan"].as_str() {
        Some(plan) => out.push_str(&format!("<pre class=\"plan\">{}</pre>\n", escape(plan))),
        None => out.push_str("<p class=\"empty\">No revision applied yet.</p>\n"),
    }
    out.push_str("</section>\n");
    out
}

/// Every attempt, newest first, with its error and its plan folded.
fn history(records: &[Value]) -> String {
    let mut out = String::from("<section id=\"history\"><h2>History</h2>\n");
    if records.is_empty() {
        out.push_str("<p class=\"empty\">No attempts yet.</p></section>\n");
        return out;
    }
    out.push_str(
        "<table><thead><tr><th>#</th><th>Revision</th><th>Outcome</th><th class=\"n\">Steps</th><th>Started</th><th>Finished</th><th>Error</th></tr></thead><tbody>\n",
    );
    for r in records {
        let plan = match r["plan"].as_str() {
            Some(plan) => format!(
                "<details data-key=\"plan-{}\"><summary>plan</summary><pre class=\"plan\">{}</pre></details>",
                escape(&text_of(&r["id"])),
                escape(plan)
            ),
            None => String::new(),
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"error\">{}{plan}</td></tr>\n",
            escape(&text_of(&r["id"])),
            revision(r["sha"].as_str().unwrap_or("?")),
            outcome(r["status"].as_str().unwrap_or("?")),
            escape(&text_of(&r["steps"])),
            escape(&text_of(&r["started_at"])),
            escape(&text_of(&r["finished_at"])),
            escape(r["error"].as_str().unwrap_or("")),
        ));
    }
    out.push_str("</tbody></table></section>\n");
    out
}

/// The `<main>` of the page: what the script swaps in at every refresh.
pub fn main(status: &Value, records: &[Value], rendered_at: &str) -> String {
    format!(
        "<main id=\"page\" data-rendered-at=\"{}\">\n{}{}{}{}{}</main>\n",
        escape(rendered_at),
        revisions(status),
        pipelines(status),
        alerts(status),
        active_plan(status),
        history(records),
    )
}

/// The whole page: `/status`'s JSON, `/history`'s records (newest first), and when.
pub fn render(status: &Value, records: &[Value], rendered_at: &str) -> String {
    let repo = status["repo"].as_str().unwrap_or("paver");
    let branch = status["branch"].as_str().unwrap_or("");
    let tracked = if branch.is_empty() {
        escape(repo)
    } else {
        format!(
            "{} <span class=\"branch\">({})</span>",
            escape(repo),
            escape(branch)
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>paver · {title}</title>\n<link rel=\"stylesheet\" href=\"{STYLE_PATH}\">\n<script src=\"{SCRIPT_PATH}\" defer></script>\n</head>\n<body data-refresh-seconds=\"{REFRESH_SECONDS}\" data-refreshes=\"0\">\n<header><h1>paver</h1><span class=\"repo\">{tracked}</span><span id=\"live\" class=\"live\">rendered {at}</span></header>\n{main}<footer>JSON: <a href=\"/status\">/status</a> · <a href=\"/history\">/history</a> · <a href=\"/metrics\">/metrics</a></footer>\n</body>\n</html>\n",
        title = escape(repo),
        at = escape(rendered_at),
        main = main(status, records, rendered_at),
    )
}

#[cfg(test)]
mod tests;

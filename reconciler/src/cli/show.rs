//! `paver status` and `paver history` as text: pure functions of the JSON that `/status`
//! and `/history` serve, so the local and the `--server` forms print the same.

use serde_json::Value;

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    pub colour: bool,
}

impl Paint {
    fn wrap(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }

    fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    /// An outcome in its colour: applied green, applying yellow, refused/rolled back red.
    fn outcome(self, status: &str) -> String {
        let code = match status {
            "applied" => "32",
            "applying" => "33",
            "refused" | "rolled-back" => "31",
            _ => "0",
        };
        self.wrap(code, status)
    }
}

/// The first 12 characters of a revision (a commit sha or a content hash).
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One attempt as `sha  outcome  when (n steps)`.
fn attempt_line(record: &Value, paint: Paint) -> String {
    let sha = record["sha"].as_str().unwrap_or("?");
    let status = record["status"].as_str().unwrap_or("?");
    let when = record["finished_at"]
        .as_str()
        .or_else(|| record["started_at"].as_str())
        .unwrap_or("-");
    let steps = record["steps"].as_i64().unwrap_or(0);
    format!(
        "{}  {}  {when}  ({steps} step{})",
        paint.bold(short(sha)),
        paint.outcome(status),
        if steps == 1 { "" } else { "s" }
    )
}

/// A table: the widths of the plain cells, colour applied after padding.
fn table(header: &[&str], rows: &[Vec<(String, Option<&str>)>], paint: Paint) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, (cell, _)) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{h:<w$}", w = widths[i]))
        .collect();
    out.push_str(&paint.bold(head.join("  ").trim_end()));
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, (cell, status))| {
                let padded = if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                };
                match status {
                    Some(s) => padded.replacen(s, &paint.outcome(s), 1),
                    None => padded,
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `paver status` for people: the revisions, then one row per pipeline.
pub fn status(status: &Value, paint: Paint) -> String {
    let mut out = String::new();
    let label = |name: &str| paint.dim(&format!("{name:<18}"));
    if let Some(repo) = status["repo"].as_str() {
        let branch = status["branch"].as_str().unwrap_or("-");
        out.push_str(&format!("{}{repo} ({branch})\n", label("Repo")));
    }
    out.push_str(&label("Active revision"));
    out.push_str(&match status["active"] {
        Value::Null => "none yet".to_string(),
        ref a => attempt_line(a, paint),
    });
    out.push('\n');
    out.push_str(&label("Last attempt"));
    out.push_str(&match status["last"] {
        Value::Null => "none yet".to_string(),
        ref a => attempt_line(a, paint),
    });
    out.push('\n');
    if let Some(error) = status["last"]["error"].as_str() {
        out.push_str(&format!("{}{error}\n", label("  error")));
    }
    if let Value::Object(failure) = &status["failure"] {
        let kind = failure.get("kind").map(text_of).unwrap_or_default();
        let retry = failure.get("retry").map(text_of).unwrap_or_default();
        out.push_str(&format!("{}{kind} — {retry}\n", label("  failure")));
        if let Some(next) = failure.get("nextTry").and_then(Value::as_str) {
            out.push_str(&format!("{}{next}\n", label("  next try")));
        }
    }
    if !status["interrupted"].is_null() {
        out.push_str(&label("Interrupted"));
        out.push_str(&attempt_line(&status["interrupted"], paint));
        out.push('\n');
    }
    if let Some(error) = status["lastError"].as_str() {
        out.push_str(&format!("{}{error}\n", label("Reconcile error")));
    }
    if let Some(leader) = status["leader"].as_bool() {
        let role = if leader { "leader" } else { "follower" };
        out.push_str(&format!("{}{role}\n", label("Role")));
    }
    out.push_str(&format!(
        "{}{}\n",
        label("Managed resources"),
        text_of(&status["managed"])
    ));
    let alerts: &[Value] = status["alerts"].as_array().map_or(&[], Vec::as_slice);
    let firing = alerts.len().to_string();
    out.push_str(&format!(
        "{}{}\n",
        label("Firing alerts"),
        if alerts.is_empty() {
            firing
        } else {
            paint.wrap("31", &firing)
        }
    ));
    let pipelines = status["pipelines"].as_array().cloned().unwrap_or_default();
    out.push('\n');
    if pipelines.is_empty() {
        out.push_str("No pipelines.\n");
        return out;
    }
    let rows: Vec<Vec<(String, Option<&str>)>> = pipelines
        .iter()
        .map(|p| {
            let version = |v: &Value| match v {
                Value::Null => "-".to_string(),
                v => format!("v{}", text_of(v)),
            };
            vec![
                (text_of(&p["name"]), None),
                (version(&p["liveVersion"]), None),
                (version(&p["workerVersion"]), None),
                (text_of(&p["lag"]), None),
                (text_of(&p["rowsPerSec"]), None),
                (text_of(&p["inserted"]), None),
                (text_of(&p["deadLettered"]), None),
                (firing_of(alerts, &p["name"]), None),
                (text_of(&p["lastError"]), None),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PIPELINE",
            "LIVE",
            "WORKER",
            "LAG",
            "ROWS/S",
            "INSERTED",
            "DEAD LETTERS",
            "ALERTS",
            "LAST ERROR",
        ],
        &rows,
        paint,
    ));
    out.push_str(&workers(&pipelines, paint));
    out
}

/// The alerts that fire for a pipeline (`onFailure,onBacklog`), or `-`.
fn firing_of(alerts: &[Value], pipeline: &Value) -> String {
    let names: Vec<String> = alerts
        .iter()
        .filter(|a| &a["pipeline"] == pipeline)
        .map(|a| text_of(&a["alert"]))
        .collect();
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(",")
    }
}

/// Which running worker holds which partitions (workers with a fresh heartbeat only);
/// empty when none runs.
fn workers(pipelines: &[Value], paint: Paint) -> String {
    let rows: Vec<Vec<(String, Option<&str>)>> = pipelines
        .iter()
        .flat_map(|p| {
            let name = text_of(&p["name"]);
            p["workers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|w| w["fresh"] == true)
                .map(move |w| {
                    let partitions = match &w["partitions"] {
                        Value::Array(ps) if ps.is_empty() => "none (joining)".to_string(),
                        Value::Array(ps) => ps.iter().map(text_of).collect::<Vec<_>>().join(","),
                        _ => "-".to_string(),
                    };
                    let version = match &w["version"] {
                        Value::Null => "-".to_string(),
                        v => format!("v{}", text_of(v)),
                    };
                    vec![
                        (name.clone(), None),
                        (text_of(&w["worker"]), None),
                        (version, None),
                        (partitions, None),
                    ]
                })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\n{}",
        table(
            &["PIPELINE", "WORKER", "VERSION", "PARTITIONS"],
            &rows,
            paint
        )
    )
}

/// `paver history` for people: one row per attempt, newest first.
pub fn history(records: &[Value], paint: Paint) -> String {
    if records.is_empty() {
        return "No attempts yet.\n".to_string();
    }
    let rows: Vec<Vec<(String, Option<&str>)>> = records
        .iter()
        .map(|r| {
            vec![
                (text_of(&r["id"]), None),
                (short(r["sha"].as_str().unwrap_or("?")).to_string(), None),
                (
                    text_of(&r["status"]),
                    r["status"].as_str().filter(|s| !s.is_empty()),
                ),
                (text_of(&r["steps"]), None),
                (text_of(&r["started_at"]), None),
                (text_of(&r["finished_at"]), None),
                (text_of(&r["error"]), None),
            ]
        })
        .collect();
    table(
        &[
            "#", "REVISION", "OUTCOME", "STEPS", "STARTED", "FINISHED", "ERROR",
        ],
        &rows,
        paint,
    )
}

#[cfg(test)]
mod tests;

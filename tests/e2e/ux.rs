//! What a user sees when something is off: a server that refuses, and `--help`.

use super::*;

/// The subcommands `paver --help` lists.
fn subcommands() -> Vec<String> {
    let out = Command::new(bin("paver")).arg("--help").output().unwrap();
    let help = text(&out);
    let list = help
        .split("Commands:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Commands: in {help}"));
    list.lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's name stands at two spaces; its wrapped description further in.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_help_shows_an_example() {
    let commands = subcommands();
    assert!(commands.len() >= 8, "{commands:?}");
    for command in &commands {
        let out = Command::new(bin("paver"))
            .args([command.as_str(), "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}: {}", text(&out));
        assert!(
            text(&out).contains("Example") && text(&out).contains(&format!("paver {command}")),
            "`paver {command} --help` shows no example:\n{}",
            text(&out)
        );
    }
    for binary in ["paver", "paver-lint"] {
        let out = Command::new(bin(binary)).arg("--help").output().unwrap();
        assert!(text(&out).contains("Example"), "{binary}: {}", text(&out));
    }
}

/// `paver plan` with a closed port for `variable`: exit 2, naming the address and what
/// to check.
fn plan_against_closed(variable: &str, url: &str, words: &[&str]) {
    let p = Platform::new("refused-target");
    p.base();
    p.push("v1");
    let out = p.paver(&["plan", "--repo", &p.remote_url], &[(variable, url)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    for word in words {
        assert!(all.contains(word), "no `{word}` in:\n{all}");
    }
    assert!(all.contains("paver doctor"), "{all}");
}

#[test]
fn plan_with_clickhouse_down_names_the_address_and_what_to_check() {
    let closed = free_port();
    plan_against_closed(
        "PAVER_CLICKHOUSE_URL",
        &format!("http://127.0.0.1:{closed}"),
        &[
            &format!("connection refused by 127.0.0.1:{closed}"),
            "is ClickHouse running",
            "PAVER_CLICKHOUSE_URL",
        ],
    );
}

#[test]
fn plan_with_kafka_down_names_the_address_and_what_to_check() {
    let closed = free_port();
    plan_against_closed(
        "PAVER_KAFKA_BROKERS",
        &format!("127.0.0.1:{closed}"),
        &[
            &format!("connection refused by 127.0.0.1:{closed}"),
            "is a Kafka broker running",
            "PAVER_KAFKA_BROKERS",
        ],
    );
}

/// `paver apply` piped (a CI log): one plain line per step as it starts, in order, and the
/// total at the end; no terminal control characters.
#[test]
fn apply_shows_its_steps_as_plain_lines_when_not_on_a_terminal() {
    servers();
    let p = Platform::new("progress");
    p.base();
    p.push("v1");
    let out = p.apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let steps: usize = stdout
        .split(" steps)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step count in:\n{stdout}"));
    assert!(steps >= 5, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("paver: ["))
        .collect();
    assert_eq!(lines.len(), steps, "{stderr}");
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("paver: [{}/{steps}] ", i + 1)),
            "{line}\n{stderr}"
        );
    }
    assert!(lines[0].contains("create topic"), "{stderr}");
    assert!(
        stderr.contains(&format!("paver: {steps} steps in ")),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
}

/// `paver status | head -1`: the reader goes away; paver ends quietly, without a panic.
#[test]
fn status_into_a_closed_pipe_ends_quietly() {
    let p = Platform::new("pipe");
    for args in [vec!["status", "-o", "text"], vec!["history", "-o", "json"]] {
        let mut child = p
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before paver has opened its state store and written anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

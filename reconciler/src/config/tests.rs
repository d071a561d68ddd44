//! The configuration: precedence, secrets, and every field of paver.schema.json read.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::*;

fn workspace(paver_yaml: &str) -> paver_lint::Report {
    paver_lint::lint(paver_lint::source::Collected {
        files: vec![paver_lint::source::RawFile {
            path: "paver.yaml".into(),
            bytes: paver_yaml.as_bytes().to_vec(),
        }],
        diagnostics: Vec::new(),
    })
}

fn resolve(paver_yaml: &str, env: &[(&str, &str)], flags: &Flags) -> Config {
    let report = workspace(paver_yaml);
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::unchecked(&report.workspace, &|k| env.get(k).cloned(), flags).unwrap()
}

#[test]
fn flags_over_environment_over_paver_yaml_over_defaults() {
    let yaml = "targets:\n  clickhouse:\n    url: http://from-yaml:8123\n  kafka:\n    brokers: yaml:9092\nreconcile:\n  pollInterval: 5m\n";
    let none = resolve("", &[], &Flags::default());
    assert_eq!(none.connections.clickhouse.url, DEFAULT_CLICKHOUSE_URL);
    assert_eq!(none.connections.kafka.brokers, DEFAULT_KAFKA_BROKERS);
    assert_eq!(none.reconcile.poll_interval, DEFAULT_POLL_INTERVAL);
    let yaml_only = resolve(yaml, &[], &Flags::default());
    assert_eq!(
        yaml_only.connections.clickhouse.url,
        "http://from-yaml:8123"
    );
    assert_eq!(yaml_only.connections.kafka.brokers, "yaml:9092");
    assert_eq!(yaml_only.reconcile.poll_interval, Duration::from_secs(300));
    let env = resolve(
        yaml,
        &[
            ("PAVER_CLICKHOUSE_URL", "http://from-env:8123"),
            ("PAVER_KAFKA_BROKERS", "env:9092"),
        ],
        &Flags {
            poll_interval: Some(Duration::from_secs(2)),
        },
    );
    assert_eq!(env.connections.clickhouse.url, "http://from-env:8123");
    assert_eq!(env.connections.kafka.brokers, "env:9092");
    assert_eq!(env.reconcile.poll_interval, Duration::from_secs(2));
}

#[test]
fn the_password_variable_of_the_environment_wins_over_paver_yaml() {
    let yaml = "targets:\n  clickhouse:\n    passwordFile: /run/secrets/ch\n";
    let c = resolve(yaml, &[], &Flags::default());
    assert_eq!(
        c.connections.clickhouse.password,
        Some(SecretSource::File("/run/secrets/ch".into()))
    );
    let c = resolve(
        yaml,
        &[("PAVER_CLICKHOUSE_PASSWORD", "pw")],
        &Flags::default(),
    );
    assert_eq!(
        c.connections.clickhouse.password,
        Some(SecretSource::Env("PAVER_CLICKHOUSE_PASSWORD".into()))
    );
}

#[test]
fn secrets_are_read_from_a_variable_or_a_file_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cr3t-file\n").unwrap();
    let read = SecretSource::File(file.clone())
        .read("x", &|_| None)
        .unwrap();
    assert_eq!(read.expose(), "s3cr3t-file");
    assert_eq!(format!("{read:?}"), "Secret(<redacted>)");
    let from_env = SecretSource::Env("PW".into())
        .read("x", &|k| (k == "PW").then(|| "s3cr3t-env".to_string()))
        .unwrap();
    assert_eq!(from_env.expose(), "s3cr3t-env");
    assert_eq!(
        SecretSource::Env("NOPE".into())
            .read("targets.kafka.password", &|_| None)
            .unwrap_err()
            .to_string(),
        "targets.kafka.password names the environment variable NOPE, which is not set\n  help: export NOPE, or change targets.kafka.password in paver.yaml"
    );
    assert!(matches!(
        SecretSource::File(dir.path().join("missing")).read("x", &|_| None),
        Err(ConfigError::FileUnreadable { .. })
    ));
}

#[test]
fn sasl_needs_a_mechanism_and_credentials() {
    let yaml = "targets:\n  kafka:\n    securityProtocol: SASL_SSL\n    usernameEnv: KU\n    passwordEnv: KP\n";
    let report = workspace(yaml);
    let env = |k: &str| matches!(k, "KU" | "KP").then(|| "x".to_string());
    let err = Config::resolve(&report.workspace, &env, &Flags::default()).unwrap_err();
    assert!(err.to_string().contains("needs a saslMechanism"), "{err}");
    let report = workspace(&format!("{yaml}    saslMechanism: SCRAM-SHA-512\n"));
    let config = Config::resolve(&report.workspace, &env, &Flags::default()).unwrap();
    assert_eq!(
        config.connections.kafka.sasl_mechanism,
        Some(SaslMechanism::ScramSha512)
    );
    let err = Config::resolve(&report.workspace, &|_| None, &Flags::default()).unwrap_err();
    assert!(matches!(err, ConfigError::EnvNotSet { .. }), "{err}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1d"), None);
    assert_eq!(parse_duration("s"), None);
}

/// Every leaf field of the schema: its path, its schema, and the fields its object requires
/// beside it.
type Leaf = (Vec<String>, Json, Vec<(Vec<String>, Json)>);

fn leaves(schema: &Json) -> Vec<Leaf> {
    fn deref<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
        match node.get("$ref").and_then(Json::as_str) {
            Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
            None => node,
        }
    }
    fn walk(root: &Json, node: &Json, path: Vec<String>, out: &mut Vec<(Vec<String>, Json)>) {
        let node = deref(root, node);
        if let Some(props) = node.get("properties").and_then(Json::as_object) {
            for (key, child) in props {
                let mut p = path.clone();
                p.push(key.clone());
                walk(root, child, p, out);
            }
        } else if let Some(items) = node.get("additionalProperties").filter(|a| a.is_object()) {
            let mut p = path.clone();
            p.push("c1".into());
            walk(root, items, p, out);
        } else {
            out.push((path, node.clone()));
        }
    }
    /// The fields an object requires, with sample values (set beside any of its fields).
    fn required(root: &Json, path: &[String]) -> Vec<(Vec<String>, Json)> {
        let mut node = root;
        for key in path {
            node = deref(root, node);
            node = node["properties"]
                .get(key)
                .or_else(|| node.get("additionalProperties"))
                .unwrap();
        }
        let node = deref(root, node);
        node.get("required")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(|k| {
                let mut p = path.to_vec();
                p.push(k.to_string());
                (p, deref(root, &node["properties"][k]).clone())
            })
            .collect()
    }
    let mut out = Vec::new();
    walk(schema, schema, Vec::new(), &mut out);
    out.into_iter()
        .map(|(path, field)| {
            let siblings = required(schema, &path[..path.len() - 1])
                .into_iter()
                .filter(|(p, _)| *p != path)
                .collect();
            (path, field, siblings)
        })
        .collect()
}

/// A valid value for a field, different from its default, as YAML.
fn sample(path: &[String], field: &Json) -> String {
    if let Some(values) = field.get("enum").and_then(Json::as_array) {
        let default = field.get("default");
        let pick = values
            .iter()
            .rev()
            .find(|v| Some(*v) != default && v.as_str() != Some("PLAINTEXT"))
            .unwrap();
        return format!("{pick}");
    }
    let last = path.last().unwrap().as_str();
    match field.get("type").and_then(Json::as_str) {
        Some("integer") => format!("{}", field["minimum"].as_i64().unwrap_or(0) + 1),
        Some("number") => match field.get("maximum").and_then(Json::as_f64) {
            Some(max) => format!("{}", max * 0.75),
            None => "1.5".into(),
        },
        Some("array") if last == "webhooks" => "\n  - {url: \"https://hooks.test/paver\"}".into(),
        Some("array") if last == "shards" => "\n  - \"https://sample.test:8443\"".into(),
        Some("array") => "\n  - PV001".into(),
        _ => match (last, field.get("pattern").and_then(Json::as_str)) {
            (_, Some("^https?://")) => "\"https://sample.test:8443\"".into(),
            (_, Some("^(slack://#.+|https?://.+)$")) => "\"https://alerts.test/paver\"".into(),
            (_, Some("^[^/]+/[^/]+$")) => "acme/platform".into(),
            (_, Some("^[A-Z_][A-Z0-9_]*$")) => "SAMPLE_VAR".into(),
            ("pollInterval", _) => "7s".into(),
            ("backupSchedule", _) => "\"0 3 * * 1\"".into(),
            _ => "sample-1".into(),
        },
    }
}

/// Nested YAML maps holding `fields` (paths and values, already YAML), and `empty` as an
/// empty map when nothing else is under it.
fn yaml_of(fields: &[(Vec<String>, String)], empty: &[String]) -> String {
    fn write(tree: &Json, depth: usize, out: &mut String) {
        for (key, value) in tree.as_object().unwrap() {
            let indent = "  ".repeat(depth);
            match value {
                Json::Object(map) if map.is_empty() => {
                    out.push_str(&format!("{indent}{key}: {{}}\n"))
                }
                Json::Object(_) => {
                    out.push_str(&format!("{indent}{key}:\n"));
                    write(value, depth + 1, out);
                }
                Json::String(leaf) => {
                    let leaf = leaf.replace('\n', &format!("\n{indent}"));
                    out.push_str(&format!("{indent}{key}: {leaf}\n"));
                }
                _ => unreachable!(),
            }
        }
    }
    let mut tree = Json::Object(Default::default());
    let mut place = |path: &[String], leaf: Json| {
        let mut node = &mut tree;
        for key in &path[..path.len() - 1] {
            node = node
                .as_object_mut()
                .unwrap()
                .entry(key.clone())
                .or_insert_with(|| Json::Object(Default::default()));
        }
        node.as_object_mut()
            .unwrap()
            .entry(path.last().unwrap().clone())
            .or_insert(leaf);
    };
    for (path, value) in fields {
        place(path, Json::String(value.clone()));
    }
    if !empty.is_empty() {
        place(empty, Json::Object(Default::default()));
    }
    let mut out = String::new();
    write(&tree, 0, &mut out);
    out
}

/// A setting that is accepted and ignored is worse than one refused: every field that
/// paver.schema.json accepts changes the resolved configuration when it is set.
#[test]
fn every_field_of_the_schema_is_read() {
    let schema: Json =
        serde_json::from_str(include_str!("../../../schemas/paver.schema.json")).unwrap();
    let leaves = leaves(&schema);
    assert!(leaves.len() > 30, "{} leaves", leaves.len());
    let mut ignored = Vec::new();
    for (path, field, siblings) in &leaves {
        let siblings: Vec<(Vec<String>, String)> = siblings
            .iter()
            .map(|(p, f)| (p.clone(), sample(p, f)))
            .collect();
        let mut fields = siblings.clone();
        fields.push((path.clone(), sample(path, field)));
        let with = yaml_of(&fields, &[]);
        let without = yaml_of(&siblings, &path[..path.len() - 1]);
        let report = workspace(&with);
        assert_eq!(
            report.errors(),
            0,
            "the sample for {} does not lint:\n{with}\n{}",
            path.join("."),
            paver_lint::output::human::render(&report, false)
        );
        // A field refused in this context (a cluster's own Kubernetes context) is read too.
        let outcome = |yaml: &str| {
            let report = workspace(yaml);
            format!(
                "{:?}",
                Config::unchecked(&report.workspace, &|_| None, &Flags::default())
            )
        };
        let (a, b) = (outcome(&with), outcome(&without));
        if a == b {
            ignored.push(path.join("."));
        }
    }
    assert!(ignored.is_empty(), "accepted but not read: {ignored:?}");
}

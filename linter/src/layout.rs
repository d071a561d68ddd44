//! The platform repo's layout: which path is which kind of file.
//!
//! ```text
//! paver.yaml                       repo settings
//! topics/<name>/v<N>.yaml          KafkaTopic
//! schemas/<subject>/v<N>.avsc      Avro schema, version N of <subject>
//! schemas/<subject>/subject.yaml   compatibility mode of <subject>
//! clusters/<name>/v<N>.yaml        ClickHouseCluster
//! pipelines/<name>/v<N>.yaml       DataPipeline
//! ```

use std::fmt;

/// The three kinds of versioned spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    KafkaTopic,
    ClickHouseCluster,
    DataPipeline,
}

impl Kind {
    pub const ALL: [Kind; 3] = [
        Kind::KafkaTopic,
        Kind::ClickHouseCluster,
        Kind::DataPipeline,
    ];

    /// The top-level folder its files live in.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::KafkaTopic => "topics",
            Kind::ClickHouseCluster => "clusters",
            Kind::DataPipeline => "pipelines",
        }
    }

    /// The `kind:` value of its files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::KafkaTopic => "KafkaTopic",
            Kind::ClickHouseCluster => "ClickHouseCluster",
            Kind::DataPipeline => "DataPipeline",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn from_folder(folder: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.folder() == folder)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a path of the repo is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `paver.yaml`
    Settings,
    /// `<kind folder>/<name>/v<N>.yaml`
    Spec {
        kind: Kind,
        name: String,
        version: u32,
    },
    /// `schemas/<subject>/v<N>.avsc`
    Avro { subject: String, version: u32 },
    /// `schemas/<subject>/subject.yaml`
    SubjectConfig { subject: String },
    /// Not paver's (README files, workflows, anything outside the managed folders).
    Ignored,
}

/// The folders at the top of the repo that paver manages.
pub const MANAGED: [&str; 4] = ["topics", "schemas", "clusters", "pipelines"];

/// A path that stands in a managed folder but not in the layout, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    pub reason: String,
    pub help: String,
}

/// Classify a repo-relative path (`/`-separated).
pub fn classify(path: &str) -> Result<Role, Misplaced> {
    if path == "paver.yaml" {
        return Ok(Role::Settings);
    }
    let parts: Vec<&str> = path.split('/').collect();
    let top = parts[0];
    if !MANAGED.contains(&top) || parts.len() == 1 {
        return Ok(Role::Ignored);
    }
    let file = parts[parts.len() - 1];
    if file.ends_with(".md") || file == ".gitkeep" {
        return Ok(Role::Ignored);
    }
    let expected = match top {
        "schemas" => "`schemas/<subject>/v<N>.avsc` or `schemas/<subject>/subject.yaml`",
        other => match other {
            "topics" => "`topics/<name>/v<N>.yaml`",
            "clusters" => "`clusters/<name>/v<N>.yaml`",
            _ => "`pipelines/<name>/v<N>.yaml`",
        },
    };
    let misplaced = |reason: String| {
        let help = match suggest(file, top) {
            Some(name) => {
                format!("rename it to `{name}`: files in `{top}/` are laid out as {expected}")
            }
            None => format!("files in `{top}/` are laid out as {expected}"),
        };
        Misplaced { reason, help }
    };
    if parts.len() != 3 {
        return Err(misplaced(format!(
            "`{path}` is not in the layout of `{top}/`"
        )));
    }
    let name = parts[1].to_string();
    if top == "schemas" {
        if file == "subject.yaml" {
            return Ok(Role::SubjectConfig { subject: name });
        }
        return match version_of(file, "avsc") {
            Ok(version) => Ok(Role::Avro {
                subject: name,
                version,
            }),
            Err(reason) => Err(misplaced(reason)),
        };
    }
    let kind = Kind::from_folder(top).expect("managed folder");
    match version_of(file, "yaml") {
        Ok(version) => Ok(Role::Spec {
            kind,
            name,
            version,
        }),
        Err(reason) => Err(misplaced(reason)),
    }
}

/// The name a misnamed version file most likely should have (`v02.yml` → `v2.yaml`).
fn suggest(file: &str, top: &str) -> Option<String> {
    let ext = if top == "schemas" { "avsc" } else { "yaml" };
    let (stem, _) = file.rsplit_once('.')?;
    let digits = stem.strip_prefix(['v', 'V'])?;
    let n: u32 = digits.parse().ok().filter(|n| *n > 0)?;
    let name = format!("v{n}.{ext}");
    (name != file).then_some(name)
}

/// N of `v<N>.<ext>`: a positive integer written without leading zeros.
fn version_of(file: &str, ext: &str) -> Result<u32, String> {
    let stem = match file.rsplit_once('.') {
        Some((stem, e)) if e == ext => stem,
        Some((stem, "yml")) if ext == "yaml" => {
            return Err(format!(
                "`{file}` ends in `.yml`; paver reads `{stem}.yaml`"
            ));
        }
        _ => return Err(format!("`{file}` is not a `v<N>.{ext}` file")),
    };
    let digits = stem
        .strip_prefix('v')
        .ok_or_else(|| format!("`{file}` is not a `v<N>.{ext}` file"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{file}` is not a `v<N>.{ext}` file"));
    }
    if digits.starts_with('0') {
        return Err(format!(
            "`{file}`: versions start at 1 and have no leading zeros"
        ));
    }
    digits
        .parse::<u32>()
        .map_err(|_| format!("`{file}`: the version number is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_layout() {
        assert_eq!(classify("paver.yaml"), Ok(Role::Settings));
        assert_eq!(
            classify("topics/user-events/v12.yaml"),
            Ok(Role::Spec {
                kind: Kind::KafkaTopic,
                name: "user-events".into(),
                version: 12
            })
        );
        assert_eq!(
            classify("schemas/user-events/v2.avsc"),
            Ok(Role::Avro {
                subject: "user-events".into(),
                version: 2
            })
        );
        assert_eq!(classify("README.md"), Ok(Role::Ignored));
        assert_eq!(classify(".github/workflows/pr.yml"), Ok(Role::Ignored));
        assert_eq!(classify("pipelines/x/README.md"), Ok(Role::Ignored));
        assert!(classify("topics/a/v1.yml")
            .unwrap_err()
            .reason
            .contains(".yml"));
        assert!(classify("topics/a/v02.yml")
            .unwrap_err()
            .help
            .starts_with("rename it to `v2.yaml`"));
        assert!(classify("topics/a/v01.yaml").is_err());
        assert!(classify("topics/a/v0.yaml").is_err());
        assert!(classify("topics/a.yaml").is_err());
        assert!(classify("topics/a/b/v1.yaml").is_err());
        assert!(classify("schemas/a/v1.json").is_err());
    }
}

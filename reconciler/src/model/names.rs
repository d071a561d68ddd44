//! Names of the resources paver makes, and the typed id every step, journal entry and
//! inventory row carries.

use serde::{Deserialize, Serialize};

use super::{ObjectRef, TableName};

/// The first 12 bytes of the SHA-256 of `bytes`, in hex: content hashes, and the suffix
/// that keeps a shortened name unique.
pub fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Names of a pipeline version's resources: `__paver_<pipeline>_v<N>` (the pipeline's
/// hyphens as underscores: names are DNS labels, so this is one to one).
pub fn staging_name(pipeline: &str, version: u32) -> String {
    format!("__paver_{}_v{version}", pipeline.replace('-', "_"))
}

/// The name of a ClickHouseCluster's cluster inside its ClickHouseInstallation
/// (`spec.configuration.clusters[].name`, which the Altinity operator's CRD caps at
/// `^[a-zA-Z0-9-]{0,15}$`): the resource's name when it fits, else its first 10
/// characters and 4 hex digits of its hash (stable, and distinct for distinct names).
/// Resource names are DNS labels, so this always gives a valid name.
pub fn installation_cluster_name(resource: &str) -> String {
    if resource.len() <= 15 && is_installation_cluster_name(resource) {
        return resource.to_string();
    }
    let head: String = resource
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(10)
        .collect();
    format!(
        "{}-{}",
        head.trim_end_matches('-'),
        &short_hash(resource.as_bytes())[..4]
    )
}

/// Whether a name is a valid ClickHouseInstallation cluster name (`^[a-zA-Z0-9-]{1,15}$`).
pub fn is_installation_cluster_name(name: &str) -> bool {
    (1..=15).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The ledger of a database: the last offset every pipeline inserted, per partition.
pub const LEDGER: &str = "__paver_offsets";

/// Which pipeline version a paver table of a database belongs to, from its name.
pub fn version_of_staging(pipeline: &str, name: &str) -> Option<u32> {
    name.strip_prefix(&staging_prefix(pipeline))?.parse().ok()
}

/// What the names of a pipeline's staging tables (and their views) start with.
pub fn staging_prefix(pipeline: &str) -> String {
    format!("__paver_{}_v", pipeline.replace('-', "_"))
}

/// The transform view and the offsets view of a staging table.
pub fn views_of(staging: &TableName) -> (TableName, TableName) {
    let named = |suffix: &str| TableName {
        database: staging.database.clone(),
        name: format!("{}{suffix}", staging.name),
    };
    (named("_mv"), named("_mv_offsets"))
}

/// Physical table `n` of a sink that became a Merge table: `<table>__v<n>`.
pub fn generation_name(table: &TableName, n: u32) -> TableName {
    TableName {
        database: table.database.clone(),
        name: format!("{}__v{n}", table.name),
    }
}

/// On a ClickHouse cluster, the table on every node that the sink's `Distributed` table
/// reads: a Merge over the node's physical generations (`<table>__v<N>`).
pub fn merge_of(table: &TableName) -> TableName {
    TableName {
        database: table.database.clone(),
        name: format!("{}__paver_merge", table.name),
    }
}

/// Which generation of `sink` a table is (`<sink>__v<n>`), if it is one.
pub fn generation_of(sink: &TableName, table: &TableName) -> Option<u32> {
    let (of, generation) = sink_of_generation(table)?;
    (of == *sink).then_some(generation)
}

/// The sink a physical generation (`<sink>__v<n>`) belongs to, and its number: found from
/// the name alone, so that a table is matched to its sink by a lookup, not a search.
pub fn sink_of_generation(table: &TableName) -> Option<(TableName, u32)> {
    let (sink, generation) = table.name.rsplit_once("__v")?;
    let generation = generation.parse().ok()?;
    Some((
        TableName {
            database: table.database.clone(),
            name: sink.to_string(),
        },
        generation,
    ))
}

/// ClickHouse rewrites keys (`(a, b)` is stored as `a, b`; spaces and quotes vary): compare
/// them in one spelling.
pub fn normalize_key(key: &str) -> String {
    let compact: String = key
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '`' && *c != '"')
        .collect();
    strip_outer_parens(&compact).to_string()
}

fn strip_outer_parens(text: &str) -> &str {
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return text;
    };
    // Only when the parentheses enclose the whole: `(a),(b)` keeps them.
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return text;
        }
    }
    inner
}

/// A managed resource: what a step concerns, what the journal and the inventory record.
/// Written `topic:<name>`, `database:<name>`, `table:<db>.<t>`, `pipeline:<name>`,
/// `kube:<Kind>/<namespace>/<name>` (the inventory's and the journal's text form).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ResourceId {
    Topic(String),
    Database(String),
    Table(TableName),
    Pipeline(String),
    /// A Kubernetes object: `Kind/namespace/name` (its apiVersion is not part of the id).
    Kube {
        kind: String,
        namespace: String,
        name: String,
    },
}

impl ResourceId {
    pub fn topic(name: &str) -> ResourceId {
        ResourceId::Topic(name.to_string())
    }
    pub fn database(name: &str) -> ResourceId {
        ResourceId::Database(name.to_string())
    }
    pub fn table(table: &TableName) -> ResourceId {
        ResourceId::Table(table.clone())
    }
    pub fn pipeline(name: &str) -> ResourceId {
        ResourceId::Pipeline(name.to_string())
    }
    pub fn kube(object: &ObjectRef) -> ResourceId {
        ResourceId::Kube {
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
        }
    }
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceId::Topic(name) => write!(f, "topic:{name}"),
            ResourceId::Database(name) => write!(f, "database:{name}"),
            ResourceId::Table(table) => write!(f, "table:{table}"),
            ResourceId::Pipeline(name) => write!(f, "pipeline:{name}"),
            ResourceId::Kube {
                kind,
                namespace,
                name,
            } => write!(f, "kube:{kind}/{namespace}/{name}"),
        }
    }
}

/// A resource id that is none of the known forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a resource id (topic:, database:, table:<db>.<t>, pipeline:, kube:<Kind>/<ns>/<name>)")]
pub struct BadResourceId(pub String);

impl std::str::FromStr for ResourceId {
    type Err = BadResourceId;

    fn from_str(text: &str) -> Result<ResourceId, BadResourceId> {
        let bad = || BadResourceId(text.to_string());
        let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
        if rest.is_empty() {
            return Err(bad());
        }
        Ok(match kind {
            "topic" => ResourceId::Topic(rest.to_string()),
            "database" => ResourceId::Database(rest.to_string()),
            "pipeline" => ResourceId::Pipeline(rest.to_string()),
            "table" => {
                // Database names cannot hold a dot (paver's SQL identifiers are plain).
                let (database, name) = rest.split_once('.').ok_or_else(bad)?;
                ResourceId::Table(TableName {
                    database: database.to_string(),
                    name: name.to_string(),
                })
            }
            "kube" => {
                let mut parts = rest.splitn(3, '/');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(kind), Some(namespace), Some(name)) => ResourceId::Kube {
                        kind: kind.to_string(),
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    },
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        })
    }
}

impl From<ResourceId> for String {
    fn from(id: ResourceId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for ResourceId {
    type Error = BadResourceId;
    fn try_from(text: String) -> Result<ResourceId, BadResourceId> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_round_trip_through_their_text() {
        let ids = [
            ResourceId::topic("user-events"),
            ResourceId::database("analytics"),
            ResourceId::table(&TableName {
                database: "analytics".into(),
                name: "user_events__v2".into(),
            }),
            ResourceId::pipeline("p"),
            ResourceId::Kube {
                kind: "CronJob".into(),
                namespace: "data".into(),
                name: "m-backup".into(),
            },
        ];
        for id in ids {
            let text = id.to_string();
            assert_eq!(text.parse::<ResourceId>().unwrap(), id, "{text}");
        }
        assert!("tablex".parse::<ResourceId>().is_err());
        assert!("table:nodot".parse::<ResourceId>().is_err());
        assert!("widget:x".parse::<ResourceId>().is_err());
    }

    #[test]
    fn keys_compare_in_one_spelling() {
        assert_eq!(normalize_key("(userId, eventTime)"), "userId,eventTime");
        assert_eq!(normalize_key("userId, eventTime"), "userId,eventTime");
        assert_eq!(normalize_key("toYYYYMM(eventTime)"), "toYYYYMM(eventTime)");
        assert_eq!(normalize_key("(a),(b)"), "(a),(b)");
    }
}

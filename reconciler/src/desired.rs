//! What a revision wants to exist, read from its linted specs: the active version of every
//! topic, and the database and sink table of the active version of every pipeline.

use paver_lint::clickhouse::column_type;
use paver_lint::layout::Kind;
use paver_lint::workspace::Workspace;
use paver_lint::yaml::Node;

use crate::plan::{Column, Desired, Table, TableName, Topic, Transform};

/// The desired state of a workspace that linted clean.
pub fn desired(ws: &Workspace) -> Desired {
    let mut out = Desired::default();
    for (file, root) in ws.active_specs(Kind::KafkaTopic) {
        let Some((_, name, _)) = file.spec() else {
            continue;
        };
        let int = |k: &str| root.path(&["spec", k]).and_then(Node::as_i64).unwrap_or(1) as i32;
        let config = root
            .path(&["spec", "config"])
            .map(Node::as_map)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| Some((e.key.clone(), e.value.scalar_text()?)))
            .collect();
        out.topics.insert(
            name.to_string(),
            Topic {
                partitions: int("partitions"),
                replication_factor: int("replicationFactor"),
                config,
            },
        );
    }
    let (universe, index) = ws.avro_universe();
    for (file, root) in ws.active_specs(Kind::DataPipeline) {
        let Some((_, pipeline, version)) = file.spec() else {
            continue;
        };
        let text = |path: &[&str]| root.path(path).and_then(Node::as_str);
        let Some((database, name)) =
            text(&["spec", "sink", "table"]).and_then(|t| t.split_once('.'))
        else {
            continue;
        };
        let Some(schema_id) = text(&["spec", "source", "schema"]).and_then(|r| ws.schema_ref_id(r))
        else {
            continue;
        };
        let (Some(fields), Some(at)) =
            (ws.avro_fields(&ws.files[schema_id]), index.get(&schema_id))
        else {
            continue;
        };
        let source_columns: Vec<Column> = fields
            .iter()
            .map(|f| Column {
                name: f.name.clone(),
                ty: Some(column_type(&universe, *at, &f.ty)),
            })
            .collect();
        let type_of = |field: &str| {
            source_columns
                .iter()
                .find(|c| c.name == field)
                .and_then(|c| c.ty.clone())
        };
        let mut columns = Vec::new();
        match ws.transform(file) {
            Some(Ok(t)) => {
                if t.wildcard {
                    columns.extend(source_columns.iter().cloned());
                }
                for (output, copies) in t.outputs.iter().zip(&t.copies) {
                    columns.push(Column {
                        name: output.clone(),
                        ty: copies.as_deref().and_then(type_of),
                    });
                }
            }
            _ => columns.extend(source_columns.iter().cloned()),
        }
        // Keys and the query go into DDL as the parser renders them, never as typed.
        let key = |k: &str| text(&["spec", "sink", k]).and_then(paver_lint::sql::render_key);
        let ttl_days = text(&["spec", "sink", "cluster"])
            .and_then(|c| ws.resource(Kind::ClickHouseCluster, c))
            .and_then(|v| v.values().next_back())
            .and_then(|id| ws.files[*id].at(&["spec", "retentionDays"]))
            .and_then(Node::as_i64)
            .map(|d| d as u32);
        let table = TableName {
            database: database.to_string(),
            name: name.to_string(),
        };
        out.databases.insert(database.to_string());
        out.tables.insert(
            table,
            Table {
                columns,
                partition_by: key("partitionKey"),
                order_by: key("orderKey").unwrap_or_else(|| "tuple()".to_string()),
                ttl_days,
                transform: Transform {
                    source_columns,
                    query: text(&["spec", "transform", "query"])
                        .and_then(paver_lint::sql::render_query),
                },
                owner: format!("pipelines/{pipeline} v{version}"),
            },
        );
    }
    out
}

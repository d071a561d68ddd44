//! What a revision wants to exist, read from its linted specs: the active version of every
//! topic, the database and sink table of the active version of every pipeline, and the
//! retained versions of every pipeline with what their ingestion needs.

use std::collections::BTreeMap;

use paver_lint::clickhouse::column_type;
use paver_lint::layout::Kind;
use paver_lint::workspace::Workspace;
use paver_lint::yaml::Node;

use crate::model::{
    staging_name, Column, Desired, IngestSpec, Pipeline, PipelineVersion, Table, TableName, Topic,
    Transform, ViewSpec, LEDGER,
};

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
    let retain = ws
        .files
        .iter()
        .find(|f| f.path == "paver.yaml")
        .and_then(|f| f.at(&["reconcile", "retainVersions"]))
        .and_then(Node::as_i64)
        .unwrap_or(3)
        .max(1) as usize;
    let pipelines = ws
        .resources
        .get(&Kind::DataPipeline)
        .cloned()
        .unwrap_or_default();
    for (pipeline, versions) in &pipelines {
        let mut parts = BTreeMap::new();
        for (version, id) in versions.iter().rev().take(retain) {
            let file = &ws.files[*id];
            let Some(root) = file.root.as_ref().filter(|_| file.valid) else {
                continue;
            };
            if let Some(p) = version_parts(ws, &universe, &index, pipeline, *version, file, root) {
                parts.insert(*version, p);
            }
        }
        let Some((&live, active)) = parts.iter().next_back() else {
            continue;
        };
        let sink = active.sink.clone();
        out.databases.insert(sink.database.clone());
        out.tables.insert(sink.clone(), active.table.clone());
        let versions = parts
            .into_iter()
            .filter(|(_, p)| p.sink.database == sink.database)
            .map(|(version, p)| (version, p.version))
            .collect();
        out.pipelines.insert(
            pipeline.clone(),
            Pipeline {
                live,
                versions,
                database: sink.database.clone(),
            },
        );
    }
    out
}

/// What one version of a pipeline wants.
struct Parts {
    sink: TableName,
    table: Table,
    version: PipelineVersion,
}

fn version_parts(
    ws: &Workspace,
    universe: &paver_lint::avro::Universe<'_>,
    index: &BTreeMap<usize, usize>,
    pipeline: &str,
    version: u32,
    file: &paver_lint::workspace::File,
    root: &Node,
) -> Option<Parts> {
    let text = |path: &[&str]| root.path(path).and_then(Node::as_str);
    let (database, name) = text(&["spec", "sink", "table"])?.split_once('.')?;
    let schema_ref = text(&["spec", "source", "schema"])?;
    let schema_id = ws.schema_ref_id(schema_ref)?;
    let fields = ws.avro_fields(&ws.files[schema_id])?;
    let at = index.get(&schema_id)?;
    let source_columns: Vec<Column> = fields
        .iter()
        .map(|f| Column {
            name: f.name.clone(),
            ty: Some(column_type(universe, *at, &f.ty)),
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
    let sink = TableName {
        database: database.to_string(),
        name: name.to_string(),
    };
    let query = text(&["spec", "transform", "query"]).map(str::to_string);
    let table = Table {
        columns,
        partition_by: key("partitionKey"),
        order_by: key("orderKey").unwrap_or_else(|| "tuple()".to_string()),
        shard_by: key("shardingKey"),
        ttl_days,
        transform: Transform {
            source_columns: source_columns.clone(),
            query: query.as_deref().and_then(paver_lint::sql::render_query),
        },
        owner: format!("pipelines/{pipeline} v{version}"),
    };
    let in_db = |n: String| TableName {
        database: database.to_string(),
        name: n,
    };
    let staging = in_db(staging_name(pipeline, version));
    let view = ViewSpec {
        pipeline: pipeline.to_string(),
        version,
        staging: staging.clone(),
        view: in_db(format!("{}_mv", staging.name)),
        offsets: in_db(format!("{}_mv_offsets", staging.name)),
        sink: sink.clone(),
        ledger: in_db(LEDGER.to_string()),
        source_columns: source_columns.clone(),
        query,
    };
    let subject = schema_ref.rsplit_once('@')?.0;
    let writers = ws
        .subjects
        .get(subject)
        .map(|s| {
            s.versions
                .iter()
                .map(|(v, id)| (*v, ws.files[*id].text.clone()))
                .collect()
        })
        .unwrap_or_default();
    let group = text(&["spec", "source", "consumerGroup"]).unwrap_or(pipeline);
    let ingest = IngestSpec {
        pipeline: pipeline.to_string(),
        version,
        topic: text(&["spec", "source", "topic"])?.to_string(),
        group: format!("{group}-v{version}"),
        previous_group: None,
        dead_letter_topic: text(&["spec", "source", "deadLetterTopic"])
            .map(str::to_string)
            .unwrap_or_else(|| format!("{pipeline}-dlq")),
        staging,
        views: vec![view.view.clone(), view.offsets.clone()],
        ledger: view.ledger.clone(),
        columns: source_columns,
        reader: ws.files[schema_id].text.clone(),
        writers,
    };
    Some(Parts {
        sink,
        table,
        version: PipelineVersion {
            version,
            view,
            ingest,
        },
    })
}

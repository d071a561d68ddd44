//! A model of the real systems for the planner's property tests: each action's effect, as
//! the providers produce it (the providers themselves are tested against the real servers
//! in the top-level tests/ crate).

use paver::plan::{
    Action, ClickHouseAction, KafkaAction, Observed, ObservedTable, PipelineAction, TableName,
};

/// What an action does to the world, as Kafka and ClickHouse do it.
pub fn simulate(world: &mut Observed, action: &Action) {
    match action {
        Action::Kafka(KafkaAction::CreateTopic { name, topic }) => {
            world.topics.insert(name.clone(), topic.clone());
        }
        Action::Kafka(KafkaAction::DeleteTopic { name }) => {
            world.topics.remove(name);
        }
        Action::Kafka(KafkaAction::AlterTopicConfig { name, set, delete }) => {
            if let Some(t) = world.topics.get_mut(name) {
                t.config.extend(set.clone());
                for k in delete {
                    t.config.remove(k);
                }
            }
        }
        Action::Kafka(KafkaAction::CreatePartitions { name, count }) => {
            if let Some(t) = world.topics.get_mut(name) {
                t.partitions = *count;
            }
        }
        Action::ClickHouse(ClickHouseAction::CreateDatabase { name }) => {
            world.databases.insert(name.clone());
        }
        Action::ClickHouse(ClickHouseAction::DropDatabase { name }) => {
            world.databases.remove(name);
            world.tables.retain(|t, _| &t.database != name);
        }
        Action::ClickHouse(ClickHouseAction::CreateTable { table, spec }) => {
            world.tables.insert(
                table.clone(),
                ObservedTable {
                    columns: spec
                        .columns
                        .iter()
                        .map(|c| (c.name.clone(), c.ty.clone().unwrap_or_default()))
                        .collect(),
                    partition_by: spec.partition_by.clone().unwrap_or_default(),
                    order_by: spec.order_by.clone(),
                    engine: "MergeTree".into(),
                    ..Default::default()
                },
            );
        }
        Action::ClickHouse(ClickHouseAction::DropTable { table }) => {
            world.tables.remove(table);
        }
        Action::ClickHouse(ClickHouseAction::AddColumn { table, column, .. }) => {
            if let Some(t) = world.tables.get_mut(table) {
                t.columns
                    .push((column.name.clone(), column.ty.clone().unwrap_or_default()));
            }
        }
        Action::ClickHouse(ClickHouseAction::DropColumn { table, name }) => {
            if let Some(t) = world.tables.get_mut(table) {
                t.columns.retain(|(n, _)| n != name);
            }
        }
        Action::ClickHouse(ClickHouseAction::CreateStaging { table, columns }) => {
            let mut cols: Vec<(String, String)> = columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone().unwrap_or_default()))
                .collect();
            cols.push(("_paver_partition".into(), "Int32".into()));
            cols.push(("_paver_offset".into(), "Int64".into()));
            world.tables.insert(
                table.clone(),
                ObservedTable {
                    columns: cols,
                    partition_by: String::new(),
                    order_by: String::new(),
                    engine: "Null".into(),
                    ..Default::default()
                },
            );
        }
        Action::ClickHouse(ClickHouseAction::CreateLedger { table }) => {
            world.tables.insert(table.clone(), ObservedTable::default());
        }
        Action::ClickHouse(ClickHouseAction::CreateViews { spec }) => {
            world
                .tables
                .insert(spec.view.clone(), view_table(&spec.view));
            world
                .tables
                .insert(spec.offsets.clone(), view_table(&spec.offsets));
        }
        Action::ClickHouse(ClickHouseAction::DropViews { view, offsets }) => {
            world.tables.remove(view);
            world.tables.remove(offsets);
        }
        Action::Pipeline(PipelineAction::Activate { spec, refresh }) => {
            if let Some(v) = refresh {
                world.tables.insert(v.view.clone(), view_table(&v.view));
                world
                    .tables
                    .insert(v.offsets.clone(), view_table(&v.offsets));
            }
            world.live.insert(spec.pipeline.clone(), (**spec).clone());
        }
        Action::Pipeline(PipelineAction::Deactivate { pipeline }) => {
            world.live.remove(pipeline);
        }
        Action::ClickHouse(ClickHouseAction::SwitchGeneration {
            table,
            create,
            spec,
            original,
            others,
        }) => {
            // As the provider does: the new physical table with the wanted columns, then
            // every physical table gets every column, in the order of the Merge table
            // being replaced (if any), then the new table's, then the older tables'.
            let fresh: Vec<(String, String)> = spec
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone().unwrap_or_default()))
                .collect();
            world.tables.insert(
                create.clone(),
                ObservedTable {
                    columns: fresh,
                    partition_by: spec.partition_by.clone().unwrap_or_default(),
                    order_by: spec.order_by.clone(),
                    engine: "MergeTree".into(),
                    ..Default::default()
                },
            );
            let mut physicals: Vec<TableName> = others.clone();
            if original.is_some() {
                physicals.push(table.clone());
            }
            physicals.push(create.clone());
            let mut union: Vec<(String, String)> = match original {
                None => world
                    .tables
                    .get(table)
                    .map(|t| t.columns.clone())
                    .unwrap_or_default(),
                Some(_) => Vec::new(),
            };
            for p in physicals.iter().rev() {
                for c in world
                    .tables
                    .get(p)
                    .map(|t| t.columns.clone())
                    .unwrap_or_default()
                {
                    if !union.iter().any(|(n, _)| *n == c.0) {
                        union.push(c);
                    }
                }
            }
            for p in &physicals {
                if let Some(t) = world.tables.get_mut(p) {
                    for c in &union {
                        if !t.columns.iter().any(|(n, _)| *n == c.0) {
                            t.columns.push(c.clone());
                        }
                    }
                }
            }
            let old = world.tables.remove(table);
            if let (Some(original), Some(old)) = (original, old) {
                world.tables.insert(original.clone(), old);
            }
            world.tables.insert(
                table.clone(),
                ObservedTable {
                    columns: union,
                    engine: "Merge".into(),
                    ..Default::default()
                },
            );
        }
        Action::ClickHouse(ClickHouseAction::UnswitchGeneration {
            table,
            create,
            original,
            added,
        }) => {
            world.tables.remove(create);
            if let Some(original) = original {
                if let Some(old) = world.tables.remove(original) {
                    world.tables.insert(table.clone(), old);
                }
            }
            for (t, column) in added {
                if let Some(h) = world.tables.get_mut(t) {
                    h.columns.retain(|(n, _)| n != column);
                }
            }
        }
        // Kubernetes objects are modelled in kube_plan_props.rs.
        Action::Kube(_) => {}
        Action::Pipeline(PipelineAction::AwaitHandover { .. }) => {}
        Action::ClickHouse(ClickHouseAction::RestoreViews { view, statements }) => {
            world.tables.insert(view.clone(), view_table(view));
            if statements.len() > 1 {
                let offsets = TableName {
                    database: view.database.clone(),
                    name: format!("{}_offsets", view.name),
                };
                world.tables.insert(offsets.clone(), view_table(&offsets));
            }
        }
    }
}

/// A materialized view as ClickHouse shows it: its statement, for a retirement's undo.
pub fn view_table(name: &TableName) -> ObservedTable {
    ObservedTable {
        engine: "MaterializedView".into(),
        create_query: format!("CREATE MATERIALIZED VIEW {name} TO sink AS SELECT 1"),
        ..Default::default()
    }
}

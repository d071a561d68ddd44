//! The providers: each only observes and runs actions. The executor and the planner never
//! talk to a server themselves.

pub mod clickhouse;
pub mod kafka;

use crate::executor::Executes;
use crate::plan::{Action, Desired, Observed};

/// The real systems a revision is applied to.
pub struct Targets {
    pub kafka: kafka::Kafka,
    pub clickhouse: clickhouse::ClickHouse,
    /// The state store, where the live version of every pipeline is recorded for the
    /// ingestion workers.
    pub state: std::path::PathBuf,
    /// How the servers are reached (recorded with each live version for the workers).
    pub connections: crate::config::Connections,
    /// Kubernetes, when a target is configured (see [`crate::kube`]).
    pub kube: Option<crate::kube::provider::Kube>,
}

impl Targets {
    /// Observe what exists of what `desired` names: a fixed number of requests per
    /// provider, whatever the number of resources.
    pub async fn observe(&self, desired: &Desired) -> Result<Observed, String> {
        let topics = self.kafka.observe(&desired.topics).await?;
        let (databases, tables) = self.clickhouse.observe(&desired.databases).await?;
        Ok(Observed {
            topics,
            databases: databases
                .into_iter()
                .filter(|d| desired.databases.contains(d))
                .collect(),
            tables,
            live: Default::default(),
        })
    }
}

impl Targets {
    /// Requests sent so far: (ClickHouse queries, Kafka requests).
    pub fn requests(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.clickhouse.queries.load(Relaxed),
            self.kafka.requests.load(Relaxed),
        )
    }
}

impl Targets {
    /// Where the workers find the servers and how they connect (no secret values).
    pub fn endpoints(&self) -> crate::ingest::spec::Endpoints {
        self.connections.clone()
    }

    /// The cut-over: the version's views made anew over the sink as it is now, then the
    /// live record switched (the workers follow it).
    async fn pipelines(&self, action: &Action) -> Result<bool, String> {
        match action {
            Action::Activate { spec, refresh } => {
                if let Some(view) = refresh {
                    self.clickhouse.create_views(view).await?;
                }
                let store = crate::store::Store::open(&self.state).map_err(|e| e.to_string())?;
                store
                    .set_live(spec, &self.endpoints())
                    .map_err(|e| e.to_string())?;
            }
            Action::Deactivate { pipeline } => {
                let store = crate::store::Store::open(&self.state).map_err(|e| e.to_string())?;
                store.clear_live(pipeline).map_err(|e| e.to_string())?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Executes for Targets {
    async fn execute(&self, action: &Action) -> Result<(), String> {
        let kube = match &self.kube {
            Some(kube) => kube.execute(action).await?,
            None => false,
        };
        if kube
            || self.kafka.execute(action).await?
            || self.clickhouse.execute(action).await?
            || self.pipelines(action).await?
        {
            Ok(())
        } else {
            Err(format!("no provider runs {action:?}"))
        }
    }
}

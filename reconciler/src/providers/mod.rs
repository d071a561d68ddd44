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

impl Executes for Targets {
    async fn execute(&self, action: &Action) -> Result<(), String> {
        let kube = match &self.kube {
            Some(kube) => kube.execute(action).await?,
            None => false,
        };
        if kube || self.kafka.execute(action).await? || self.clickhouse.execute(action).await? {
            Ok(())
        } else {
            Err(format!("no provider runs {action:?}"))
        }
    }
}

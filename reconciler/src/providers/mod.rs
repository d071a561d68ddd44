//! The providers: each only observes and runs actions. The executor and the planner never
//! talk to a server themselves.

pub mod clickhouse;
pub mod kafka;

use crate::error::ProviderError;
use crate::plan::{Desired, Observed};

/// The real systems a revision is applied to.
pub struct Targets {
    /// Shared with the next reconcile of `paver run` (see [`crate::reconcile::Cache`]).
    pub kafka: std::sync::Arc<kafka::Kafka>,
    pub clickhouse: clickhouse::ClickHouse,
    /// How the servers are reached (recorded with each live version for the workers).
    pub connections: crate::model::connections::Connections,
    /// Kubernetes, when a target is configured (see [`crate::kube`]).
    pub kube: Option<crate::kube::provider::Kube>,
}

impl Targets {
    /// Observe what exists of what `desired` names: a fixed number of requests per
    /// provider, whatever the number of resources.
    pub async fn observe(&self, desired: &Desired) -> Result<Observed, ProviderError> {
        // The providers are asked at the same time: a reconcile waits for the slower one,
        // not for both in turn.
        let clickhouse = async {
            let started = std::time::Instant::now();
            let observed = if self.clickhouse.cluster.is_some() {
                self.clickhouse.observe_cluster(&desired.databases).await
            } else {
                self.clickhouse
                    .observe(&desired.databases)
                    .await
                    .map(|(d, t)| (d, t, Default::default()))
            };
            took("ClickHouse", started);
            observed
        };
        let kafka = async {
            let started = std::time::Instant::now();
            let topics = self.kafka.observe(&desired.topics).await;
            took("Kafka", started);
            topics
        };
        let (topics, observed) = tokio::join!(kafka, clickhouse);
        let topics = topics.map_err(|e| ProviderError::transient(e).context("observing Kafka"))?;
        let (databases, tables, missing) =
            observed.map_err(|e| ProviderError::from(e).context("observing ClickHouse"))?;
        Ok(Observed {
            topics,
            databases: databases
                .into_iter()
                .filter(|d| desired.databases.contains(d))
                .collect(),
            tables,
            live: Default::default(),
            missing,
        })
    }
}

/// How long observing a provider took, for whoever profiles a reconcile (`PAVER_LOG=info`).
fn took(provider: &str, since: std::time::Instant) {
    tracing::info!(
        "observe {provider}: {:.1} ms",
        since.elapsed().as_secs_f64() * 1000.0
    );
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
    pub fn endpoints(&self) -> crate::model::Endpoints {
        self.connections.clone()
    }
}

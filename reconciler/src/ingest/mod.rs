//! Ingestion: reading a pipeline's topic into ClickHouse. The wire format ([`codec`]),
//! records to rows ([`rows`], with the Schema Registry in [`registry`]), the live version's
//! description ([`spec`]) and the worker: [`supervisor`] follows the live version and
//! heartbeats which one it runs, [`worker`] runs one version (consume, [`batch`], start at
//! [`offsets`]), [`sink`] inserts into the version's staging table (its views run the
//! transform into the sink and record the offsets in the ledger), [`dead_letter`] writes
//! what cannot be ingested, [`status`] is what it reports, [`handover`] is the cut-over's
//! wait for the workers, [`lease`] fences a group's late members, and [`stop`] is the one stop token every wait honours.

pub mod batch;
pub mod codec;
pub mod consume;
pub mod dead_letter;
pub mod group;
pub mod handover;
pub mod lease;
pub mod offsets;
pub mod registry;
pub mod row_binary;
pub mod rows;
pub mod shards;
pub mod signal;
pub mod sink;
pub mod spec;
pub mod status;
pub mod stop;
pub mod supervisor;
pub mod worker;

/// Why a worker could not run a pipeline version (it tries again; nothing it read is
/// committed).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] crate::providers::clickhouse::ClickHouseError),
    #[error(transparent)]
    Connect(#[from] crate::providers::clickhouse::ConnectError),
    #[error(transparent)]
    Shard(#[from] shards::ShardError),
    #[error(transparent)]
    KafkaOpen(#[from] crate::providers::kafka::KafkaOpenError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("Kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("the pipeline's schemas: {0}")]
    Schemas(String),
    #[error("the views of v{version} ({views}) do not exist: refusing to insert into a staging table that would swallow rows")]
    ViewsMissing { version: u32, views: String },
    #[error(transparent)]
    DeadLetter(#[from] dead_letter::DeadLetterError),
    /// A consumer group's member gives its partitions up ([`lease`]): it joins again.
    #[error("{0}: no insert starts any more, joining the group again")]
    Fenced(String),
    #[error("a background task of the worker failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

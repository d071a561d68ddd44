//! paver, the reconciler: pulls the merged platform repo and converges Kafka and ClickHouse
//! to it, one revision at a time, as a transaction.
//!
//! A revision travels one way: [`source`] (git, or a folder) → lint and [`desired`] (the
//! `paver-lint` library loads and checks it, exactly as the pull-request check did) →
//! [`plan`] (pure: desired × observed) → [`executor`] (journal, steps, compensation) →
//! [`providers`] (Kafka, ClickHouse) and [`store`] (SQLite). [`reconcile`] drives it.
//! [`config`] resolves how the servers are reached, once per revision; [`doctor`] checks it.

pub mod cli;
pub mod config;
pub mod cutover;
pub mod desired;
pub mod doctor;
pub mod election;
pub mod error;
pub mod executor;
pub mod http;
pub mod ingest;
pub mod kube;
pub mod logging;
pub mod model;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod providers;
pub mod reconcile;
pub mod registry;
pub mod server;
pub mod source;
pub mod store;
pub mod tls;

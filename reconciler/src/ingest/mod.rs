//! Ingestion: reading a pipeline's topic into ClickHouse. The wire format ([`codec`]),
//! records to rows ([`rows`]), the live version's description ([`spec`]) and the worker
//! ([`worker`]): consume, decode, insert into the version's staging table (its views run
//! the transform into the sink and record the offsets in the ledger), dead-letter what
//! cannot be ingested, commit offsets after the insert.

pub mod codec;
pub mod rows;
pub mod spec;
pub mod worker;

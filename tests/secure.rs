//! Secured servers, for real (the servers in `paver_e2e::secured`): a ClickHouse 18.16 of
//! the test's own serving https with a password user, a tansu broker behind stunnel (TLS,
//! and mutual TLS), a Schema Registry double behind stunnel (https, basic auth); `paver
//! doctor`'s exact line for each thing that can be wrong, and its exit codes; a whole
//! platform applied and ingested through them; and every command and endpoint run with
//! known secret values, whose outputs and state file are searched for them.
//!
//! SASL is tested against the broker as far as tansu goes: a SCRAM exchange with a tansu
//! that requires it, refused (its SCRAM users cannot be created on a fresh broker, and it
//! offers no PLAIN; see the README, "Connecting to your servers"); the SASL settings
//! librdkafka gets are checked in `providers::kafka::client`.

#[path = "secure/clickhouse.rs"]
mod clickhouse;
#[path = "secure/kafka.rs"]
mod kafka;
#[path = "secure/leak.rs"]
mod leak;
#[path = "secure/registry.rs"]
mod registry;

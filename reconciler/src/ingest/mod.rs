//! Ingestion: reading a pipeline's topic into ClickHouse. So far the wire format: Avro's
//! single-object encoding and binary decoding ([`codec`]). The worker (consume, decode,
//! insert through the transform, dead-letter topic, offsets after the insert) is the next
//! step (issue "Versioned pipelines").

pub mod codec;

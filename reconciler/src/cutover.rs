//! The cut-over of pipelines, run by the executor: a version's views made anew over its
//! sink, then the live record in the state store switched (the workers follow it), and
//! the wait for the workers to hand over. The live record is the executor's to write,
//! not a provider's.

use std::time::Duration;

use crate::error::ProviderError;
use crate::model::Endpoints;
use crate::plan::PipelineAction;
use crate::providers::clickhouse::ClickHouse;
use crate::store::Store;

/// How long a cut-over waits for the workers of the previous version to stop. A worker
/// that does not confirm by then fails the step (transient): the revision is rolled back
/// and tried again.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Run a pipeline action.
pub async fn execute(
    action: &PipelineAction,
    clickhouse: &ClickHouse,
    endpoints: &Endpoints,
    store: &Store,
) -> Result<(), ProviderError> {
    let store_error = |e: crate::store::StoreError| ProviderError::transient(e.to_string());
    match action {
        PipelineAction::Activate { spec, refresh } => {
            if let Some(view) = refresh {
                clickhouse
                    .create_views(view)
                    .await
                    .map_err(ProviderError::from)?;
            }
            store.set_live(spec, endpoints).map_err(store_error)?;
            crate::ingest::signal::live_changed();
        }
        PipelineAction::Deactivate { pipeline } => {
            store.clear_live(pipeline).map_err(store_error)?;
            crate::ingest::signal::live_changed();
        }
        PipelineAction::AwaitHandover { pipeline, version } => {
            await_handover(store, pipeline, *version, HANDOVER_TIMEOUT).await?;
        }
    }
    Ok(())
}

/// Wait until every worker of `pipeline` that is alive (a heartbeat fresher than
/// [`crate::ingest::handover::FRESH`]) runs `version`. A worker reports a version only once
/// nothing of the previous one is in flight (see [`crate::ingest::supervisor`]).
async fn await_handover(
    store: &Store,
    pipeline: &str,
    version: Option<u32>,
    timeout: Duration,
) -> Result<(), ProviderError> {
    use crate::ingest::handover::outcome_now;
    let started = std::time::Instant::now();
    // A worker in this process that reports wakes the wait; others are read every 100 ms.
    let mut reported = crate::ingest::signal::on_worker_report();
    loop {
        let workers = store
            .workers_of(pipeline)
            .map_err(|e| ProviderError::transient(e.to_string()))?;
        match outcome_now(&workers, version, crate::store::now_ms()) {
            Ok(_) => return Ok(()),
            Err(behind) if started.elapsed() >= timeout => {
                return Err(ProviderError::transient(format!(
                    "the worker {} of pipeline {pipeline} still runs {} after {}s; the cut-over waits for it to stop inserting into the previous version's staging table",
                    behind.worker,
                    behind
                        .version
                        .map_or("no version".to_string(), |v| format!("v{v}")),
                    timeout.as_secs()
                )));
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = reported.changed() => {}
                }
            }
        }
    }
}

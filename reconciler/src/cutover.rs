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
                    .map_err(ProviderError::from_clickhouse)?;
            }
            store.set_live(spec, endpoints).map_err(store_error)?;
        }
        PipelineAction::Deactivate { pipeline } => {
            store.clear_live(pipeline).map_err(store_error)?;
        }
        PipelineAction::AwaitHandover { pipeline, version } => {
            await_handover(store, pipeline, *version, HANDOVER_TIMEOUT).await?;
        }
    }
    Ok(())
}

/// Wait until every worker of `pipeline` that is alive runs `version`: its status record
/// names that version (a worker records its version only from inside the version's run,
/// after the previous run returned), or it is older than [`STALE_MS`] (no worker).
async fn await_handover(
    store: &Store,
    pipeline: &str,
    version: Option<u32>,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let started = std::time::Instant::now();
    loop {
        let status = store
            .pipeline_status()
            .map_err(|e| ProviderError::transient(e.to_string()))?
            .into_iter()
            .find(|s| s.name == pipeline);
        let now = crate::policy::now_ms();
        let pending = status.filter(|s| {
            let fresh = crate::policy::unix_ms(&s.updated_at)
                .is_some_and(|at| now.saturating_sub(at) < STALE_MS);
            fresh && Some(s.version) != version
        });
        let Some(pending) = pending else {
            return Ok(());
        };
        if started.elapsed() >= timeout {
            return Err(ProviderError::transient(format!(
                "the worker of pipeline {pipeline} ({}) still runs v{} after {}s; the cut-over waits for it to stop inserting into that version's staging table",
                pending.worker,
                pending.version,
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker whose status is older than this is not running.
const STALE_MS: u64 = 3_000;

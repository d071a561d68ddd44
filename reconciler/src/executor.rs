//! The executor: the only place that runs steps and writes the journal. A revision is
//! applied whole or not at all: each step is journaled before and after it runs; when one
//! fails, the completed steps are compensated in reverse order; a process killed in the
//! middle finds the journal on its next start and undoes what the interrupted revision did.

use std::collections::BTreeSet;
use std::future::Future;

use crate::error::{ErrorKind, ProviderError};
use crate::plan::{
    fingerprint_json, Action, ClickHouseAction, KafkaAction, PipelineAction, Plan, ResourceId, Step,
};
use crate::store::{JournalEntry, RevisionStatus, StepState, Store, StoreError};

/// Something that can run actions against the real systems.
pub trait Executes {
    /// Run one action. Compensations must be idempotent: they may run for a step whose
    /// outcome is unknown (the process died while it ran). `store` is the state store the
    /// executor journals into: the cut-over records the live versions there.
    fn execute(
        &self,
        action: &Action,
        store: &Store,
    ) -> impl Future<Output = Result<(), ProviderError>>;
}

/// The real systems: each group of actions to its provider, the pipelines' to the
/// cut-over (which records the live versions in the store).
impl Executes for crate::providers::Targets {
    async fn execute(&self, action: &Action, store: &Store) -> Result<(), ProviderError> {
        match action {
            Action::Kafka(a) => self.kafka.execute(a).await,
            Action::ClickHouse(a) => self.clickhouse.execute(a).await,
            Action::Pipeline(a) => {
                crate::cutover::execute(a, &self.clickhouse, &self.endpoints(), store).await
            }
            Action::Kube(a) => match &self.kube {
                Some(kube) => kube.execute(a).await,
                None => Err(ProviderError::permanent(
                    "the plan has a Kubernetes step and no Kubernetes target is configured (targets.kubernetes in paver.yaml)",
                )),
            },
        }
    }
}

/// Whether this process may still apply: checked before every step. A leader that lost
/// its lease stops before its next step; the new leader recovers the revision.
pub trait Leadership {
    fn still_leader(&self) -> bool;
}

/// Without leader election, this process is the only one.
pub struct Alone;

impl Leadership for Alone {
    fn still_leader(&self) -> bool {
        true
    }
}

/// How an apply ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub revision_id: i64,
    pub status: RevisionStatus,
    /// Steps that ran (and stayed, when applied).
    pub applied: usize,
    pub error: Option<String>,
    /// Whether trying the same revision again may help (set when it was rolled back).
    pub kind: Option<ErrorKind>,
}

/// Why an apply stopped without an outcome.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lease was lost: the revision stays as the journal says, for the new leader's
    /// recovery.
    #[error("this replica lost its leadership before step {step} of revision {sha}: it stopped; the new leader recovers the revision")]
    Deposed { sha: String, step: usize },
    #[error(transparent)]
    Fingerprint(#[from] crate::plan::FingerprintError),
}

/// Apply a plan as one transaction. Returns `Err` only when the state store fails or the
/// leadership is lost; a failed step is an `Ok` outcome with status `RolledBack`, or
/// `Applying` when undoing it failed too (the next `recover` finishes the undo).
pub async fn apply(
    store: &Store,
    plan: &Plan,
    target: &impl Executes,
    leadership: &impl Leadership,
) -> Result<Outcome, ApplyError> {
    let id = store.begin(&plan.revision, plan.steps.len(), &crate::plan::render(plan))?;
    for (seq, step) in plan.steps.iter().enumerate() {
        if !leadership.still_leader() {
            return Err(ApplyError::Deposed {
                sha: plan.revision.clone(),
                step: seq + 1,
            });
        }
        store.journal(id, seq, step, StepState::Started, None)?;
        let what = crate::plan::describe(&step.action).1;
        crate::progress::started(seq + 1, plan.steps.len(), &what);
        if let Err(error) = target.execute(&step.action, store).await {
            crate::progress::failed(seq + 1, plan.steps.len(), &what);
            store.journal(id, seq, step, StepState::Failed, Some(&error.message))?;
            let message = format!(
                "step {} ({}) failed ({}): {}",
                seq + 1,
                crate::plan::describe(&step.action).1,
                error.kind.as_str(),
                error.message
            );
            // The failed step itself is not undone: its compensation could drop what someone
            // else made (a create that failed because the thing exists). A failure whose
            // outcome is unknown (a timeout) needs a typed error to be told apart.
            let undo = compensate(store, id, &plan.steps[..seq], target).await?;
            let (status, message) = match undo {
                Ok(()) => (RevisionStatus::RolledBack, message),
                // Not finished: the revision stays `applying`, so that `recover` (the next
                // reconcile starts with it) undoes what is left, never leaving it half done.
                Err(undo) => (
                    RevisionStatus::Applying,
                    format!("{message}; and undoing it failed: {undo} (retried on the next start)"),
                ),
            };
            if status == RevisionStatus::RolledBack {
                store.finish(id, status, Some(&message), Some(error.kind))?;
            }
            return Ok(Outcome {
                revision_id: id,
                status,
                applied: 0,
                error: Some(message),
                kind: Some(error.kind),
            });
        }
        store.journal(id, seq, step, StepState::Done, None)?;
        crate::progress::done(seq + 1, plan.steps.len(), &what);
        pause_for_fault_injection(seq + 1);
    }
    record_inventory(store, &plan.steps, &plan.revision)?;
    store.finish(id, RevisionStatus::Applied, None, None)?;
    crate::progress::finished(plan.steps.len());
    Ok(Outcome {
        revision_id: id,
        status: RevisionStatus::Applied,
        applied: plan.steps.len(),
        error: None,
        kind: None,
    })
}

/// For the crash tests: with `PAVER_FAULT_PAUSE_AFTER_STEPS=N`, the executor stops for a
/// minute after its N-th step, so that a test can kill the process in the middle of a
/// revision. Never set in production.
fn pause_for_fault_injection(done: usize) {
    let wanted = std::env::var("PAVER_FAULT_PAUSE_AFTER_STEPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if wanted == Some(done) {
        // PAVER_FAULT_PAUSE_SECONDS: how long (default 60 s), for a test that breaks a
        // server during the pause and lets the revision go on.
        let seconds = std::env::var("PAVER_FAULT_PAUSE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(60);
        eprintln!("paver: PAVER_FAULT_PAUSE_AFTER_STEPS={done}: pausing");
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
}

/// Compensate completed steps in reverse order. The first failing compensation stops the
/// undo (the revision stays `applying`, for `recover` to finish the undo).
async fn compensate(
    store: &Store,
    id: i64,
    done: &[Step],
    target: &impl Executes,
) -> Result<Result<(), String>, StoreError> {
    for (seq, step) in done.iter().enumerate().rev() {
        if let Some(undo) = &step.compensation {
            // A deposed leader leaves the undo to the new one.
            store.check_fence()?;
            crate::progress::undoing(seq + 1, &crate::plan::describe(&step.action).1);
            if let Err(e) = target.execute(undo, store).await {
                return Ok(Err(format!("compensating step {}: {e}", seq + 1)));
            }
        }
        store.journal(id, seq, step, StepState::Compensated, None)?;
    }
    Ok(Ok(()))
}

const WHAT: &str = "a step for the inventory";

/// Resources a successful revision created become paver's: the inventory.
fn record_inventory(store: &Store, steps: &[Step], revision: &str) -> Result<(), ApplyError> {
    let mut seen: BTreeSet<ResourceId> = BTreeSet::new();
    for step in steps {
        match &step.action {
            Action::Kafka(KafkaAction::CreateTopic { .. })
            | Action::ClickHouse(
                ClickHouseAction::CreateDatabase { .. }
                | ClickHouseAction::CreateTable { .. }
                | ClickHouseAction::CreateDistributed { .. }
                | ClickHouseAction::CreateStaging { .. }
                | ClickHouseAction::CreateLedger { .. }
                | ClickHouseAction::CreateViews { .. }
                | ClickHouseAction::RestoreViews { .. },
            ) if seen.insert(step.resource.clone()) => {
                store.manage(
                    &step.resource.to_string(),
                    &fingerprint_json(&step.action, WHAT)?,
                    revision,
                )?;
            }
            // The views a cut-over made are paver's like those CreateViews makes.
            Action::Pipeline(PipelineAction::Activate {
                refresh: Some(view),
                ..
            }) => {
                let id = ResourceId::table(&view.view);
                if seen.insert(id.clone()) {
                    store.manage(&id.to_string(), &fingerprint_json(view, WHAT)?, revision)?;
                }
            }
            // A new generation's physical tables are paver's.
            Action::ClickHouse(ClickHouseAction::SwitchGeneration {
                create, original, ..
            }) => {
                let h = fingerprint_json(&step.action, WHAT)?;
                for t in std::iter::once(create).chain(original) {
                    store.manage(&ResourceId::table(t).to_string(), &h, revision)?;
                }
            }
            // Retired pipeline versions are no longer paver's.
            Action::ClickHouse(
                ClickHouseAction::DropTable { .. } | ClickHouseAction::DropViews { .. },
            ) => {
                store.forget(&step.resource.to_string())?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// On start: undo a revision that was being applied when the process stopped, or whose undo
/// failed. Steps that were done, and the one that had started (its outcome is unknown), are
/// compensated in reverse order; compensated ones are not compensated again. Returns the
/// revision that was undone, if any.
pub async fn recover(
    store: &Store,
    target: &impl Executes,
) -> Result<Option<(i64, String)>, StoreError> {
    let Some(interrupted) = store.interrupted()? else {
        return Ok(None);
    };
    let journal: Vec<JournalEntry> = store.journal_of(interrupted.id)?;
    for entry in journal.iter().rev() {
        if !matches!(entry.state, StepState::Done | StepState::Started) {
            continue;
        }
        if let Some(undo) = &entry.step.compensation {
            store.check_fence()?;
            if let Err(e) = target.execute(undo, store).await {
                // Leave the revision as it is: the next start tries again.
                return Err(StoreError::Recovery(format!(
                    "undoing step {} of the interrupted revision {}: {e}",
                    entry.seq + 1,
                    interrupted.sha
                )));
            }
        }
        store.journal(
            interrupted.id,
            entry.seq as usize,
            &entry.step,
            StepState::Compensated,
            None,
        )?;
    }
    store.finish(
        interrupted.id,
        RevisionStatus::RolledBack,
        Some("interrupted (the reconciler stopped while applying it); undone on restart"),
        Some(ErrorKind::Transient),
    )?;
    Ok(Some((interrupted.id, interrupted.sha)))
}

//! The executor: the only place that runs steps and writes the journal. A revision is
//! applied whole or not at all: each step is journaled before and after it runs; when one
//! fails, the completed steps are compensated in reverse order; a process killed in the
//! middle finds the journal on its next start and undoes what the interrupted revision did.

use std::collections::BTreeSet;
use std::future::Future;

use crate::plan::{Action, Plan, Step};
use crate::store::{JournalEntry, RevisionStatus, StepState, Store, StoreError};

/// Something that can run actions against the real systems.
pub trait Executes {
    /// Run one action. Compensations must be idempotent: they may run for a step whose
    /// outcome is unknown (the process died while it ran).
    fn execute(&self, action: &Action) -> impl Future<Output = Result<(), String>>;
}

/// How an apply ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub revision_id: i64,
    pub status: RevisionStatus,
    /// Steps that ran (and stayed, when applied).
    pub applied: usize,
    pub error: Option<String>,
}

/// Apply a plan as one transaction. Returns `Err` only when the state store fails; a
/// failed step is an `Ok` outcome with status `RolledBack`, or `Applying` when undoing it
/// failed too (the next `recover` finishes the undo).
pub async fn apply(
    store: &Store,
    plan: &Plan,
    target: &impl Executes,
) -> Result<Outcome, StoreError> {
    let id = store.begin(&plan.revision, plan.steps.len(), &crate::plan::render(plan))?;
    for (seq, step) in plan.steps.iter().enumerate() {
        store.journal(id, seq, step, StepState::Started, None)?;
        if let Err(error) = target.execute(&step.action).await {
            store.journal(id, seq, step, StepState::Failed, Some(&error))?;
            let message = format!(
                "step {} ({}) failed: {error}",
                seq + 1,
                crate::plan::describe(&step.action).1
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
                store.finish(id, status, Some(&message))?;
            }
            return Ok(Outcome {
                revision_id: id,
                status,
                applied: 0,
                error: Some(message),
            });
        }
        store.journal(id, seq, step, StepState::Done, None)?;
        pause_for_fault_injection(seq + 1);
    }
    record_inventory(store, &plan.steps, &plan.revision)?;
    store.finish(id, RevisionStatus::Applied, None)?;
    Ok(Outcome {
        revision_id: id,
        status: RevisionStatus::Applied,
        applied: plan.steps.len(),
        error: None,
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
        eprintln!("paver: PAVER_FAULT_PAUSE_AFTER_STEPS={done}: pausing");
        std::thread::sleep(std::time::Duration::from_secs(60));
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
            if let Err(e) = target.execute(undo).await {
                return Ok(Err(format!("compensating step {}: {e}", seq + 1)));
            }
        }
        store.journal(id, seq, step, StepState::Compensated, None)?;
    }
    Ok(Ok(()))
}

/// Resources a successful revision created become paver's: the inventory.
fn record_inventory(store: &Store, steps: &[Step], revision: &str) -> Result<(), StoreError> {
    let mut seen = BTreeSet::new();
    for step in steps {
        let created = matches!(
            step.action,
            Action::CreateTopic { .. }
                | Action::CreateDatabase { .. }
                | Action::CreateTable { .. }
                | Action::CreateStaging { .. }
                | Action::CreateLedger { .. }
                | Action::CreateViews { .. }
        );
        if created && seen.insert(step.resource.clone()) {
            let hash = crate::plan::fingerprint_json(&step.action);
            store.manage(&step.resource, &hash, revision)?;
        }
        // The views a cut-over made are paver's like those CreateViews makes.
        if let Action::Activate {
            refresh: Some(view),
            ..
        } = &step.action
        {
            let id = crate::plan::table_id(&view.view);
            if seen.insert(id.clone()) {
                store.manage(&id, &crate::plan::fingerprint_json(view), revision)?;
            }
        }
        // A new generation's physical tables are paver's.
        if let Action::SwitchGeneration {
            create, original, ..
        } = &step.action
        {
            let hash = crate::plan::fingerprint_json(&step.action);
            for t in std::iter::once(create).chain(original) {
                store.manage(&crate::plan::table_id(t), &hash, revision)?;
            }
        }
        // Retired pipeline versions are no longer paver's.
        if matches!(
            step.action,
            Action::DropTable { .. } | Action::DropViews { .. }
        ) {
            store.forget(&step.resource)?;
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
            if let Err(e) = target.execute(undo).await {
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
    )?;
    Ok(Some((interrupted.id, interrupted.sha)))
}

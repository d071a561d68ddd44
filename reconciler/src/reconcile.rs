//! One reconcile, a thin driver: load a revision → lint it → derive what it wants → observe
//! → plan → (apply). A revision that does not lint clean is refused and recorded; the
//! active revision stays.

use std::path::PathBuf;

use crate::config::Config;
use crate::desired::desired;
use crate::executor::{self, Outcome};
use crate::plan::{self, Plan};
use crate::providers::{clickhouse::ClickHouse, kafka::Kafka, Targets};
use crate::source::{self, Remote, Revision};
use crate::store::{RevisionStatus, Store};

/// What to reconcile, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// A folder, or a git URL.
    pub repo: String,
    pub branch: String,
    /// A commit of the branch instead of its head.
    pub revision: Option<String>,
    pub state: PathBuf,
    /// What paver manages, as a running reconciler reports it (`/inventory`), instead of
    /// the local state store: for a pull request's plan against the live state.
    pub inventory: Option<Vec<String>>,
    /// The live pipeline versions, as that running reconciler reports them (`/live`).
    pub live: Option<Vec<crate::ingest::spec::IngestSpec>>,
    /// What the command line sets over paver.yaml and the environment.
    pub flags: crate::config::Flags,
}

/// Why a reconcile did not get to a plan.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("revision {sha} is refused: it does not lint clean ({errors} errors):\n{report}")]
    Refused {
        sha: String,
        errors: usize,
        report: String,
    },
    #[error("revision {sha} cannot be applied to what exists:\n{}", .blockers.iter().map(|b| format!("  - {}", b.message)).collect::<Vec<_>>().join("\n"))]
    Blocked {
        sha: String,
        blockers: Vec<plan::Blocker>,
    },
    #[error("{0}")]
    Target(String),
    #[error("paver.yaml: {0}")]
    Config(#[from] crate::config::ConfigError),
}

/// A loaded, linted revision and its plan.
pub struct Planned {
    pub sha: String,
    pub plan: Plan,
    pub targets: Targets,
    /// The revision's resolved configuration.
    pub config: Config,
}

/// The wanted revision of a git source (its remote fetched into the cache beside the state
/// file); `None` for a folder.
fn open(options: &Options) -> Result<Option<(Remote, Revision)>, ReconcileError> {
    if !source::is_url(&options.repo) {
        return Ok(None);
    }
    let cache = options
        .state
        .parent()
        .unwrap_or(&options.state)
        .join("repos");
    let remote = Remote::open(&options.repo, &cache)?;
    let head = remote.fetch(&options.branch)?;
    let revision = remote.revision(options.revision.as_deref().unwrap_or(&head))?;
    Ok(Some((remote, revision)))
}

/// The wanted revision, a folder or a commit of a git source.
pub fn revision(options: &Options) -> Result<Revision, ReconcileError> {
    match open(options)? {
        Some((_, revision)) => Ok(revision),
        None => Ok(source::local(std::path::Path::new(&options.repo))?),
    }
}

/// Load the wanted revision and, for a git source with an active revision, the active
/// revision's files: the released state the new one is judged against (as the PR check
/// judges a pull request against its base), so that even a direct push cannot edit a
/// released version.
fn load(
    options: &Options,
    store: &Store,
) -> Result<(Revision, Option<paver_lint::workspace::Base>), ReconcileError> {
    let Some((remote, revision)) = open(options)? else {
        return Ok((source::local(std::path::Path::new(&options.repo))?, None));
    };
    let base = match store.active()? {
        Some(active) if active.sha != revision.sha => {
            remote
                .revision(&active.sha)
                .ok()
                .map(|released| paver_lint::workspace::Base {
                    name: format!(
                        "the active revision {}",
                        &active.sha[..active.sha.len().min(12)]
                    ),
                    files: released
                        .collected
                        .files
                        .into_iter()
                        .map(|f| (f.path, f.bytes))
                        .collect(),
                })
        }
        _ => None,
    };
    Ok((revision, base))
}

/// Connect to the targets of a resolved configuration.
pub async fn connect(config: &Config, state: &std::path::Path) -> Result<Targets, ReconcileError> {
    let env = &crate::config::process_env;
    let connections = &config.connections;
    let clickhouse = ClickHouse::open(&connections.clickhouse, env)
        .await
        .map_err(|e| ReconcileError::Target(e.to_string()))?;
    let kafka =
        Kafka::open(&connections.kafka, env).map_err(|e| ReconcileError::Target(e.to_string()))?;
    Ok(Targets {
        kafka,
        clickhouse,
        state: state.to_path_buf(),
        kube: None,
        connections: connections.clone(),
    })
}

/// A revision loaded and linted, its desired state, and the targets it names.
struct Prepared {
    inventory: Option<Vec<String>>,
    live: Option<Vec<crate::ingest::spec::IngestSpec>>,
    sha: String,
    desired: crate::plan::Desired,
    targets: Targets,
    /// The revision's resolved configuration.
    config: Config,
    /// The Kubernetes objects the revision renders, when a Kubernetes target is configured.
    kube_objects: Option<Vec<serde_json::Value>>,
}

/// Load and lint a revision, and connect to its targets. A revision that does not lint
/// clean is recorded as refused.
async fn prepare(options: &Options, store: &Store) -> Result<Prepared, ReconcileError> {
    let (revision, base) = load(options, store)?;
    let report = paver_lint::lint_against(revision.collected, base);
    if report.errors() > 0 {
        let text = paver_lint::output::human::render(&report, false);
        store.refuse(&revision.sha, &format!("{} lint errors", report.errors()))?;
        return Err(ReconcileError::Refused {
            sha: revision.sha,
            errors: report.errors(),
            report: text,
        });
    }
    let config = Config::resolve(
        &report.workspace,
        &crate::config::process_env,
        &options.flags,
    )?;
    let mut targets = connect(&config, &options.state).await?;
    let kube_objects = crate::kube::connect(&report.workspace, &config, &mut targets)
        .await
        .map_err(ReconcileError::Target)?;
    let mut desired = desired(&report.workspace);
    desired.map_types(|ty| targets.clickhouse.adapt_type(ty));
    Ok(Prepared {
        inventory: options.inventory.clone(),
        live: options.live.clone(),
        sha: revision.sha,
        desired,
        targets,
        config,
        kube_objects,
    })
}

/// Observe and plan a prepared revision.
async fn plan_prepared(prepared: Prepared, store: &Store) -> Result<Planned, ReconcileError> {
    let observed = prepared
        .targets
        .observe(&prepared.desired)
        .await
        .map_err(ReconcileError::Target)?;
    let mut observed = observed;
    let live = match &prepared.live {
        Some(list) => list.clone(),
        None => store.live()?.into_iter().map(|l| l.spec).collect(),
    };
    observed.live = live.into_iter().map(|s| (s.pipeline.clone(), s)).collect();
    let managed = match &prepared.inventory {
        Some(list) => list.iter().cloned().collect(),
        None => store.inventory()?.into_iter().map(|i| i.resource).collect(),
    };
    let mut plan =
        plan::plan(&prepared.desired, &observed, &managed, &prepared.sha).map_err(|blockers| {
            ReconcileError::Blocked {
                sha: prepared.sha.clone(),
                blockers,
            }
        })?;
    if let Some(objects) = &prepared.kube_objects {
        crate::kube::plan_into(&mut plan, objects, &prepared.targets)
            .await
            .map_err(|e| match e {
                crate::kube::PlanError::Target(message) => ReconcileError::Target(message),
                crate::kube::PlanError::Blocked(blockers) => ReconcileError::Blocked {
                    sha: prepared.sha.clone(),
                    blockers,
                },
            })?;
    }
    Ok(Planned {
        sha: prepared.sha,
        plan,
        targets: prepared.targets,
        config: prepared.config,
    })
}

/// Load, lint, observe and plan a revision (nothing changes).
pub async fn plan(options: &Options, store: &Store) -> Result<Planned, ReconcileError> {
    plan_prepared(prepare(options, store).await?, store).await
}

/// Undo an interrupted revision first (what exists is then as before it), then plan and
/// apply the wanted one.
pub async fn apply(options: &Options, store: &Store) -> Result<(Planned, Outcome), ReconcileError> {
    let prepared = prepare(options, store).await?;
    if let Some((_, sha)) = executor::recover(store, &prepared.targets).await? {
        eprintln!("paver: undid the interrupted revision {sha}");
    }
    let report_drift_only = prepared.config.reconcile.drift == crate::config::Drift::Report;
    let planned = plan_prepared(prepared, store).await?;
    // Nothing to do for the revision that is already active: no new record (the run loop
    // reconciles every poll interval). With `drift: report`, steps for the active revision
    // are drift: reported, not applied.
    if planned.plan.steps.is_empty() || report_drift_only {
        if let Some(active) = store.active()?.filter(|a| a.sha == planned.sha) {
            if !planned.plan.steps.is_empty() {
                eprintln!(
                    "paver: drift from the active revision {} (reported only, reconcile.drift: report):\n{}",
                    planned.sha,
                    plan::render(&planned.plan)
                );
            }
            let outcome = Outcome {
                revision_id: active.id,
                status: RevisionStatus::Applied,
                applied: 0,
                error: None,
            };
            return Ok((planned, outcome));
        }
    }
    let outcome = executor::apply(store, &planned.plan, &planned.targets).await?;
    Ok((planned, outcome))
}

/// Whether an outcome means the revision is live.
pub fn succeeded(outcome: &Outcome) -> bool {
    outcome.status == RevisionStatus::Applied
}

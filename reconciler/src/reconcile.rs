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
    pub live: Option<Vec<crate::model::IngestSpec>>,
    /// `paver run`'s notifications (revision outcomes, commit statuses, alerts); `None`
    /// for the one-shot commands.
    pub notifier: Option<std::sync::Arc<crate::notify::Notifier>>,
    /// What the command line sets over paver.yaml and the environment.
    pub flags: crate::config::Flags,
    /// What `paver run` keeps from one reconcile to the next; `None` for the one-shot
    /// commands.
    pub cache: Option<std::sync::Arc<Cache>>,
}

/// What `paver run` keeps from one reconcile to the next, so that a reconcile with nothing
/// to do reads only what may have changed: the last revision linted (a commit is read and
/// linted once, not every poll interval) and the views' statements.
#[derive(Default)]
pub struct Cache {
    /// The views' statements (see [`crate::providers::clickhouse::ViewCache`]).
    pub views: std::sync::Arc<crate::providers::clickhouse::ViewCache>,
    linted: std::sync::Mutex<Option<std::sync::Arc<Linted>>>,
    /// The Kafka clients of the last reconcile, with the settings they were made from:
    /// connected already, they answer a no-op's two requests without connecting and
    /// learning the cluster again (0.2–0.4 s at 5,000 topics).
    kafka: std::sync::Mutex<Option<(KafkaSettings, std::sync::Arc<Kafka>)>>,
}

type KafkaSettings = std::collections::BTreeMap<String, String>;

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}

impl Cache {
    /// The revision linted before, if it is `sha` linted against the same active revision
    /// (the released versions it was judged against).
    fn linted(&self, sha: &str, active: Option<&str>) -> Option<std::sync::Arc<Linted>> {
        let linted = self.linted.lock().unwrap_or_else(|e| e.into_inner());
        linted
            .as_ref()
            .filter(|l| l.sha == sha && l.active.as_deref() == active)
            .cloned()
    }

    fn keep(&self, linted: std::sync::Arc<Linted>) {
        *self.linted.lock().unwrap_or_else(|e| e.into_inner()) = Some(linted);
    }

    /// The Kafka clients for `target`: the last ones while they were made from the same
    /// settings (secrets included) and librdkafka reported no error of theirs (their
    /// errors explain failures: a client that saw one is replaced, so what it says is
    /// about now), else new ones.
    fn kafka(
        &self,
        target: &crate::model::connections::Kafka,
        env: crate::config::Env,
    ) -> Result<std::sync::Arc<Kafka>, ReconcileError> {
        let settings: KafkaSettings = crate::providers::kafka::client_config(target, env)
            .map_err(crate::providers::kafka::KafkaOpenError::from)?
            .config_map()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut kept = self.kafka.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, kafka)) = kept
            .as_ref()
            .filter(|(s, kafka)| *s == settings && kafka.quiet())
        {
            return Ok(kafka.clone());
        }
        let kafka = std::sync::Arc::new(Kafka::open(target, env)?);
        *kept = Some((settings, kafka.clone()));
        Ok(kafka)
    }
}

/// A revision read and linted, and (when it lints clean) what it wants, before the
/// server's types are applied.
struct Linted {
    sha: String,
    /// The active revision it was linted against.
    active: Option<String>,
    report: paver_lint::Report,
    desired: Option<crate::plan::Desired>,
}

impl Linted {
    fn of(sha: String, active: Option<String>, report: paver_lint::Report) -> Linted {
        let desired = (report.errors() == 0).then(|| desired(&report.workspace));
        Linted {
            sha,
            active,
            report,
            desired,
        }
    }
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
    #[error(transparent)]
    ClickHouseQuery(#[from] crate::providers::clickhouse::ClickHouseError),
    #[error("paver.yaml: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}{help}", help = .0.help())]
    ClickHouse(#[from] crate::providers::clickhouse::ConnectError),
    #[error(transparent)]
    Kafka(#[from] crate::providers::kafka::KafkaOpenError),
    #[error("the active revision {sha} cannot be read from the repository, so the released versions cannot be checked (was the branch force-pushed, or the commit pruned?): {source}")]
    ActiveUnreadable {
        sha: String,
        #[source]
        source: Box<source::SourceError>,
    },
    #[error(transparent)]
    Provider(#[from] crate::error::ProviderError),
    #[error(transparent)]
    Apply(#[from] executor::ApplyError),
    #[error(transparent)]
    Fingerprint(#[from] plan::FingerprintError),
    #[error("revision {sha} is held: its last attempt failed ({}) and trying it again as it is cannot help: {error}. Push a new revision, or `paver retry {sha}`", .kind.as_str())]
    Held {
        sha: String,
        kind: crate::error::ErrorKind,
        error: String,
    },
    #[error("revision {sha} failed {} times in a row (transient); the next try is at {}", .attempt - 1, crate::policy::format_ms(*.at_ms))]
    Waiting {
        sha: String,
        at_ms: u64,
        attempt: usize,
    },
}

/// A loaded, linted revision and its plan.
pub struct Planned {
    pub sha: String,
    pub plan: Plan,
    pub targets: Targets,
    /// The revision's resolved configuration.
    pub config: Config,
}

/// Read a revision: a folder as it is, or a commit of a git remote (the branch fetched
/// into a bare mirror beside the state store first). Blocking (git, files).
pub fn read_revision(options: &Options) -> Result<(Revision, Option<Remote>), ReconcileError> {
    Ok(match read_head(options)? {
        Head::Folder(revision) => (revision, None),
        Head::Commit(remote, sha) => (remote.revision(&sha)?, Some(remote)),
    })
}

/// Which revision is wanted: a folder's is read whole (its content is its name); a git
/// remote's is a commit, known once the branch is fetched and read only when needed.
enum Head {
    Folder(Revision),
    Commit(Remote, String),
}

fn read_head(options: &Options) -> Result<Head, ReconcileError> {
    if !source::is_url(&options.repo) {
        return Ok(Head::Folder(source::local(std::path::Path::new(
            &options.repo,
        ))?));
    }
    let cache = crate::store::Location::of(&options.state)
        .cache_dir()
        .join("repos");
    let remote = Remote::open(&options.repo, &cache)?;
    let head = remote.fetch(&options.branch)?;
    let sha = remote.resolve(options.revision.as_deref().unwrap_or(&head))?;
    Ok(Head::Commit(remote, sha))
}

/// For a git source with an active revision, the active revision's files: the released
/// state the new one is judged against (as the PR check judges a pull request against its
/// base), so that even a direct push cannot edit a released version. An active commit that
/// cannot be read is an error: without it the released-version check would silently be
/// skipped.
fn base_of(
    remote: Option<&Remote>,
    sha: &str,
    active: Option<&str>,
) -> Result<Option<paver_lint::workspace::Base>, ReconcileError> {
    let (Some(remote), Some(active)) = (remote, active) else {
        return Ok(None);
    };
    if active == sha {
        return Ok(None);
    }
    let released = remote
        .revision(active)
        .map_err(|e| ReconcileError::ActiveUnreadable {
            sha: active.to_string(),
            source: Box::new(e),
        })?;
    Ok(Some(paver_lint::workspace::Base {
        name: format!("the active revision {}", &active[..active.len().min(12)]),
        files: released
            .collected
            .files
            .into_iter()
            .map(|f| (f.path, f.bytes))
            .collect(),
    }))
}

/// Run blocking work (git, the linter, files) off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ReconcileError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ReconcileError::Target(format!("a background task failed: {e}")))
}

/// Connect to the targets of a resolved configuration.
pub async fn connect(config: &Config, cache: Option<&Cache>) -> Result<Targets, ReconcileError> {
    let env = &crate::config::process_env;
    let connections = &config.connections;
    let clickhouse = ClickHouse::open(&connections.clickhouse, env).await?;
    // On a cluster: its nodes, read once (and an unknown cluster is an error here).
    clickhouse.nodes().await?;
    let kafka = match cache {
        Some(cache) => cache.kafka(&connections.kafka, env)?,
        None => std::sync::Arc::new(Kafka::open(&connections.kafka, env)?),
    };
    Ok(Targets {
        kafka,
        clickhouse,
        kube: None,
        connections: connections.clone(),
    })
}

/// A revision loaded and linted, its desired state, and the targets it names.
struct Prepared {
    inventory: Option<Vec<String>>,
    live: Option<Vec<crate::model::IngestSpec>>,
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
    let started = std::time::Instant::now();
    let active = store.active()?.map(|a| a.sha);
    let load_options = options.clone();
    let cache = options.cache.clone();
    let linted = blocking(move || -> Result<_, ReconcileError> {
        let (revision, remote) = match read_head(&load_options)? {
            Head::Commit(remote, sha) => {
                if let Some(hit) = cache
                    .as_ref()
                    .and_then(|c| c.linted(&sha, active.as_deref()))
                {
                    return Ok(hit);
                }
                (remote.revision(&sha)?, Some(remote))
            }
            Head::Folder(revision) => {
                if let Some(hit) = cache
                    .as_ref()
                    .and_then(|c| c.linted(&revision.sha, active.as_deref()))
                {
                    return Ok(hit);
                }
                (revision, None)
            }
        };
        let base = base_of(remote.as_ref(), &revision.sha, active.as_deref())?;
        let sha = revision.sha;
        let report = paver_lint::lint_against(revision.collected, base);
        let linted = std::sync::Arc::new(Linted::of(sha, active, report));
        if let Some(cache) = &cache {
            cache.keep(linted.clone());
        }
        Ok(linted)
    })
    .await??;
    let (sha, report) = (linted.sha.clone(), &linted.report);
    stage(&sha, "fetch+lint", started);
    if let Some(notifier) = options.notifier.as_ref().filter(|n| n.config().is_none()) {
        let settings = crate::config::settings_node(&report.workspace);
        // A refused revision's outcome must still reach someone: before any revision
        // configured the notifications, this one's block does, if it reads.
        if let (true, Ok(config)) = (report.errors() > 0, crate::notify::config_of(settings)) {
            notifier.configure(config, crate::notify::rules(&report.workspace));
        }
    }
    // What a revision that lints clean wants (a refused one has nothing computed).
    let Some(wanted) = linted.desired.as_ref() else {
        let text = paver_lint::output::human::render(report, false);
        // Recorded once per revision: a poll loop does not fill the history with it.
        if store.latest_for(&sha)?.map(|r| r.status) != Some(RevisionStatus::Refused) {
            store.refuse(&sha, &format!("{} lint errors", report.errors()))?;
        }
        return Err(ReconcileError::Refused {
            sha,
            errors: report.errors(),
            report: text,
        });
    };
    let mut config = Config::resolve(
        &report.workspace,
        &crate::config::process_env,
        &options.flags,
    )?;
    // The ClickHouse target of the ClickHouseClusters the revision's pipelines write into
    // (the workers get it too, with the connections).
    let used_clusters: std::collections::BTreeSet<String> = report
        .workspace
        .active_specs(paver_lint::layout::Kind::DataPipeline)
        .filter_map(|(_, root)| root.path(&["spec", "sink", "cluster"]))
        .filter_map(paver_lint::yaml::Node::as_str)
        .map(str::to_string)
        .collect();
    config.connections.clickhouse = config.clickhouse_for(&used_clusters)?;
    if let Some(notifier) = &options.notifier {
        notifier.configure(
            config.notifications.clone(),
            crate::notify::rules(&report.workspace),
        );
    }
    let connecting = std::time::Instant::now();
    let mut targets = connect(&config, options.cache.as_deref()).await?;
    if let Some(cache) = &options.cache {
        targets.clickhouse.views = cache.views.clone();
    }
    stage(&sha, "connect", connecting);
    let kube_objects = match crate::kube::connect(&report.workspace, config.kubernetes.as_ref())
        .await
        .map_err(ReconcileError::Target)?
    {
        Some((kube, objects)) => {
            targets.kube = Some(kube);
            Some(objects)
        }
        None => None,
    };
    let mut desired = wanted.clone();
    desired.map_types(|ty| targets.clickhouse.adapt_type(ty));
    desired.cluster = targets.clickhouse.cluster.clone();
    Ok(Prepared {
        inventory: options.inventory.clone(),
        live: options.live.clone(),
        sha,
        desired,
        targets,
        config,
        kube_objects,
    })
}

/// Observe and plan a prepared revision.
async fn plan_prepared(prepared: Prepared, store: &Store) -> Result<Planned, ReconcileError> {
    let observing = std::time::Instant::now();
    // What paver recorded (the live versions, the inventory) is read from the store while
    // the servers answer (10,000 records take ~0.1 s to read and decode); only the
    // leader's applies write them, and none runs meanwhile.
    let (live, inventory) = (prepared.live.clone(), prepared.inventory.clone());
    let location = store.location().clone();
    let recorded = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let (live, inventory) = match (live, inventory) {
            (Some(live), Some(inventory)) => return Ok((live, inventory)),
            given => given,
        };
        let store = Store::at(&location)?;
        let live = match live {
            Some(list) => list,
            None => store.live()?.into_iter().map(|l| l.spec).collect(),
        };
        let managed: Vec<String> = match inventory {
            Some(list) => list,
            None => store.inventory()?.into_iter().map(|i| i.resource).collect(),
        };
        Ok((live, managed))
    });
    let mut observed = prepared.targets.observe(&prepared.desired).await?;
    stage(&prepared.sha, "observe", observing);
    let planning = std::time::Instant::now();
    let (live, managed_text) = recorded
        .await
        .map_err(|e| ReconcileError::Target(format!("a background task failed: {e}")))??;
    observed.live = live.into_iter().map(|s| (s.pipeline.clone(), s)).collect();
    let managed = managed_text
        .iter()
        .map(|r| r.parse::<plan::ResourceId>())
        .collect::<Result<_, _>>()
        .map_err(|e| ReconcileError::Target(format!("the inventory: {e}")))?;
    let mut plan =
        plan::plan(&prepared.desired, &observed, &managed, &prepared.sha).map_err(|e| match e {
            plan::PlanError::Blocked(blockers) => ReconcileError::Blocked {
                sha: prepared.sha.clone(),
                blockers,
            },
            plan::PlanError::Fingerprint(e) => ReconcileError::Fingerprint(e),
        })?;
    stage(&prepared.sha, "plan", planning);
    if let (Some(objects), Some(kube)) = (&prepared.kube_objects, &prepared.targets.kube) {
        // The Kubernetes steps come after the others; the fingerprint then covers what was
        // observed in Kubernetes too.
        let observed = kube
            .observe(objects)
            .await
            .map_err(ReconcileError::Target)?;
        let steps =
            plan::plan_kube(objects, &observed).map_err(|blockers| ReconcileError::Blocked {
                sha: prepared.sha.clone(),
                blockers,
            })?;
        plan.steps.extend(steps);
        let seen: std::collections::BTreeMap<String, serde_json::Value> = observed
            .iter()
            .map(|(r, v)| (r.id().to_string(), crate::kube::previous(v)))
            .collect();
        plan.observed =
            plan::fingerprint_json(&(&plan.observed, seen), "what was observed in Kubernetes")?;
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

/// Whether the error policy applies: the run loop waits after a transient failure and
/// holds a revision whose failure cannot pass by itself; `paver apply` by hand always tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// `paver apply`: try now.
    Now,
    /// `paver run`: the policy of [`crate::policy`].
    Policy,
}

/// Undo an interrupted revision first (what exists is then as before it), then plan and
/// apply the wanted one.
pub async fn apply(
    options: &Options,
    store: &Store,
    retry: Retry,
    leadership: &impl executor::Leadership,
) -> Result<(Planned, Outcome), ReconcileError> {
    let result = apply_notified(options, store, retry, leadership).await;
    if let (Some(notifier), Err(e)) = (&options.notifier, &result) {
        use crate::notify::payload::RevisionEvent;
        match e {
            ReconcileError::Refused { sha, errors, .. } => notifier.revision(
                sha,
                RevisionEvent::Refused,
                Some(&format!("{errors} lint errors")),
                None,
            ),
            ReconcileError::Blocked { sha, .. } => {
                notifier.revision(sha, RevisionEvent::Refused, Some(&e.to_string()), None)
            }
            _ => {}
        }
    }
    result
}

/// [`apply`], with the revision's start and outcome queued for the notifications.
async fn apply_notified(
    options: &Options,
    store: &Store,
    retry: Retry,
    leadership: &impl executor::Leadership,
) -> Result<(Planned, Outcome), ReconcileError> {
    let prepared = prepare(options, store).await?;
    let recovering = std::time::Instant::now();
    if let Some((_, sha)) = executor::recover(store, &prepared.targets).await? {
        eprintln!("paver: undid the interrupted revision {sha}");
        prepared.targets.clickhouse.views.clear();
    }
    if retry == Retry::Policy && !store.take_retry(&prepared.sha)? {
        match crate::policy::decide(&store.attempts_of(&prepared.sha)?, crate::policy::now_ms()) {
            crate::policy::Decision::Go => {}
            crate::policy::Decision::Wait { at_ms, attempt } => {
                return Err(ReconcileError::Waiting {
                    sha: prepared.sha,
                    at_ms,
                    attempt,
                })
            }
            crate::policy::Decision::Hold { kind, error } => {
                return Err(ReconcileError::Held {
                    sha: prepared.sha,
                    kind,
                    error,
                })
            }
        }
    }
    stage(&prepared.sha, "recover+policy", recovering);
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
                kind: None,
            };
            return Ok((planned, outcome));
        }
    }
    let summary = crate::notify::payload::PlanSummary::of(&planned.plan);
    if let Some(notifier) = &options.notifier {
        use crate::notify::payload::RevisionEvent;
        notifier.revision(&planned.sha, RevisionEvent::Started, None, Some(&summary));
    }
    let applying = std::time::Instant::now();
    // What paver changes, it reads again in full at the next reconcile.
    if let Some(cache) = &options.cache {
        cache.views.clear();
    }
    let outcome = executor::apply(store, &planned.plan, &planned.targets, leadership).await?;
    stage(&planned.sha, "apply", applying);
    if let Some(notifier) = &options.notifier {
        use crate::notify::payload::RevisionEvent;
        let event = match outcome.status {
            RevisionStatus::Applied => Some(RevisionEvent::Applied),
            RevisionStatus::RolledBack => Some(RevisionEvent::RolledBack),
            RevisionStatus::Refused => Some(RevisionEvent::Refused),
            RevisionStatus::Applying => None,
        };
        if let Some(event) = event {
            notifier.revision(
                &planned.sha,
                event,
                outcome.error.as_deref(),
                Some(&summary),
            );
        }
    }
    Ok((planned, outcome))
}

/// How long a stage of a reconcile took, for whoever profiles the path from a webhook to an
/// applied revision (`PAVER_LOG=info`).
fn stage(sha: &str, name: &str, since: std::time::Instant) {
    tracing::info!(
        "reconcile {}: {name} {:.1} ms",
        &sha[..sha.len().min(12)],
        since.elapsed().as_secs_f64() * 1000.0
    );
}

/// Whether an outcome means the revision is live.
pub fn succeeded(outcome: &Outcome) -> bool {
    outcome.status == RevisionStatus::Applied
}

/// The objects a revision renders, for `paver render`: the revision is read (a folder or a
/// git URL) and linted like any other, and refused when it has errors. `namespace`
/// replaces the default namespace of paver.yaml.
pub fn render_revision(
    options: &Options,
    namespace: Option<String>,
) -> Result<(String, Vec<serde_json::Value>), ReconcileError> {
    use crate::kube::{render, Target};
    let (revision, _) = read_revision(options)?;
    let report = paver_lint::lint(revision.collected);
    if report.errors() > 0 {
        return Err(ReconcileError::Refused {
            sha: revision.sha,
            errors: report.errors(),
            report: paver_lint::output::human::render(&report, false),
        });
    }
    let settings = crate::config::settings_node(&report.workspace);
    let target = Target::for_render(settings, namespace)
        .map_err(|e| ReconcileError::Target(e.to_string()))?;
    Ok((revision.sha, render::render(&report.workspace, &target)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::connections;

    /// A port nothing listens on: librdkafka's connection to it is refused at once.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn kafka_clients_are_kept_for_the_same_settings_and_replaced_after_an_error() {
        let cache = Cache::default();
        let env: crate::config::Env = &|_| None;
        // A port that takes connections and never answers: nothing to report for seconds.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = connections::Kafka::plain(&silent.local_addr().unwrap().to_string());
        let first = cache.kafka(&silent, env).unwrap();
        let again = cache.kafka(&silent, env).unwrap();
        assert!(std::sync::Arc::ptr_eq(&first, &again), "not kept");
        // Other settings: other clients, kept in their place.
        let refusing = connections::Kafka::plain(&format!("127.0.0.1:{}", closed_port()));
        let other = cache.kafka(&refusing, env).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&first, &other));
        // Clients that saw an error (the connection refused) are replaced.
        let started = std::time::Instant::now();
        while other.quiet() && started.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            !other.quiet(),
            "librdkafka reported nothing of a refused connection"
        );
        let fresh = cache.kafka(&refusing, env).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&other, &fresh));
    }
}

//! `paver`: plan and apply a platform repo revision to Kafka, ClickHouse and Kubernetes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use paver::plan::{self, Plan};
use paver::reconcile::{self, Options, ReconcileError};
use paver::store::Store;

/// Converge Kafka and ClickHouse to a revision of a platform repo, as one transaction.
///
/// Targets: `PAVER_CLICKHOUSE_URL` and `PAVER_KAFKA_BROKERS` (else `targets` in the
/// revision's paver.yaml, else 127.0.0.1:8123 and 127.0.0.1:9092); the ClickHouse password
/// from `PAVER_CLICKHOUSE_PASSWORD` (or the variable or file paver.yaml names).
#[derive(Parser, Debug)]
#[command(name = "paver", version, after_help = paver::cli::examples::PAVER)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the steps that would move the real systems to a revision (nothing changes).
    #[command(after_help = paver::cli::examples::PLAN)]
    Plan {
        #[command(flatten)]
        target: Target,
        /// Also save the plan as JSON, for `paver apply --plan`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Judge what exists with the inventory of a running `paver run` (http://host:port)
        /// rather than the local state store: a pull request's plan against the live state.
        #[arg(long, value_name = "URL")]
        inventory_from: Option<String>,
        /// `text` (Terraform-style), `markdown` (for a pull-request comment) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "markdown", "json"])]
        format: String,
    },
    /// Check the connections of a revision: print its configuration (secrets redacted),
    /// then one line per target: reachable, authenticated, TLS verified, server version, or
    /// exactly what is wrong. Exit 0 all fine, 1 a target is not, 2 could not run.
    #[command(after_help = paver::cli::examples::DOCTOR)]
    Doctor {
        #[command(flatten)]
        target: Target,
    },
    /// Apply a revision as one transaction: every step or none.
    #[command(after_help = paver::cli::examples::APPLY)]
    Apply {
        #[command(flatten)]
        target: Target,
        /// Apply this saved plan; refused if what exists changed since it was made.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Reconcile continuously: now, then every poll interval, and at once when a verified
    /// GitHub push webhook says the branch moved. Serves /status, /revisions/<sha>,
    /// /metrics (Prometheus) and /webhook. Stops on SIGINT/SIGTERM after the reconcile in
    /// progress.
    #[command(after_help = paver::cli::examples::RUN)]
    Run {
        #[command(flatten)]
        target: Target,
        /// Where the HTTP endpoints listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Seconds between reconciles when no webhook arrives, over paver.yaml's
        /// `reconcile.pollInterval` (default 30 s).
        #[arg(long)]
        poll_seconds: Option<u64>,
        /// The environment variable holding the webhook's HMAC secret (GitHub's
        /// X-Hub-Signature-256); without it, /webhook is off and polling alone finds commits.
        #[arg(long, value_name = "VAR", default_value = "PAVER_WEBHOOK_SECRET")]
        webhook_secret_env: String,
        /// A file holding the webhook's HMAC secret (a mounted Kubernetes Secret), instead
        /// of the environment variable.
        #[arg(long, value_name = "FILE")]
        webhook_secret_file: Option<PathBuf>,
        /// Where the live pipelines are ingested: `embedded` (workers inside this process)
        /// or `external` (none here: run `paver ingest --pipeline <name>` processes).
        #[arg(long, default_value = "embedded", value_parser = ["embedded", "external"])]
        ingest: String,
        #[command(flatten)]
        election: Election,
    },
    /// Ingest one pipeline in a process of its own (to scale out beyond `paver run`'s
    /// embedded workers): follows the pipeline's live version in the state store,
    /// consumes its topic, inserts into ClickHouse through the version's transform, sends
    /// what cannot be ingested to the dead-letter topic, and commits offsets after each
    /// insert. Any number of these processes share the pipeline's partitions through the
    /// version's Kafka consumer group, exactly once. Run `paver run --ingest external`
    /// beside them. Stops on SIGINT/SIGTERM after the batch in progress.
    #[command(after_help = paver::cli::examples::INGEST)]
    Ingest {
        /// The pipeline (its folder name under pipelines/).
        #[arg(long)]
        pipeline: String,
        /// The state store `paver run`/`paver apply` write (the live versions): a SQLite
        /// file or a `postgres://` URL.
        #[arg(
            long,
            env = "PAVER_STATE",
            hide_env_values = true,
            default_value = ".paver/state.db"
        )]
        state: PathBuf,
        /// A static assignment: only these partitions, e.g. `0,1,2`, outside the consumer
        /// group (processes given the same partition would insert it twice). Without it
        /// the process joins the version's consumer group and gets a share.
        #[arg(long, value_delimiter = ',')]
        partitions: Option<Vec<i32>>,
        /// How the consumer group spreads partitions over its members: `cooperative-sticky`
        /// (a rebalance stops only the partitions that move) or the eager `range` and
        /// `roundrobin` (every member pauses at each rebalance). All members of a group
        /// must name the same one.
        #[arg(long, default_value = "cooperative-sticky", value_parser = ["cooperative-sticky", "range", "roundrobin"])]
        assignor: String,
        /// Rows per insert (at most).
        #[arg(long, default_value_t = 20_000)]
        batch_rows: usize,
        /// MiB of rows per insert (at most).
        #[arg(long, default_value_t = 8)]
        batch_mib: usize,
        /// How rows are sent: `auto` (RowBinary where every column of the staging table
        /// has a type paver writes in binary, else JSONEachRow) or `json` (always
        /// JSONEachRow).
        #[arg(long, default_value = "auto", value_parser = ["auto", "json"])]
        insert_format: String,
        /// Milliseconds a batch waits for more records before it is inserted.
        #[arg(long, default_value_t = 250)]
        linger_ms: u64,
        /// What librdkafka may prefetch, in KiB (with the queue of 2 batches, what bounds
        /// the worker's memory while ClickHouse is slow or down).
        #[arg(long, default_value_t = 16 * 1024)]
        prefetch_kib: usize,
    },
    /// Print the Kubernetes objects a revision renders from its ClickHouseClusters, as
    /// multi-document YAML, for review in a pull request (nothing is applied).
    #[command(after_help = paver::cli::examples::RENDER)]
    Render {
        #[command(flatten)]
        target: Target,
        /// The namespace of clusters that paver.yaml gives none (default: its
        /// targets.kubernetes.namespace, else `default`).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Wait until a revision is applied (exit 0), refused or rolled back (exit 1), or the
    /// timeout passes (exit 2). For a deploy workflow: `paver wait --revision $GITHUB_SHA`.
    #[command(after_help = paver::cli::examples::WAIT)]
    Wait {
        #[arg(long)]
        revision: String,
        /// How long to wait, e.g. `90s`, `10m`.
        #[arg(long, default_value = "10m")]
        timeout: String,
        /// A running `paver run` (http://host:port); else the state store is read.
        #[arg(long)]
        server: Option<String>,
        #[arg(
            long,
            env = "PAVER_STATE",
            hide_env_values = true,
            default_value = ".paver/state.db"
        )]
        state: PathBuf,
    },
    /// The active revision, the last attempt and the pipelines: a summary on a terminal,
    /// JSON when piped (or as `-o` says).
    #[command(after_help = paver::cli::examples::STATUS)]
    Status {
        #[arg(
            long,
            env = "PAVER_STATE",
            hide_env_values = true,
            default_value = ".paver/state.db"
        )]
        state: PathBuf,
        /// Ask a running `paver run` (http://host:port) instead of reading the state store.
        #[arg(long)]
        server: Option<String>,
        /// `text` or `json` (default: text on a terminal, JSON otherwise).
        #[arg(short = 'o', long, value_enum)]
        output: Option<paver::cli::Output>,
    },
    /// Apply a held revision again. The run loop holds a revision whose last attempt
    /// failed for a reason that trying again cannot mend (a statement the server refuses,
    /// a conflict); after fixing the cause outside git (a permission, a quota), this asks
    /// the next reconcile to apply it once more. Transient failures need no retry: they
    /// are tried again by themselves, with backoff.
    #[command(after_help = paver::cli::examples::RETRY)]
    Retry {
        /// The revision (commit sha) to apply again.
        sha: String,
        #[arg(
            long,
            env = "PAVER_STATE",
            hide_env_values = true,
            default_value = ".paver/state.db"
        )]
        state: PathBuf,
        /// Ask a running `paver run` (http://host:port) instead of writing the state store.
        #[arg(long)]
        server: Option<String>,
    },
    /// Every attempt, newest first: a table on a terminal, JSON lines when piped (or as
    /// `-o` says).
    #[command(after_help = paver::cli::examples::HISTORY)]
    History {
        #[arg(
            long,
            env = "PAVER_STATE",
            hide_env_values = true,
            default_value = ".paver/state.db"
        )]
        state: PathBuf,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Ask a running `paver run` (http://host:port) instead of reading the state store.
        #[arg(long)]
        server: Option<String>,
        /// `text` or `json` (default: text on a terminal, JSON lines otherwise).
        #[arg(short = 'o', long, value_enum)]
        output: Option<paver::cli::Output>,
    },
}

#[derive(Args, Debug)]
struct Target {
    /// The platform repo: a folder, or a git URL (file://, https://, ssh).
    #[arg(long)]
    repo: String,
    /// The branch to follow (git URLs).
    #[arg(long, default_value = "main")]
    branch: String,
    /// A commit of the branch instead of its head (git URLs).
    #[arg(long)]
    revision: Option<String>,
    /// The state store: a SQLite file, or a PostgreSQL database (`postgres://user@host/db`;
    /// the password in it, or in PAVER_STATE_PASSWORD).
    #[arg(
        long,
        env = "PAVER_STATE",
        hide_env_values = true,
        default_value = ".paver/state.db"
    )]
    state: PathBuf,
}

/// High availability: several `paver run` replicas, one leader.
#[derive(Args, Debug)]
struct Election {
    /// Take part in leader election with a Kubernetes Lease: only the leader applies
    /// revisions; the others serve status and take over within the lease duration
    /// when the leader dies. With the state in PostgreSQL, replicas always elect a leader
    /// through it instead (its term fences every write), Kubernetes or not.
    #[arg(long)]
    leader_election: bool,
    /// The lease's name (the Kubernetes Lease, or the lease row in PostgreSQL).
    #[arg(long, default_value = "paver")]
    lease_name: String,
    /// How long a lease holds without renewal: a standby takes over within it after the
    /// leader dies.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    lease_seconds: u64,
    /// The Lease's namespace (default: $POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long)]
    lease_namespace: Option<String>,
}

impl Election {
    /// The elector, when leader election is on. The identity is the pod's name
    /// (`$POD_NAME`, else `$HOSTNAME`), so that `kubectl get lease` tells who leads.
    async fn elector(
        &self,
        state: &std::path::Path,
    ) -> Result<Option<paver::election::Elector>, Failure> {
        let duration = std::time::Duration::from_secs(self.lease_seconds);
        let location = paver::store::Location::of(state);
        if location.is_postgres() {
            let host = ["POD_NAME", "HOSTNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
                .unwrap_or_else(|| "paver".to_string());
            // Unique per process: two replicas on one host must not share the lease.
            let identity = format!("{host} pid {}", std::process::id());
            let config =
                paver::store::lease::ElectionConfig::new(&self.lease_name, &identity, duration);
            eprintln!(
                "paver: leader election through the state store ({location}), lease {} as {identity}",
                self.lease_name
            );
            let elector = tokio::task::spawn_blocking(move || {
                paver::store::lease::Elector::new(&location, config)
            })
            .await
            .map_err(|e| Failure::Other(format!("leader election: {e}")))??;
            return Ok(Some(paver::election::Elector::Store(elector)));
        }
        if !self.leader_election {
            return Ok(None);
        }
        let context = std::env::var("PAVER_KUBERNETES_CONTEXT")
            .ok()
            .filter(|c| !c.is_empty());
        let client = paver::kube::provider::client(context.as_deref())
            .await
            .map_err(|e| Failure::Other(format!("--leader-election: {e}")))?;
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| client.default_namespace().to_string());
        let identity = ["POD_NAME", "HOSTNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| format!("paver-{}", std::process::id()));
        eprintln!(
            "paver: leader election on lease {namespace}/{} as {identity}",
            self.lease_name
        );
        let mut config =
            paver::kube::lease::LeaseConfig::new(&self.lease_name, &namespace, &identity);
        config.duration = duration;
        config.renew_deadline = duration * 2 / 3;
        config.retry = duration * 2 / 15;
        Ok(Some(paver::election::Elector::Kube(
            paver::kube::lease::Elector::new(client, config),
        )))
    }
}

impl Target {
    fn options(&self) -> Options {
        Options {
            repo: self.repo.clone(),
            branch: self.branch.clone(),
            revision: self.revision.clone(),
            state: self.state.clone(),
            inventory: None,
            live: None,
            notifier: None,
            flags: Default::default(),
            cache: None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    paver::logging::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("paver: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paver: {e}");
            ExitCode::from(match e {
                Failure::Refused(_) => 1,
                Failure::Other(_) => 2,
            })
        }
    }
}

enum Failure {
    /// The revision was refused or rolled back: exit 1.
    Refused(String),
    /// paver could not do its job: exit 2.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

impl From<ReconcileError> for Failure {
    fn from(e: ReconcileError) -> Self {
        match e {
            ReconcileError::Refused { .. } | ReconcileError::Blocked { .. } => {
                Failure::Refused(e.to_string())
            }
            other => Failure::Other(other.to_string()),
        }
    }
}

impl From<paver::http::HttpError> for Failure {
    fn from(e: paver::http::HttpError) -> Self {
        Failure::Other(e.to_string())
    }
}

impl From<paver::store::StoreError> for Failure {
    fn from(e: paver::store::StoreError) -> Self {
        Failure::Other(e.to_string())
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Plan {
            target,
            out,
            inventory_from,
            format,
        } => {
            let store = Store::open(&target.state)?;
            let mut options = target.options();
            if let Some(server) = inventory_from {
                let url = format!("{}/inventory", server.trim_end_matches('/'));
                let list = paver::http::get_json(&url)
                    .await?
                    .ok_or_else(|| Failure::Other(format!("{url} answered nothing")))?;
                options.inventory = Some(
                    list.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                );
                let url = format!("{}/live", server.trim_end_matches('/'));
                let live = paver::http::get_json(&url)
                    .await?
                    .ok_or_else(|| Failure::Other(format!("{url} answered nothing")))?;
                options.live = Some(serde_json::from_value(live).map_err(|e| {
                    Failure::Other(format!(
                        "{url} answered what is not a list of live versions: {e}"
                    ))
                })?);
            }
            let planned = reconcile::plan(&options, &store).await?;
            match format.as_str() {
                "markdown" => print!("{}", plan::render_markdown(&planned.plan)),
                "json" => println!(
                    "{}",
                    serde_json::to_string_pretty(&planned.plan)
                        .map_err(|e| Failure::Other(e.to_string()))?
                ),
                _ => print!("{}", plan::render(&planned.plan)),
            }
            let (queries, requests) = planned.targets.requests();
            eprintln!("paver: {queries} ClickHouse queries, {requests} Kafka requests");
            if let Some(out) = out {
                let json = serde_json::to_string_pretty(&planned.plan)
                    .map_err(|e| Failure::Other(e.to_string()))?;
                std::fs::write(&out, json)
                    .map_err(|e| Failure::Other(format!("cannot write {}: {e}", out.display())))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply {
            target,
            plan: saved,
        } => {
            let store = Store::open(&target.state)?;
            let options = target.options();
            // The steps as they run: a live line on a terminal, plain lines otherwise.
            let progress = paver::progress::Reporter::stderr();
            let (planned, outcome) = paver::progress::scope(progress, async {
                Ok::<_, Failure>(match saved {
                    Some(file) => {
                        let text = std::fs::read_to_string(&file).map_err(|e| {
                            Failure::Other(format!("cannot read {}: {e}", file.display()))
                        })?;
                        let saved: Plan = serde_json::from_str(&text).map_err(|e| {
                            Failure::Other(format!("{} is not a paver plan: {e}", file.display()))
                        })?;
                        let planned = reconcile::plan(&options, &store).await?;
                        if planned.sha != saved.revision || planned.plan.observed != saved.observed {
                            return Err(Failure::Refused(format!(
                                "the saved plan is for {} over a world that has changed since (now: {}): run `paver plan` again",
                                saved.revision, planned.sha
                            )));
                        }
                        let outcome = paver::executor::apply(
                            &store,
                            &saved,
                            &planned.targets,
                            &paver::executor::Alone,
                        )
                        .await
                        .map_err(ReconcileError::from)?;
                        (planned, outcome)
                    }
                    None => {
                        reconcile::apply(
                            &options,
                            &store,
                            reconcile::Retry::Now,
                            &paver::executor::Alone,
                        )
                        .await?
                    }
                })
            })
            .await?;
            print!("{}", plan::render(&planned.plan));
            let (queries, requests) = planned.targets.requests();
            eprintln!("paver: {queries} ClickHouse queries, {requests} Kafka requests");
            match outcome.error {
                None => {
                    println!("paver: applied {} ({} steps)", planned.sha, outcome.applied);
                    Ok(ExitCode::SUCCESS)
                }
                Some(error) => Err(Failure::Refused(format!(
                    "revision {} rolled back: {error}",
                    planned.sha
                ))),
            }
        }
        Command::Run {
            target,
            listen,
            poll_seconds,
            webhook_secret_env,
            webhook_secret_file,
            ingest,
            election,
        } => {
            let elector = election.elector(&target.state).await?;
            let source = match webhook_secret_file {
                Some(file) => paver::config::SecretSource::File(file),
                None => paver::config::SecretSource::Env(webhook_secret_env),
            };
            let secret = match source.read("the webhook secret", &paver::config::process_env) {
                Ok(secret) => Some(secret.expose().as_bytes().to_vec()),
                Err(e @ paver::config::ConfigError::FileUnreadable { .. }) => {
                    return Err(Failure::Other(e.to_string()))
                }
                Err(_) => {
                    eprintln!(
                        "paver: {source} is not set: /webhook is off, polling alone finds commits"
                    );
                    None
                }
            };
            let mut options = target.options();
            options.flags.poll_interval = poll_seconds.map(std::time::Duration::from_secs);
            paver::server::run(options, listen, secret, ingest == "embedded", elector)
                .await
                .map_err(Failure::Other)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            pipeline,
            state,
            partitions,
            assignor,
            batch_rows,
            batch_mib,
            insert_format,
            linger_ms,
            prefetch_kib,
        } => {
            let mut options = paver::ingest::worker::Options::new(
                state,
                &pipeline,
                &format!("pid {}", std::process::id()),
            );
            options.partitions = partitions;
            options.assignor = assignor;
            options.batch_rows = batch_rows.max(1);
            options.batch_bytes = batch_mib.max(1) << 20;
            options.row_binary = insert_format == "auto";
            options.linger = std::time::Duration::from_millis(linger_ms);
            options.prefetch_kib = prefetch_kib.max(1);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                paver::server::shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            paver::ingest::worker::run(options, stop_rx)
                .await
                .map_err(|e| Failure::Other(e.to_string()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { target } => Ok(ExitCode::from(
            paver::doctor::run(&target.options(), &mut std::io::stdout()).await as u8,
        )),
        Command::Render { target, namespace } => {
            let (_, objects) = reconcile::render_revision(&target.options(), namespace)?;
            print!("{}", paver::kube::yaml::documents(&objects));
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait {
            revision,
            timeout,
            server,
            state,
        } => {
            let timeout = parse_duration(&timeout).ok_or_else(|| {
                Failure::Other(format!("`{timeout}` is not a duration (e.g. 90s, 10m)"))
            })?;
            match paver::cli::wait::wait(&revision, timeout, server.as_deref(), &state).await {
                Ok(record) => {
                    if let Some(plan) = record["plan"].as_str() {
                        print!("{plan}");
                    }
                    println!("paver: {revision} is applied");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ paver::cli::wait::WaitError::Failed { .. }) => {
                    Err(Failure::Refused(e.to_string()))
                }
                Err(e) => Err(Failure::Other(e.to_string())),
            }
        }
        Command::Retry { sha, state, server } => {
            match server {
                Some(server) => {
                    let url = format!("{}/retry/{sha}", server.trim_end_matches('/'));
                    paver::http::post(&url, b"")
                        .await
                        .map_err(|e| Failure::Other(e.to_string()))?;
                }
                None => Store::open(&state)?.request_retry(&sha)?,
            }
            println!("paver: {sha} will be applied again by the next reconcile");
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            server: Some(server),
            output,
            ..
        } => {
            let status = paver::http::get_json(&format!("{}/status", server.trim_end_matches('/')))
                .await?
                .ok_or_else(|| Failure::Other(format!("{server}/status answered nothing")))?;
            print_status(&status, output)
        }
        Command::History {
            server: Some(server),
            limit,
            output,
            ..
        } => {
            let list = paver::http::get_json(&format!(
                "{}/history?limit={limit}",
                server.trim_end_matches('/')
            ))
            .await?
            .ok_or_else(|| Failure::Other(format!("{server}/history answered nothing")))?;
            let records = list.as_array().ok_or_else(|| {
                Failure::Other(format!("{server}/history answered no list: {list}"))
            })?;
            print_history(records, output)
        }
        Command::Status { state, output, .. } => {
            let store = Store::open(&state)?;
            let notifications = paver::notify::snapshot(&state)?;
            let status = serde_json::json!({
                "active": store.active()?,
                "last": store.history(1)?.into_iter().next(),
                "interrupted": store.interrupted()?,
                "managed": store.inventory()?.len(),
                "pipelines": store.pipelines_summary()?,
                "failure": match store.history(1)?.first() {
                    Some(last) => paver::server::failure_of(&store.attempts_of(&last.sha)?),
                    None => None,
                },
                "alerts": notifications.firing,
                "notifications": notifications,
            });
            print_status(&status, output)
        }
        Command::History {
            state,
            limit,
            output,
            ..
        } => {
            let store = Store::open(&state)?;
            print_history(&store.history(limit)?, output)
        }
    }
}

/// `paver status` as `-o` (or the terminal) says.
fn print_status(
    status: &serde_json::Value,
    output: Option<paver::cli::Output>,
) -> Result<ExitCode, Failure> {
    let text = match paver::cli::Output::resolve(output) {
        paver::cli::Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(status).map_err(|e| Failure::Other(e.to_string()))?
        ),
        paver::cli::Output::Text => paver::cli::show::status(
            status,
            paver::cli::show::Paint {
                colour: paver::cli::colour(),
            },
        ),
    };
    emit(&text)
}

/// `paver history` as `-o` (or the terminal) says: JSON lines, or a table.
fn print_history<T: serde::Serialize>(
    records: &[T],
    output: Option<paver::cli::Output>,
) -> Result<ExitCode, Failure> {
    let bad = |e: serde_json::Error| Failure::Other(e.to_string());
    let text = match paver::cli::Output::resolve(output) {
        paver::cli::Output::Json => {
            let mut text = String::new();
            for record in records {
                text.push_str(&serde_json::to_string(record).map_err(bad)?);
                text.push('\n');
            }
            text
        }
        paver::cli::Output::Text => {
            let records = records
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            let paint = paver::cli::show::Paint {
                colour: paver::cli::colour(),
            };
            paver::cli::show::history(&records, paint)
        }
    };
    emit(&text)
}

/// Print to stdout; a reader that went away (`paver status | head -3`) is not an error.
fn emit(text: &str) -> Result<ExitCode, Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Other(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `90s`, `10m`, `1h`, or plain seconds.
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let (number, unit) = text.trim().split_at(
        text.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.trim().len()),
    );
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(seconds))
}

//! `paver`: plan and apply a platform repo revision to Kafka and ClickHouse.

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
#[command(name = "paver", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the steps that would move the real systems to a revision (nothing changes).
    Plan {
        #[command(flatten)]
        target: Target,
        /// Also save the plan as JSON, for `paver apply --plan`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Apply a revision as one transaction: every step or none.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Apply this saved plan; refused if what exists changed since it was made.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// The active revision and the last attempt, as JSON.
    Status {
        #[arg(long, default_value = ".paver/state.db")]
        state: PathBuf,
    },
    /// Every attempt, newest first, as JSON lines.
    History {
        #[arg(long, default_value = ".paver/state.db")]
        state: PathBuf,
        #[arg(long, default_value_t = 20)]
        limit: usize,
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
    /// The state store (SQLite).
    #[arg(long, default_value = ".paver/state.db")]
    state: PathBuf,
}

impl Target {
    fn options(&self) -> Options {
        Options {
            repo: self.repo.clone(),
            branch: self.branch.clone(),
            revision: self.revision.clone(),
            state: self.state.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

impl From<paver::store::StoreError> for Failure {
    fn from(e: paver::store::StoreError) -> Self {
        Failure::Other(e.to_string())
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Plan { target, out } => {
            let store = Store::open(&target.state)?;
            let planned = reconcile::plan(&target.options(), &store).await?;
            print!("{}", plan::render(&planned.plan));
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
            let (planned, outcome) = match saved {
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
                    let outcome = paver::executor::apply(&store, &saved, &planned.targets).await?;
                    (planned, outcome)
                }
                None => reconcile::apply(&options, &store).await?,
            };
            print!("{}", plan::render(&planned.plan));
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
        Command::Status { state } => {
            let store = Store::open(&state)?;
            let status = serde_json::json!({
                "active": store.active()?,
                "last": store.history(1)?.into_iter().next(),
                "interrupted": store.interrupted()?,
                "managed": store.inventory()?.len(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::History { state, limit } => {
            let store = Store::open(&state)?;
            for record in store.history(limit)? {
                println!("{}", serde_json::to_string(&record).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

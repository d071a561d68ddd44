//! `paver-lint`: the pull-request check of a paver platform repo.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use paver_lint::output::{self, Format};
use paver_lint::rules;

/// Check a paver platform repo: every spec against its JSON Schema, every reference,
/// every transform's SQL, every Avro schema, and the repo layout.
///
/// Exit status: 0 when there are no errors (warnings allowed), 1 when there is at least
/// one error, 2 when the linter could not run (bad arguments, unreadable repo).
#[derive(Parser, Debug)]
#[command(
    name = "paver-lint",
    version,
    after_help = "Examples:\n  paver-lint                          lint the repo in the current directory\n  paver-lint platform/ --format json  findings as JSON\n  paver-lint --format github          annotations for a GitHub Actions step\n  paver-lint --base origin/main       as a pull request against main (released versions)\n  paver-lint --explain PV303          what a rule checks and how to fix it\n  paver-lint --list-rules             every rule with its id"
)]
struct Cli {
    /// The platform repo's root (the folder holding topics/, schemas/, clusters/, pipelines/).
    #[arg(default_value = ".")]
    path: PathBuf,

    /// Judge the repo as a pull request against this git ref (a branch, tag or commit, e.g.
    /// `origin/main`): released versions must be unchanged, only the newest may be removed.
    /// Read from git objects, without a checkout.
    #[arg(long, value_name = "GIT-REF")]
    base: Option<String>,

    /// How to print findings.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,

    /// Print what a rule checks, why, and how to fix it (e.g. `--explain PV303`), then exit.
    #[arg(long, value_name = "PV###")]
    explain: Option<String>,

    /// List every rule with its id, severity and summary, then exit.
    #[arg(long)]
    list_rules: bool,

    /// Never colour the human output (also: the NO_COLOR environment variable).
    #[arg(long)]
    no_color: bool,

    /// Succeed on a folder holding no platform repo (no paver.yaml, no topics/, schemas/,
    /// clusters/ or pipelines/). Without it that is exit 2: a check that checked nothing
    /// must not pass.
    #[arg(long)]
    allow_empty: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("paver-lint: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    let mut stdout = std::io::stdout().lock();
    if let Some(id) = &cli.explain {
        let rule = rules::find(id)
            .ok_or_else(|| format!("no rule `{id}`; `paver-lint --list-rules` lists them"))?;
        let _ = write!(stdout, "{}", rules::explain(rule));
        return Ok(ExitCode::SUCCESS);
    }
    if cli.list_rules {
        for rule in rules::ALL {
            let m = rule.meta();
            let _ = writeln!(
                stdout,
                "{}  {:<22} {:<8} {}",
                m.code,
                m.name,
                m.severity.as_str(),
                m.summary
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = match &cli.base {
        Some(base) => paver_lint::lint_dir_against(&cli.path, base)
            .map_err(|e| format!("{e} (repo `{}`)", cli.path.display()))?,
        None => paver_lint::lint_dir(&cli.path)
            .map_err(|e| format!("cannot read the repo at `{}`: {e}", cli.path.display()))?,
    };
    if report.workspace.files.is_empty() && report.diagnostics.is_empty() && !cli.allow_empty {
        return Err(format!(
            "no platform repo found in `{}`: it holds no paver.yaml and none of {}/ \
             (pass the repo's root as PATH, or --allow-empty to accept an empty repo)",
            cli.path.display(),
            paver_lint::layout::MANAGED.join("/, "),
        ));
    }
    let text = match cli.format {
        Format::Human => {
            let color = !cli.no_color
                && std::env::var_os("NO_COLOR").is_none()
                && std::io::stdout().is_terminal();
            output::human::render(&report, color)
        }
        Format::Json => output::json::render(&report),
        Format::Sarif => output::sarif::render(&report, &checkout_prefix(&cli.path)),
        Format::Github => {
            let (commands, summary) = output::github::render(&report, &checkout_prefix(&cli.path));
            if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(summary.as_bytes()));
                if let Err(e) = written {
                    eprintln!("paver-lint: could not write the job summary: {e}");
                }
            }
            commands
        }
    };
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(if report.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The repo root relative to the GitHub checkout (`$GITHUB_WORKSPACE`), `/`-terminated, so
/// that annotations and SARIF locations name files as GitHub sees them.
fn checkout_prefix(root: &Path) -> String {
    let Some(workspace) = std::env::var_os("GITHUB_WORKSPACE") else {
        return String::new();
    };
    let (Ok(root), Ok(workspace)) = (root.canonicalize(), Path::new(&workspace).canonicalize())
    else {
        return String::new();
    };
    match root.strip_prefix(&workspace) {
        Ok(rel) if !rel.as_os_str().is_empty() => {
            format!("{}/", rel.to_string_lossy().replace('\\', "/"))
        }
        _ => String::new(),
    }
}

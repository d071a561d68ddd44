//! What the `paver` command prints for people: pure renderings of the state, chosen by
//! `-o text|json` (text on a terminal, JSON otherwise).

pub mod examples;
pub mod show;
pub mod wait;

use std::io::IsTerminal;

/// How a command prints what it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A summary for people (tables, colour on a terminal unless `NO_COLOR` is set).
    Text,
    /// JSON for machines (what `/status` and `/history` serve).
    Json,
}

impl Output {
    /// The format asked for, else text when stdout is a terminal and JSON when it is piped,
    /// so scripts that read `paver status` keep reading JSON.
    pub fn resolve(asked: Option<Output>) -> Output {
        asked.unwrap_or(if std::io::stdout().is_terminal() {
            Output::Text
        } else {
            Output::Json
        })
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

//! librdkafka's own log (through the `log` facade) on stderr: warnings and errors by
//! default (`PAVER_LOG=info|debug` for more), each distinct message once a minute, so that
//! a wrong password is one line, not a page of reconnect attempts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a message stays quiet after it was printed.
const QUIET: Duration = Duration::from_secs(60);

struct Stderr {
    level: log::LevelFilter,
    seen: Mutex<HashMap<String, Instant>>,
}

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        // librdkafka's reasons end in "(after 12ms in state X)": the same problem each time.
        // The same failure comes as a log line (`FAIL [thrd:…]: <reason>`) and as an error
        // (`<reason>`): one key for both.
        let key = text.split(" (after ").next().unwrap_or(&text);
        let key = key.rsplit("]: ").next().unwrap_or(key);
        let key = key.trim_start_matches("librdkafka: ").to_string();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < QUIET)
        {
            return;
        }
        seen.insert(key, now);
        let level = record.level().to_string().to_ascii_lowercase();
        eprintln!("paver: {level}: {text}");
    }

    fn flush(&self) {}
}

/// Install the logger (once; later calls do nothing).
pub fn install() {
    let level = match crate::config::process_env("PAVER_LOG").as_deref() {
        Some("error") => log::LevelFilter::Error,
        Some("info") => log::LevelFilter::Info,
        Some("debug") => log::LevelFilter::Debug,
        Some("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    let logger = Box::new(Stderr {
        level,
        seen: Mutex::new(HashMap::new()),
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

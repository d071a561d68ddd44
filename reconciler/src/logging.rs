//! Diagnostics of the libraries paver uses (librdkafka's own log above all) go through
//! `tracing`; this is the subscriber that prints them on stderr: warnings and errors by
//! default (`PAVER_LOG=error|info|debug|off`), each distinct message at most once a minute,
//! so that a wrong password is one line, not a page of reconnect attempts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// How long a message stays quiet after it was printed.
const QUIET: Duration = Duration::from_secs(60);

/// The most detailed level printed, from `PAVER_LOG` (warnings by default).
pub fn level() -> LevelFilter {
    match crate::config::process_env("PAVER_LOG").as_deref() {
        Some("error") => LevelFilter::ERROR,
        Some("info") => LevelFilter::INFO,
        Some("debug") => LevelFilter::DEBUG,
        Some("off") => LevelFilter::OFF,
        _ => LevelFilter::WARN,
    }
}

/// The level librdkafka is asked to log at: no more than what is printed.
pub fn kafka_level() -> rdkafka::config::RDKafkaLogLevel {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level() {
        LevelFilter::DEBUG | LevelFilter::TRACE => L::Debug,
        LevelFilter::INFO => L::Info,
        LevelFilter::WARN => L::Warning,
        _ => L::Error,
    }
}

/// The key under which a message is printed at most once a minute: librdkafka's reasons
/// end in "(after 12ms in state X)", and the same failure comes as a log line (`FAIL
/// [thrd:…]: <reason>`) and as an error (`<reason>`).
pub fn quiet_key(text: &str) -> String {
    let key = text.split(" (after ").next().unwrap_or(text);
    key.rsplit("]: ").next().unwrap_or(key).to_string()
}

/// The text of an event: its message, then its other fields.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// Prints events on stderr; spans are only numbered (nothing of paver's uses them).
struct Stderr {
    level: LevelFilter,
    seen: Mutex<HashMap<String, Instant>>,
    spans: AtomicU64,
}

impl Stderr {
    /// Whether the message was printed less than a minute ago (and remember it if not).
    fn quiet(&self, key: String) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if seen
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < QUIET)
        {
            return true;
        }
        if seen.len() > 1024 {
            seen.retain(|_, at| now.duration_since(*at) < QUIET);
        }
        seen.insert(key, now);
        false
    }
}

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.level >= *metadata.level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.level)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if !self.enabled(metadata) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        if self.quiet(format!("{} {}", metadata.target(), quiet_key(&text.0))) {
            return;
        }
        let level = match *metadata.level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        eprintln!("paver: {level}: {}: {}", metadata.target(), text.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Install the subscriber (once; later calls do nothing).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(Stderr {
        level: level(),
        seen: Mutex::new(HashMap::new()),
        spans: AtomicU64::new(0),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failure_has_one_key_whether_logged_or_reported() {
        let logged = "FAIL [thrd:sasl_ssl://127.0.0.1:9093/bootstrap]: sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed (after 12ms in state AUTH_REQ)";
        let reported = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed (after 310ms in state AUTH_REQ, 1 identical error(s) suppressed)";
        assert_eq!(quiet_key(logged), quiet_key(reported));
    }

    #[test]
    fn a_message_is_printed_once_a_minute() {
        let s = Stderr {
            level: LevelFilter::WARN,
            seen: Mutex::new(HashMap::new()),
            spans: AtomicU64::new(0),
        };
        assert!(!s.quiet("a".into()));
        assert!(s.quiet("a".into()));
        assert!(!s.quiet("b".into()));
    }
}

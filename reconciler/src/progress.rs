//! What `paver apply` shows while a revision's steps run: on a terminal, one line that
//! follows the step in progress and a line per step finished; otherwise (a CI log, a pipe)
//! one plain line per step as it starts, so a log says where a long apply is.
//!
//! The executor reports to whatever [`scope`] installed around it (a tokio task-local);
//! without one (`paver run`, the tests), reporting does nothing.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

tokio::task_local! {
    static REPORTER: Arc<Reporter>;
}

/// Where the progress goes, and how.
pub struct Reporter {
    out: Mutex<Box<dyn Write + Send>>,
    /// A terminal: the line in progress is redrawn in place.
    live: bool,
    started: Instant,
    step_started: Mutex<Instant>,
}

impl Reporter {
    pub fn new(out: Box<dyn Write + Send>, live: bool) -> Reporter {
        Reporter {
            out: Mutex::new(out),
            live,
            started: Instant::now(),
            step_started: Mutex::new(Instant::now()),
        }
    }

    /// stderr, live when it is a terminal.
    pub fn stderr() -> Reporter {
        use std::io::IsTerminal;
        let live = std::io::stderr().is_terminal();
        Reporter::new(Box::new(std::io::stderr()), live)
    }

    fn write(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Progress is a courtesy: a closed stderr must not fail an apply.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn step_elapsed(&self) -> Duration {
        self.step_started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    fn started(&self, n: usize, of: usize, what: &str) {
        *self.step_started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        if self.live {
            self.write(&format!("\r\x1b[2K  … [{n}/{of}] {what}"));
        } else {
            self.write(&format!("paver: [{n}/{of}] {what}\n"));
        }
    }

    fn done(&self, n: usize, of: usize, what: &str) {
        if self.live {
            self.write(&format!(
                "\r\x1b[2K  ✓ [{n}/{of}] {what} {}\n",
                seconds(self.step_elapsed())
            ));
        }
    }

    fn failed(&self, n: usize, of: usize, what: &str) {
        let line = format!(
            "[{n}/{of}] {what} failed after {}",
            seconds(self.step_elapsed())
        );
        if self.live {
            self.write(&format!("\r\x1b[2K  ✗ {line}\n"));
        } else {
            self.write(&format!("paver: {line}\n"));
        }
    }

    fn undoing(&self, n: usize, what: &str) {
        if self.live {
            self.write(&format!("\r\x1b[2K  ↶ undoing step {n}: {what}\n"));
        } else {
            self.write(&format!("paver: undoing step {n}: {what}\n"));
        }
    }

    fn finished(&self, steps: usize) {
        let line = format!(
            "{steps} step{} in {:.1} s",
            if steps == 1 { "" } else { "s" },
            self.started.elapsed().as_secs_f64()
        );
        if self.live {
            self.write(&format!("\r\x1b[2K  {line}\n"));
        } else {
            self.write(&format!("paver: {line}\n"));
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("({:.1} s)", d.as_secs_f64())
}

/// Run `work` with its progress going to `reporter`.
pub async fn scope<F: std::future::Future>(reporter: Reporter, work: F) -> F::Output {
    REPORTER.scope(Arc::new(reporter), work).await
}

fn with(f: impl FnOnce(&Reporter)) {
    // Outside a scope there is no one to tell.
    let _ = REPORTER.try_with(|r| f(r));
}

/// Step `n` of `of` starts.
pub fn started(n: usize, of: usize, what: &str) {
    with(|r| r.started(n, of, what));
}

/// Step `n` of `of` is done.
pub fn done(n: usize, of: usize, what: &str) {
    with(|r| r.done(n, of, what));
}

/// Step `n` of `of` failed (the error itself is reported by whoever gets it).
pub fn failed(n: usize, of: usize, what: &str) {
    with(|r| r.failed(n, of, what));
}

/// Step `n` is being undone (a rollback).
pub fn undoing(n: usize, what: &str) {
    with(|r| r.undoing(n, what));
}

/// Every one of `steps` steps ran.
pub fn finished(steps: usize) {
    with(|r| r.finished(steps));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn three_steps_one_failing() {
        started(1, 3, "create topic t");
        done(1, 3, "create topic t");
        started(2, 3, "create table db.t");
        failed(2, 3, "create table db.t");
        undoing(1, "create topic t");
    }

    fn run(live: bool) -> String {
        let out = Shared::default();
        let reporter = Reporter::new(Box::new(out.clone()), live);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(scope(reporter, three_steps_one_failing()));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        // The timings vary; the lines do not.
        text.split("(0.0 s)").collect::<Vec<_>>().join("(…)")
    }

    #[test]
    fn plain_lines_when_not_a_terminal() {
        assert_eq!(
            run(false),
            "paver: [1/3] create topic t\npaver: [2/3] create table db.t\npaver: [2/3] create table db.t failed after (…)\npaver: undoing step 1: create topic t\n"
        );
    }

    #[test]
    fn a_terminal_line_is_redrawn_in_place() {
        let text = run(true);
        assert!(
            text.starts_with(
                "\r\x1b[2K  … [1/3] create topic t\r\x1b[2K  ✓ [1/3] create topic t (…)\n"
            ),
            "{text:?}"
        );
        assert!(
            text.contains("  ✗ [2/3] create table db.t failed after (…)\n"),
            "{text:?}"
        );
    }

    #[test]
    fn nothing_is_reported_outside_a_scope() {
        // No reporter: no panic, no output anywhere.
        started(1, 1, "x");
        finished(1);
    }
}

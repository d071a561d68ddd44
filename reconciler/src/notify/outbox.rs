//! The outbox: notifications waiting to be delivered, and the alerts that fire, in the
//! state store's SQLite file (tables `notifications` and `alerts`). A notification is
//! written once (its `key` is unique: one per revision and outcome, one per alert and
//! transition), then delivered by the delivery task; what is not delivered survives a
//! restart. Notifications to one receiver (a `lane`) go out in the order they were queued.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::store::{now_ms, StoreError};

/// How long a notification is tried before it is given up.
pub const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,
    lane            TEXT NOT NULL,
    target          TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    queued_ms       INTEGER NOT NULL,
    delivered_ms    INTEGER,
    gave_up_ms      INTEGER
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (lane, id) WHERE delivered_ms IS NULL AND gave_up_ms IS NULL;
CREATE TABLE IF NOT EXISTS alerts (
    pipeline  TEXT NOT NULL,
    alert     TEXT NOT NULL,
    owner     TEXT NOT NULL,
    version   INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, alert)
);
";

/// Where a notification goes; resolved against the configuration when it is sent (so no
/// secret, and no Slack webhook URL, is ever written to the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// A `notifications.webhooks` entry (signed when it names a secret).
    Webhook { url: String },
    /// A commit status of `notifications.github`'s repository.
    GitHubStatus { sha: String },
    /// A Slack channel of `notifications.slack`.
    Slack { channel: String },
    /// An alert receiver's URL.
    Http { url: String },
}

impl Target {
    /// Notifications of one lane are delivered in order.
    fn lane(&self) -> String {
        match self {
            Target::Webhook { url } => format!("webhook {url}"),
            Target::GitHubStatus { sha } => format!("github {sha}"),
            Target::Slack { channel } => format!("slack #{channel}"),
            Target::Http { url } => format!("http {url}"),
        }
    }
}

/// A notification not yet delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: i64,
    pub key: String,
    pub target: Target,
    pub body: String,
    pub attempts: i64,
    pub queued_ms: i64,
}

/// An alert that fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FiringAlert {
    pub pipeline: String,
    /// `onFailure` or `onBacklog`.
    pub alert: String,
    pub owner: String,
    pub version: u32,
    pub reason: String,
    pub starts_at: String,
}

/// The outbox, over its own connection to the state store's file.
pub struct Outbox {
    conn: Connection,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Outbox { conn })
    }

    /// Queue a notification unless one with the same key was queued before; whether it
    /// was queued now.
    pub fn enqueue(&self, key: &str, target: &Target, body: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let added = self.conn.execute(
            "INSERT OR IGNORE INTO notifications (key, lane, target, body, next_attempt_ms, queued_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![key, target.lane(), serde_json::to_string(target)?, body, now],
        )?;
        Ok(added == 1)
    }

    /// The notifications due now, the oldest undelivered of each lane only.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT n.id, n.key, n.target, n.body, n.attempts, n.queued_ms FROM notifications n
             WHERE n.delivered_ms IS NULL AND n.gave_up_ms IS NULL AND n.next_attempt_ms <= ?1
               AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.lane = n.lane AND o.id < n.id
                               AND o.delivered_ms IS NULL AND o.gave_up_ms IS NULL)
             ORDER BY n.id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, key, target, body, attempts, queued_ms) = row?;
            out.push(Pending {
                id,
                key,
                target: serde_json::from_str(&target)?,
                body,
                attempts,
                queued_ms,
            });
        }
        Ok(out)
    }

    /// When the next undelivered notification is due, if any.
    pub fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_attempt_ms) FROM notifications WHERE delivered_ms IS NULL AND gave_up_ms IS NULL",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn delivered(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE notifications SET delivered_ms = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// A failed attempt: try again at `next_ms`, or give up once it has waited a day.
    pub fn failed(&self, id: i64, error: &str, next_ms: i64) -> Result<(), StoreError> {
        let now = now_ms();
        self.conn.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3,
               gave_up_ms = CASE WHEN ?4 - queued_ms > ?5 THEN ?4 END
             WHERE id = ?1",
            params![id, error, next_ms, now, GIVE_UP_AFTER_MS],
        )?;
        Ok(())
    }

    /// (queued, delivered, given up, waiting) counts, for the metrics.
    pub fn counts(&self) -> Result<(i64, i64, i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COUNT(delivered_ms), COUNT(gave_up_ms),
                    COUNT(*) - COUNT(delivered_ms) - COUNT(gave_up_ms) FROM notifications",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?)
    }

    /// Every notification with where it stands (for tests and `paver status`).
    pub fn all(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT key, attempts, last_error, delivered_ms IS NOT NULL, gave_up_ms IS NOT NULL FROM notifications ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(serde_json::json!({
                "key": r.get::<_, String>(0)?,
                "attempts": r.get::<_, i64>(1)?,
                "lastError": r.get::<_, Option<String>>(2)?,
                "delivered": r.get::<_, bool>(3)?,
                "gaveUp": r.get::<_, bool>(4)?,
            }))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The alerts that fire now.
    pub fn firing(&self) -> Result<Vec<FiringAlert>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT pipeline, alert, owner, version, reason, starts_at FROM alerts ORDER BY pipeline, alert",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FiringAlert {
                pipeline: r.get(0)?,
                alert: r.get(1)?,
                owner: r.get(2)?,
                version: r.get(3)?,
                reason: r.get(4)?,
                starts_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An alert starts firing, and its notification is queued, in one transaction.
    pub fn fire(
        &mut self,
        alert: &FiringAlert,
        notification: Option<(&str, &Target, &str)>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO alerts (pipeline, alert, owner, version, reason, starts_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![alert.pipeline, alert.alert, alert.owner, alert.version, alert.reason, alert.starts_at],
        )?;
        queue_in(&tx, notification)?;
        tx.commit()?;
        Ok(())
    }

    /// An alert resolves, and its notification is queued, in one transaction.
    pub fn resolve(
        &mut self,
        pipeline: &str,
        alert: &str,
        notification: Option<(&str, &Target, &str)>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM alerts WHERE pipeline = ?1 AND alert = ?2",
            params![pipeline, alert],
        )?;
        queue_in(&tx, notification)?;
        tx.commit()?;
        Ok(())
    }

    /// The body of a queued notification (tests).
    pub fn body_of(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT body FROM notifications WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn queue_in(
    tx: &rusqlite::Transaction<'_>,
    notification: Option<(&str, &Target, &str)>,
) -> Result<(), StoreError> {
    if let Some((key, target, body)) = notification {
        let now = now_ms();
        tx.execute(
            "INSERT OR IGNORE INTO notifications (key, lane, target, body, next_attempt_ms, queued_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![key, target.lane(), serde_json::to_string(target)?, body, now],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_queued_once_and_a_lane_delivers_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paver.db");
        let hook = Target::Webhook {
            url: "http://a".into(),
        };
        let other = Target::Http {
            url: "http://b".into(),
        };
        {
            let outbox = Outbox::open(&path).unwrap();
            assert!(outbox.enqueue("r1 applied", &hook, "{1}").unwrap());
            assert!(!outbox.enqueue("r1 applied", &hook, "{1}").unwrap());
            assert!(outbox.enqueue("r2 applied", &hook, "{2}").unwrap());
            assert!(outbox.enqueue("alert", &other, "{3}").unwrap());
        }
        // Reopened (a restart): still pending; one per lane, the oldest first.
        let outbox = Outbox::open(&path).unwrap();
        let due = outbox.due(now_ms(), 10).unwrap();
        assert_eq!(
            due.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["r1 applied", "alert"]
        );
        outbox
            .failed(due[0].id, "refused", now_ms() + 60_000)
            .unwrap();
        assert_eq!(
            outbox
                .due(now_ms(), 10)
                .unwrap()
                .iter()
                .map(|p| p.key.as_str())
                .collect::<Vec<_>>(),
            ["alert"],
            "the lane waits for its first"
        );
        outbox.delivered(due[1].id).unwrap();
        outbox.failed(due[0].id, "refused", now_ms()).unwrap();
        let again = outbox.due(now_ms(), 10).unwrap();
        assert_eq!(again[0].key, "r1 applied");
        assert_eq!(again[0].attempts, 2);
        outbox.delivered(again[0].id).unwrap();
        assert_eq!(outbox.due(now_ms(), 10).unwrap()[0].key, "r2 applied");
        assert_eq!(outbox.counts().unwrap(), (3, 2, 0, 1));
    }
}

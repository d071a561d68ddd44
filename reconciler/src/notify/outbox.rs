//! The outbox: notifications waiting to be delivered, and the alerts that fire, in the
//! state store (tables `notifications` and `alerts`, SQLite or PostgreSQL). A notification is
//! written once (its `key` is unique: one per revision and outcome, one per alert and
//! transition), then delivered by the delivery task; what is not delivered survives a
//! restart. Notifications to one receiver (a `lane`) go out in the order they were queued.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::{now_ms, params, Store, StoreError};

/// How long a notification is tried before it is given up.
pub const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;

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

/// The outbox, in the state store.
pub struct Outbox {
    store: Store,
}

const ENQUEUE: &str =
    "INSERT INTO notifications (key, lane, target, body, next_attempt_ms, queued_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (key) DO NOTHING RETURNING id";

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            store: Store::open(path)?,
        })
    }

    /// Queue a notification unless one with the same key was queued before; whether it
    /// was queued now.
    pub fn enqueue(&self, key: &str, target: &Target, body: &str) -> Result<bool, StoreError> {
        let added = self.store.write_unfenced(
            ENQUEUE,
            params![
                key,
                target.lane(),
                serde_json::to_string(target)?,
                body,
                now_ms()
            ],
        )?;
        Ok(added.len() == 1)
    }

    /// The notifications due now, the oldest undelivered of each lane only.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.store
            .read(
                "SELECT n.id, n.key, n.target, n.body, n.attempts, n.queued_ms FROM notifications n
                 WHERE n.delivered_ms IS NULL AND n.gave_up_ms IS NULL AND n.next_attempt_ms <= ?1
                   AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.lane = n.lane AND o.id < n.id
                                   AND o.delivered_ms IS NULL AND o.gave_up_ms IS NULL)
                 ORDER BY n.id LIMIT ?2",
                params![now, limit as i64],
            )?
            .iter()
            .map(|r| {
                Ok(Pending {
                    id: r.int(0)?,
                    key: r.text(1)?,
                    target: serde_json::from_str(&r.text(2)?)?,
                    body: r.text(3)?,
                    attempts: r.int(4)?,
                    queued_ms: r.int(5)?,
                })
            })
            .collect()
    }

    /// When the next undelivered notification is due, if any.
    pub fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        match self
            .store
            .read(
                "SELECT MIN(next_attempt_ms) FROM notifications WHERE delivered_ms IS NULL AND gave_up_ms IS NULL",
                params![],
            )?
            .first()
        {
            Some(row) => row.opt_int(0),
            None => Ok(None),
        }
    }

    pub fn delivered(&self, id: i64) -> Result<(), StoreError> {
        self.store.write_unfenced(
            "UPDATE notifications SET delivered_ms = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// A failed attempt: try again at `next_ms`, or give up once it has waited a day.
    pub fn failed(&self, id: i64, error: &str, next_ms: i64) -> Result<(), StoreError> {
        self.store.write_unfenced(
            "UPDATE notifications SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3,
               gave_up_ms = CASE WHEN ?4 - queued_ms > ?5 THEN ?4 END
             WHERE id = ?1",
            params![id, error, next_ms, now_ms(), GIVE_UP_AFTER_MS],
        )?;
        Ok(())
    }

    /// (queued, delivered, given up, waiting) counts, for the metrics.
    pub fn counts(&self) -> Result<(i64, i64, i64, i64), StoreError> {
        let rows = self.store.read(
            "SELECT COUNT(*), COUNT(delivered_ms), COUNT(gave_up_ms),
                    COUNT(*) - COUNT(delivered_ms) - COUNT(gave_up_ms) FROM notifications",
            params![],
        )?;
        match rows.first() {
            Some(r) => Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.int(3)?)),
            None => Ok((0, 0, 0, 0)),
        }
    }

    /// Every notification with where it stands (for tests and `paver status`).
    pub fn all(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        self.store
            .read(
                "SELECT key, attempts, last_error, delivered_ms IS NOT NULL, gave_up_ms IS NOT NULL FROM notifications ORDER BY id",
                params![],
            )?
            .iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "key": r.text(0)?,
                    "attempts": r.int(1)?,
                    "lastError": r.opt_text(2)?,
                    "delivered": r.int(3)? != 0,
                    "gaveUp": r.int(4)? != 0,
                }))
            })
            .collect()
    }

    /// The alerts that fire now.
    pub fn firing(&self) -> Result<Vec<FiringAlert>, StoreError> {
        self.store
            .read(
                "SELECT pipeline, alert, owner, version, reason, starts_at FROM alerts ORDER BY pipeline, alert",
                params![],
            )?
            .iter()
            .map(|r| {
                Ok(FiringAlert {
                    pipeline: r.text(0)?,
                    alert: r.text(1)?,
                    owner: r.text(2)?,
                    version: u32::try_from(r.int(3)?).map_err(|_| {
                        StoreError::Recovery("an alert's version out of range".to_string())
                    })?,
                    reason: r.text(4)?,
                    starts_at: r.text(5)?,
                })
            })
            .collect()
    }

    /// An alert starts firing, and its notification is queued, in one transaction.
    pub fn fire(
        &mut self,
        alert: &FiringAlert,
        notification: Option<(&str, &Target, &str)>,
    ) -> Result<(), StoreError> {
        let mut statements = vec![(
            "INSERT INTO alerts (pipeline, alert, owner, version, reason, starts_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (pipeline, alert) DO UPDATE SET owner = excluded.owner, version = excluded.version,
               reason = excluded.reason, starts_at = excluded.starts_at",
            params![&alert.pipeline, &alert.alert, &alert.owner, alert.version, &alert.reason, &alert.starts_at],
        )];
        statements.extend(queued(notification)?);
        self.store.write_all(statements)
    }

    /// An alert resolves, and its notification is queued, in one transaction.
    pub fn resolve(
        &mut self,
        pipeline: &str,
        alert: &str,
        notification: Option<(&str, &Target, &str)>,
    ) -> Result<(), StoreError> {
        let mut statements = vec![(
            "DELETE FROM alerts WHERE pipeline = ?1 AND alert = ?2",
            params![pipeline, alert],
        )];
        statements.extend(queued(notification)?);
        self.store.write_all(statements)
    }

    /// The body of a queued notification (tests).
    pub fn body_of(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self
            .store
            .read(
                "SELECT body FROM notifications WHERE key = ?1",
                params![key],
            )?
            .first()
        {
            Some(row) => row.opt_text(0),
            None => Ok(None),
        }
    }
}

/// The statement that queues a notification, if there is one.
fn queued(
    notification: Option<(&str, &Target, &str)>,
) -> Result<Option<crate::store::Statement>, StoreError> {
    notification
        .map(|(key, target, body)| {
            Ok((
                ENQUEUE,
                params![
                    key,
                    target.lane(),
                    serde_json::to_string(target)?,
                    body,
                    now_ms()
                ],
            ))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_queued_once_and_a_lane_delivers_in_order() {
        for t in crate::store::tests::backends("outbox") {
            queued_once_and_in_order(&t.state);
        }
    }

    fn queued_once_and_in_order(path: &Path) {
        let hook = Target::Webhook {
            url: "http://a".into(),
        };
        let other = Target::Http {
            url: "http://b".into(),
        };
        {
            let outbox = Outbox::open(path).unwrap();
            assert!(outbox.enqueue("r1 applied", &hook, "{1}").unwrap());
            assert!(!outbox.enqueue("r1 applied", &hook, "{1}").unwrap());
            assert!(outbox.enqueue("r2 applied", &hook, "{2}").unwrap());
            assert!(outbox.enqueue("alert", &other, "{3}").unwrap());
        }
        // Reopened (a restart): still pending; one per lane, the oldest first.
        let outbox = Outbox::open(path).unwrap();
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

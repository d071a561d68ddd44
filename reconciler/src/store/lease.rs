//! Leader election through the store, and the fence that goes with it.
//!
//! A lease is one row (`leases`): its holder, when it expires (on the database's clock, so
//! replicas' clocks never matter) and a term that grows by one each time the lease changes
//! hands (or its holder takes it back after it lapsed). A replica tries every
//! [`ElectionConfig::retry`] to renew its lease or to take over one that expired, in one
//! statement; the database lets one of two racing candidates win.
//!
//! **Fencing.** The leader's store is [`super::Store::fenced`] with its term: every write
//! of a revision (begin, each journal entry, the inventory, the live versions, finish) runs
//! in a transaction that first reads the lease row (`FOR SHARE` in PostgreSQL, so a
//! takeover waits for the write, or the write for the takeover) and is refused when the
//! term moved on. A leader that was paused, cut off or slow past its lease cannot write a
//! single journal entry once another replica took over: it stops, and the new leader's
//! recovery sees every write the old one made.

use std::time::{Duration, Instant};

use super::{params, Location, Row, Store, StoreError};

/// The lease row read in a fenced write's transaction.
pub(crate) const CURRENT_TERM: &str = "SELECT term FROM leases WHERE name = ?1 {for_share}";

/// A leader's term, carried by every write of a fenced store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub term: i64,
}

impl Fence {
    /// Whether the lease (its row, read in the write's transaction) still has this term.
    pub(crate) fn check(&self, row: Option<&Row>) -> Result<(), StoreError> {
        let current = match row {
            Some(row) => row.int(0)?,
            None => 0,
        };
        if current == self.term {
            Ok(())
        } else {
            Err(StoreError::Deposed {
                lease: self.lease.clone(),
                term: self.term,
                current,
            })
        }
    }
}

/// A lease as the store has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    pub holder: String,
    pub term: i64,
    /// When the current term began, Unix milliseconds (the database's clock).
    pub acquired_ms: i64,
    pub expires_ms: i64,
}

impl Store {
    /// Renew the lease `name` for `holder`, or take it when it is free or expired; the term
    /// held afterwards, or `None` when another holder's lease is still valid. A holder
    /// whose own lease lapsed gets a new term (what it wrote under the old one is fenced
    /// off).
    pub fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<Option<i64>, StoreError> {
        let rows = self.write_unfenced(
            "INSERT INTO leases (name, holder, term, acquired_ms, expires_ms)
             VALUES (?1, ?2, 1, {now_ms}, {now_ms} + ?3)
             ON CONFLICT (name) DO UPDATE SET
               term = CASE WHEN leases.holder = excluded.holder AND leases.expires_ms > {now_ms}
                           THEN leases.term ELSE leases.term + 1 END,
               acquired_ms = CASE WHEN leases.holder = excluded.holder AND leases.expires_ms > {now_ms}
                           THEN leases.acquired_ms ELSE {now_ms} END,
               holder = excluded.holder,
               expires_ms = excluded.expires_ms
             WHERE leases.holder = excluded.holder OR leases.expires_ms <= {now_ms}
             RETURNING term",
            params![name, holder, duration.as_millis() as i64],
        )?;
        rows.first().map(|r| r.int(0)).transpose()
    }

    /// Let the lease go at once (on shutdown), if `holder` has it.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.write_unfenced(
            "UPDATE leases SET expires_ms = {now_ms} WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )?;
        Ok(())
    }

    /// The lease `name`, if it was ever taken.
    pub fn lease(&self, name: &str) -> Result<Option<LeaseRecord>, StoreError> {
        self.read(
            "SELECT holder, term, acquired_ms, expires_ms FROM leases WHERE name = ?1",
            params![name],
        )?
        .first()
        .map(|r| {
            Ok(LeaseRecord {
                holder: r.text(0)?,
                term: r.int(1)?,
                acquired_ms: r.int(2)?,
                expires_ms: r.int(3)?,
            })
        })
        .transpose()
    }
}

/// How a replica takes part in the election through the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The lease row's name (replicas of one deployment share it).
    pub name: String,
    /// This replica, unique per process.
    pub identity: String,
    /// How long a lease holds without renewal: a standby takes over within it (plus one
    /// `retry`) after the leader stops renewing.
    pub duration: Duration,
    /// A leader that has not renewed for this long stops leading (shorter than `duration`).
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks.
    pub retry: Duration,
}

impl ElectionConfig {
    /// A lease of `duration` (client-go's proportions: renewed every 2/15 of it, a leader
    /// gives up after 2/3 of it without a renewal).
    pub fn new(name: &str, identity: &str, duration: Duration) -> ElectionConfig {
        ElectionConfig {
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            renew_deadline: duration * 2 / 3,
            retry: (duration * 2 / 15).max(Duration::from_millis(100)),
        }
    }
}

/// One replica's side of the election, on a connection of its own.
pub struct Elector {
    store: Store,
    config: ElectionConfig,
    /// When this replica last held the lease for sure, and its term then.
    held: Option<(Instant, i64)>,
}

impl Elector {
    pub fn new(location: &Location, config: ElectionConfig) -> Result<Elector, StoreError> {
        Ok(Elector {
            store: Store::at_own_connection(location)?,
            config,
            held: None,
        })
    }

    /// One round, started at `now`: renew or take the lease. Blocking (a database call).
    pub fn try_acquire_or_renew(&mut self, now: Instant) -> Result<Option<i64>, StoreError> {
        match self.store.acquire_lease(
            &self.config.name,
            &self.config.identity,
            self.config.duration,
        ) {
            Ok(Some(term)) => {
                self.held = Some((now, term));
                Ok(Some(term))
            }
            Ok(None) => {
                self.held = None;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The term this replica leads in at `now`: it held the lease within the renew deadline.
    pub fn term(&self, now: Instant) -> Option<i64> {
        self.held
            .filter(|(at, _)| now.duration_since(*at) < self.config.renew_deadline)
            .map(|(_, term)| term)
    }

    /// Give the lease up, so that a standby takes over at its next look.
    pub fn release(&mut self) -> Result<(), StoreError> {
        self.held = None;
        self.store
            .release_lease(&self.config.name, &self.config.identity)
    }

    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }
}

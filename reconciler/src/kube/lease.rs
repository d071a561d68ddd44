//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does it: the leader
//! renews the lease every few seconds; a follower takes it over once the lease record has
//! not changed for its whole duration (measured on the follower's own clock, so clocks that
//! disagree do not matter). Every write is a `replace` carrying the `resourceVersion` that
//! was read: of two candidates writing at once, the API server accepts one and answers the
//! other 409 Conflict, so there is never more than one leader.
//!
//! Only the leader applies revisions (see `server`); followers serve status. A leader that
//! cannot renew stops leading before its lease can expire (`renew_deadline`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::kube::api::{Api, PostParams};
use ::kube::Client;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

/// How a replica takes part in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// A leader that has not renewed for this long stops leading (shorter than `duration`).
    pub renew_deadline: Duration,
    /// How often the leader renews and a follower looks.
    pub retry: Duration,
}

impl LeaseConfig {
    /// The defaults of client-go: a 15 s lease, a 10 s renew deadline, a look every 2 s.
    pub fn new(name: &str, namespace: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// Why a round of the election failed (the replica then stays or becomes a follower).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {namespace}/{name}: {source}")]
    Kube {
        namespace: String,
        name: String,
        #[source]
        source: ::kube::Error,
    },
}

/// The holder, renew time and transitions of a lease: when they stop changing, its holder
/// has stopped renewing.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    holder: Option<String>,
    renew: Option<MicroTime>,
    transitions: i32,
    duration: Duration,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last record seen, and when (on this replica's clock) it was first seen.
    seen: Option<(Record, Instant)>,
    /// When this replica last held the lease for sure (created, renewed or took it).
    renewed: Option<Instant>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            seen: None,
            renewed: None,
        }
    }

    fn error(&self, source: ::kube::Error) -> LeaseError {
        LeaseError::Kube {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    /// Whether this replica may act as the leader at `now`: it held the lease within the
    /// renew deadline.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.renewed
            .is_some_and(|at| now.duration_since(at) < self.config.renew_deadline)
    }

    fn spec(&self, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.duration.as_secs() as i32),
            acquire_time: acquire,
            renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One round at `now`: create the lease, renew it, or take it over when it expired.
    /// Returns whether this replica is the leader afterwards. A write that loses a race
    /// (409 Conflict) is not an error: someone else leads.
    pub async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, LeaseError> {
        let lease = match self.api.get_opt(&self.config.name).await {
            Ok(lease) => lease,
            Err(e) => return Err(self.error(e)),
        };
        let Some(lease) = lease else {
            let created = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    labels: Some(
                        [("app.kubernetes.io/name".to_string(), "paver".to_string())].into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(Some(MicroTime(k8s_openapi::jiff::Timestamp::now())), 0)),
            };
            return match self.api.create(&PostParams::default(), &created).await {
                Ok(_) => {
                    self.renewed = Some(now);
                    Ok(true)
                }
                Err(::kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.error(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew: spec.renew_time.clone(),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
        };
        if self.seen.as_ref().map(|(r, _)| r) != Some(&record) {
            self.seen = Some((record.clone(), now));
        }
        let first_seen = self.seen.as_ref().map_or(now, |(_, at)| *at);
        let mine = record.holder.as_deref() == Some(self.config.identity.as_str());
        let expired = record.holder.is_none() || now.duration_since(first_seen) >= record.duration;
        let next = if mine {
            self.spec(spec.acquire_time.clone(), record.transitions)
        } else if expired {
            self.spec(
                Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
                record.transitions + 1,
            )
        } else {
            self.renewed = None;
            return Ok(false);
        };
        let mut updated = lease;
        updated.spec = Some(next);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {
                self.renewed = Some(now);
                Ok(true)
            }
            Err(::kube::Error::Api(s)) if s.code == 409 => {
                self.renewed = None;
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Give the lease up (on shutdown), so that a follower takes over at once rather than
    /// after the lease expires. Only a lease this replica holds is touched.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        lease.spec = Some(spec);
        self.renewed = None;
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(::kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }
}

/// Whether this replica leads, shared between the election task and the reconcile loop;
/// with the election through the state store, also the term its writes carry.
#[derive(Clone, Default)]
pub struct Leadership {
    leader: Arc<AtomicBool>,
    fence: Arc<std::sync::Mutex<Option<crate::store::Fence>>>,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    /// The fence of the term this replica leads in (election through the state store).
    pub fn fence(&self) -> Option<crate::store::Fence> {
        self.fence.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_fence(&self, fence: Option<crate::store::Fence>) {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = fence;
    }
}

/// Run the election until `stop` turns true, then release the lease. `changed` is called
/// when this replica becomes or stops being the leader.
pub async fn run(
    mut elector: Elector,
    leadership: Leadership,
    mut stop: tokio::sync::watch::Receiver<bool>,
    changed: impl Fn(bool),
) {
    loop {
        let now = Instant::now();
        let result = elector.try_acquire_or_renew(now).await;
        if let Err(e) = &result {
            eprintln!("paver: leader election: {e}");
        }
        let leader = elector.is_leader(Instant::now());
        if leader != leadership.is_leader() {
            leadership.set(leader);
            changed(leader);
        }
        tokio::select! {
            _ = tokio::time::sleep(elector.config().retry) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    leadership.set(false);
    if let Err(e) = elector.release().await {
        eprintln!("paver: releasing the lease: {e}");
    }
}

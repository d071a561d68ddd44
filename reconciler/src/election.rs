//! Leader election for `paver run` replicas: through the state store when it is
//! PostgreSQL (a lease row whose term fences every write of the leader, see
//! [`crate::store::lease`]), else through a Kubernetes Lease ([`crate::kube::lease`]).
//! Only the leader applies revisions; a replica that becomes the leader is woken at once.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::kube::lease::Leadership;
use crate::store::Fence;

/// How this replica takes part.
pub enum Elector {
    Kube(crate::kube::lease::Elector),
    Store(crate::store::lease::Elector),
}

/// Run the election until `stop` turns true, then give the lease up. `changed` is called
/// when this replica becomes or stops being the leader.
pub async fn run(
    elector: Elector,
    leadership: Leadership,
    stop: tokio::sync::watch::Receiver<bool>,
    changed: impl Fn(bool),
) {
    match elector {
        Elector::Kube(elector) => crate::kube::lease::run(elector, leadership, stop, changed).await,
        Elector::Store(elector) => run_store(elector, leadership, stop, changed).await,
    }
}

async fn run_store(
    elector: crate::store::lease::Elector,
    leadership: Leadership,
    mut stop: tokio::sync::watch::Receiver<bool>,
    changed: impl Fn(bool),
) {
    let retry = elector.config().retry;
    let name = elector.config().name.clone();
    let elector = Arc::new(Mutex::new(elector));
    let mut complained = false;
    loop {
        let round = elector.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut elector = round.lock().unwrap_or_else(|e| e.into_inner());
            let result = elector.try_acquire_or_renew(Instant::now());
            (result, elector.term(Instant::now()))
        })
        .await;
        let term = match result {
            Ok((result, term)) => {
                match result {
                    Err(e) if !complained => {
                        eprintln!("paver: leader election: {e}");
                        complained = true;
                    }
                    Err(_) => {}
                    Ok(_) => complained = false,
                }
                term
            }
            Err(e) => {
                eprintln!("paver: leader election: {e}");
                None
            }
        };
        let fence = term.map(|term| Fence {
            lease: name.clone(),
            term,
        });
        let was = leadership.fence();
        if was != fence {
            leadership.set_fence(fence.clone());
            leadership.set(fence.is_some());
            if was.is_some() != fence.is_some() {
                changed(fence.is_some());
            } else if let Some(fence) = &fence {
                eprintln!("paver: this replica leads again, in term {}", fence.term);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    leadership.set(false);
    leadership.set_fence(None);
    let released = tokio::task::spawn_blocking(move || {
        elector.lock().unwrap_or_else(|e| e.into_inner()).release()
    })
    .await;
    match released {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("paver: releasing the lease: {e}"),
        Err(e) => eprintln!("paver: releasing the lease: {e}"),
    }
}

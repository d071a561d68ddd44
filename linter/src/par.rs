//! Spreading independent work over the cores, results kept in input order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Map `f` over `items` on every core. Threads take small batches from a shared counter,
/// so that costly items (a pipeline's SQL) and cheap ones (a topic) even out.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads == 1 || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    // Small enough batches to balance, large enough to keep the counter cold.
    let batch = (items.len() / (threads * 8)).clamp(1, 32);
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Vec<R>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let start = next.fetch_add(batch, Ordering::Relaxed);
                    if start >= items.len() {
                        break;
                    }
                    let end = (start + batch).min(items.len());
                    mine.push((start, items[start..end].iter().map(&f).collect::<Vec<_>>()));
                }
                done.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
            });
        }
    });
    let mut batches = done.into_inner().unwrap_or_else(|e| e.into_inner());
    batches.sort_unstable_by_key(|(start, _)| *start);
    batches
        .into_iter()
        .flat_map(|(_, results)| results)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let doubled = super::map(&items, |i| i * 2);
        assert!(doubled.iter().enumerate().all(|(i, d)| *d == 2 * i as u32));
    }
}

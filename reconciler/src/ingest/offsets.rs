//! Where a pipeline version starts reading each partition: a pure function of what the
//! consumer groups committed and what the ledger says reached ClickHouse.

use std::collections::BTreeMap;

/// Offsets by partition.
pub type Offsets = BTreeMap<i32, i64>;

/// The start of every partition of `partitions` that has one: the furthest of
///
/// - `own`: the offset this version's group committed (the next record to read);
/// - `previous`: the offset the previously live version's group committed (the blue/green
///   hand-over: a new version continues where the old one stopped);
/// - `ledger` + 1: the ledger holds the last offset inserted, by whichever version, so a
///   worker killed between its insert and its commit reads nothing twice.
///
/// A partition none of them knows is left out: it starts at the beginning.
pub fn start_offsets(
    partitions: &[i32],
    own: &Offsets,
    previous: &Offsets,
    ledger: &Offsets,
) -> Offsets {
    partitions
        .iter()
        .filter_map(|p| {
            [
                own.get(p).copied(),
                previous.get(p).copied(),
                ledger.get(p).map(|last| last + 1),
            ]
            .into_iter()
            .flatten()
            .max()
            .map(|start| (*p, start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pairs: &[(i32, i64)]) -> Offsets {
        pairs.iter().copied().collect()
    }

    #[test]
    fn nothing_known_starts_at_the_beginning() {
        let none = Offsets::new();
        assert!(start_offsets(&[0, 1], &none, &none, &none).is_empty());
    }

    #[test]
    fn the_furthest_of_the_three_wins_per_partition() {
        let own = offsets(&[(0, 10), (1, 5), (2, 7)]);
        let previous = offsets(&[(0, 12), (1, 3)]);
        let ledger = offsets(&[(0, 9), (1, 40)]);
        assert_eq!(
            start_offsets(&[0, 1, 2], &own, &previous, &ledger),
            offsets(&[(0, 12), (1, 41), (2, 7)])
        );
    }

    #[test]
    fn the_ledger_counts_after_its_last_offset() {
        // Inserted up to offset 99, killed before the commit at 50: start at 100.
        let start = start_offsets(
            &[0],
            &offsets(&[(0, 50)]),
            &Offsets::new(),
            &offsets(&[(0, 99)]),
        );
        assert_eq!(start, offsets(&[(0, 100)]));
    }

    #[test]
    fn a_new_version_continues_where_the_previous_one_stopped() {
        let start = start_offsets(
            &[0, 1],
            &Offsets::new(),
            &offsets(&[(0, 8), (1, 3)]),
            &Offsets::new(),
        );
        assert_eq!(start, offsets(&[(0, 8), (1, 3)]));
    }

    #[test]
    fn only_the_given_partitions_are_started() {
        let all = offsets(&[(0, 1), (1, 2), (2, 3)]);
        assert_eq!(start_offsets(&[1], &all, &all, &all), offsets(&[(1, 3)]));
    }
}

//! A ClickHouse cluster's shards, as a worker inserts into them. Each Kafka partition's
//! rows go to one shard, `partition mod shards`, into the staging table of one node of that
//! shard: its views write the node's replicated physical table and its replicated ledger in
//! that one local insert, so the single-server argument for exactly once holds shard by
//! shard (docs/architecture.md, "Exactly once through the cluster"). A batch is split by
//! shard and its parts are inserted side by side; it is committed once every part is in.
//!
//! Without a cluster, or on a cluster of one shard, there is one node: the target's url.
//!
//! Where a partition starts is the furthest offset of the ledgers of every shard, so a
//! cluster that gains a shard (partitions move to another shard) neither loses nor repeats
//! a record.

use std::collections::BTreeMap;

use super::batch::{Batch, Item};
use super::offsets::Offsets;
use super::sink::{self, Ingested, Sink};
use super::spec::IngestSpec;
use super::IngestError;
use crate::config::Env;
use crate::model::connections;
use crate::providers::clickhouse::{literal, ClickHouse};

/// One node per shard, in `shard_num` order.
pub struct Shards {
    nodes: Vec<ClickHouse>,
    /// The node of the target's url.
    home: usize,
}

/// A node that cannot serve as its shard's: the error says which and what to set.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} of ClickHouse cluster `{cluster}`: {url} {why}: name each shard's HTTP address, in shard order, in paver.yaml's `targets.clusters.<name>.clickhouse.shards` (or `targets.clickhouse.shards`)")]
pub struct ShardError {
    pub cluster: String,
    pub shard: u32,
    pub url: String,
    pub why: String,
}

impl Shards {
    /// The target's url alone (one server, or a cluster of one shard).
    pub fn one(ch: ClickHouse) -> Shards {
        Shards {
            nodes: vec![ch],
            home: 0,
        }
    }

    /// The nodes to insert into, for `target` whose url's node is `home`: one per shard
    /// of its cluster (see [`connections::ClickHouse::shards`]), each checked to be of
    /// the shard it is taken for.
    pub async fn open(
        target: &connections::ClickHouse,
        env: Env<'_>,
        home: ClickHouse,
    ) -> Result<Shards, IngestError> {
        let Some(cluster) = target.cluster.clone() else {
            return Ok(Shards::one(home));
        };
        let rows = home
            .rows(&format!(
                "SELECT shard_num, host_name, is_local FROM system.clusters WHERE cluster = {} ORDER BY shard_num, replica_num",
                literal(&cluster)
            ))
            .await?;
        // (shard_num, its first replica's host) in order, and the url's own shard.
        let mut shards: Vec<(u32, String)> = Vec::new();
        let mut own = None;
        for row in &rows {
            let (Some(num), Some(host), Some(local)) = (row.first(), row.get(1), row.get(2)) else {
                continue;
            };
            let Ok(num) = num.parse::<u32>() else {
                continue;
            };
            if shards.last().is_none_or(|(n, _)| *n != num) {
                shards.push((num, host.clone()));
            }
            if local == "1" {
                own.get_or_insert(num);
            }
        }
        if shards.len() <= 1 {
            return Ok(Shards::one(home));
        }
        let error = |shard: u32, url: &str, why: String| ShardError {
            cluster: cluster.clone(),
            shard,
            url: url.to_string(),
            why,
        };
        if !target.shards.is_empty() && target.shards.len() != shards.len() {
            return Err(error(
                shards[0].0,
                &target.url,
                format!(
                    "belongs to a cluster of {} shards, and paver.yaml names {} shard address(es)",
                    shards.len(),
                    target.shards.len()
                ),
            )
            .into());
        }
        let mut nodes = Vec::with_capacity(shards.len());
        let mut home = Some(home);
        let mut home_index = 0;
        for (i, (num, host)) in shards.iter().enumerate() {
            let url = match target.shards.get(i) {
                Some(url) => url.clone(),
                None if own == Some(*num) => target.url.clone(),
                None => derived(&target.url, host),
            };
            let node = match home.take_if(|_| url == target.url) {
                Some(h) => {
                    home_index = i;
                    h
                }
                None => {
                    let t = connections::ClickHouse {
                        url: url.clone(),
                        ..target.clone()
                    };
                    ClickHouse::open(&t, env)
                        .await
                        .map_err(|e| error(*num, &url, format!("cannot be reached ({e})")))?
                }
            };
            let answers = node_shards(&node, &cluster).await?;
            if answers != [*num] {
                return Err(error(
                    *num,
                    &url,
                    format!("answers as shard {answers:?} of the cluster, not as shard {num}"),
                )
                .into());
            }
            nodes.push(node);
        }
        Ok(Shards {
            nodes,
            home: home_index,
        })
    }

    /// The node of the target's url (views, columns: alike on every node).
    pub fn home(&self) -> &ClickHouse {
        &self.nodes[self.home]
    }

    pub fn nodes(&self) -> &[ClickHouse] {
        &self.nodes
    }

    /// The last offset every shard's ledger has for the pipeline, per partition: the
    /// furthest of them.
    pub async fn ledger_offsets(&self, spec: &IngestSpec) -> Result<Offsets, IngestError> {
        let mut all = Vec::new();
        for node in &self.nodes {
            all.extend(sink::ledger_offsets(node, spec).await?);
        }
        Ok(sink::furthest(all))
    }
}

/// `scheme://host:port` of `url`, with `host` in place of its host.
fn derived(url: &str, host: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| p.parse::<u16>().is_ok())
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| if scheme == "https" { "443" } else { "80" }.to_string());
    format!("{scheme}://{host}:{port}")
}

/// The shards a node says it is of (`is_local` in `system.clusters`).
async fn node_shards(node: &ClickHouse, cluster: &str) -> Result<Vec<u32>, IngestError> {
    let rows = node
        .rows(&format!(
            "SELECT DISTINCT shard_num FROM system.clusters WHERE cluster = {} AND is_local ORDER BY shard_num",
            literal(cluster)
        ))
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.first()?.parse().ok())
        .collect())
}

/// The shard of a partition's rows, among `shards`.
pub fn shard_of(partition: i32, shards: usize) -> usize {
    partition.rem_euclid(shards.max(1) as i32) as usize
}

/// A batch split by shard: (shard, its part), parts in shard order, none empty.
pub fn split(batch: Batch, shards: usize) -> Vec<(usize, Batch)> {
    if shards <= 1 {
        return vec![(0, batch)];
    }
    let mut parts: BTreeMap<usize, Batch> = BTreeMap::new();
    for item in batch.items {
        let part = parts.entry(shard_of(item.partition, shards)).or_default();
        let start = part.rows.len();
        part.rows.extend_from_slice(&batch.rows[item.row.clone()]);
        part.consumed += 1;
        part.items.push(Item {
            row: start..part.rows.len(),
            ..item
        });
    }
    for dead in batch.dead {
        let part = parts.entry(shard_of(dead.partition, shards)).or_default();
        part.consumed += 1;
        part.dead.push(dead);
    }
    for (p, next) in batch.next {
        parts
            .entry(shard_of(p, shards))
            .or_default()
            .next
            .insert(p, next);
    }
    parts.into_iter().collect()
}

/// Insert a batch through the sinks of every shard (`sinks[i]` inserts into shard `i`):
/// its parts side by side. Done only when every part is; otherwise what stopped one part
/// (the parts that are in are in their shards' ledgers, so a restart skips them).
pub async fn ingest(sinks: &[Sink<'_>], batch: Batch) -> Result<Ingested, IngestError> {
    if let [sink] = sinks {
        return sink.ingest(batch).await;
    }
    let parts = split(batch, sinks.len());
    let outcomes =
        futures::future::join_all(parts.into_iter().map(|(i, part)| sinks[i].ingest(part))).await;
    let mut next = Offsets::new();
    let mut stopped = None;
    for outcome in outcomes {
        match outcome? {
            Ingested::Done(n) => next.extend(n),
            other @ Ingested::Taken(_) => return Ok(other),
            Ingested::Abandoned => stopped = Some(Ingested::Abandoned),
        }
    }
    Ok(stopped.unwrap_or(Ingested::Done(next)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::batch::Dead;

    fn item(partition: i32, offset: i64, row: std::ops::Range<usize>) -> Item {
        Item {
            partition,
            offset,
            key: None,
            payload: None,
            row,
        }
    }

    #[test]
    fn a_partition_always_goes_to_the_same_shard() {
        assert_eq!(
            (0..6).map(|p| shard_of(p, 2)).collect::<Vec<_>>(),
            [0, 1, 0, 1, 0, 1]
        );
        assert_eq!(shard_of(5, 1), 0);
        assert_eq!(shard_of(5, 0), 0);
    }

    #[test]
    fn a_batch_is_split_by_shard_with_its_rows_dead_letters_and_offsets() {
        let batch = Batch {
            rows: b"a\nbb\nccc\n".to_vec(),
            items: vec![item(0, 10, 0..2), item(1, 20, 2..5), item(2, 11, 5..9)],
            dead: vec![Dead {
                partition: 3,
                offset: 7,
                key: None,
                payload: None,
                reason: "bad".into(),
            }],
            next: BTreeMap::from([(0, 11), (1, 21), (2, 12), (3, 8)]),
            consumed: 4,
        };
        let parts = split(batch, 2);
        assert_eq!(parts.len(), 2);
        let (s0, p0) = &parts[0];
        let (s1, p1) = &parts[1];
        assert_eq!((*s0, *s1), (0, 1));
        assert_eq!(p0.rows, b"a\nccc\n");
        assert_eq!(
            p0.items
                .iter()
                .map(|i| (i.partition, i.offset, i.row.clone()))
                .collect::<Vec<_>>(),
            [(0, 10, 0..2), (2, 11, 2..6)]
        );
        assert_eq!(p0.next, BTreeMap::from([(0, 11), (2, 12)]));
        assert!(p0.dead.is_empty());
        assert_eq!(p1.rows, b"bb\n");
        assert_eq!(p1.items[0].row, 0..3);
        assert_eq!(p1.dead[0].offset, 7);
        assert_eq!(p1.next, BTreeMap::from([(1, 21), (3, 8)]));
        assert_eq!(p0.consumed + p1.consumed, 4);
    }

    #[test]
    fn a_shards_address_is_the_urls_with_the_hosts_name() {
        assert_eq!(
            derived("https://ch-0.example:8443/", "ch-1"),
            "https://ch-1:8443"
        );
        assert_eq!(derived("http://ch-0", "ch-1"), "http://ch-1:80");
        assert_eq!(derived("http://u:p@ch-0:8123", "ch-1"), "http://ch-1:8123");
    }
}

//! Server-side partition assignors (as in Kafka's newer group protocol,
//! KIP-848): the coordinator, not a client leader, decides who consumes what.
//!
//! Every assignor is a pure, deterministic function of the members (their
//! subscriptions and what they own now) and the topics' partition counts; ties
//! break by member id. Each subscribed partition goes to exactly one member
//! subscribed to its topic; partitions of topics nobody subscribes to (or that
//! do not exist) go to nobody.

use crate::position::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What an assignor sees of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// The topics it subscribes to.
    pub topics: BTreeSet<String>,
    /// What it is assigned now (only the sticky assignor looks).
    pub owned: BTreeSet<TopicPartition>,
}

/// Member id -> partitions.
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Which assignor a group uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions to members in id order
    /// (Kafka's `range`): members subscribed to the same topics get the same
    /// partition numbers of each, which co-partitioned joins want.
    Range,
    /// Every subscribed partition in (topic, partition) order dealt in turn to
    /// the next member subscribed to its topic (Kafka's `roundrobin`).
    RoundRobin,
    /// Balanced like round-robin, but a member keeps what it owns wherever the
    /// balance allows, so a rebalance moves as few partitions as it can
    /// (Kafka's `uniform`/sticky). The default, as in Kafka's new protocol.
    #[default]
    Sticky,
}

impl Assignor {
    /// Every assignor, for help texts and errors.
    pub const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky];

    /// Its name on the wire and in the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
        }
    }

    /// The assignor called `name` (Kafka's `uniform` is the sticky one).
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" | "round-robin" => Some(Assignor::RoundRobin),
            "sticky" | "uniform" => Some(Assignor::Sticky),
            _ => None,
        }
    }

    /// The partitions each member gets; every member has an entry (perhaps
    /// empty). `partitions` maps a topic to its partition count.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSpec>,
        partitions: &BTreeMap<String, u32>,
    ) -> Assignment {
        let mut out: Assignment = members
            .keys()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        match self {
            Assignor::Range => range(members, partitions, &mut out),
            Assignor::RoundRobin => round_robin(members, partitions, &mut out),
            Assignor::Sticky => sticky(members, partitions, &mut out),
        }
        out
    }
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every partition some member subscribes to, in (topic, partition) order.
fn subscribed(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
) -> Vec<TopicPartition> {
    let topics: BTreeSet<&String> = members.values().flat_map(|m| &m.topics).collect();
    topics
        .into_iter()
        .filter_map(|t| partitions.get(t).map(|&n| (t, n)))
        .flat_map(|(topic, n)| {
            (0..n).map(move |partition| TopicPartition {
                topic: topic.clone(),
                partition,
            })
        })
        .collect()
}

fn range(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    for (topic, &count) in partitions {
        let takers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        let Some(n) = u32::try_from(takers.len()).ok().filter(|&n| n > 0) else {
            continue;
        };
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in (0u32..).zip(takers) {
            let take = each + u32::from(i < extra);
            let set = out.entry(id.clone()).or_default();
            set.extend((next..next + take).map(|partition| TopicPartition {
                topic: topic.clone(),
                partition,
            }));
            next += take;
        }
    }
}

fn round_robin(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let ids: Vec<&String> = members.keys().collect();
    let mut turn = 0;
    for tp in subscribed(members, partitions) {
        // The next member in the circle that takes this topic.
        let Some(step) = (0..ids.len()).find(|k| {
            let id = ids[(turn + k) % ids.len()];
            members[id].topics.contains(&tp.topic)
        }) else {
            continue;
        };
        let id = ids[(turn + step) % ids.len()];
        out.entry(id.clone()).or_default().insert(tp);
        turn = (turn + step + 1) % ids.len();
    }
}

fn sticky(
    members: &BTreeMap<String, MemberSpec>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let all = subscribed(members, partitions);
    if members.is_empty() {
        return;
    }
    let exists = |tp: &TopicPartition| partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);
    // 1. Each member keeps what it owns and may still have; a partition two
    //    members claim stays with the first in id order.
    let mut taken = BTreeSet::new();
    for (id, member) in members {
        for tp in &member.owned {
            if exists(tp) && member.topics.contains(&tp.topic) && taken.insert(tp.clone()) {
                out.entry(id.clone()).or_default().insert(tp.clone());
            }
        }
    }
    // 2. Quotas as if every member took every topic: `total % n` members (those
    //    keeping the most) may hold one more than the rest; the surplus goes back.
    let n = members.len();
    let (min_quota, extra) = (all.len() / n, all.len() % n);
    let mut by_kept: Vec<(&String, usize)> = out.iter().map(|(id, s)| (id, s.len())).collect();
    by_kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let quotas: BTreeMap<String, usize> = by_kept
        .iter()
        .enumerate()
        .map(|(rank, (id, _))| ((*id).clone(), min_quota + usize::from(rank < extra)))
        .collect();
    for (id, set) in out.iter_mut() {
        while set.len() > quotas[id] {
            if let Some(last) = set.pop_last() {
                taken.remove(&last);
            }
        }
    }
    // 3. The rest, in order, each to the eligible member holding the fewest.
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let fewest = out
            .iter()
            .filter(|(id, _)| members[*id].topics.contains(&tp.topic))
            .min_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(b.0)))
            .map(|(id, _)| id.clone());
        if let Some(id) = fewest {
            out.entry(id).or_default().insert(tp.clone());
        }
    }
    // 4. Uneven subscriptions can leave one member two or more ahead of another
    //    that could take some of its partitions: move them one at a time. Each
    //    move lowers the sum of squared counts, so this ends.
    while let Some((from, to, tp)) = uneven(members, out) {
        if let Some(set) = out.get_mut(&from) {
            set.remove(&tp);
        }
        out.entry(to).or_default().insert(tp);
    }
}

/// A move that evens the assignment out: from a member holding at least two
/// more than another, of a partition that other member could take.
fn uneven(
    members: &BTreeMap<String, MemberSpec>,
    out: &Assignment,
) -> Option<(String, String, TopicPartition)> {
    let mut order: Vec<(&String, usize)> = out.iter().map(|(id, s)| (id, s.len())).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for &(rich, rich_len) in &order {
        for &(poor, poor_len) in order.iter().rev() {
            if poor_len + 1 >= rich_len {
                break;
            }
            let takes = &members[poor].topics;
            if let Some(tp) = out[rich].iter().rev().find(|tp| takes.contains(&tp.topic)) {
                return Some((rich.clone(), poor.clone(), tp.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "assignor_test.rs"]
mod tests;

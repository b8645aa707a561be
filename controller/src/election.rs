//! Leader election: who leads a partition once its leader is gone.

use crate::ids::BrokerId;
use crate::model::Partition;
use std::collections::BTreeSet;

/// The outcome of a leader election.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Election {
    /// A live ISR member leads: nothing acknowledged is lost.
    Clean(BrokerId),
    /// A live replica outside the ISR leads (the topic allows unclean election):
    /// acknowledged data it lacks is lost; the ISR becomes just it.
    Unclean(BrokerId),
    /// No replica may lead: the partition goes offline, its ISR unchanged, until
    /// an ISR member comes back.
    Offline,
}

/// Elects a leader among `replicas`: the preferred replica (the first) if it is in
/// the ISR and live, else the first replica in replica order that is; else, if
/// `unclean_allowed`, the first live replica; else none.
pub fn elect_leader(
    replicas: &[BrokerId],
    isr: &BTreeSet<BrokerId>,
    is_live: impl Fn(BrokerId) -> bool,
    unclean_allowed: bool,
) -> Election {
    if let Some(&b) = replicas.iter().find(|&&b| isr.contains(&b) && is_live(b)) {
        return Election::Clean(b);
    }
    if unclean_allowed {
        if let Some(&b) = replicas.iter().find(|&&b| is_live(b)) {
            return Election::Unclean(b);
        }
    }
    Election::Offline
}

impl Partition {
    /// This partition after `election`: the new leader (and, if unclean, ISR),
    /// with both epochs bumped. An election that ends offline bumps the leader
    /// epoch too, so the deposed leader's epoch is fenced.
    pub(crate) fn after_election(&self, election: Election) -> Partition {
        let mut next = self.clone();
        match election {
            Election::Clean(b) => next.leader = Some(b),
            Election::Unclean(b) => {
                next.leader = Some(b);
                next.isr = BTreeSet::from([b]);
            }
            Election::Offline => next.leader = None,
        }
        next.leader_epoch = self.leader_epoch.next();
        next.partition_epoch = self.partition_epoch.next();
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u32]) -> Vec<BrokerId> {
        v.iter().map(|&b| BrokerId(b)).collect()
    }

    #[test]
    fn election_table() {
        use Election::*;
        type Case = (
            &'static str,
            &'static [u32],
            &'static [u32],
            &'static [u32],
            bool,
            Election,
        );
        let cases: &[Case] = &[
            // (why, replicas, isr, live, unclean allowed, outcome)
            (
                "preferred in isr and live",
                &[1, 2, 3],
                &[1, 2, 3],
                &[1, 2, 3],
                false,
                Clean(BrokerId(1)),
            ),
            (
                "preferred fenced: next in replica order",
                &[1, 2, 3],
                &[1, 2, 3],
                &[2, 3],
                false,
                Clean(BrokerId(2)),
            ),
            (
                "replica order, not id order",
                &[3, 1, 2],
                &[1, 2, 3],
                &[1, 2],
                false,
                Clean(BrokerId(1)),
            ),
            (
                "preferred live but out of isr",
                &[1, 2, 3],
                &[2, 3],
                &[1, 2, 3],
                false,
                Clean(BrokerId(2)),
            ),
            (
                "only live replica out of isr: offline",
                &[1, 2, 3],
                &[1, 2],
                &[3],
                false,
                Offline,
            ),
            (
                "nobody live: offline",
                &[1, 2, 3],
                &[1],
                &[],
                false,
                Offline,
            ),
            (
                "unclean: first live replica",
                &[1, 2, 3],
                &[1],
                &[3, 2],
                true,
                Unclean(BrokerId(2)),
            ),
            (
                "unclean allowed but clean possible",
                &[1, 2, 3],
                &[3],
                &[2, 3],
                true,
                Clean(BrokerId(3)),
            ),
            (
                "unclean allowed, nobody live",
                &[1, 2],
                &[1],
                &[],
                true,
                Offline,
            ),
        ];
        for &(why, replicas, isr, live, unclean, want) in cases {
            let isr: BTreeSet<BrokerId> = ids(isr).into_iter().collect();
            let live = ids(live);
            let got = elect_leader(&ids(replicas), &isr, |b| live.contains(&b), unclean);
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn after_election_bumps_both_epochs_and_resets_isr_only_if_unclean() {
        let p = Partition {
            replicas: ids(&[1, 2, 3]),
            isr: ids(&[1, 2]).into_iter().collect(),
            leader: Some(BrokerId(1)),
            leader_epoch: crate::LeaderEpoch(4),
            partition_epoch: crate::PartitionEpoch(9),
        };
        let clean = p.after_election(Election::Clean(BrokerId(2)));
        assert_eq!(clean.leader, Some(BrokerId(2)));
        assert_eq!(clean.isr, p.isr);
        assert_eq!((clean.leader_epoch.0, clean.partition_epoch.0), (5, 10));
        let unclean = p.after_election(Election::Unclean(BrokerId(3)));
        assert_eq!(unclean.isr, BTreeSet::from([BrokerId(3)]));
        let offline = p.after_election(Election::Offline);
        assert_eq!((offline.leader, offline.isr.clone()), (None, p.isr.clone()));
        assert_eq!(offline.leader_epoch.0, 5);
    }
}

//! Leader election: who leads a partition once its leader is gone, and how
//! the ISR and the eligible leader replicas (KIP-966) follow ISR changes.

use crate::ids::BrokerId;
use crate::model::Partition;
use std::collections::BTreeSet;

/// The outcome of a leader election.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Election {
    /// A live ISR member leads: nothing acknowledged is lost.
    Clean(BrokerId),
    /// No ISR member is live; a live eligible leader replica (KIP-966) leads.
    /// It holds every committed record, so nothing acknowledged is lost; the
    /// ISR becomes just it.
    Eligible(BrokerId),
    /// A live replica outside the ISR and ELR leads (the topic allows unclean
    /// election): acknowledged data it lacks is lost; the ISR becomes just it.
    Unclean(BrokerId),
    /// No replica may lead: the partition goes offline, its ISR unchanged, until
    /// an ISR member or eligible replica comes back.
    Offline,
}

/// Elects a leader among `replicas`: the first replica, in replica order (the
/// preferred first), that is live and in the ISR; else the first live one in
/// the ELR; else, if `unclean_allowed`, the first live replica; else none.
pub fn elect_leader(
    replicas: &[BrokerId],
    isr: &BTreeSet<BrokerId>,
    elr: &BTreeSet<BrokerId>,
    is_live: impl Fn(BrokerId) -> bool,
    unclean_allowed: bool,
) -> Election {
    let first = |among: &dyn Fn(BrokerId) -> bool| {
        replicas.iter().copied().find(|&b| among(b) && is_live(b))
    };
    if let Some(b) = first(&|b| isr.contains(&b)) {
        return Election::Clean(b);
    }
    if let Some(b) = first(&|b| elr.contains(&b)) {
        return Election::Eligible(b);
    }
    match first(&|_| unclean_allowed) {
        Some(b) => Election::Unclean(b),
        None => Election::Offline,
    }
}

impl Partition {
    /// [`elect_leader`] over this partition's replicas, ISR and ELR.
    pub(crate) fn elect(&self, is_live: impl Fn(BrokerId) -> bool, unclean: bool) -> Election {
        elect_leader(&self.replicas, &self.isr, &self.elr, is_live, unclean)
    }

    /// Sets the ISR to `isr` and keeps the ELR true (KIP-966): members leaving
    /// an ISR that ends up below `min_insync` hold every committed record (no
    /// leader's high watermark moves while the ISR is that small), so they
    /// become eligible; an ISR back at `min_insync` ends every eligibility
    /// (the high watermark moves again without them); ISR members are never
    /// in the ELR.
    pub(crate) fn set_isr(&mut self, isr: BTreeSet<BrokerId>, min_insync: usize) {
        if isr.len() >= min_insync {
            self.elr.clear();
        } else {
            self.elr.extend(self.isr.difference(&isr).copied());
            self.elr.retain(|b| !isr.contains(b));
        }
        self.isr = isr;
    }

    /// This partition after `election`: the new leader (and, unless clean, the
    /// ISR of just it), with both epochs bumped. An election that ends offline
    /// bumps the leader epoch too, so the deposed leader's epoch is fenced.
    pub(crate) fn after_election(&self, election: Election, min_insync: usize) -> Partition {
        let mut next = self.clone();
        match election {
            Election::Clean(b) => next.leader = Some(b),
            Election::Eligible(b) => {
                next.leader = Some(b);
                next.set_isr(BTreeSet::from([b]), min_insync);
            }
            Election::Unclean(b) => {
                next.leader = Some(b);
                next.isr = BTreeSet::from([b]);
                // Committed records may be gone: nobody is known to hold them.
                next.elr.clear();
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

    fn set(v: &[u32]) -> BTreeSet<BrokerId> {
        ids(v).into_iter().collect()
    }

    #[test]
    fn election_table() {
        use Election::*;
        type Case = (
            &'static str,
            &'static [u32],
            &'static [u32],
            &'static [u32],
            &'static [u32],
            bool,
            Election,
        );
        let b = BrokerId;
        let cases: &[Case] = &[
            // (why, replicas, isr, elr, live, unclean allowed, outcome)
            (
                "preferred in isr and live",
                &[1, 2, 3],
                &[1, 2, 3],
                &[],
                &[1, 2, 3],
                false,
                Clean(b(1)),
            ),
            (
                "preferred fenced: next in replica order",
                &[1, 2, 3],
                &[1, 2, 3],
                &[],
                &[2, 3],
                false,
                Clean(b(2)),
            ),
            (
                "replica order, not id order",
                &[3, 1, 2],
                &[1, 2, 3],
                &[],
                &[1, 2],
                false,
                Clean(b(1)),
            ),
            (
                "preferred live but out of isr",
                &[1, 2, 3],
                &[2, 3],
                &[],
                &[1, 2, 3],
                false,
                Clean(b(2)),
            ),
            (
                "only live replica out of isr: offline",
                &[1, 2, 3],
                &[1, 2],
                &[],
                &[3],
                false,
                Offline,
            ),
            (
                "nobody live: offline",
                &[1, 2, 3],
                &[1],
                &[],
                &[],
                false,
                Offline,
            ),
            (
                "isr member before an eligible one",
                &[3, 1, 2],
                &[1],
                &[3],
                &[1, 3],
                false,
                Clean(b(1)),
            ),
            (
                "isr gone: eligible replica",
                &[1, 2, 3],
                &[1],
                &[2, 3],
                &[3],
                false,
                Eligible(b(3)),
            ),
            (
                "empty isr: eligible replica",
                &[1, 2, 3],
                &[],
                &[2],
                &[2, 3],
                false,
                Eligible(b(2)),
            ),
            (
                "eligible one fenced: offline",
                &[1, 2, 3],
                &[1],
                &[2],
                &[3],
                false,
                Offline,
            ),
            (
                "unclean: first live replica",
                &[1, 2, 3],
                &[1],
                &[],
                &[3, 2],
                true,
                Unclean(b(2)),
            ),
            (
                "unclean allowed but eligible possible",
                &[1, 2, 3],
                &[1],
                &[3],
                &[2, 3],
                true,
                Eligible(b(3)),
            ),
            (
                "unclean allowed but clean possible",
                &[1, 2, 3],
                &[3],
                &[],
                &[2, 3],
                true,
                Clean(b(3)),
            ),
            (
                "unclean allowed, nobody live",
                &[1, 2],
                &[1],
                &[],
                &[],
                true,
                Offline,
            ),
        ];
        for &(why, replicas, isr, elr, live, unclean, want) in cases {
            let live = ids(live);
            let got = elect_leader(
                &ids(replicas),
                &set(isr),
                &set(elr),
                |b| live.contains(&b),
                unclean,
            );
            assert_eq!(got, want, "{why}");
        }
    }

    fn partition(isr: &[u32], elr: &[u32]) -> Partition {
        Partition {
            replicas: ids(&[1, 2, 3]),
            isr: set(isr),
            elr: set(elr),
            leader: isr.first().map(|&b| BrokerId(b)),
            leader_epoch: crate::LeaderEpoch(4),
            partition_epoch: crate::PartitionEpoch(9),
        }
    }

    #[test]
    fn after_election_bumps_both_epochs_and_resets_isr_only_if_not_clean() {
        let p = partition(&[1, 2], &[]);
        let clean = p.after_election(Election::Clean(BrokerId(2)), 2);
        assert_eq!(clean.leader, Some(BrokerId(2)));
        assert_eq!(clean.isr, p.isr);
        assert_eq!((clean.leader_epoch.0, clean.partition_epoch.0), (5, 10));
        let unclean = p.after_election(Election::Unclean(BrokerId(3)), 2);
        assert_eq!(unclean.isr, set(&[3]));
        let offline = p.after_election(Election::Offline, 2);
        assert_eq!((offline.leader, offline.isr.clone()), (None, p.isr.clone()));
        assert_eq!(offline.leader_epoch.0, 5);
    }

    #[test]
    fn an_eligible_leader_is_the_isr_and_the_members_it_replaces_become_eligible() {
        // ISR {1} (fenced, the last member), ELR {2, 3}: 3 is elected.
        let p = partition(&[1], &[2, 3]).after_election(Election::Eligible(BrokerId(3)), 2);
        assert_eq!((p.leader, p.isr.clone()), (Some(BrokerId(3)), set(&[3])));
        assert_eq!(p.elr, set(&[1, 2]));
        // An unclean election leaves nobody eligible.
        let p = partition(&[1], &[2]).after_election(Election::Unclean(BrokerId(3)), 2);
        assert!(p.elr.is_empty());
    }

    #[test]
    fn the_elr_follows_the_isr_against_min_insync() {
        let mut p = partition(&[1, 2, 3], &[]);
        // Still at min.insync: 3 is not eligible (the HW moves without it).
        p.set_isr(set(&[1, 2]), 2);
        assert!(p.elr.is_empty());
        // Below min.insync: 2 left with every committed record.
        p.set_isr(set(&[1]), 2);
        assert_eq!(p.elr, set(&[2]));
        // Empty (the last member's copy was damaged; the caller drops it).
        p.set_isr(set(&[]), 2);
        assert_eq!(p.elr, set(&[1, 2]));
        // 2 comes back alone: it leaves the ELR, 1 stays eligible.
        p.set_isr(set(&[2]), 2);
        assert_eq!(p.elr, set(&[1]));
        // Back at min.insync: nobody outside is eligible any more.
        p.set_isr(set(&[2, 3]), 2);
        assert!(p.elr.is_empty());
        // min.insync 1: the ISR is never below it while it has a member.
        p.set_isr(set(&[3]), 1);
        assert!(p.elr.is_empty());
    }
}

//! Broker sessions on the controller leader: when each broker last heartbeat,
//! and who has missed the session timeout. Pure: `now` comes in as an argument.
//! Sessions are not replicated: a new leader starts every live broker with a
//! full session, since it cannot know when they last heartbeat.

use crate::ids::{BrokerEpoch, BrokerId};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The leader's session table.
#[derive(Debug)]
pub struct BrokerSessions {
    timeout: Duration,
    /// Broker -> (its epoch, when its session expires).
    sessions: BTreeMap<BrokerId, (BrokerEpoch, Instant)>,
    /// Brokers this leader has heard a heartbeat from since it took over.
    heard: BTreeMap<BrokerId, Instant>,
}

impl BrokerSessions {
    /// An empty table with the given session timeout.
    pub fn new(timeout: Duration) -> Self {
        BrokerSessions {
            timeout,
            sessions: BTreeMap::new(),
            heard: BTreeMap::new(),
        }
    }

    /// The session timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Starts a full session for each of `brokers` (on becoming leader).
    pub fn reset(
        &mut self,
        brokers: impl IntoIterator<Item = (BrokerId, BrokerEpoch)>,
        now: Instant,
    ) {
        self.sessions = brokers
            .into_iter()
            .map(|(id, epoch)| (id, (epoch, now + self.timeout)))
            .collect();
        self.heard.clear();
    }

    /// A heartbeat from `id` at `epoch`: its session runs a full timeout again.
    pub fn heartbeat(&mut self, id: BrokerId, epoch: BrokerEpoch, now: Instant) {
        self.sessions.insert(id, (epoch, now + self.timeout));
        self.heard.insert(id, now);
    }

    /// Brokers whose session has expired at `now`, with the epoch they had.
    pub fn expired(&self, now: Instant) -> Vec<(BrokerId, BrokerEpoch)> {
        self.sessions
            .iter()
            .filter(|(_, &(_, deadline))| deadline <= now)
            .map(|(&id, &(epoch, _))| (id, epoch))
            .collect()
    }

    /// Brokers with a live session not heard from for `quiet` at `now`,
    /// counting those not heard from at all since [`BrokerSessions::reset`]
    /// (a new leader probes them at once: one of them may be the old leader's
    /// node, gone with it).
    pub fn silent(&self, now: Instant, quiet: Duration) -> Vec<(BrokerId, BrokerEpoch)> {
        self.sessions
            .iter()
            .filter(|(id, &(_, deadline))| {
                deadline > now && self.heard.get(id).is_none_or(|&at| at + quiet <= now)
            })
            .map(|(&id, &(epoch, _))| (id, epoch))
            .collect()
    }

    /// Forgets a broker's session (it was fenced, or it is gone).
    pub fn remove(&mut self, id: BrokerId) {
        self.sessions.remove(&id);
        self.heard.remove(&id);
    }

    /// Forgets every session (this node no longer leads).
    pub fn clear(&mut self) {
        self.sessions.clear();
        self.heard.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_unless_renewed() {
        let start = Instant::now();
        let s = Duration::from_secs(1);
        let mut sessions = BrokerSessions::new(s);
        sessions.reset(
            [(BrokerId(1), BrokerEpoch(5)), (BrokerId(2), BrokerEpoch(7))],
            start,
        );
        assert!(sessions.expired(start + s / 2).is_empty());
        // Not heard from since the reset: silent at once.
        assert_eq!(sessions.silent(start, s / 2).len(), 2);
        sessions.heartbeat(BrokerId(1), BrokerEpoch(5), start + s / 2);
        assert_eq!(
            sessions.expired(start + s),
            vec![(BrokerId(2), BrokerEpoch(7))]
        );
        // Expired is not silent: the monitor fences those without asking.
        assert_eq!(
            sessions.silent(start + s, s / 2),
            vec![(BrokerId(1), BrokerEpoch(5))]
        );
        // Broker 1 was heard s/4 ago; broker 2 never since the reset.
        assert_eq!(
            sessions.silent(start + s * 3 / 4, s / 2),
            vec![(BrokerId(2), BrokerEpoch(7))]
        );
        assert_eq!(
            sessions.expired(start + s * 3 / 2),
            vec![(BrokerId(1), BrokerEpoch(5)), (BrokerId(2), BrokerEpoch(7))]
        );
        sessions.remove(BrokerId(2));
        sessions.heartbeat(BrokerId(3), BrokerEpoch(9), start + s);
        assert_eq!(
            sessions.expired(start + s * 3 / 2),
            vec![(BrokerId(1), BrokerEpoch(5))]
        );
        sessions.clear();
        assert!(sessions.expired(start + s * 10).is_empty());
    }
}

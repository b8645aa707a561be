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
}

impl BrokerSessions {
    /// An empty table with the given session timeout.
    pub fn new(timeout: Duration) -> Self {
        BrokerSessions {
            timeout,
            sessions: BTreeMap::new(),
        }
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
    }

    /// A heartbeat from `id` at `epoch`: its session runs a full timeout again.
    pub fn heartbeat(&mut self, id: BrokerId, epoch: BrokerEpoch, now: Instant) {
        self.sessions.insert(id, (epoch, now + self.timeout));
    }

    /// Brokers whose session has expired at `now`, with the epoch they had.
    pub fn expired(&self, now: Instant) -> Vec<(BrokerId, BrokerEpoch)> {
        self.sessions
            .iter()
            .filter(|(_, &(_, deadline))| deadline <= now)
            .map(|(&id, &(epoch, _))| (id, epoch))
            .collect()
    }

    /// Forgets a broker's session (it was fenced, or it is gone).
    pub fn remove(&mut self, id: BrokerId) {
        self.sessions.remove(&id);
    }

    /// Forgets every session (this node no longer leads).
    pub fn clear(&mut self) {
        self.sessions.clear();
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
        sessions.heartbeat(BrokerId(1), BrokerEpoch(5), start + s / 2);
        assert_eq!(
            sessions.expired(start + s),
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

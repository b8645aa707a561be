//! openraft's state machine (storage-v2), generic over the [`StateMachine`] it
//! replicates, with snapshots kept on the node's [`RaftDisk`].

use crate::disk::{RaftDisk, Record};
use crate::error::{DiskError, RestoreError};
use crate::log_store::{decode, encode};
use crate::types::{NodeId, Response, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the controller plugs into Raft: a deterministic state machine over byte
/// commands. `apply` sees every committed command exactly once per state (the
/// store skips entries already applied, so re-application after a restart is
/// harmless).
pub trait StateMachine: Send + Sync + 'static {
    /// Applies the committed command at log `index`; returns the answer for the
    /// client that proposed it. Must depend on nothing but the state and the
    /// command: every replica must reach the same state.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
    /// The whole state, serialized.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError>;
}

/// A snapshot as stored on disk.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

struct State<M> {
    machine: M,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshots_built: u64,
}

/// The replicated state machine of one node. Clones share it (the snapshot
/// builder openraft asks for is a clone).
pub struct StateMachineStore<M: StateMachine, D: RaftDisk> {
    state: Arc<Mutex<State<M>>>,
    disk: D,
}

impl<M: StateMachine, D: RaftDisk> Clone for StateMachineStore<M, D> {
    fn clone(&self) -> Self {
        StateMachineStore {
            state: self.state.clone(),
            disk: self.disk.clone(),
        }
    }
}

impl<M: StateMachine, D: RaftDisk> StateMachineStore<M, D> {
    /// The store for `machine` on `disk`; if the disk holds a snapshot, the
    /// machine is restored from it (openraft then re-applies the committed log
    /// entries after it).
    pub fn open(mut machine: M, disk: D) -> Result<Self, DiskError> {
        let mut last_applied = None;
        let mut membership = StoredMembership::default();
        if let Some(bytes) = disk.read(Record::Snapshot)? {
            let stored: StoredSnapshot = decode("snapshot", &bytes)?;
            machine
                .restore(&stored.data)
                .map_err(|e| DiskError::Corrupt {
                    what: "snapshot".into(),
                    reason: e.to_string(),
                })?;
            last_applied = stored.meta.last_log_id;
            membership = stored.meta.last_membership;
        }
        Ok(StateMachineStore {
            state: Arc::new(Mutex::new(State {
                machine,
                last_applied,
                membership,
                snapshots_built: 0,
            })),
            disk,
        })
    }

    /// Reads the state machine (for linearizable reads after `ensure_linearizable`
    /// and for tests).
    pub fn with_machine<T>(&self, read: impl FnOnce(&M) -> T) -> T {
        read(&self.lock().machine)
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // Held only for synchronous sections, never across an await; each leaves
        // the state consistent, so a poisoned lock's data is still good.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn store_snapshot(&self, stored: &StoredSnapshot) -> Result<(), DiskError> {
        self.disk
            .write(Record::Snapshot, &encode("snapshot", stored)?)
    }
}

impl<M: StateMachine, D: RaftDisk> RaftSnapshotBuilder<TypeConfig> for StateMachineStore<M, D> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let stored = {
            let mut state = self.lock();
            state.snapshots_built += 1;
            let snapshot_id = match state.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id, id.index, state.snapshots_built),
                None => format!("none-{}", state.snapshots_built),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: state.last_applied,
                    last_membership: state.membership.clone(),
                    snapshot_id,
                },
                data: state.machine.snapshot(),
            }
        };
        let signature = Some(stored.meta.signature());
        self.store_snapshot(&stored)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        self.disk
            .flush()
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl<M: StateMachine, D: RaftDisk> RaftStateMachine<TypeConfig> for StateMachineStore<M, D> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.lock();
        let mut responses = Vec::new();
        for entry in entries {
            // Entries at or below the applied id were applied before a restart
            // (or came with a snapshot): skip them, answer nothing.
            if state
                .last_applied
                .is_some_and(|applied| entry.log_id.index <= applied.index)
            {
                responses.push(Response::default());
                continue;
            }
            let response = match entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(request) => {
                    Response(state.machine.apply(entry.log_id.index, &request.0))
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response::default()
                }
            };
            state.last_applied = Some(entry.log_id);
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let signature = Some(meta.signature());
        {
            let mut state = self.lock();
            state
                .machine
                .restore(&stored.data)
                .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
        }
        self.store_snapshot(&stored)
            .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        self.disk
            .flush()
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let Some(bytes) = self
            .disk
            .read(Record::Snapshot)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot =
            decode("snapshot", &bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

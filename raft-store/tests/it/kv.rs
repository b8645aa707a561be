//! A tiny key-value state machine to drive the stores with.

use raftline_raft_store::{RestoreError, StateMachine};
use std::collections::BTreeMap;

/// `key=value` commands; answers the previous value.
#[derive(Default, Debug)]
pub struct Kv {
    pub map: BTreeMap<String, String>,
    pub applied: Vec<u64>,
}

pub fn set(key: &str, value: &str) -> Vec<u8> {
    format!("{key}={value}").into_bytes()
}

impl StateMachine for Kv {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.applied.push(index);
        let text = String::from_utf8_lossy(command);
        let Some((key, value)) = text.split_once('=') else {
            return b"bad command".to_vec();
        };
        self.map
            .insert(key.to_string(), value.to_string())
            .unwrap_or_default()
            .into_bytes()
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.map).unwrap()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        self.map = serde_json::from_slice(snapshot).map_err(|e| RestoreError(e.to_string()))?;
        Ok(())
    }
}

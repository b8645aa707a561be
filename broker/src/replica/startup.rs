//! Before a broker registers: every local partition log is opened once, so
//! recovery runs (and cuts what a crash tore or the disk damaged) before the
//! controller may elect this broker anywhere; what is left of deleted logs
//! (`*-delete` directories) is removed. Partitions whose recovery cut
//! synced records go with the registration; the controller takes the broker
//! out of their ISR and ELR, and the marks are cleared once it knows.
//!
//! ```text
//! start ─> recover_local_logs ─> damaged ─> RegisterBroker{damaged} ─> registered ─> clear_damage_marks
//! ```

use crate::log::{self, Log, LogConfig};
use crate::position::TopicPartition;
use crate::storage::Storage;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Opens every partition log under `log_dir`; returns the partitions whose
/// copy is damaged (see [`log::DAMAGE_MARK`]), and those that cannot be opened
/// at all (they cannot hold what they held either).
pub fn recover_local_logs(
    storage: &Arc<dyn Storage>,
    log_dir: &Path,
    defaults: &LogConfig,
) -> Vec<TopicPartition> {
    let names = match storage.list_subdirs(log_dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(dir = %log_dir.display(), error = %e, "cannot list the log directory; no partition checked before registering");
            return Vec::new();
        }
    };
    let mut damaged = Vec::new();
    for name in names {
        if name.ends_with(log::DELETED_DIR_SUFFIX) {
            // A deleted log whose removal a stop cut short.
            match log::RetiredFiles::dead_dir(storage.clone(), log_dir.join(&name)) {
                Ok(dead) => dead.remove(),
                Err(e) => {
                    tracing::warn!(dir = %name, error = %e, "cannot list a deleted log's directory to remove it")
                }
            }
            continue;
        }
        let Some(tp) = TopicPartition::from_dir_name(&name) else {
            continue;
        };
        match Log::open(storage.clone(), log_dir.join(&name), defaults.clone()) {
            Ok(log) if log.recovery().damaged => {
                tracing::warn!(partition = %tp, reasons = ?log.recovery().reasons, "recovery cut records that had been synced: this replica leaves the partition's ISR until it catches up");
                damaged.push(tp);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "cannot open the partition's log: reported as damaged");
                damaged.push(tp);
            }
        }
    }
    damaged
}

/// Clears the damage marks of `partitions` once the controller has the
/// registration that reported them.
pub fn clear_damage_marks(storage: &dyn Storage, log_dir: &Path, partitions: &[TopicPartition]) {
    for tp in partitions {
        if let Err(e) = log::clear_damage_mark(storage, &log_dir.join(tp.dir_name())) {
            tracing::warn!(partition = %tp, error = %e, "cannot clear the damage mark; the next start reports the partition again");
        }
    }
}

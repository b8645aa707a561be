//! `raftline.v1.MetadataStream`: a full image on connect, then every change in
//! order; a subscriber that falls behind the buffer gets a fresh image.

use crate::convert;
use crate::machine::{ControllerMachine, MetadataUpdate};
use raftline_proto::pb;
use raftline_proto::pb::metadata_stream_server::MetadataStream;
use raftline_raft_store::{RaftDisk, RaftHandle};
use std::pin::Pin;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Updates queued per subscriber before its sender waits for the network.
const SUBSCRIBER_QUEUE: usize = 64;

/// The MetadataStream service of one controller node.
pub struct MetadataStreamService<D: RaftDisk> {
    raft: RaftHandle<ControllerMachine, D>,
}

impl<D: RaftDisk> MetadataStreamService<D> {
    /// The service over the node's state machine.
    pub fn new(raft: RaftHandle<ControllerMachine, D>) -> Self {
        MetadataStreamService { raft }
    }
}

type Updates = Pin<Box<dyn Stream<Item = Result<pb::MetadataUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl<D: RaftDisk> MetadataStream for MetadataStreamService<D> {
    type WatchStream = Updates;

    #[tracing::instrument(skip_all)]
    async fn watch(
        &self,
        _request: Request<pb::WatchMetadataRequest>,
    ) -> Result<Response<Updates>, Status> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        // The forwarding task ends when the subscriber goes (its send fails) or
        // the node shuts down.
        tokio::spawn(forward(self.raft.clone(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends an image, then every update; on falling behind, a new image.
async fn forward<D: RaftDisk>(
    raft: RaftHandle<ControllerMachine, D>,
    tx: mpsc::Sender<Result<pb::MetadataUpdate, Status>>,
) {
    let stop = raft.shutdown_signal();
    loop {
        // Image and subscription under the state machine's lock: no update can
        // fall between them or be sent twice.
        let (image, mut updates) = raft.machine().with_machine(ControllerMachine::subscribe);
        if send(&tx, &image).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                received = updates.recv() => received,
            };
            match received {
                Ok(update) => {
                    if send(&tx, &update).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(
                        missed,
                        "metadata subscriber fell behind: sending a fresh image"
                    );
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

async fn send(
    tx: &mpsc::Sender<Result<pb::MetadataUpdate, Status>>,
    update: &MetadataUpdate,
) -> Result<(), ()> {
    tx.send(Ok(convert::update(update))).await.map_err(|_| ())
}

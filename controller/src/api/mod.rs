//! The controller's gRPC front: the `Admin` service on the client port,
//! `BrokerLifecycle` and `MetadataStream` on the peer port. Each
//! handler converts the request, makes one call on [`ControllerNode`], converts
//! back; errors become statuses in [`status`].

mod admin;
mod lifecycle;
pub mod status;
mod stream;

pub use admin::AdminService;
pub use lifecycle::BrokerLifecycleService;
pub use stream::MetadataStreamService;

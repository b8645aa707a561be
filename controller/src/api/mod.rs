//! The controller's gRPC front: the `Admin` service on the client port. Each
//! handler converts the request, makes one call on [`ControllerNode`], converts
//! back; errors become statuses in [`status`].

mod admin;
pub mod status;

pub use admin::AdminService;

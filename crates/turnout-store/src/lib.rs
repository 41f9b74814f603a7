//! turnout's control-plane persistence: SQLite, one transaction per
//! accepted change.
//!
//! The engine turns each accepted request into one [`Change`] and acknowledges
//! it only after [`Store::commit`] returned: the change is then on disk
//! (write-ahead log, `synchronous = FULL`) and survives a `kill -9` of the
//! server or a power cut; a failed commit changed nothing. A restarted server
//! reads its apps, releases and instances back with the read methods.
//!
//! Records are plain data with states as strings: this crate depends on no
//! other turnout crate, and the engine converts to and from its own types.
//! The schema is normalised (one table per record kind) and versioned with
//! `PRAGMA user_version`; see [`SCHEMA_VERSION`].

mod app;
mod change;
mod convert;
mod error;
mod event;
mod instance;
mod migrations;
mod release;
mod service;
mod store;
mod template;
mod weight;

pub use app::AppRecord;
pub use change::{Change, CommitResult};
pub use error::StoreError;
pub use event::{EventRecord, NewEvent};
pub use instance::InstanceRecord;
pub use migrations::SCHEMA_VERSION;
pub use release::ReleaseRecord;
pub use service::ServiceRecord;
pub use store::{EVENTS_KEPT, Store, now_millis};
pub use template::TemplateRecord;
pub use weight::WeightRecord;

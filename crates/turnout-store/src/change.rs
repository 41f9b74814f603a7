//! Changes: everything one accepted control-plane request writes, committed
//! as one transaction.

use crate::app::AppRecord;
use crate::event::{EventRecord, NewEvent};
use crate::instance::InstanceRecord;
use crate::release::ReleaseRecord;
use crate::template::TemplateRecord;

/// One atomic change of the control plane's state.
///
/// [`crate::Store::commit`] writes it all or nothing, in this order, so
/// that one change can delete an app and deploy it afresh, and a template or
/// release can name an app that the same change creates:
///
/// 1. `deleted_instances`, 2. `deleted_apps`, 3. `apps`, 4. `templates`,
/// 5. `releases`, 6. `instances`, 7. `events`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Template versions to store (immutable: see [`TemplateRecord`]).
    pub templates: Vec<TemplateRecord>,
    /// Apps to write whole: each replaces that app's services and route
    /// weights, and leaves its templates, releases and instances alone.
    pub apps: Vec<AppRecord>,
    /// Releases to write; id 0 inserts a new one, any other id writes over
    /// (or creates) that release.
    pub releases: Vec<ReleaseRecord>,
    /// Apps to delete, with their templates, services, weights, releases and
    /// instances; their events are kept.
    pub deleted_apps: Vec<String>,
    /// Instances to write whole (insert or replace by id).
    pub instances: Vec<InstanceRecord>,
    /// Instances to delete, by id.
    pub deleted_instances: Vec<String>,
    /// Events to append.
    pub events: Vec<NewEvent>,
}

impl Change {
    /// Whether the change writes nothing.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
            && self.apps.is_empty()
            && self.releases.is_empty()
            && self.deleted_apps.is_empty()
            && self.instances.is_empty()
            && self.deleted_instances.is_empty()
            && self.events.is_empty()
    }
}

/// What a successful commit assigned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitResult {
    /// The id of each release of the change, in the change's order: the
    /// new id where the release had id 0, else its own.
    pub release_ids: Vec<i64>,
    /// The events as stored, with their ids and time, in the change's order
    /// (ready to publish to SSE subscribers once the commit returned).
    pub events: Vec<EventRecord>,
}

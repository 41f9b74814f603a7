//! A calling service, as the route table's caller tokens name it.

use std::fmt;
use std::sync::Arc;

/// The service (and the app it belongs to) that calls with one proxy
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub(crate) app: Option<Arc<str>>,
    pub(crate) service: Arc<str>,
}

impl Caller {
    /// The caller's app; `None` for a token written as a bare service.
    pub fn app(&self) -> Option<&Arc<str>> {
        self.app.as_ref()
    }

    /// The calling service's name.
    pub fn service(&self) -> &Arc<str> {
        &self.service
    }
}

/// `app/service`, or `service` without an app: as the route file writes it.
impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.app {
            Some(app) => write!(f, "{app}/{}", self.service),
            None => f.write_str(&self.service),
        }
    }
}

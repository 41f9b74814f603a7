//! How a route keeps a client on what it got before.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stickiness of a route (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sticky {
    /// A client keeps its version (service) while the weights stand, through
    /// the position cookie; weight changes move clients only towards the
    /// service whose weight rose.
    #[default]
    Version,
    /// As `Version`, and the client is also pinned to one instance, even when
    /// that instance's service has weight 0, for as long as it lives.
    Instance,
    /// Every request is weighted anew.
    Off,
}

impl fmt::Display for Sticky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sticky::Version => "version",
            Sticky::Instance => "instance",
            Sticky::Off => "off",
        })
    }
}

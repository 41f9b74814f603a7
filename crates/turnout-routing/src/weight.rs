//! The weight of a service on a route.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A service's weight on a route: an integer 0..=100. Shares are relative,
/// so 100/100 is a 50/50 split and 90/10 is a 90/10 split.
///
/// The one range check of a weight is [`Weight::new`]; the control plane
/// carries this type from the API body (and the CLI's arguments) to the
/// table. In JSON it is a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Weight(u8);

impl Weight {
    /// The largest weight a service may carry.
    pub const MAX: Weight = Weight(100);
    /// The weight of a service that gets no new traffic.
    pub const ZERO: Weight = Weight(0);

    /// Returns the weight, or `None` when it is above [`Weight::MAX`].
    pub fn new(value: u8) -> Option<Weight> {
        (value <= Self::MAX.0).then_some(Weight(value))
    }

    /// The weight as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Weight {
    type Error = String;

    fn try_from(value: u8) -> Result<Weight, String> {
        Weight::new(value).ok_or_else(|| format!("weight {value} is above 100"))
    }
}

impl From<Weight> for u8 {
    fn from(w: Weight) -> u8 {
        w.0
    }
}

impl Default for Weight {
    /// A service deployed outside a release carries the full weight.
    fn default() -> Self {
        Weight::MAX
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(Weight::new(0), Some(Weight::ZERO));
        assert_eq!(Weight::new(100).map(Weight::get), Some(100));
        assert_eq!(Weight::new(101), None);
        assert_eq!(Weight::default(), Weight::MAX);
    }

    #[test]
    fn json_is_a_checked_integer() {
        let w: Weight = serde_saphyr::from_str("40").unwrap();
        assert_eq!(w.get(), 40);
        assert!(serde_saphyr::from_str::<Weight>("101").is_err());
    }
}

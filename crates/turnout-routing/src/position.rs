//! Positions for `version` stickiness: each service owns a contiguous range
//! of `[0, POSITION_SPACE)`, sized by its share and stacked in listed order
//! (the first service at the bottom), and a client's cookie holds a position.
//!
//! When one service's weight rises, its range grows at both ends and every
//! boundary moves towards it, so clients only move towards that service;
//! when it falls, they only move away from it. With two services (the
//! blue-green case) every change is monotonic in this sense.

use std::ops::Range;

/// Size of the position space; a position cookie holds a number below it.
pub const POSITION_SPACE: u32 = 1_000_000;

/// A client's position in the stickiness space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(u32);

impl Position {
    /// A position, or `None` outside `[0, POSITION_SPACE)`.
    pub fn new(value: u32) -> Option<Position> {
        (value < POSITION_SPACE).then_some(Position(value))
    }

    /// Reads a cookie value; anything but a number in range is `None`.
    pub fn parse(text: &str) -> Option<Position> {
        if text.is_empty() || text.len() > 7 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().and_then(Position::new)
    }

    /// The position as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// A position spread evenly over `range` from any 64-bit number; used to
    /// give a cookie-less client a place inside the service it was sent to.
    pub(crate) fn spread(range: &Range<u32>, seed: u64) -> Option<Position> {
        let len = range.end.checked_sub(range.start).filter(|len| *len > 0)?;
        let offset = (splitmix64(seed) % u64::from(len)) as u32;
        Position::new(range.start + offset)
    }
}

/// The ranges of services with the given weights: boundaries at
/// `floor(cumulative * SPACE / total)`, so the ranges tile the space
/// exactly. All ranges are empty when every weight is 0.
pub(crate) fn ranges(weights: &[u32]) -> Vec<Range<u32>> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let mut out = Vec::with_capacity(weights.len());
    let mut cumulative = 0u64;
    let mut start = 0u32;
    for weight in weights {
        cumulative += u64::from(*weight);
        let end = (cumulative * u64::from(POSITION_SPACE))
            .checked_div(total)
            .map_or(0, |end| end as u32);
        out.push(start..end);
        start = end;
    }
    out
}

/// A well-mixed 64-bit hash (splitmix64 finaliser), so that consecutive
/// sequence numbers land far apart.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_space() {
        let r = ranges(&[90, 10]);
        assert_eq!(r, vec![0..900_000, 900_000..1_000_000]);
        let r = ranges(&[1, 1, 1]);
        assert_eq!(r[0].start, 0);
        assert_eq!(r[2].end, POSITION_SPACE);
        assert_eq!(r[0].end, r[1].start);
        assert_eq!(ranges(&[0, 0]), vec![0..0, 0..0]);
        assert_eq!(ranges(&[0, 5]), vec![0..0, 0..1_000_000]);
    }

    #[test]
    fn parse_accepts_only_positions() {
        assert_eq!(Position::parse("0").map(Position::get), Some(0));
        assert_eq!(Position::parse("999999").map(Position::get), Some(999_999));
        assert_eq!(Position::parse("1000000"), None);
        assert_eq!(Position::parse("-1"), None);
        assert_eq!(Position::parse(""), None);
        assert_eq!(Position::parse("12a"), None);
    }

    #[test]
    fn spread_stays_inside() {
        for seed in 0..1000 {
            let p = Position::spread(&(10..20), seed).unwrap().get();
            assert!((10..20).contains(&p));
        }
        assert_eq!(Position::spread(&(5..5), 1), None);
    }
}

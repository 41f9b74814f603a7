//! The request path's half of the A/B feed: on a route with a goal, each
//! answered request reports (service, client position, converted) by one
//! push into a bounded lock-free queue ([`crossbeam_queue::ArrayQueue`]);
//! `conversions.rs` drains it off the request path. A full queue drops the
//! report and counts the drop. Routes without a goal have no [`Tap`], and
//! their requests pay one branch on its absence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use turnout_routing::{Goal, POSITION_COOKIE, Position, RequestHeaders, Target, Via, cookie_value};

/// No position: the request carried no valid cookie and got none (a rule
/// sent it).
pub(crate) const NO_POSITION: u32 = u32::MAX;

/// One answered request of a goal route, as queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Visited {
    /// The [`Tap`]'s key: its route and service.
    pub key: u64,
    /// The client's position, or [`NO_POSITION`].
    pub position: u32,
    /// At the goal path, answered with the goal's status.
    pub converted: bool,
}

/// The queue every tap pushes into.
#[derive(Debug)]
pub(crate) struct Sink {
    pub queue: ArrayQueue<Visited>,
}

/// A goal route's service's end of the feed, carried over by publishes
/// with its service state (so its key, and the tally behind it, stay).
#[derive(Debug, Clone)]
pub(crate) struct Tap {
    pub key: u64,
    pub goal: Goal,
    pub sink: Arc<Sink>,
    /// Reports the full queue refused.
    pub dropped: Arc<AtomicU64>,
}

/// What the routing decision noted of a goal route's request, for its
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Visit {
    pub position: u32,
    pub at_goal: bool,
}

impl Tap {
    /// The visit a request makes, if it counts: not a preview. The
    /// position is the one the proxy is giving the client, else its
    /// cookie's.
    #[inline]
    pub fn visit<H: RequestHeaders + ?Sized>(
        &self,
        target: &Target,
        headers: &H,
        path: &str,
    ) -> Option<Visit> {
        if target.via == Via::Preview {
            return None;
        }
        let position = target
            .set_position
            .or_else(|| cookie_value(headers, POSITION_COOKIE).and_then(Position::parse))
            .map_or(NO_POSITION, Position::get);
        Some(Visit {
            position,
            at_goal: self.goal.at(path),
        })
    }

    /// Reports an answer of `status` to `visit`.
    #[inline]
    pub fn offer(&self, visit: Visit, status: u16) {
        let visited = Visited {
            key: self.key,
            position: visit.position,
            converted: visit.at_goal && self.goal.status.matches(status),
        };
        if self.sink.queue.push(visited).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a request is counted once answered: in the preview figures or the
/// served ones, and, on a goal route, as a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Account {
    pub preview: bool,
    pub visit: Option<Visit>,
}

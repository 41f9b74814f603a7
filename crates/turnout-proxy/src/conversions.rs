//! The A/B feed's aggregator, off the request path: it drains the queue
//! the goal routes' [`Tap`]s push into (every [`DRAIN_EVERY`], and before
//! every read), and keeps per tap — per route and service — the distinct
//! client positions and the converting ones. Only the drainer, publishes
//! and the control plane's reads take its lock; requests never do.
//!
//! Memory: a set of positions is a bitmap over the `POSITION_SPACE`
//! (10^6) positions, 122 KiB, allocated by its first position, so a
//! (route, service) holds at most two of them (clients and converting
//! clients), 244 KiB, however many clients come; the queue is one
//! [`QUEUE_CAPACITY`]-slot array (1.5 MiB), allocated by the first goal
//! route. A table without goals allocates nothing here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio_util::sync::CancellationToken;
use turnout_routing::{Goal, POSITION_SPACE, ServiceFigures};

use crate::feed::{NO_POSITION, Sink, Tap, Visited};
use crate::snapshot::{FastMap, Snapshot};

/// Reports the queue holds before it drops them: at [`DRAIN_EVERY`], some
/// 650,000 goal-route requests a second.
pub(crate) const QUEUE_CAPACITY: usize = 65_536;

/// How often the drainer empties the queue.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// The aggregator of one proxy.
#[derive(Debug, Default)]
pub(crate) struct Conversions {
    inner: parking_lot::Mutex<Inner>,
    /// Wakes the drainer when the first tap is made.
    first_tap: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Made with the first tap.
    sink: Option<Arc<Sink>>,
    next_key: u64,
    /// By tap key: the taps of the published table (and of the one before
    /// it, until the next publish prunes them).
    tallies: FastMap<u64, ClientSets>,
}

/// The clients of one tap.
#[derive(Debug, Default)]
struct ClientSets {
    clients: Positions,
    converted: Positions,
    unidentified: u64,
}

/// A set of positions: a bitmap of the position space, allocated by the
/// first insert, and its size.
#[derive(Debug, Default)]
struct Positions {
    bits: Option<Box<[u64]>>,
    len: u64,
}

impl Positions {
    fn insert(&mut self, position: u32) {
        let Some(index) = (position < POSITION_SPACE).then_some(position as usize) else {
            return;
        };
        let bits = self
            .bits
            .get_or_insert_with(|| vec![0; (POSITION_SPACE as usize).div_ceil(64)].into());
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if bits[word] & bit == 0 {
            bits[word] |= bit;
            self.len += 1;
        }
    }
}

impl Inner {
    /// Applies every queued report.
    fn drain(&mut self) {
        let Some(sink) = self.sink.clone() else {
            return;
        };
        while let Some(visited) = sink.queue.pop() {
            self.apply(visited);
        }
    }

    fn apply(&mut self, visited: Visited) {
        // A report of a tap no longer published (its service left the
        // route) finds nothing.
        let Some(sets) = self.tallies.get_mut(&visited.key) else {
            return;
        };
        if visited.position == NO_POSITION {
            sets.unidentified += 1;
            return;
        }
        sets.clients.insert(visited.position);
        if visited.converted {
            sets.converted.insert(visited.position);
        }
    }
}

impl Conversions {
    /// A new tap for a service of a route with `goal`, with a tally of its
    /// own.
    pub fn tap(&self, goal: &Goal) -> Tap {
        let mut inner = self.inner.lock();
        let first = inner.sink.is_none();
        let sink = inner
            .sink
            .get_or_insert_with(|| {
                Arc::new(Sink {
                    queue: ArrayQueue::new(QUEUE_CAPACITY),
                })
            })
            .clone();
        let key = inner.next_key;
        inner.next_key += 1;
        inner.tallies.insert(key, ClientSets::default());
        drop(inner);
        if first {
            self.first_tap.notify_one();
        }
        Tap {
            key,
            goal: goal.clone(),
            sink,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Forgets the tallies of taps `snapshot` (just published) no longer
    /// has. Nothing to do, and no walk of the table, while no route has a
    /// goal.
    pub fn keep(&self, snapshot: &Snapshot) {
        let mut inner = self.inner.lock();
        if inner.tallies.is_empty() {
            return;
        }
        inner.drain();
        let live: FastMap<u64, ()> = taps(snapshot, None).map(|t| (t.key, ())).collect();
        inner.tallies.retain(|key, _| live.contains_key(key));
    }

    /// Empties the queue into the tallies.
    pub fn drain(&self) {
        self.inner.lock().drain();
    }

    /// Starts the client sets of `app`'s goal routes in `snapshot` again
    /// (a new A/B test): what was queued before counts before the reset.
    pub fn reset(&self, snapshot: &Snapshot, app: &str) {
        let mut inner = self.inner.lock();
        inner.drain();
        for tap in taps(snapshot, Some(app)) {
            if let Some(sets) = inner.tallies.get_mut(&tap.key) {
                *sets = ClientSets::default();
            }
        }
    }

    /// The figures of every service of `app`'s routes in `snapshot` ("" for
    /// routes without an app), in table order, with what is queued
    /// drained first.
    pub fn report(&self, snapshot: &Snapshot, app: &str) -> Vec<ServiceFigures> {
        let mut inner = self.inner.lock();
        inner.drain();
        let mut out = Vec::new();
        for (route, state) in snapshot.table.routes().iter().zip(&snapshot.routes) {
            if route.app().map_or("", |a| &**a) != app {
                continue;
            }
            for (service, state) in route.services().iter().zip(&state.services) {
                let (served, preview) = state.figures.copy();
                let conversions = state.tap.as_ref().map(|tap| {
                    let sets = inner.tallies.get(&tap.key);
                    turnout_routing::Conversions {
                        clients: sets.map_or(0, |s| s.clients.len),
                        converted: sets.map_or(0, |s| s.converted.len),
                        unidentified: sets.map_or(0, |s| s.unidentified),
                        dropped: tap.dropped.load(Ordering::Relaxed),
                    }
                });
                out.push(ServiceFigures {
                    route: route.id().clone(),
                    service: service.name().clone(),
                    served,
                    preview,
                    conversions,
                });
            }
        }
        drop(inner);
        out
    }

    /// Drains the queue every [`DRAIN_EVERY`] from the first tap on, until
    /// `stop`. Before the first tap it only waits.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => return,
            () = self.first_tap.notified() => {}
        }
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.drain(),
            }
        }
    }
}

/// The taps of `snapshot`'s routes (of `app`, when given).
fn taps<'s>(snapshot: &'s Snapshot, app: Option<&'s str>) -> impl Iterator<Item = &'s Tap> + 's {
    snapshot
        .table
        .routes()
        .iter()
        .zip(&snapshot.routes)
        .filter(move |(route, _)| {
            route.goal().is_some() && app.is_none_or(|app| route.app().map_or("", |a| &**a) == app)
        })
        .flat_map(|(_, state)| state.services.iter().filter_map(|s| s.tap.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Visit;
    use turnout_routing::GoalStatus;

    fn goal() -> Goal {
        Goal {
            path: Arc::from("/checkout"),
            status: GoalStatus::Class(2),
        }
    }

    #[test]
    fn positions_are_counted_once_and_the_queue_drops_past_its_capacity() {
        let conversions = Conversions::default();
        let tap = conversions.tap(&goal());
        let other = conversions.tap(&goal());
        assert_ne!(tap.key, other.key);
        let at = |position, at_goal| Visit { position, at_goal };
        tap.offer(at(7, false), 200);
        tap.offer(at(7, true), 200);
        tap.offer(at(7, true), 200);
        tap.offer(at(8, true), 500);
        tap.offer(at(9, false), 200);
        tap.offer(at(NO_POSITION, true), 200);
        other.offer(at(7, true), 201);
        let mut inner = conversions.inner.lock();
        inner.drain();
        let sets = &inner.tallies[&tap.key];
        assert_eq!((sets.clients.len, sets.converted.len), (3, 1));
        assert_eq!(sets.unidentified, 1);
        let sets = &inner.tallies[&other.key];
        assert_eq!((sets.clients.len, sets.converted.len), (1, 1));
        drop(inner);

        for i in 0..QUEUE_CAPACITY as u32 + 10 {
            tap.offer(at(i % POSITION_SPACE, false), 200);
        }
        assert_eq!(tap.dropped.load(Ordering::Relaxed), 10);
        conversions.drain();
        assert_eq!(
            conversions.inner.lock().tallies[&tap.key].clients.len,
            QUEUE_CAPACITY as u64
        );
    }

    /// The request path's part: the visit, the report and the figures
    /// allocate nothing once a service's tallies exist.
    #[test]
    fn counting_an_answer_allocates_nothing() {
        use turnout_routing::{Target, Via};

        let conversions = Conversions::default();
        let tap = conversions.tap(&goal());
        let cells = crate::figures::FigureCells::default();
        cells.resolve();
        cells.record(true, 200, 1);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=b; turnout_pos=123".parse().unwrap(),
        );
        let target = Target {
            service: 0,
            pinned: None,
            via: Via::Position,
            set_position: None,
            set_pin: false,
        };
        let info = allocation_counter::measure(|| {
            for i in 0..1_000u16 {
                let visit = tap.visit(&target, &headers, "/checkout/done").unwrap();
                tap.offer(visit, 200 + i % 400);
                cells.record(i % 2 == 0, 200 + i % 400, u64::from(i) * 997);
            }
        });
        assert_eq!(info.count_total, 0);
        // The counter does see an allocation.
        let seen = allocation_counter::measure(|| drop(std::hint::black_box(vec![0u8; 16])));
        assert_eq!(seen.count_total, 1);
        let preview = Target {
            via: Via::Preview,
            ..target
        };
        assert_eq!(tap.visit(&preview, &headers, "/checkout"), None);
        let mut inner = conversions.inner.lock();
        inner.drain();
        let sets = &inner.tallies[&tap.key];
        assert_eq!((sets.clients.len, sets.converted.len), (1, 1));
        assert_eq!(cells.copy().0.requests + cells.copy().1.requests, 1_001);
    }
}

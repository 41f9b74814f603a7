//! A bounded load on one public route, in phases: client threads send
//! `GET /` for a host one request after another (a new connection each)
//! until told to stop, or until their request count or the time bound
//! runs out, whichever comes first. Each answer is counted under the phase
//! the test had set when the request started; a request during which the
//! phase changed is counted under [`TRANSITION`] (it may see either side
//! of the change), so a phase's answers can be checked exactly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The phase of requests that straddle a change, or that start while a
/// change is being made: not checked against either side.
pub const TRANSITION: usize = 99;

/// How much load, at most.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub clients: usize,
    pub requests_per_client: usize,
    pub time: Duration,
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// (phase, body) → count.
    seen: Mutex<BTreeMap<(usize, String), usize>>,
    failures: Mutex<Vec<String>>,
}

/// The load while it runs.
pub struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    tally: Arc<Tally>,
    clients: Vec<JoinHandle<()>>,
}

/// What the load saw, once it stopped.
pub struct Outcome {
    pub total: usize,
    /// "phase P: STATUS BODY" of each request that was not a 200.
    pub failures: Vec<String>,
    pub seen: BTreeMap<(usize, String), usize>,
    /// Whether a bound (count or time) ended the load before the test did.
    pub cut_short: bool,
}

impl Load {
    /// Starts `bounds.clients` threads requesting `host` at `public`, in
    /// phase 0.
    pub fn start(public: SocketAddr, host: &str, bounds: Bounds) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        let clients = (0..bounds.clients)
            .map(|_| {
                let (stop, phase, tally) = (stop.clone(), phase.clone(), tally.clone());
                let host = host.to_string();
                std::thread::spawn(move || {
                    for _ in 0..bounds.requests_per_client {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > bounds.time {
                            break;
                        }
                        let p = phase.load(Ordering::Relaxed);
                        let r = super::request(public, "GET", "/", &[("Host", &host)], None);
                        let p = if phase.load(Ordering::Relaxed) == p {
                            p
                        } else {
                            TRANSITION
                        };
                        if r.status == 200 {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            *tally.seen.lock().unwrap().entry((p, r.body)).or_insert(0) += 1;
                        } else {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            tally
                                .failures
                                .lock()
                                .unwrap()
                                .push(format!("phase {p}: {} {}", r.status, r.body));
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            phase,
            tally,
            clients,
        }
    }

    /// Requests that start from now on are counted in phase `p`.
    pub fn phase(&self, p: usize) {
        self.phase.store(p, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.tally.ok.load(Ordering::Relaxed) + self.tally.failed.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests than now were answered (at most
    /// `within`): a phase that is checked has load in it.
    pub fn wait_for(&self, n: usize, within: Duration) {
        let target = self.answered() + n;
        let deadline = Instant::now() + within;
        while self.answered() < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the clients and returns what they saw.
    pub fn finish(self) -> Outcome {
        let cut_short = self.clients.iter().all(JoinHandle::is_finished);
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        let failures = std::mem::take(&mut *self.tally.failures.lock().unwrap());
        let seen = std::mem::take(&mut *self.tally.seen.lock().unwrap());
        Outcome {
            total: self.tally.ok.load(Ordering::Relaxed) + failures.len(),
            failures,
            seen,
            cut_short,
        }
    }
}

impl Outcome {
    /// Every answer whatever its phase, with how many requests got it.
    pub fn answers(&self) -> BTreeMap<&str, usize> {
        let mut answers = BTreeMap::new();
        for ((_, body), n) in &self.seen {
            *answers.entry(body.as_str()).or_insert(0) += n;
        }
        answers
    }

    /// Fails the test if a request failed, showing the first few.
    pub fn assert_none_failed(&self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} requests failed: {:?}",
            self.failures.len(),
            self.total,
            &self.failures[..self.failures.len().min(5)]
        );
    }

    /// The distinct answers of phase `p`.
    pub fn in_phase(&self, p: usize) -> Vec<&str> {
        self.seen
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, b)| b.as_str())
            .collect()
    }

    /// How many requests phase `p` answered.
    pub fn count(&self, p: usize) -> usize {
        self.seen
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Slows every instance of `service` (a `turnout demo-app`) down by
/// `latency_ms` before it answers, and so before its inner call, through
/// its `/control` endpoint: requests are in flight there when the service
/// leaves the app. The endpoints are the status's (loopback ports of
/// processes, or container addresses, which this machine reaches too).
pub fn slow_down(server: &super::Server, app: &str, service: &str, latency_ms: u64) {
    let status = server.status(app);
    let endpoints: Vec<SocketAddr> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == service)
        .flat_map(|s| s["instances"].as_array().unwrap().clone())
        .filter_map(|i| i["endpoint"].as_str().and_then(|e| e.parse().ok()))
        .collect();
    assert!(!endpoints.is_empty(), "no endpoints of {service}: {status}");
    let body = format!(r#"{{"latency_ms":{latency_ms}}}"#);
    for endpoint in endpoints {
        let r = super::request(endpoint, "POST", "/control", &[], Some(&body));
        assert_eq!(r.status, 200, "{endpoint}: {}", r.body);
    }
}

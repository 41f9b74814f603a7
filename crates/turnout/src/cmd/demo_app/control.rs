//! Failure and latency injection: the settings that `/control` reads and
//! writes, their validation (shared by the command-line flags and the JSON
//! body), and the counter that decides which requests fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};

/// Lowest injectable status. 1xx codes are informational and cannot be a
/// final answer (hyper would turn them into a 500), so they are refused
/// rather than silently changed.
const MIN_FAIL_STATUS: u16 = 200;
/// Highest status HTTP defines a class for.
const MAX_FAIL_STATUS: u16 = 599;
/// One hour: long enough for any timeout test, short enough that a typo
/// (a duration in microseconds, say) is caught.
const MAX_LATENCY_MS: u64 = 3_600_000;

const FAIL_STATUS_EXPECTED: &str = "an HTTP status code from 200 to 599";
const FAIL_RATE_EXPECTED: &str = "a number from 0.0 to 1.0";
const LATENCY_EXPECTED: &str = "a whole number of milliseconds from 0 to 3600000";
const FIELDS: &str = "fail_status, fail_rate, latency_ms or healthy";

/// What the demo app injects into its answers. `GET /control` shows it as
/// JSON with exactly these keys, and `POST /control` accepts any subset of
/// them, so the output of one is valid input to the other.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Status of an injected failure.
    pub fail_status: u16,
    /// Fraction of requests that fail, from 0.0 to 1.0.
    pub fail_rate: f64,
    /// Delay added before every answer except `/health` and `/control`.
    pub latency_ms: u64,
    /// Whether `/health` answers 200 (true) or 503 (false).
    pub healthy: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fail_status: 500,
            fail_rate: 0.0,
            latency_ms: 0,
            healthy: true,
        }
    }
}

/// A validated change to [`Settings`]: every field present in the request.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Patch {
    fail_status: Option<u16>,
    fail_rate: Option<f64>,
    latency_ms: Option<u64>,
    healthy: Option<bool>,
}

impl Patch {
    /// Reads a `POST /control` body. All problems are reported together,
    /// each naming its field, and nothing is applied unless all are fixed.
    fn parse(body: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("body is not valid JSON: {err}"))?;
        let Value::Object(fields) = value else {
            return Err(format!(
                "body must be a JSON object such as {{\"fail_rate\":0.5}}, got {}",
                kind(&value)
            ));
        };
        Self::from_fields(&fields)
    }

    fn from_fields(fields: &Map<String, Value>) -> Result<Self, String> {
        let mut patch = Self::default();
        let mut problems = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "fail_status" => match value.as_u64().and_then(valid_fail_status) {
                    Some(status) => patch.fail_status = Some(status),
                    None => problems.push(format!(
                        "fail_status must be {FAIL_STATUS_EXPECTED}, got {value}"
                    )),
                },
                "fail_rate" => match value.as_f64().and_then(valid_fail_rate) {
                    Some(rate) => patch.fail_rate = Some(rate),
                    None => problems.push(format!(
                        "fail_rate must be {FAIL_RATE_EXPECTED}, got {value}"
                    )),
                },
                "latency_ms" => match value.as_u64().and_then(valid_latency_ms) {
                    Some(ms) => patch.latency_ms = Some(ms),
                    None => problems.push(format!(
                        "latency_ms must be {LATENCY_EXPECTED}, got {value}"
                    )),
                },
                "healthy" => match value.as_bool() {
                    Some(healthy) => patch.healthy = Some(healthy),
                    None => problems.push(format!("healthy must be true or false, got {value}")),
                },
                other => problems.push(format!("unknown field {other:?}, expected {FIELDS}")),
            }
        }
        if problems.is_empty() {
            Ok(patch)
        } else {
            Err(problems.join("; "))
        }
    }

    fn apply(self, settings: &mut Settings) {
        if let Some(status) = self.fail_status {
            settings.fail_status = status;
        }
        if let Some(rate) = self.fail_rate {
            settings.fail_rate = rate;
        }
        if let Some(ms) = self.latency_ms {
            settings.latency_ms = ms;
        }
        if let Some(healthy) = self.healthy {
            settings.healthy = healthy;
        }
    }
}

/// Names a JSON value's type for an error message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn valid_fail_status(status: u64) -> Option<u16> {
    u16::try_from(status)
        .ok()
        .filter(|status| (MIN_FAIL_STATUS..=MAX_FAIL_STATUS).contains(status))
}

fn valid_fail_rate(rate: f64) -> Option<f64> {
    // `contains` is false for NaN, so NaN is refused too.
    (0.0..=1.0).contains(&rate).then_some(rate)
}

fn valid_latency_ms(ms: u64) -> Option<u64> {
    (ms <= MAX_LATENCY_MS).then_some(ms)
}

/// Parses `--fail-status`; clap prints the error after the flag's name.
pub fn parse_fail_status(text: &str) -> Result<u16, String> {
    text.trim()
        .parse()
        .ok()
        .and_then(valid_fail_status)
        .ok_or_else(|| format!("expected {FAIL_STATUS_EXPECTED}"))
}

/// Parses `--fail-rate`; clap prints the error after the flag's name.
pub fn parse_fail_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .ok()
        .and_then(valid_fail_rate)
        .ok_or_else(|| format!("expected {FAIL_RATE_EXPECTED}"))
}

/// Parses `--latency-ms`; clap prints the error after the flag's name.
pub fn parse_latency_ms(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .ok()
        .and_then(valid_latency_ms)
        .ok_or_else(|| format!("expected {LATENCY_EXPECTED}"))
}

/// Says whether the `n`-th request (counting from 1) fails at `rate`.
///
/// The choice is a counter, not a random draw, so that tests and load
/// tools can rely on exact numbers: request `n` fails when `floor(n * rate)`
/// steps up, which spreads failures evenly (rate 0.5 fails every second
/// request, 0.25 every fourth) and makes any `N` consecutive requests hold
/// `N * rate` failures, give or take one, even across a change of rate.
pub fn nth_fails(n: u64, rate: f64) -> bool {
    // Precision is exact up to 2^53 requests, far beyond any demo's life.
    #[expect(clippy::cast_precision_loss, reason = "exact below 2^53")]
    let (now, before) = (n as f64, n.saturating_sub(1) as f64);
    (now * rate).floor() > (before * rate).floor()
}

/// What happens to one request subject to injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Delay to add before answering.
    pub latency: Duration,
    /// The status to fail with, if this request fails.
    pub fail_status: Option<u16>,
}

/// Counters shown by `GET /stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests subject to injection received since start.
    pub requests: u64,
    /// How many of them failed on purpose.
    pub failed: u64,
    /// How many are being answered right now.
    pub in_flight: u64,
}

/// The live settings and counters, shared by every connection.
#[derive(Debug)]
pub struct Controls {
    // A lock rather than atomics so that a POST changes all fields at once
    // and GET never shows half an update; it is never held across `.await`.
    settings: Mutex<Settings>,
    requests: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
}

impl Controls {
    /// Starts with the settings given on the command line.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings: Mutex::new(settings),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        *self.settings.lock()
    }

    /// Applies a `POST /control` body and returns the new settings; on any
    /// problem returns the message and leaves the settings unchanged.
    pub fn update(&self, body: &[u8]) -> Result<Settings, String> {
        let patch = Patch::parse(body)?;
        let mut settings = self.settings.lock();
        patch.apply(&mut settings);
        Ok(*settings)
    }

    /// Counts one request subject to injection and decides its fate.
    pub fn admit(&self) -> Decision {
        let settings = self.settings();
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let fails = nth_fails(n, settings.fail_rate);
        if fails {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        Decision {
            latency: Duration::from_millis(settings.latency_ms),
            fail_status: fails.then_some(settings.fail_status),
        }
    }

    /// Marks a request as in flight until the returned guard is dropped,
    /// which also covers a client that hangs up mid-request.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// The counters for `GET /stats`.
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// Keeps a request counted in [`Stats::in_flight`] while alive.
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(rate: f64, from: u64, count: u64) -> u64 {
        (from..from + count).filter(|&n| nth_fails(n, rate)).count() as u64
    }

    #[test]
    fn counter_scheme_spreads_failures_evenly() {
        assert_eq!(failures(0.0, 1, 1000), 0);
        assert_eq!(failures(1.0, 1, 1000), 1000);
        assert_eq!(failures(0.5, 1, 1000), 500);
        assert_eq!(failures(0.1, 1, 1000), 100);
        // Every second request, starting with the second.
        let pattern: Vec<bool> = (1..=6).map(|n| nth_fails(n, 0.5)).collect();
        assert_eq!(pattern, [false, true, false, true, false, true]);
    }

    #[test]
    fn any_window_holds_the_rate_within_one() {
        for rate in [0.01, 0.1, 0.25, 1.0 / 3.0, 0.5, 0.9, 0.999] {
            for from in [1, 2, 7, 1000, 123_457] {
                let got = failures(rate, from, 200);
                let want = 200.0 * rate;
                assert!(
                    (got as f64 - want).abs() <= 1.0,
                    "rate {rate} from {from}: {got} failures, want {want}±1"
                );
            }
        }
    }

    #[test]
    fn patch_applies_only_given_fields() {
        let controls = Controls::new(Settings::default());
        let got = controls
            .update(br#"{"fail_rate":0.5,"healthy":false}"#)
            .unwrap();
        assert_eq!(
            got,
            Settings {
                fail_rate: 0.5,
                healthy: false,
                ..Settings::default()
            }
        );
        assert_eq!(controls.settings(), got);
    }

    #[test]
    fn get_output_is_valid_post_input() {
        let settings = Settings {
            fail_status: 503,
            fail_rate: 0.25,
            latency_ms: 40,
            healthy: false,
        };
        let json = serde_json::to_vec(&settings).unwrap();
        let controls = Controls::new(Settings::default());
        assert_eq!(controls.update(&json).unwrap(), settings);
    }

    #[test]
    fn bad_bodies_name_the_field_and_change_nothing() {
        let before = Settings {
            fail_status: 503,
            ..Settings::default()
        };
        let controls = Controls::new(before);
        let cases: [(&[u8], &str); 11] = [
            (b"not json", "body is not valid JSON"),
            (
                b"[1]",
                "must be a JSON object such as {\"fail_rate\":0.5}, got an array",
            ),
            (
                br#"{"fail_status":99}"#,
                "fail_status must be an HTTP status code from 200 to 599, got 99",
            ),
            (br#"{"fail_status":600}"#, "fail_status must be"),
            (br#"{"fail_status":"503"}"#, "fail_status must be"),
            (
                br#"{"fail_rate":1.5}"#,
                "fail_rate must be a number from 0.0 to 1.0, got 1.5",
            ),
            (br#"{"fail_rate":-0.1}"#, "fail_rate must be"),
            (
                br#"{"latency_ms":-1}"#,
                "latency_ms must be a whole number of milliseconds",
            ),
            (br#"{"latency_ms":3600001}"#, "latency_ms must be"),
            (
                br#"{"healthy":"no"}"#,
                "healthy must be true or false, got \"no\"",
            ),
            (
                br#"{"bogus":1}"#,
                "unknown field \"bogus\", expected fail_status, fail_rate",
            ),
        ];
        for (body, want) in cases {
            let err = controls.update(body).unwrap_err();
            assert!(
                err.contains(want),
                "{:?}: got {err:?}, want it to contain {want:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(controls.settings(), before);
        }
    }

    #[test]
    fn one_bad_field_rejects_the_whole_body_and_all_problems_are_listed() {
        let controls = Controls::new(Settings::default());
        let err = controls
            .update(br#"{"fail_status":503,"fail_rate":7,"latency_ms":1.5}"#)
            .unwrap_err();
        assert!(err.contains("fail_rate must be"), "{err}");
        assert!(err.contains("latency_ms must be"), "{err}");
        assert_eq!(controls.settings(), Settings::default());
    }

    #[test]
    fn flags_share_the_ranges() {
        assert_eq!(parse_fail_status("503"), Ok(503));
        assert!(parse_fail_status("199").unwrap_err().contains("200 to 599"));
        assert!(parse_fail_status("600").is_err());
        assert_eq!(parse_fail_rate("0.5"), Ok(0.5));
        assert_eq!(parse_fail_rate("1"), Ok(1.0));
        assert!(parse_fail_rate("1.01").unwrap_err().contains("0.0 to 1.0"));
        assert!(parse_fail_rate("NaN").is_err());
        assert_eq!(parse_latency_ms("250"), Ok(250));
        assert!(parse_latency_ms("-5").is_err());
    }

    #[test]
    fn admit_counts_and_fails_at_the_rate() {
        let controls = Controls::new(Settings {
            fail_status: 503,
            fail_rate: 0.5,
            latency_ms: 7,
            healthy: true,
        });
        let decisions: Vec<Decision> = (0..4).map(|_| controls.admit()).collect();
        assert_eq!(decisions[0].fail_status, None);
        assert_eq!(decisions[1].fail_status, Some(503));
        assert!(
            decisions
                .iter()
                .all(|d| d.latency == Duration::from_millis(7))
        );
        let guard = controls.in_flight();
        assert_eq!(
            controls.stats(),
            Stats {
                requests: 4,
                failed: 2,
                in_flight: 1
            }
        );
        drop(guard);
        assert_eq!(controls.stats().in_flight, 0);
    }
}

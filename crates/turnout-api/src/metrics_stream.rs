//! `GET /v1/apps/{app}/metrics/stream` (DESIGN §9): the router's
//! cumulative per-service figures read at an interval, each reading sent
//! as the difference from the previous one. [`sample`] is the pure part.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use turnout_api_types::{
    METRICS_DEFAULT_INTERVAL_MS, METRICS_MAX_INTERVAL_MS, METRICS_MIN_INTERVAL_MS, MetricsQuery,
    MetricsSample, RouteServiceMetrics, ServiceMetrics, WindowFigures,
};
use turnout_engine::DataPlane;
use turnout_routing::{Figures, LatencyHistogram, ServiceFigures};
use turnout_runtime::Runtime;

use crate::ApiState;
use crate::error::ApiError;
use crate::http::ApiQuery;

/// The served figures of one reading, by (route, service).
type Reading = BTreeMap<(Arc<str>, Arc<str>), Figures>;

fn reading(figures: Vec<ServiceFigures>) -> Reading {
    figures
        .into_iter()
        .map(|f| ((f.route, f.service), f.served))
        .collect()
}

/// The window between two readings taken `elapsed` apart. A route and
/// service absent from `before` counts from zero (it joined the route in
/// between); preview requests never count.
pub(crate) fn sample(
    app: &str,
    at: i64,
    elapsed: Duration,
    before: &Reading,
    now: &Reading,
) -> MetricsSample {
    let zero = Figures::default();
    let secs = elapsed.as_secs_f64();
    let mut routes = Vec::with_capacity(now.len());
    // Per service: the windows and totals of its routes, merged.
    let mut merged: BTreeMap<&str, (Figures, u64)> = BTreeMap::new();
    for ((route, service), total) in now {
        let window = total.since(
            before
                .get(&(route.clone(), service.clone()))
                .unwrap_or(&zero),
        );
        routes.push(RouteServiceMetrics {
            route: route.to_string(),
            service: service.to_string(),
            figures: window_figures(&window, total.requests, secs),
        });
        let entry = merged.entry(service).or_insert_with(|| (zero.clone(), 0));
        entry.0 = add(&entry.0, &window);
        entry.1 += total.requests;
    }
    let services = merged
        .into_iter()
        .map(|(service, (window, total))| ServiceMetrics {
            service: service.to_string(),
            figures: window_figures(&window, total, secs),
        })
        .collect();
    MetricsSample {
        app: app.to_string(),
        at,
        interval_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        services,
        routes,
    }
}

/// Two windows of the same length as one (a service on two routes).
fn add(a: &Figures, b: &Figures) -> Figures {
    let latency = LatencyHistogram::from_counts(
        a.latency
            .counts()
            .zip(b.latency.counts())
            .map(|(x, y)| x + y),
    );
    Figures {
        requests: latency.total(),
        errors: a.errors + b.errors,
        latency,
    }
}

fn window_figures(window: &Figures, total_requests: u64, secs: f64) -> WindowFigures {
    let requests = window.requests;
    WindowFigures {
        requests,
        requests_per_second: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        errors: window.errors,
        error_rate: (requests > 0).then(|| window.errors as f64 / requests as f64),
        p99_ms: window
            .latency
            .quantile(0.99)
            .map(|d| d.as_secs_f64() * 1000.0),
        total_requests,
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The stream: an unknown app or a bad interval is refused before it
/// starts; a reading every interval after that, as a `metrics` event
/// whose data is a [`MetricsSample`]; when the app is deleted, one `gone`
/// event and the end.
pub(crate) async fn stream<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> Result<Response, ApiError> {
    let interval_ms = q.interval_ms.unwrap_or(METRICS_DEFAULT_INTERVAL_MS);
    if !(METRICS_MIN_INTERVAL_MS..=METRICS_MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ApiError::bad_request(
            format!("interval_ms {interval_ms} is out of range"),
            format!(
                "give interval_ms from {METRICS_MIN_INTERVAL_MS} to {METRICS_MAX_INTERVAL_MS} \
                 (milliseconds between readings), or leave it out for \
                 {METRICS_DEFAULT_INTERVAL_MS}"
            ),
        ));
    }
    let first = s.controller.figures(&app).await?;
    let controller = s.controller.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(4);
    tokio::spawn(async move {
        let mut before = reading(first);
        let mut taken = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_millis(interval_ms));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                // The client went away between readings.
                () = tx.closed() => break,
            }
            let event = match controller.figures(&app).await {
                Ok(figures) => {
                    let now = reading(figures);
                    let at = Instant::now();
                    let sample = sample(&app, unix_ms(), at - taken, &before, &now);
                    (before, taken) = (now, at);
                    Event::default()
                        .event("metrics")
                        .data(serde_json::to_string(&sample).unwrap_or_default())
                }
                Err(_) => {
                    let _ = tx
                        .send(Ok(Event::default().event("gone").data(format!(
                            "{{\"app\":{}}}",
                            serde_json::Value::String(app.clone())
                        ))))
                        .await;
                    break;
                }
            };
            if tx.send(Ok(event)).await.is_err() {
                break;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        StatusCode::OK,
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use turnout_routing::latency_bucket;

    use super::*;

    fn figures(samples_ms: &[u64], errors: u64) -> Figures {
        let mut counts = vec![0u64; turnout_routing::LATENCY_BUCKETS + 1];
        for ms in samples_ms {
            counts[latency_bucket(ms * 1000)] += 1;
        }
        let latency = LatencyHistogram::from_counts(counts);
        Figures {
            requests: latency.total(),
            errors,
            latency,
        }
    }

    fn key(route: &str, service: &str) -> (Arc<str>, Arc<str>) {
        (Arc::from(route), Arc::from(service))
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let mut before = Reading::new();
        before.insert(key("b.localhost", "b1"), figures(&[1; 10], 1));
        let mut now = Reading::new();
        now.insert(key("b.localhost", "b1"), figures(&[1; 30], 3));
        // Joined the route between the readings: counted from zero.
        now.insert(key("b.localhost", "b2"), figures(&[100; 5], 5));
        let s = sample("hello", 7, Duration::from_millis(500), &before, &now);
        assert_eq!(s.app, "hello");
        assert_eq!(s.interval_ms, 500);
        let b1 = &s.routes[0];
        assert_eq!(
            (b1.route.as_str(), b1.service.as_str()),
            ("b.localhost", "b1")
        );
        assert_eq!(b1.figures.requests, 20);
        assert_eq!(b1.figures.requests_per_second, 40.0);
        assert_eq!(b1.figures.errors, 2);
        assert_eq!(b1.figures.error_rate, Some(0.1));
        assert_eq!(b1.figures.total_requests, 30);
        let p99 = b1.figures.p99_ms.unwrap();
        assert!((0.9..=1.2).contains(&p99), "{p99}");
        let b2 = &s.routes[1];
        assert_eq!(b2.figures.requests, 5);
        assert_eq!(b2.figures.error_rate, Some(1.0));
        let p99 = b2.figures.p99_ms.unwrap();
        assert!((90.0..=110.0).contains(&p99), "{p99}");
    }

    #[test]
    fn a_quiet_window_has_no_rate_or_latency() {
        let mut before = Reading::new();
        before.insert(key("r", "s"), figures(&[1; 10], 0));
        let now = before.clone();
        let s = sample("a", 0, Duration::from_secs(1), &before, &now);
        let f = s.services[0].figures;
        assert_eq!((f.requests, f.requests_per_second), (0, 0.0));
        assert_eq!((f.error_rate, f.p99_ms), (None, None));
        assert_eq!(f.total_requests, 10);
    }

    #[test]
    fn a_service_on_two_routes_is_summed() {
        let before = Reading::new();
        let mut now = Reading::new();
        now.insert(key("a.local", "s"), figures(&[1; 9], 0));
        now.insert(key("s.localhost", "s"), figures(&[200], 1));
        now.insert(key("s.localhost", "t"), figures(&[1], 0));
        let s = sample("a", 0, Duration::from_secs(1), &before, &now);
        assert_eq!(s.routes.len(), 3);
        assert_eq!(s.services.len(), 2);
        let merged = &s.services[0];
        assert_eq!(merged.service, "s");
        assert_eq!(merged.figures.requests, 10);
        assert_eq!(merged.figures.errors, 1);
        assert_eq!(merged.figures.total_requests, 10);
        // The slow request is the p99 of the ten.
        assert!(merged.figures.p99_ms.unwrap() > 150.0, "{merged:?}");
    }
}

//! Prometheus metrics. A published table carries the label sets of its
//! request counters, histograms and error counters; each is resolved to
//! its handles in the family once, by the first request that uses it
//! (creating a series hashes its label set into the family under a lock,
//! which for the 700,000 series of a 10,000-route table took over half a
//! second of publishing), and later requests only load the handle and
//! increment atomics. `turnout_route_weight` is no stored series: it is
//! encoded at scrape time from the published table (a publish of 10,000
//! all-new routes would otherwise create and remove some 20,000 gauge
//! series in the family); `turnout_instance_ready` is set per instance.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use turnout_routing::RouteTable;

/// The release states of DESIGN §2 that `turnout_release_state` exports
/// for every app it was given a state for, 1 for the current one and 0
/// for the others.
pub const RELEASE_STATES: [&str; 5] = [
    "deploying",
    "pending-confirmation",
    "confirmed",
    "rolled-back",
    "failed",
];

/// The status classes of the `code` label, indexed by `status / 100 - 1`.
pub(crate) const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Index into [`CODE_CLASSES`] for a status code.
pub(crate) fn code_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// The `app` label of a route or caller without an app: "".
pub(crate) fn no_app() -> Arc<str> {
    static EMPTY: OnceLock<Arc<str>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

/// Labels of `turnout_requests_total`. `app` is the route's app ("" when
/// it names none), so two apps' services of the same name never share a
/// series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub app: Arc<str>,
    pub route: Arc<str>,
    pub service: Arc<str>,
    pub instance: Arc<str>,
    pub code: &'static str,
}

/// Labels of per-service metrics (and of `turnout_route_weight`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ServiceLabels {
    pub app: Arc<str>,
    pub route: Arc<str>,
    pub service: Arc<str>,
}

/// Labels of `turnout_upstream_errors_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub app: Arc<str>,
    pub route: Arc<str>,
    pub service: Arc<str>,
    pub kind: &'static str,
}

/// Labels of `turnout_instance_ready`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct InstanceLabels {
    pub app: Arc<str>,
    pub service: Arc<str>,
    pub instance: Arc<str>,
}

/// Labels of `turnout_egress_requests_total`: the calling service (and
/// its app, "" when its token names none) and the status class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct EgressLabels {
    pub app: Arc<str>,
    pub service: Arc<str>,
    pub code: &'static str,
}

/// Labels of `turnout_release_state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ReleaseLabels {
    pub app: Arc<str>,
    pub state: Arc<str>,
}

type HistogramFamily = Family<ServiceLabels, Histogram, fn() -> Histogram>;

/// Finite upper bounds of the duration histogram: 0.5 ms to about 16 s,
/// doubling (`+Inf` follows).
const DURATION_BOUNDS: [f64; 16] = {
    let mut bounds = [0.0005; 16];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

/// A Prometheus histogram on atomics: an observation is two relaxed
/// increments and a compare-and-swap on the sum, with no lock (the
/// `prometheus_client` one takes a mutex per observation). A scrape may
/// see an observation's bucket before its sum; `count` is the sum of the
/// buckets read, so buckets and count always agree.
#[derive(Debug, Clone, Default)]
pub(crate) struct Histogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug, Default)]
struct HistogramInner {
    /// Per bucket, not cumulative; the last is `+Inf`.
    buckets: [AtomicU64; DURATION_BOUNDS.len() + 1],
    /// `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: f64) {
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(DURATION_BOUNDS.len());
        self.inner.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .inner
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = DURATION_BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.inner.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = f64::from_bits(self.inner.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The five per-class counters of `turnout_requests_total` for one
/// (app, route, service, instance) label set, created in the family by
/// their first use. A clone shares the handles once they are resolved (and
/// would resolve the same series again otherwise).
#[derive(Debug, Clone)]
pub(crate) struct RequestCounters {
    app: Arc<str>,
    route: Arc<str>,
    service: Arc<str>,
    instance: Arc<str>,
    counters: OnceLock<[Counter; 5]>,
}

impl RequestCounters {
    pub fn new(
        app: &Arc<str>,
        route: &Arc<str>,
        service: &Arc<str>,
        instance: &Arc<str>,
    ) -> RequestCounters {
        RequestCounters {
            app: app.clone(),
            route: route.clone(),
            service: service.clone(),
            instance: instance.clone(),
            counters: OnceLock::new(),
        }
    }

    /// Counts one answer of status class `class` (see [`code_class`]).
    #[inline]
    pub fn inc(&self, metrics: &Metrics, class: usize) {
        self.get(metrics)[class].inc();
    }

    /// The counters, created in `metrics` (all five) on the first call.
    #[inline]
    pub fn get(&self, metrics: &Metrics) -> &[Counter; 5] {
        self.counters.get_or_init(|| {
            metrics.request_counters(&self.app, &self.route, &self.service, &self.instance)
        })
    }
}

/// Counters of failed upstream attempts, by kind.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamErrors {
    pub connect: Counter,
    pub timeout: Counter,
    pub protocol: Counter,
}

/// The per-service series of one route's service: the duration histogram
/// and the error counters.
#[derive(Debug, Clone)]
pub(crate) struct ServiceMetrics {
    pub duration: Histogram,
    pub errors: UpstreamErrors,
}

/// [`ServiceMetrics`] of one (app, route, service), created in the families
/// together (so a service that answered shows its error counters at 0)
/// on first use.
#[derive(Debug, Clone)]
pub(crate) struct LazyServiceMetrics {
    app: Arc<str>,
    route: Arc<str>,
    service: Arc<str>,
    handles: OnceLock<ServiceMetrics>,
}

impl LazyServiceMetrics {
    pub fn new(app: &Arc<str>, route: &Arc<str>, service: &Arc<str>) -> LazyServiceMetrics {
        LazyServiceMetrics {
            app: app.clone(),
            route: route.clone(),
            service: service.clone(),
            handles: OnceLock::new(),
        }
    }

    /// The handles, created in `metrics` on the first call.
    #[inline]
    pub fn get(&self, metrics: &Metrics) -> &ServiceMetrics {
        self.handles.get_or_init(|| {
            let error = |kind: &'static str| {
                metrics.upstream_errors.get_or_create_owned(&ErrorLabels {
                    app: self.app.clone(),
                    route: self.route.clone(),
                    service: self.service.clone(),
                    kind,
                })
            };
            ServiceMetrics {
                duration: metrics.duration.get_or_create_owned(&ServiceLabels {
                    app: self.app.clone(),
                    route: self.route.clone(),
                    service: self.service.clone(),
                }),
                errors: UpstreamErrors {
                    connect: error("connect"),
                    timeout: error("timeout"),
                    protocol: error("protocol"),
                },
            }
        })
    }
}

/// The proxy's metric families and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily,
    pub upstream_errors: Family<ErrorLabels, Counter>,
    pub egress: Family<EgressLabels, Counter>,
    /// The published table, whose weights `turnout_route_weight` encodes.
    table: Arc<ArcSwap<RouteTable>>,
    pub instance_ready: Family<InstanceLabels, Gauge>,
    pub release_state: Family<ReleaseLabels, Gauge>,
    /// The states each app has a `turnout_release_state` series for. Only
    /// the control plane's calls take this lock.
    release_states: parking_lot::Mutex<HashMap<Arc<str>, Vec<Arc<str>>>>,
}

fn duration_histogram() -> Histogram {
    Histogram::default()
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        let egress = Family::<EgressLabels, Counter>::default();
        let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
        let instance_ready = Family::<InstanceLabels, Gauge>::default();
        let release_state = Family::<ReleaseLabels, Gauge>::default();
        registry.register(
            "turnout_requests",
            "Requests answered, by app, route, service, instance and status class",
            requests.clone(),
        );
        registry.register(
            "turnout_request_duration_seconds",
            "Time from request to upstream response head, by app, route and service",
            duration.clone(),
        );
        registry.register(
            "turnout_upstream_errors",
            "Failed upstream attempts, by app, route, service and kind (connect, timeout, protocol)",
            upstream_errors.clone(),
        );
        registry.register(
            "turnout_egress_requests",
            "Requests of known callers passed on to hosts that are not internal routes, by the caller's app and service and status class",
            egress.clone(),
        );
        // Collectors are encoded after the registered families: the three
        // below are collectors so that they keep their place, after the
        // three above, in `/metrics`.
        registry.register_collector(Box::new(RouteWeights(table.clone())));
        registry.register_collector(Box::new(Late {
            name: "turnout_instance_ready",
            help: "1 when the instance takes new requests, 0 when unhealthy or draining.",
            family: instance_ready.clone(),
        }));
        registry.register_collector(Box::new(Late {
            name: "turnout_release_state",
            help: "1 for the current release state of each app, 0 for its other states.",
            family: release_state.clone(),
        }));
        Metrics {
            registry,
            requests,
            duration,
            upstream_errors,
            egress,
            table,
            instance_ready,
            release_state,
            release_states: parking_lot::Mutex::default(),
        }
    }

    /// Makes `turnout_route_weight` list the weights of `table` (from the
    /// next scrape on).
    pub fn set_table(&self, table: &Arc<RouteTable>) {
        self.table.store(table.clone());
    }

    /// Sets `app`'s release state: 1 for `state`, 0 for every other state
    /// the app has a series for (the [`RELEASE_STATES`], and any other
    /// state set before, such as a canary's `progressing`).
    pub fn set_release_state(&self, app: &str, state: &str) {
        let app: Arc<str> = Arc::from(app);
        let mut apps = self.release_states.lock();
        let states = apps
            .entry(app.clone())
            .or_insert_with(|| RELEASE_STATES.iter().map(|&s| Arc::from(s)).collect());
        if !states.iter().any(|s| &**s == state) {
            states.push(Arc::from(state));
        }
        // The others first: a scrape in between sees no current state
        // rather than two.
        let mut current = None;
        for s in states.iter() {
            let gauge = self.release_state.get_or_create_owned(&ReleaseLabels {
                app: app.clone(),
                state: s.clone(),
            });
            if &**s == state {
                current = Some(gauge);
            } else {
                gauge.set(0);
            }
        }
        if let Some(gauge) = current {
            gauge.set(1);
        }
    }

    /// Removes every `turnout_release_state` series of `app`.
    pub fn clear_release_state(&self, app: &str) {
        if let Some((app, states)) = self.release_states.lock().remove_entry(app) {
            for state in states {
                self.release_state.remove(&ReleaseLabels {
                    app: app.clone(),
                    state,
                });
            }
        }
    }

    /// The five per-class request counters of one (app, route, service,
    /// instance).
    fn request_counters(
        &self,
        app: &Arc<str>,
        route: &Arc<str>,
        service: &Arc<str>,
        instance: &Arc<str>,
    ) -> [Counter; 5] {
        CODE_CLASSES.map(|code| {
            self.requests.get_or_create_owned(&RequestLabels {
                app: app.clone(),
                route: route.clone(),
                service: service.clone(),
                instance: instance.clone(),
                code,
            })
        })
    }

    /// The Prometheus text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `turnout_route_weight`: per service of each route of the published
/// table, its configured weight, read at scrape time (the same text a
/// `Family<ServiceLabels, Gauge>` gave, in table order).
#[derive(Debug)]
struct RouteWeights(Arc<ArcSwap<RouteTable>>);

impl Collector for RouteWeights {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let table = self.0.load();
        // As for a registered family: nothing at all while empty.
        if table.routes().iter().all(|r| r.services().is_empty()) {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "turnout_route_weight",
            "Configured weight of each service on each route.",
            None,
            MetricType::Gauge,
        )?;
        for route in table.routes() {
            let app = route.app().cloned().unwrap_or_else(no_app);
            for service in route.services() {
                let labels = ServiceLabels {
                    app: app.clone(),
                    route: route.id().clone(),
                    service: service.name().clone(),
                };
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&i64::from(service.weight().get()))?;
            }
        }
        Ok(())
    }
}

/// A gauge family encoded as a collector, so that it comes after
/// [`RouteWeights`], as it did when that was a registered family. `help`
/// ends with the full stop `Registry::register` would add.
#[derive(Debug)]
struct Late<S> {
    name: &'static str,
    help: &'static str,
    family: Family<S, Gauge>,
}

impl<S> Collector for Late<S>
where
    S: Clone + std::hash::Hash + Eq + EncodeLabelSet + fmt::Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        if self.family.is_empty() {
            return Ok(());
        }
        let metric = encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?;
        self.family.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_encodes_cumulative_buckets_count_and_sum() {
        let metrics = Metrics::new();
        let labels = ServiceLabels {
            app: Arc::from("shop"),
            route: Arc::from("app"),
            service: Arc::from("v1"),
        };
        let histogram = metrics.duration.get_or_create_owned(&labels);
        histogram.observe(0.0002);
        histogram.observe(0.001);
        histogram.observe(100.0);
        let text = metrics.encode();
        let line = |suffix: &str| {
            text.lines()
                .find(|l| l.starts_with("turnout_request_duration_seconds") && l.contains(suffix))
                .unwrap_or_else(|| panic!("no {suffix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(line("le=\"0.0005\""), "1");
        assert_eq!(line("le=\"0.001\""), "2");
        assert_eq!(line("le=\"+Inf\""), "3");
        assert_eq!(line("_count"), "3");
        assert_eq!(line("_sum").parse::<f64>().unwrap(), 100.0012);
    }
}

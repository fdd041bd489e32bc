//! Prometheus metrics at `GET /metrics`, in Prometheus's text format (version 0.0.4).
//!
//! What is counted where:
//! - every request, by method, route template and status class, and its latency, by
//!   middleware around the whole router ([`track`]). Routes are labelled by the template
//!   the router matched (`/api/v1/posts/{id}`), never by the concrete path, and every
//!   unmatched path shares the one value [`UNMATCHED`], so no client can make new series;
//! - failures, by route, exact status and the error envelope's `code`;
//! - at scrape time, from counters the rest of the process keeps anyway ([`Snapshot`]):
//!   the store's writer queue, connection pools and replica lag
//!   ([`tidepool_store::Store::runtime_stats`]), rate-limit fallbacks and the refusals
//!   they cause, guard verdicts and findings ([`tidepool_app::counters`]).
//!
//! Every series carries a constant `node` label (`--node-id`), so series from several
//! nodes behind one balancer stay apart; `tidepool_build_info` says which version runs.
//!
//! Access ([`handler`]): `[metrics] enabled = false` answers 404; with a token, only a
//! request bearing it is answered (401 otherwise); without one, only a request from this
//! machine: a loopback peer carrying no forwarding header, so a proxy on the same machine
//! cannot relay a remote scraper in (403 otherwise).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest, Sha256};
use tidepool_app::counters::{Counters, finding_kind_name};
use tidepool_app::ratelimit::Limiter;
use tidepool_store::Store;

use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;

/// The route label of every request no route matched.
pub const UNMATCHED: &str = "<unmatched>";

/// The content type of Prometheus's text format.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds: the hot feed answers in well under a
/// millisecond from the page cache, a cold search or a write under load in tens of
/// milliseconds, and anything past a few seconds is an outage.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics: the registry a scrape encodes and the families requests update.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Metrics {
    /// The metrics of node `node`, reading the store, the limiter and the app's counters
    /// at every scrape.
    pub fn new(
        node: &str,
        store: Arc<dyn Store>,
        limiter: Arc<dyn Limiter>,
        counters: Arc<Counters>,
    ) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "tidepool",
            [(Cow::Borrowed("node"), Cow::Owned(node.to_owned()))].into_iter(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status class",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response head, by method and route template",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "http_errors",
            "Requests answered with a 4xx or 5xx status, by route template, status and the error envelope's code",
            errors.clone(),
        );
        registry.register(
            "build",
            "The version of tidepool this node runs",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(Snapshot {
            store,
            limiter,
            counters,
        }));
        Self {
            registry,
            requests,
            latency,
            errors,
        }
    }

    /// Counts one answered request.
    fn record(&self, method: MethodLabel, route: RouteLabel, status: StatusCode, secs: f64) {
        let labels = RouteLabels { method, route };
        self.latency.get_or_create(&labels).observe(secs);
        let RouteLabels { method, route } = labels;
        if status.is_client_error() || status.is_server_error() {
            self.errors
                .get_or_create(&ErrorLabels {
                    route: route.clone(),
                    status: status.as_u16(),
                    code: ApiError::code_for(status),
                })
                .inc();
        }
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: StatusClass(status.as_u16() / 100),
            })
            .inc();
    }

    /// Everything, in Prometheus's text format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The middleware that counts every request: around the whole router, so refusals by
/// other middleware (limits, oversized heads) count too.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = MethodLabel::of(req.method());
    let route = RouteLabel(req.extensions().get::<MatchedPath>().cloned());
    let response = next.run(req).await;
    metrics.record(
        method,
        route,
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`, behind the access rules of the module docs.
pub async fn handler(State(state): State<AppState>, req: Request) -> Response {
    let settings = &state.config.metrics;
    if !settings.enabled {
        return ApiError::not_found("Metrics are disabled")
            .with_hint(
                "The operator turned /metrics off ([metrics] enabled = false, or --metrics off)",
            )
            .into_response();
    }
    if let Some(token) = &settings.token {
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let refusal = match sent {
            None => Some("Metrics need a token"),
            Some(sent) if !same_secret(sent, token) => Some("Invalid metrics token"),
            Some(_) => None,
        };
        if let Some(message) = refusal {
            let mut r = ApiError::unauthorized(message)
                .with_hint("Send the [metrics] token as `Authorization: Bearer <token>`")
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tidepool metrics\""),
            );
            return r;
        }
    } else if !from_this_machine(&req) {
        return ApiError::forbidden("Metrics are served only to this machine")
            .with_hint(
                "Scrape from the server itself, or set [metrics] token (or TIDEPOOL_METRICS_TOKEN) \
                 and send it as `Authorization: Bearer <token>`",
            )
            .into_response();
    }
    match state.metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => ApiError::internal(format!("encoding metrics: {e}")).into_response(),
    }
}

/// Compares digests, so the time taken says nothing about how much of the token matched.
fn same_secret(sent: &str, expected: &str) -> bool {
    Sha256::digest(sent.as_bytes()) == Sha256::digest(expected.as_bytes())
}

/// A loopback peer, resolved to a loopback client, with no forwarding header at all: a
/// proxy on this machine that forwards a remote client (trusted or not) adds one, and
/// must not make that client look local.
fn from_this_machine(req: &Request) -> bool {
    let peer_local = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().to_canonical().is_loopback());
    let client_local =
        ClientAddr::from_extensions(req.extensions()).is_some_and(|c| c.ip.is_loopback());
    let forwarded = ["x-forwarded-for", "forwarded", "x-real-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    peer_local && client_local && !forwarded
}

/// A request method, with every method outside the standard ones folded into `OTHER`
/// (clients may send any token as a method).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct MethodLabel(&'static str);

impl MethodLabel {
    fn of(m: &Method) -> Self {
        Self(match *m {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::OPTIONS => "OPTIONS",
            _ => "OTHER",
        })
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

/// The route template a request matched (the router's own shared string, so labelling a
/// request copies nothing), or none.
#[derive(Clone, Debug)]
pub struct RouteLabel(Option<MatchedPath>);

impl RouteLabel {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or(UNMATCHED, MatchedPath::as_str)
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl std::hash::Hash for RouteLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// `2xx`, `4xx`...
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct StatusClass(u16);

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        write!(encoder, "{}xx", self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteLabel,
    status: StatusClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: MethodLabel,
    route: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: RouteLabel,
    status: u16,
    code: &'static str,
}

/// What a scrape reads from the rest of the process: counters kept anyway, turned into
/// metrics only when someone asks.
struct Snapshot {
    store: Arc<dyn Store>,
    limiter: Arc<dyn Limiter>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

/// Encodes one unlabelled value.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let help = format!("{help}.");
    let m = encoder.encode_descriptor(name, &help, unit, metric.metric_type())?;
    metric.encode(m)
}

/// One label and its value.
type Label<'a> = [(&'static str, &'a str); 1];

/// Encodes one value per label under one name (nothing at all without values).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(Label<'_>, M)],
) -> Result<(), std::fmt::Error> {
    let Some((_, first)) = values.first() else {
        return Ok(());
    };
    let help = format!("{help}.");
    let mut m = encoder.encode_descriptor(name, &help, unit, first.metric_type())?;
    for (labels, value) in values {
        value.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge from a count (saturating: no count of connections or jobs gets near `i64::MAX`).
fn gauge(n: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let enc = &mut encoder;
        encode_store(enc, &self.store.runtime_stats())?;
        single(
            enc,
            "ratelimit_fallbacks",
            "Rate-limit decisions this node took on its own share because the shared count did not answer in time",
            None,
            &ConstCounter::new(self.limiter.fallbacks()),
        )?;
        single(
            enc,
            "ratelimit_degraded_refusals",
            "Registrations, sign-ups and claims refused (503) because the shared rate-limit count was out of reach",
            None,
            &ConstCounter::new(self.counters.degraded_refusals()),
        )?;
        let verdicts: Vec<(Label, ConstCounter)> = self
            .counters
            .verdicts()
            .iter()
            .map(|(v, n)| ([("verdict", v.as_str())], ConstCounter::new(*n)))
            .collect();
        family(
            enc,
            "guard_verdicts",
            "Content guard decisions on submitted posts, comments, profiles and submolts, by verdict",
            None,
            &verdicts,
        )?;
        let findings: Vec<(Label, ConstCounter)> = self
            .counters
            .findings()
            .iter()
            .map(|(k, n)| ([("kind", finding_kind_name(*k))], ConstCounter::new(*n)))
            .collect();
        family(
            enc,
            "guard_findings",
            "Things the content guard found in submitted texts, by kind",
            None,
            &findings,
        )
    }
}

/// The store's part of a scrape: only what the backend has (a writer queue on the
/// embedded store, replicas where they are configured).
fn encode_store(
    enc: &mut DescriptorEncoder,
    stats: &tidepool_store::StoreStats,
) -> Result<(), std::fmt::Error> {
    if let Some(w) = stats.writer {
        single(
            enc,
            "writer_queue_depth",
            "Write jobs waiting for the embedded store's single writer",
            None,
            &gauge(w.queued),
        )?;
        single(
            enc,
            "writer_batches",
            "Group commits of the embedded store's writer (jobs / batches is the mean group size)",
            None,
            &ConstCounter::new(w.batches),
        )?;
        single(
            enc,
            "writer_jobs",
            "Write jobs committed by the embedded store's writer",
            None,
            &ConstCounter::new(w.jobs),
        )?;
    }
    let pool = |f: fn(&tidepool_store::PoolStats) -> u64| -> Vec<(Label, ConstGauge)> {
        stats
            .pools
            .iter()
            .map(|p| ([("pool", p.name)], gauge(f(p))))
            .collect()
    };
    family(
        enc,
        "db_pool_max_connections",
        "Most connections the pool may open",
        None,
        &pool(|p| p.max),
    )?;
    family(
        enc,
        "db_pool_open_connections",
        "Connections the pool holds open",
        None,
        &pool(|p| p.open),
    )?;
    family(
        enc,
        "db_pool_idle_connections",
        "Open connections nobody is using",
        None,
        &pool(|p| p.idle),
    )?;
    family(
        enc,
        "db_pool_waiting",
        "Requests waiting for a connection",
        None,
        &pool(|p| p.waiting),
    )?;
    let lag: Vec<(Label, ConstGauge<f64>)> = stats
        .replicas
        .iter()
        .filter_map(|r| {
            Some((
                [("replica", r.name.as_str())],
                ConstGauge::new(r.lag_seconds?),
            ))
        })
        .collect();
    family(
        enc,
        "db_replica_lag",
        "How far each read replica's replay is behind the primary at the last sample",
        Some(&Unit::Seconds),
        &lag,
    )?;
    let reads: Vec<(Label, ConstCounter)> = stats
        .replicas
        .iter()
        .map(|r| ([("replica", r.name.as_str())], ConstCounter::new(r.reads)))
        .collect();
    family(
        enc,
        "db_replica_reads",
        "Reads served by each read replica",
        None,
        &reads,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `stats` as a scrape would.
    #[derive(Debug)]
    struct Stats(tidepool_store::StoreStats);

    impl Collector for Stats {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_store(&mut encoder, &self.0)
        }
    }

    fn render(stats: tidepool_store::StoreStats) -> String {
        let mut registry = Registry::with_prefix("tidepool");
        registry.register_collector(Box::new(Stats(stats)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn replicas_report_lag_only_when_known() {
        let out = render(tidepool_store::StoreStats {
            writer: None,
            pools: vec![tidepool_store::PoolStats {
                name: "primary",
                max: 16,
                open: 3,
                idle: 2,
                waiting: 0,
            }],
            replicas: vec![
                tidepool_store::ReplicaStats {
                    name: "10.0.0.2:5432".into(),
                    lag_seconds: Some(0.25),
                    reads: 7,
                },
                tidepool_store::ReplicaStats {
                    name: "10.0.0.3:5432".into(),
                    lag_seconds: None,
                    reads: 0,
                },
            ],
        });
        let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(
            lines.contains(&r#"tidepool_db_replica_lag_seconds{replica="10.0.0.2:5432"} 0.25"#),
            "{out}"
        );
        assert!(
            !out.contains(r#"tidepool_db_replica_lag_seconds{replica="10.0.0.3:5432"}"#),
            "{out}"
        );
        assert!(
            lines.contains(&r#"tidepool_db_replica_reads_total{replica="10.0.0.2:5432"} 7"#),
            "{out}"
        );
        assert!(
            lines.contains(&r#"tidepool_db_pool_open_connections{pool="primary"} 3"#),
            "{out}"
        );
        assert!(
            lines.contains(&r#"tidepool_db_pool_max_connections{pool="primary"} 16"#),
            "{out}"
        );
        // No writer on this store: no writer series at all, rather than zeros that lie.
        assert!(!out.contains("writer"), "{out}");
    }

    #[test]
    fn an_empty_store_report_renders_nothing() {
        assert_eq!(render(tidepool_store::StoreStats::default()), "");
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(
            MethodLabel::of(&Method::from_bytes(b"BREW").unwrap()).0,
            "OTHER"
        );
        assert_eq!(RouteLabel(None).as_str(), UNMATCHED);
    }
}

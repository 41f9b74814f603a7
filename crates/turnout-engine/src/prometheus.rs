//! The outside metric of a progressive release's analysis
//! (`analysis.prometheus: {url, query, max}`, DESIGN §8): one instant
//! query, `GET {url}/api/v1/query?query=...`, whose single value the
//! check compares with `max`. The reconciler runs it off the state lock,
//! bounded by a timeout ([`timeout_for`]); whatever keeps it from giving
//! one value (the server unreachable or slow, an error answer, no series,
//! several series) is a [`NoValue`], which makes the check inconclusive:
//! never a pass, never a rollback.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The longest a query may take: a window's decision must not wait on a
/// slow Prometheus for longer than this (nor longer than the window).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read (an instant query of one series is a few
/// hundred bytes; a huge answer is not the single value the gate wants).
const MAX_BODY: usize = 1 << 20;

/// Why a query gave no value to judge. Not an error of the server: it
/// becomes the reason of an inconclusive check (`prometheus: no value
/// for <query> (<this>)`).
#[derive(Debug, Clone, PartialEq)]
pub enum NoValue {
    /// The URL cannot be queried (checked when the release starts too).
    BadUrl(String),
    /// No answer: connection refused, unknown host, reset.
    Unreachable(String),
    /// No answer within the timeout.
    Timeout(Duration),
    /// Prometheus answered an error (`status: error`, or an HTTP error).
    Failed(String),
    /// The answer is not the Prometheus API's JSON.
    NotPrometheus(String),
    /// An instant vector without a series.
    Empty,
    /// An instant vector of several series: which one to judge is
    /// ambiguous.
    Ambiguous(usize),
}

impl fmt::Display for NoValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoValue::BadUrl(e) => write!(f, "bad url: {e}"),
            NoValue::Unreachable(e) => write!(f, "unreachable: {e}"),
            NoValue::Timeout(d) => write!(f, "no answer within {} ms", d.as_millis()),
            NoValue::Failed(e) => write!(f, "prometheus answered an error: {e}"),
            NoValue::NotPrometheus(e) => write!(f, "not a prometheus answer: {e}"),
            NoValue::Empty => f.write_str("the query returned no series"),
            NoValue::Ambiguous(n) => write!(
                f,
                "the query returned {n} series, not one; aggregate them (sum, max, ...)"
            ),
        }
    }
}

/// The query's timeout for a window: the window, at most [`MAX_TIMEOUT`]
/// (at least 100 ms), so that a check is decided within a window of its
/// end however slow the outside server is.
pub fn timeout_for(window: Duration) -> Duration {
    window.clamp(Duration::from_millis(100), MAX_TIMEOUT)
}

/// The instant query's URI: `base` is an `http://host[:port][/prefix]`
/// URL (no TLS client here), the query percent-encoded.
pub fn query_uri(base: &str, query: &str) -> Result<hyper::Uri, String> {
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        format!("{base} is not an http:// URL (the server queries Prometheus over plain HTTP)")
    })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{base} has no host"));
    }
    let mut uri = format!("{}/api/v1/query?query=", base.trim_end_matches('/'));
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.parse()
        .map_err(|e| format!("{base} is not a valid URL: {e}"))
}

/// Runs the instant query against `base` within `timeout`.
pub async fn instant(base: &str, query: &str, timeout: Duration) -> Result<f64, NoValue> {
    let uri = query_uri(base, query).map_err(NoValue::BadUrl)?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| NoValue::BadUrl(e.to_string()))?;
    let answer = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| NoValue::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| NoValue::Unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        // Prometheus answers its errors (a bad query: 400) with the same
        // JSON, `status: error`: its message says more than the code.
        match value(&body) {
            Err(NoValue::NotPrometheus(_)) if !status.is_success() => {
                Err(NoValue::Failed(format!("HTTP {status}")))
            }
            other => other,
        }
    };
    tokio::time::timeout(timeout, answer)
        .await
        .unwrap_or(Err(NoValue::Timeout(timeout)))
}

/// An error with its sources (`client error (Connect): tcp connect
/// error: Connection refused`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The single value of an instant query's answer (the Prometheus HTTP
/// API's JSON): a scalar, or an instant vector of exactly one series.
pub fn value(body: &[u8]) -> Result<f64, NoValue> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| NoValue::NotPrometheus(format!("not JSON ({e})")))?;
    match json["status"].as_str() {
        Some("success") => {}
        Some("error") => {
            let kind = json["errorType"].as_str().unwrap_or("error");
            let error = json["error"].as_str().unwrap_or("no message");
            return Err(NoValue::Failed(format!("{kind}: {error}")));
        }
        _ => return Err(NoValue::NotPrometheus("no status".into())),
    }
    let data = &json["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let series = data["result"]
                .as_array()
                .ok_or_else(|| NoValue::NotPrometheus("a vector without a result list".into()))?;
            match series.as_slice() {
                [] => return Err(NoValue::Empty),
                [one] => &one["value"],
                many => return Err(NoValue::Ambiguous(many.len())),
            }
        }
        Some(other) => {
            return Err(NoValue::NotPrometheus(format!(
                "a {other} result; give an instant query of one value"
            )));
        }
        None => return Err(NoValue::NotPrometheus("no resultType".into())),
    };
    // A sample is `[<unix time>, "<value>"]`; the value is a string so
    // that NaN and ±Inf survive JSON.
    let text = sample[1]
        .as_str()
        .ok_or_else(|| NoValue::NotPrometheus("a sample without a value".into()))?;
    text.parse()
        .map_err(|_| NoValue::NotPrometheus(format!("the value {text:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_of_one_series_or_a_scalar_gives_its_value() {
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.7"]}]}}"#;
        assert_eq!(value(one), Ok(0.7));
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"12"]}}"#;
        assert_eq!(value(scalar), Ok(12.0));
        let inf = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert_eq!(value(inf), Ok(f64::INFINITY));
        let nan = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert!(value(nan).unwrap().is_nan());
    }

    #[test]
    fn no_series_several_series_and_errors_give_no_value_and_say_why() {
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(value(empty), Err(NoValue::Empty));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        assert_eq!(value(two), Err(NoValue::Ambiguous(2)));
        assert!(NoValue::Ambiguous(2).to_string().contains("aggregate them"));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(
            value(bad).unwrap_err().to_string(),
            "prometheus answered an error: bad_data: parse error at char 4"
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(value(matrix), Err(NoValue::NotPrometheus(_))));
        assert!(matches!(value(b"<html>"), Err(NoValue::NotPrometheus(_))));
        let word = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"high"]}}"#;
        assert!(matches!(value(word), Err(NoValue::NotPrometheus(_))));
    }

    #[test]
    fn the_query_is_percent_encoded_under_the_base_url() {
        assert_eq!(
            query_uri("http://prom:9090/", "sum(rate(x{a=\"b c\"}[1m]))")
                .unwrap()
                .to_string(),
            "http://prom:9090/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29"
        );
        assert_eq!(
            query_uri("http://10.0.0.1/prometheus", "up")
                .unwrap()
                .to_string(),
            "http://10.0.0.1/prometheus/api/v1/query?query=up"
        );
        let e = query_uri("https://prom:9090", "up").unwrap_err();
        assert!(e.contains("not an http:// URL"), "{e}");
        assert!(query_uri("http://", "up").unwrap_err().contains("no host"));
    }

    #[test]
    fn the_timeout_is_the_window_within_bounds() {
        assert_eq!(timeout_for(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(timeout_for(Duration::from_secs(30)), MAX_TIMEOUT);
        assert_eq!(
            timeout_for(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_gives_no_value() {
        // A port just closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = instant(
            &format!("http://127.0.0.1:{port}"),
            "up",
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, NoValue::Unreachable(_)), "{e}");
        assert!(e.to_string().starts_with("unreachable: "), "{e}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Accepts, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let e = instant(&format!("http://{addr}"), "up", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e, NoValue::Timeout(Duration::from_millis(300)));
        hold.abort();
    }
}

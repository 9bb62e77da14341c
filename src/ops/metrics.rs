//! Prometheus metrics: one process-wide recorder, rendered on the ops listener.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder on first use; later calls share it.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 15.0,
                    ],
                )
                .ok()?
                .install_recorder()
                .ok()
                .inspect(spawn_upkeep)
        })
        .as_ref()
}

/// Until upkeep drains them, histograms keep every sample they were given: without it memory
/// grows with traffic whenever nobody scrapes `/metrics`, and the first scrape after a busy
/// spell drains millions of samples at once. A process-wide thread (not a task: the recorder
/// outlives any one runtime) drains them every second, a few thousand at a time.
fn spawn_upkeep(handle: &PrometheusHandle) {
    let handle = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the metrics upkeep thread");
    }
}

const UPKEEP_EVERY: Duration = Duration::from_secs(1);

pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// The handles of one route's request metrics, per method and status.
#[derive(Default)]
struct RouteHandles {
    durations: Vec<(String, metrics::Histogram)>,
    counts: Vec<(String, u16, metrics::Counter)>,
}

/// Most a thread caches before it stops adding (routes are a bounded set; this is a backstop).
const MAX_CACHED_ROUTES: usize = 512;

thread_local! {
    /// Handles already registered, by route: looking one up in the recorder means building
    /// its labels and key, about as much work as the rest of a no-op request.
    static HANDLES: RefCell<HashMap<String, RouteHandles>> = RefCell::new(HashMap::new());
}

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let register_count = || {
        metrics::counter!(
            "rampart_http_requests_total",
            &[
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ]
        )
    };
    let register_duration = || {
        metrics::histogram!(
            "rampart_http_request_duration_seconds",
            &[("method", method.to_owned()), ("route", route.to_owned())]
        )
    };
    // `handle()` installs our recorder on first use. Should that have failed (another recorder
    // came first), cached handles could point at nothing for good: look them up every time.
    if handle().is_none() {
        register_count().increment(1);
        register_duration().record(elapsed.as_secs_f64());
        return;
    }
    HANDLES.with_borrow_mut(|cache| {
        if !cache.contains_key(route) {
            if cache.len() >= MAX_CACHED_ROUTES {
                register_count().increment(1);
                register_duration().record(elapsed.as_secs_f64());
                return;
            }
            cache.insert(route.to_owned(), RouteHandles::default());
        }
        let Some(h) = cache.get_mut(route) else {
            return;
        };
        match h
            .counts
            .iter()
            .find(|(m, s, _)| m == method && *s == status)
        {
            Some((_, _, c)) => c.increment(1),
            None => {
                let c = register_count();
                c.increment(1);
                h.counts.push((method.to_owned(), status, c));
            }
        }
        match h.durations.iter().find(|(m, _)| m == method) {
            Some((_, d)) => d.record(elapsed.as_secs_f64()),
            None => {
                let d = register_duration();
                d.record(elapsed.as_secs_f64());
                h.durations.push((method.to_owned(), d));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series of `metric` whose labels include every one of `labels`.
    fn value(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .find(|l| labels.iter().all(|want| l.contains(want)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Cached handles count every request, from every thread, under the right labels.
    #[test]
    fn cached_handles_count_every_request_on_every_thread() {
        let route = "/unit-test/metrics-cache";
        let threads: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        record_request("GET", route, 200, Duration::from_millis(1));
                    }
                    record_request("GET", route, 404, Duration::from_millis(1));
                    record_request("POST", route, 200, Duration::from_millis(1));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = render();
        let route_label = format!("route=\"{route}\"");
        let count = |method: &str, status: &str| {
            value(
                &text,
                "rampart_http_requests_total",
                &[
                    &route_label,
                    &format!("method=\"{method}\""),
                    &format!("status=\"{status}\""),
                ],
            )
        };
        assert_eq!(count("GET", "200"), Some(15.0), "{text}");
        assert_eq!(count("GET", "404"), Some(3.0), "{text}");
        assert_eq!(count("POST", "200"), Some(3.0), "{text}");
        let timed = |method: &str| {
            value(
                &text,
                "rampart_http_request_duration_seconds_count",
                &[&route_label, &format!("method=\"{method}\"")],
            )
        };
        assert_eq!(timed("GET"), Some(18.0), "{text}");
        assert_eq!(timed("POST"), Some(3.0), "{text}");
    }
}

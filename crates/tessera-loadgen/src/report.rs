//! What a run measured: latencies (HdrHistogram, microseconds), successes
//! and errors by kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency recorded exactly: 60 s, in microseconds (above: clamped).
const MAX_MICROS: u64 = 60_000_000;

/// The measurements of one worker, or of a whole run once merged.
pub(crate) struct Stats {
    latency: Histogram<u64>,
    /// 2xx responses.
    pub(crate) ok: u64,
    /// Non-2xx responses by status.
    statuses: BTreeMap<u16, u64>,
    /// Failures without a response, by message.
    failures: BTreeMap<String, u64>,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            // 3 significant digits from 1 µs to 60 s: about 180 KB.
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("constant, valid histogram bounds"),
            ok: 0,
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
        }
    }

    /// One response with `status` after `latency`.
    pub(crate) fn response(&mut self, status: u16, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
        if (200..300).contains(&status) {
            self.ok += 1;
        } else {
            *self.statuses.entry(status).or_default() += 1;
        }
    }

    /// A non-2xx answer outside the measured window: not timed, still an
    /// error.
    pub(crate) fn error_status(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }

    /// One request that got no response.
    pub(crate) fn failure(&mut self, what: String) {
        *self.failures.entry(what).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (what, n) in other.failures {
            *self.failures.entry(what).or_default() += n;
        }
    }

    /// Non-2xx responses plus failures.
    pub(crate) fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.failures.values().sum::<u64>()
    }

    /// Requests answered (any status).
    pub(crate) fn answered(&self) -> u64 {
        self.latency.len()
    }

    /// The latency at `quantile`, microseconds.
    pub(crate) fn micros_at(&self, quantile: f64) -> u64 {
        self.latency.value_at_quantile(quantile)
    }

    pub(crate) fn max_micros(&self) -> u64 {
        self.latency.max()
    }

    /// The errors, for humans: `503 x12, connection reset x1`.
    pub(crate) fn error_summary(&self) -> String {
        let mut out = String::new();
        for (status, n) in &self.statuses {
            let _ = write!(out, "{}HTTP {status} x{n}", sep(&out));
        }
        for (what, n) in &self.failures {
            let _ = write!(out, "{}{what} x{n}", sep(&out));
        }
        out
    }
}

fn sep(out: &str) -> &'static str {
    if out.is_empty() {
        ""
    } else {
        ", "
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let mut a = Stats::new();
        for i in 1..=99 {
            a.response(200, Duration::from_micros(i));
        }
        let mut b = Stats::new();
        b.response(503, Duration::from_millis(5));
        b.failure("connection reset".to_owned());
        a.merge(b);
        assert_eq!(a.ok, 99);
        assert_eq!(a.errors(), 2);
        assert_eq!(a.answered(), 100);
        assert_eq!(a.micros_at(0.5), 50);
        assert!(a.max_micros() >= 4_990, "{}", a.max_micros());
        assert_eq!(a.error_summary(), "HTTP 503 x1, connection reset x1");
    }
}

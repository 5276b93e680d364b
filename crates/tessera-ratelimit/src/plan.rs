//! Rates (`10/s`, `100/m`, `1000/h`) and plans: a rate with a burst, under a name.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A sustained rate: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period: Duration,
}

/// Why a rate, burst or plan was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The text is not `COUNT/UNIT` with a unit of `s`, `m`, `h` or `d`.
    #[error("invalid rate {0:?}: expected COUNT/UNIT such as 10/s, 100/m, 1000/h or 5000/d")]
    Syntax(String),
    /// The count is zero or the period too short for the count (under 1 µs per request).
    #[error(
        "invalid rate {0:?}: the count must be 1 or more and at most one request per microsecond"
    )]
    OutOfRange(String),
    /// The burst is zero.
    #[error("the burst must be at least 1")]
    ZeroBurst,
    /// The burst takes longer than about 285 years at the rate (over 2^53
    /// µs): the stores' arithmetic (Redis's Lua numbers) would lose
    /// precision.
    #[error("the burst of {0} takes too long to refill at this rate (over 285 years); lower the burst or raise the rate")]
    BurstTooLong(u32),
    /// A plan name is empty or not a token of `A-Z a-z 0-9 _ - . :`.
    #[error("invalid plan name {0:?}: use 1 to 64 characters of A-Z a-z 0-9 _ - . :")]
    Name(String),
}

impl Rate {
    /// `count` requests per `period`.
    ///
    /// # Errors
    /// [`PlanError::OutOfRange`] for a zero count, or more than one request
    /// per microsecond.
    pub fn new(count: u32, period: Duration) -> Result<Self, PlanError> {
        let rate = Rate { count, period };
        if count == 0 || rate.interval_micros() == 0 {
            return Err(PlanError::OutOfRange(rate.to_string()));
        }
        Ok(rate)
    }

    /// Requests per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The emission interval: microseconds between two requests at the
    /// sustained rate (rounded down).
    pub fn interval_micros(&self) -> u64 {
        let period = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        period / u64::from(self.count.max(1))
    }
}

impl FromStr for Rate {
    type Err = PlanError;

    /// Parses `COUNT/UNIT`, the unit one of `s`, `m`, `h`, `d` (also
    /// `sec`, `min`, `hour`, `day`).
    fn from_str(text: &str) -> Result<Self, PlanError> {
        let syntax = || PlanError::Syntax(text.to_owned());
        let (count, unit) = text.trim().split_once('/').ok_or_else(syntax)?;
        let count: u32 = count.trim().parse().map_err(|_| syntax())?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3_600,
            "d" | "day" => 86_400,
            _ => return Err(syntax()),
        };
        Rate::new(count, Duration::from_secs(seconds))
            .map_err(|_| PlanError::OutOfRange(text.to_owned()))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period.as_secs() {
            1 => write!(f, "{}/s", self.count),
            60 => write!(f, "{}/m", self.count),
            3_600 => write!(f, "{}/h", self.count),
            86_400 => write!(f, "{}/d", self.count),
            _ => write!(f, "{}/{:?}", self.count, self.period),
        }
    }
}

/// A named budget: a sustained [`Rate`] and a burst (how many requests may
/// arrive at once after a quiet period). GCRA: after a burst, requests are
/// allowed one per [`Rate::interval_micros`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    name: String,
    rate: Rate,
    burst: u32,
    /// Its `RateLimit-Policy` member, made once (shared, never copied).
    policy_field: bytes::Bytes,
}

impl Plan {
    /// A plan `name` of `rate` with `burst`.
    ///
    /// # Errors
    /// [`PlanError::Name`] for a name outside `A-Z a-z 0-9 _ - . :` (1 to
    /// 64 characters: it is sent in the `RateLimit-Policy` header),
    /// [`PlanError::ZeroBurst`].
    pub fn new(name: impl Into<String>, rate: Rate, burst: u32) -> Result<Self, PlanError> {
        let name = name.into();
        let token = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
        if name.is_empty() || name.len() > 64 || !name.bytes().all(token) {
            return Err(PlanError::Name(name));
        }
        if burst == 0 {
            return Err(PlanError::ZeroBurst);
        }
        if rate
            .interval_micros()
            .checked_mul(u64::from(burst))
            .is_none_or(|refill| refill > 1 << 53)
        {
            return Err(PlanError::BurstTooLong(burst));
        }
        let policy_field =
            format!("\"{name}\";q={burst};w={}", policy_window_secs(rate, burst)).into();
        Ok(Plan {
            name,
            rate,
            burst,
            policy_field,
        })
    }

    /// The plan as a `RateLimit-Policy` member (draft-ietf-httpapi-ratelimit-headers-10)
    /// for requests of cost 1: `"<name>";q=<burst>;w=<seconds>`, the
    /// window being the time the burst takes at the sustained rate
    /// (rounded up to whole seconds).
    ///
    /// So requests of cost 1, at most `q` of them decided in any `w`
    /// seconds on one verifier's clock, are never refused: after a burst,
    /// the limiter admits one request per interval, and `burst` of them
    /// fill exactly that window. (A request is decided once it is verified,
    /// its body read: a slow upload moves its decision later.) Advertising
    /// the rate's own count and period instead would promise more than a
    /// burst smaller than the count allows (`5/m` with burst 3 would say 5
    /// at once, and the fourth would be refused).
    pub fn policy_field(&self) -> bytes::Bytes {
        self.policy_field.clone()
    }

    /// [`Plan::policy_field`] counted in requests of `cost`: `q` is how
    /// many such requests the burst holds (at least 1) and `w` the time
    /// they take at the sustained rate.
    pub fn policy_field_for_cost(&self, cost: u64) -> bytes::Bytes {
        if cost <= 1 {
            return self.policy_field();
        }
        let count = (u64::from(self.burst) / cost).max(1);
        let window = self
            .rate
            .interval_micros()
            .saturating_mul(count.saturating_mul(cost))
            .div_ceil(1_000_000)
            .max(1);
        format!("\"{}\";q={count};w={window}", self.name).into()
    }

    /// The plan's name, as sent in `RateLimit-Policy` and `RateLimit`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sustained rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The burst.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// The time `burst` requests take at `rate`, in whole seconds (at least 1),
/// rounded up: a longer window promises less, never more.
fn policy_window_secs(rate: Rate, burst: u32) -> u64 {
    rate.interval_micros()
        .saturating_mul(u64::from(burst))
        .div_ceil(1_000_000)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_that_takes_centuries_to_refill_is_refused() {
        let daily: Rate = "1/d".parse().expect("rate");
        assert!(matches!(
            Plan::new("p", daily, u32::MAX),
            Err(PlanError::BurstTooLong(u32::MAX))
        ));
        // 100,000 days: about 274 years, still exact.
        assert!(Plan::new("p", daily, 100_000).is_ok());
        assert!(Plan::new("p", "1000/s".parse().expect("rate"), u32::MAX).is_ok());
    }

    #[test]
    fn the_policy_promises_what_the_burst_allows() {
        for (rate, burst, policy) in [
            ("5/m", 3, "\"p\";q=3;w=36"),
            ("5/m", 5, "\"p\";q=5;w=60"),
            ("10/s", 10, "\"p\";q=10;w=1"),
            ("3/s", 3, "\"p\";q=3;w=1"),
            ("100/s", 1, "\"p\";q=1;w=1"),
            ("1/m", 2, "\"p\";q=2;w=120"),
            ("1000/h", 100, "\"p\";q=100;w=360"),
        ] {
            let plan = Plan::new("p", rate.parse().expect(rate), burst).expect("plan");
            assert_eq!(plan.policy_field(), policy, "{rate} burst {burst}");
            assert_eq!(
                plan.policy_field_for_cost(1),
                policy,
                "{rate} burst {burst}"
            );
        }
        // Requests of cost 10 from 60/h, burst 60: six at once, each
        // worth ten minutes of the sustained rate (an hour for six).
        let export = Plan::new("export", "60/h".parse().expect("rate"), 60).expect("plan");
        assert_eq!(export.policy_field_for_cost(10), "\"export\";q=6;w=3600");
        // A cost above the burst never passes; the header still says 1.
        assert_eq!(export.policy_field_for_cost(100), "\"export\";q=1;w=6000");
    }

    /// The promise, checked against the limiter itself: requests of `cost`,
    /// at most `q` decided in any `w` seconds, are never refused; spaced
    /// as tightly as that allows (bursts of `q` every `w` seconds, and
    /// evenly spread), for many plans and costs.
    #[test]
    fn a_client_within_the_policy_is_never_refused() {
        for (rate, burst) in [
            ("5/m", 3),
            ("10/s", 10),
            ("3/s", 3),
            ("7/s", 2),
            ("60/h", 60),
            ("1/m", 2),
        ] {
            let plan = Plan::new("p", rate.parse().expect(rate), burst).expect("plan");
            for cost in [1u32, 2, 3, 10] {
                if cost > burst {
                    continue;
                }
                let field = plan.policy_field_for_cost(u64::from(cost));
                let text = std::str::from_utf8(&field).expect("ascii");
                let q: u64 = text
                    .split(";q=")
                    .nth(1)
                    .and_then(|r| r.split(';').next())
                    .and_then(|n| n.parse().ok())
                    .expect("q");
                let w: u64 = text
                    .split(";w=")
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .expect("w");
                let w_micros = w * 1_000_000;
                // Bursts of q at the start of each window.
                let mut tat = None;
                for window in 0..20u64 {
                    for _ in 0..q {
                        let d = crate::decide(tat, window * w_micros, &plan, cost);
                        assert!(d.allowed, "{rate} burst {burst} cost {cost} ({text}): burst refused in window {window}");
                        tat = Some(d.tat);
                    }
                }
                // Evenly spread: one every w/q.
                let mut tat = None;
                for i in 0..(20 * q) {
                    let d = crate::decide(tat, i * w_micros / q, &plan, cost);
                    assert!(
                        d.allowed,
                        "{rate} burst {burst} cost {cost} ({text}): spread refused at {i}"
                    );
                    tat = Some(d.tat);
                }
            }
        }
    }

    #[test]
    fn rates_parse_and_print() {
        for (text, count, secs, interval) in [
            ("10/s", 10, 1, 100_000),
            ("100/m", 100, 60, 600_000),
            ("1000/h", 1000, 3600, 3_600_000),
            ("3/s", 3, 1, 333_333),
            (" 5 / d ", 5, 86_400, 17_280_000_000),
        ] {
            let rate: Rate = text.parse().expect(text);
            assert_eq!((rate.count(), rate.period().as_secs()), (count, secs));
            assert_eq!(rate.interval_micros(), interval, "{text}");
        }
        assert_eq!("100/m".parse::<Rate>().expect("rate").to_string(), "100/m");
    }

    #[test]
    fn bad_rates_say_what_to_write() {
        for bad in ["", "10", "10/x", "-1/s", "ten/s", "10/s/s"] {
            let e = bad.parse::<Rate>().expect_err(bad);
            assert!(e.to_string().contains("10/s"), "{e}");
        }
        assert!(matches!(
            "0/s".parse::<Rate>(),
            Err(PlanError::OutOfRange(_))
        ));
        assert!(matches!(
            "2000000/s".parse::<Rate>(),
            Err(PlanError::OutOfRange(_))
        ));
    }

    #[test]
    fn plans_check_name_and_burst() {
        let rate: Rate = "10/s".parse().expect("rate");
        assert!(Plan::new("writes", rate, 20).is_ok());
        assert_eq!(
            Plan::new("a b", rate, 1),
            Err(PlanError::Name("a b".into()))
        );
        assert_eq!(Plan::new("", rate, 1), Err(PlanError::Name(String::new())));
        assert_eq!(Plan::new("w", rate, 0), Err(PlanError::ZeroBurst));
    }
}

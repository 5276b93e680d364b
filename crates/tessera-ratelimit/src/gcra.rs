//! The Generic Cell Rate Algorithm, as one pure function of the stored state
//! and the time: no timers, no background work. Every store runs exactly
//! this (the Redis script is a transcription of [`decide`], held to it by
//! the same tests).
//!
//! State per limited key: the theoretical arrival time `tat`, in
//! microseconds. With the emission interval `T` (the plan's period divided
//! by its count) and the burst `B`, a request of cost `n` at time `now` is
//! allowed when `max(tat, now) + n·T - now <= B·T`, and then `tat` becomes
//! `max(tat, now) + n·T`. A key that was quiet for `B·T` may therefore send
//! `B` requests at once, and from then on one every `T`.

use crate::plan::Plan;

/// The outcome of one decision, as [`decide`] makes it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The state to store when allowed (the new theoretical arrival time,
    /// µs); when refused, the state is left as it was.
    pub tat: u64,
    /// Requests of cost 1 that could be made right after this one.
    pub remaining: u64,
    /// When refused: microseconds until this request would be allowed;
    /// `None` when it never can (its cost exceeds the burst). 0 when allowed.
    pub retry_after_micros: Option<u64>,
    /// Microseconds until the key is back to a full burst.
    pub reset_micros: u64,
}

impl Decision {
    /// A decision made elsewhere (a store that runs the GCRA in its own
    /// script, as the `redis` feature's `RedisRateStore` does in Redis), with the fields
    /// as documented on the struct; [`decide`] makes one in Rust.
    pub const fn new(
        allowed: bool,
        tat: u64,
        remaining: u64,
        retry_after_micros: Option<u64>,
        reset_micros: u64,
    ) -> Self {
        Decision {
            allowed,
            tat,
            remaining,
            retry_after_micros,
            reset_micros,
        }
    }
}

/// Decides a request of `cost` at `now` (µs) for a key whose stored state
/// is `tat` (`None`: never seen, or expired).
pub fn decide(tat: Option<u64>, now: u64, plan: &Plan, cost: u32) -> Decision {
    let interval = plan.rate().interval_micros().max(1);
    let limit = interval.saturating_mul(u64::from(plan.burst()));
    let base = tat.map_or(now, |tat| tat.max(now));
    let next = base.saturating_add(interval.saturating_mul(u64::from(cost)));
    let ahead = next - now;
    if ahead <= limit {
        return Decision {
            allowed: true,
            tat: next,
            remaining: (limit - ahead) / interval,
            retry_after_micros: Some(0),
            reset_micros: ahead,
        };
    }
    let queued = base - now;
    Decision {
        allowed: false,
        tat: base,
        remaining: limit.saturating_sub(queued) / interval,
        retry_after_micros: (cost <= plan.burst()).then(|| ahead - limit),
        reset_micros: queued,
    }
}

/// The state after giving back a request of `cost` that was allowed: `tat`
/// moves back by `cost·T`. Exact whatever happened in between (charges
/// add, a refund subtracts), and a result at or before `now` means the same
/// as no state: a full burst.
pub fn refund(tat: u64, plan: &Plan, cost: u32) -> u64 {
    let interval = plan.rate().interval_micros().max(1);
    tat.saturating_sub(interval.saturating_mul(u64::from(cost)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, Rate};

    fn plan(rate: &str, burst: u32) -> Plan {
        Plan::new("p", rate.parse::<Rate>().expect("rate"), burst).expect("plan")
    }

    #[test]
    fn a_refund_restores_the_budget_it_took() {
        let p = plan("10/s", 3);
        let mut key = Key {
            tat: None,
            plan: p.clone(),
        };
        for _ in 0..3 {
            assert!(key.at(1_000_000, 1).allowed);
        }
        assert!(!key.at(1_000_000, 1).allowed);
        key.tat = key.tat.map(|tat| refund(tat, &p, 1));
        assert!(key.at(1_000_000, 1).allowed);
        assert!(!key.at(1_000_000, 1).allowed);
        // Never below zero.
        assert_eq!(refund(5, &p, 1), 0);
    }

    /// Runs `decide` like a store: keeps the state of allowed requests.
    struct Key {
        tat: Option<u64>,
        plan: Plan,
    }

    impl Key {
        fn at(&mut self, now: u64, cost: u32) -> Decision {
            let d = decide(self.tat, now, &self.plan, cost);
            if d.allowed {
                self.tat = Some(d.tat);
            }
            d
        }
    }

    #[test]
    fn burst_then_exactly_the_sustained_rate() {
        // 10/s: one request per 100 ms; a burst of 20.
        let mut key = Key {
            tat: None,
            plan: plan("10/s", 20),
        };
        let t0 = 1_000_000_000;
        for i in 0..20 {
            let d = key.at(t0, 1);
            assert!(d.allowed, "request {i} of the burst");
            assert_eq!(d.remaining, 19 - i);
        }
        let refused = key.at(t0, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_micros, Some(100_000));
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_micros, 2_000_000);
        // One microsecond early: still refused; on time: allowed, once.
        assert!(!key.at(t0 + 99_999, 1).allowed);
        assert!(key.at(t0 + 100_000, 1).allowed);
        assert!(!key.at(t0 + 100_000, 1).allowed);
        // Sustained: every 100 ms exactly one, for a minute.
        let mut allowed = 0;
        for ms in (200..60_000).step_by(10) {
            if key.at(t0 + ms * 1000, 1).allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 598);
        // After a quiet burst-length period the full burst is back.
        let quiet = t0 + 60_000_000 + 2_000_000;
        assert_eq!(key.at(quiet, 1).remaining, 19);
    }

    #[test]
    fn costs_above_one_and_above_the_burst() {
        let mut key = Key {
            tat: None,
            plan: plan("10/s", 20),
        };
        assert_eq!(key.at(0, 10).remaining, 10);
        assert_eq!(key.at(0, 10).remaining, 0);
        let d = key.at(0, 10);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_micros, Some(1_000_000));
        // A cost the burst can never hold is refused without a retry time.
        let never = decide(None, 0, &key.plan, 21);
        assert!(!never.allowed);
        assert_eq!(never.retry_after_micros, None);
    }

    #[test]
    fn keys_are_independent_and_refusals_cost_nothing() {
        let p = plan("1/s", 1);
        let mut a = Key {
            tat: None,
            plan: p.clone(),
        };
        let mut b = Key { tat: None, plan: p };
        assert!(a.at(0, 1).allowed);
        // A refused flood does not push the key's budget further out.
        for _ in 0..1000 {
            assert!(!a.at(500_000, 1).allowed);
        }
        assert!(a.at(1_000_000, 1).allowed);
        assert!(b.at(500_000, 1).allowed);
    }

    #[test]
    fn window_boundaries_per_minute_and_hour() {
        let mut key = Key {
            tat: None,
            plan: plan("100/m", 1),
        };
        assert!(key.at(0, 1).allowed);
        assert!(!key.at(599_999, 1).allowed);
        assert!(key.at(600_000, 1).allowed);
        let mut key = Key {
            tat: None,
            plan: plan("1000/h", 1000),
        };
        for _ in 0..1000 {
            assert!(key.at(0, 1).allowed);
        }
        let d = key.at(0, 1);
        assert_eq!(d.retry_after_micros, Some(3_600_000));
        assert_eq!(d.reset_micros, 3_600_000_000);
    }
}

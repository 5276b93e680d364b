//! A `429 rate_limited` answer, read from the response head.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

/// The server refused a request because its budget is spent (`429
/// rate_limited`, spec §12.5).
///
/// Read from the response head only ([`RateLimited::from_response`]), so
/// the problem document stays unread. Retry, signed afresh, after
/// [`RateLimited::retry_after`]; [`crate::SignRequestMiddleware`] can wait
/// and retry by itself, up to a cap ([`SignRequestMiddleware::wait_on_rate_limit`]).
///
/// [`SignRequestMiddleware::wait_on_rate_limit`]: crate::SignRequestMiddleware
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Option<Duration>,
    policy: Option<String>,
    remaining: Option<u64>,
}

impl RateLimited {
    /// `Some` when `status` is 429: the `Retry-After` delay (delta-seconds)
    /// and the plan named in the `RateLimit` field, when present.
    pub fn from_response(status: StatusCode, headers: &HeaderMap) -> Option<Self> {
        if status != StatusCode::TOO_MANY_REQUESTS {
            return None;
        }
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let state = headers
            .get("ratelimit")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // `"<plan>";r=<remaining>;t=<seconds>` (draft-ietf-httpapi-ratelimit-headers-10).
        let mut items = state.split(';');
        let policy = items
            .next()
            .map(|p| p.trim().trim_matches('"').to_owned())
            .filter(|p| !p.is_empty());
        let remaining = items
            .find_map(|p| p.trim().strip_prefix("r="))
            .and_then(|r| r.parse().ok());
        Some(RateLimited {
            retry_after,
            policy,
            remaining,
        })
    }

    /// How long to wait before retrying, from `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The plan whose budget is spent, from `RateLimit`.
    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }

    /// Requests left in the budget, from `RateLimit` (0 when refused).
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_after_and_the_ratelimit_field() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "30".parse().expect("value"));
        headers.insert("ratelimit", "\"default\";r=0;t=60".parse().expect("value"));
        let limited =
            RateLimited::from_response(StatusCode::TOO_MANY_REQUESTS, &headers).expect("429");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(limited.policy(), Some("default"));
        assert_eq!(limited.remaining(), Some(0));
        assert!(RateLimited::from_response(StatusCode::OK, &headers).is_none());
        let bare = RateLimited::from_response(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new())
            .expect("429");
        assert_eq!((bare.retry_after(), bare.policy()), (None, None));
    }
}

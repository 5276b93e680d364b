//! Parsing times and durations given on the command line.

use std::time::{SystemTime, UNIX_EPOCH};

/// The system time, Unix seconds.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a time: Unix seconds (`1700000000`) or RFC 3339
/// (`2023-11-14T22:13:20Z`). Used as a clap value parser.
pub(crate) fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("'{text}' is neither Unix seconds nor an RFC 3339 time"))?;
    u64::try_from(parsed.unix_timestamp()).map_err(|_| format!("'{text}' is before 1970"))
}

/// Parses a duration: a number with an optional unit `s`, `m`, `h`, `d` or
/// `w` (`90`, `15m`, `30d`). Used as a clap value parser.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 90s, 15m, 12h, 30d or 2w"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit (use s, m, h, d or w)"
            ))
        }
    };
    match number.checked_mul(scale) {
        Some(0) => Err(format!("'{text}' is zero: a duration must be at least 1s")),
        Some(secs) => Ok(secs),
        None => Err(format!(
            "'{text}' is too long: at most {}w",
            u64::MAX / (7 * 86_400)
        )),
    }
}

/// A Unix time as RFC 3339, for humans.
pub(crate) fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}

//! The one duration grammar of sluice's options: `90s`, `10m`, `1h30m`, `250ms`, `1.5s`, `2d`; a
//! bare number is seconds. Used by every flag and config key that takes a duration, and by
//! `--abort-on … for D`.

use std::time::Duration;

/// Reads `90s`, `10m`, `1h30m`, `250ms`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let allowed = "expected a duration like 90s, 10m, 1h30m or 250ms";
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty; {allowed}"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| format!("'{text}' is out of range; {allowed}"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[num_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], &rest[num_len..num_len + unit_len]);
        let value: f64 = num.parse().map_err(|_| format!("'{text}' is not a duration; {allowed}"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(format!("'{text}' has unknown unit '{unit}'; {allowed}")),
        };
        total += value * scale;
        rest = &rest[num_len + unit_len..];
    }
    secs_to_duration(total).ok_or_else(|| format!("'{text}' is out of range; {allowed}"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs > 0.0 && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

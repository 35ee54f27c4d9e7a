//! Times as people write them: UTC ISO 8601 out (`2026-12-06T13:42:20Z`), and in for `hone log
//! export --since` also a date (`2026-12-01`) or an age (`24h`, `7d`, `30m`).

use crate::{Error, Result};

/// Unix seconds as an ISO 8601 UTC time, `2025-01-31T09:05:00Z`.
pub fn format_utc(secs: i64) -> String {
    // Howard Hinnant's civil_from_days
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of `s`: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC), or an age before
/// `now` (`90s`, `30m`, `24h`, `7d`). The error names `what` (the flag).
pub fn parse_time(s: &str, now: i64, what: &str) -> Result<i64> {
    let bad = || {
        Error::invalid(format!(
            "{what} `{s}`: write a UTC date or time (2026-12-01, 2026-12-01T08:30:00Z) or an age (30m, 24h, 7d)"
        ))
    };
    let t = s.trim();
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<u32>() {
            let mult = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            return Ok(now - i64::from(n) * mult);
        }
    }
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, clock) = t.split_once('T').unwrap_or((t, "00:00:00"));
    let num = |x: &str| x.parse::<i64>().map_err(|_| bad());
    let dp: Vec<&str> = date.split('-').collect();
    let cp: Vec<&str> = clock.split(':').collect();
    if dp.len() != 3 || dp[0].len() != 4 || !(2..=3).contains(&cp.len()) {
        return Err(bad());
    }
    let (y, mo, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    let (h, mi) = (num(cp[0])?, num(cp[1])?);
    let sec = if cp.len() == 3 { num(cp[2])? } else { 0 };
    let days_in = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 59
        || h < 0
        || mi < 0
        || sec < 0
    {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_what_it_formats_and_ages() {
        for t in [0, 1_700_000_000, 951_782_400, 1_796_550_140] {
            assert_eq!(
                super::parse_time(&super::format_utc(t), 0, "--since").unwrap(),
                t
            );
        }
        assert_eq!(
            super::parse_time("2026-12-01", 0, "--since").unwrap(),
            1_796_083_200
        );
        assert_eq!(
            super::parse_time("2026-12-01T08:30", 0, "--since").unwrap(),
            1_796_113_800
        );
        assert_eq!(
            super::parse_time("24h", 100_000, "--since").unwrap(),
            100_000 - 86_400
        );
        assert_eq!(super::parse_time("30m", 10_000, "--since").unwrap(), 8_200);
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "26-12-01",
            "2026-12-01T25:00",
            "h",
            "-3d",
        ] {
            let e = super::parse_time(bad, 0, "--since")
                .unwrap_err()
                .to_string();
            assert!(e.contains("--since") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::format_utc(-1), "1969-12-31T23:59:59Z");
    }
}

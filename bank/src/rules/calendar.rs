//! When the bank works: the business-hours window (Monday–Friday, `open`..`close` local time,
//! holidays skipped) in the bank's time zone, and the night window of the per-transfer limit for
//! individual accounts. Times are given in UTC and judged in the bank's zone (`chrono-tz`).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rust_decimal::Decimal;

/// The window business-hours transfers settle in.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub tz: Tz,
    /// Opening time, inclusive (08:00).
    pub open: NaiveTime,
    /// Closing time, exclusive (15:00: a transfer at 15:00:00 waits for the next opening).
    pub close: NaiveTime,
    pub holidays: BTreeSet<NaiveDate>,
}

impl BusinessHours {
    /// Whether `date` (local) is a working day: Monday–Friday and not a holiday.
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&date)
    }

    /// Whether the window is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        self.is_business_day(local.date_naive()) && local.time() >= self.open && local.time() < self.close
    }

    /// The next opening strictly after or at `at` when closed; `at` itself when open.
    pub fn next_opening(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(at) {
            return at;
        }
        let local = at.with_timezone(&self.tz);
        let today = local.date_naive();
        // 10 years of days: holidays are a short list, so this always finds a working day.
        for offset in 0..3660u64 {
            let date = today.checked_add_days(Days::new(offset)).expect("a date within range");
            if !self.is_business_day(date) || (offset == 0 && local.time() >= self.open) {
                continue;
            }
            if let Some(opening) = self.local_instant(date, self.open) {
                return opening;
            }
        }
        unreachable!("a working day within ten years")
    }

    /// `date` at `time` in the zone; in a DST gap, the first instant after it.
    fn local_instant(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let naive = date.and_time(time);
        (0..4).find_map(|h| self.tz.from_local_datetime(&(naive + chrono::Duration::minutes(30 * h))).earliest()).map(|t| t.with_timezone(&Utc))
    }
}

/// The per-transfer limit of individual accounts at night.
#[derive(Debug, Clone)]
pub struct NightLimit {
    pub tz: Tz,
    /// Night starts (inclusive, 20:00) …
    pub start: NaiveTime,
    /// … and ends (exclusive, 06:00); a window may wrap midnight.
    pub end: NaiveTime,
    /// The largest amount one transfer may move at night (1000.00).
    pub limit: Decimal,
}

impl NightLimit {
    pub fn is_night(&self, at: DateTime<Utc>) -> bool {
        let t = at.with_timezone(&self.tz).time();
        if self.start <= self.end { t >= self.start && t < self.end } else { t >= self.start || t < self.end }
    }

    /// Whether an individual account may move `amount` at `at`.
    pub fn allows(&self, amount: Decimal, at: DateTime<Utc>) -> bool {
        !self.is_night(at) || amount <= self.limit
    }
}

/// `HH:MM` (or `HH:MM:SS`).
pub fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M:%S"))
        .map_err(|_| format!("{text:?} is not a time of day (HH:MM)"))
}

/// Comma-separated `YYYY-MM-DD` dates (empty: none).
pub fn parse_holidays(text: &str) -> Result<BTreeSet<NaiveDate>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)")))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn sp() -> Tz {
        "America/Sao_Paulo".parse().unwrap()
    }

    fn hours(holidays: &str) -> BusinessHours {
        BusinessHours { tz: sp(), open: parse_time("08:00").unwrap(), close: parse_time("15:00").unwrap(), holidays: parse_holidays(holidays).unwrap() }
    }

    /// A local São Paulo time (UTC−3, no DST since 2019) as UTC.
    fn local(s: &str) -> DateTime<Utc> {
        sp().from_local_datetime(&chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_window_and_its_next_opening() {
        let h = hours("");
        // 2026-12-05 is a Saturday.
        assert_eq!(h.next_opening(local("2026-12-05 10:00:00")), local("2026-12-07 08:00:00"));
        // Friday 15:00:00 is closed; 14:59:59 is open.
        assert_eq!(h.next_opening(local("2026-12-04 15:00:00")), local("2026-12-07 08:00:00"));
        assert!(h.is_open(local("2026-12-04 14:59:59")));
        assert!(!h.is_open(local("2026-12-04 15:00:00")));
        // Before opening on a weekday: the same day.
        assert_eq!(h.next_opening(local("2026-12-02 07:59:59")), local("2026-12-02 08:00:00"));
        assert_eq!(h.next_opening(local("2026-12-02 08:00:00")), local("2026-12-02 08:00:00"));
        assert_eq!(local("2026-12-07 08:00:00").to_rfc3339(), "2026-12-07T11:00:00+00:00");
    }

    #[test]
    fn holidays_are_skipped() {
        let h = hours("2026-12-07, 2026-12-08");
        assert_eq!(h.next_opening(local("2026-12-05 10:00:00")), local("2026-12-09 08:00:00"));
        assert!(parse_holidays("2026-13-01").is_err());
        assert!(parse_holidays("").unwrap().is_empty());
    }

    #[test]
    fn the_night_wraps_midnight() {
        let n = NightLimit { tz: sp(), start: parse_time("20:00").unwrap(), end: parse_time("06:00").unwrap(), limit: Decimal::from(1000) };
        assert!(n.is_night(local("2026-12-02 20:00:00")));
        assert!(n.is_night(local("2026-12-02 23:59:59")));
        assert!(n.is_night(local("2026-12-03 05:59:59")));
        assert!(!n.is_night(local("2026-12-03 06:00:00")));
        assert!(!n.is_night(local("2026-12-02 19:59:59")));
        assert!(n.allows(Decimal::from(1000), local("2026-12-02 22:00:00")));
        assert!(!n.allows(Decimal::new(100001, 2), local("2026-12-02 22:00:00")));
        assert!(n.allows(Decimal::from(5000), local("2026-12-02 12:00:00")));
    }

    proptest! {
        #[test]
        fn the_next_opening_is_open_and_nothing_before_it_is(secs in 1_700_000_000i64..1_900_000_000i64, hol in proptest::collection::vec(0u64..60, 0..8)) {
            let at = DateTime::from_timestamp(secs, 0).unwrap();
            let mut h = hours("");
            let base = at.with_timezone(&h.tz).date_naive();
            h.holidays = hol.iter().map(|d| base + Days::new(*d)).collect();
            let next = h.next_opening(at);
            prop_assert!(next >= at);
            prop_assert!(h.is_open(next));
            // Sample the gap: closed all along (openings are on minute boundaries).
            let gap = (next - at).num_minutes();
            for k in 0..gap.min(24 * 60 * 30) / 17 {
                prop_assert!(!h.is_open(at + Duration::minutes(17 * k)), "open at {}", at + Duration::minutes(17 * k));
            }
            let local_next = next.with_timezone(&h.tz);
            prop_assert!(!h.holidays.contains(&local_next.date_naive()));
            prop_assert!(next == at || local_next.time() == h.open);
        }
    }
}

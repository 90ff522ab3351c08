//! The council's calendar: its time zone, working days, bank holidays and the hour rounds end.
//! Every rule about days ("two working days after collection day") asks this calendar, so the
//! rules do no date arithmetic of their own.
//!
//! Everything is stored in UTC ([`TimestampMs`]); days and times of day are the council's local
//! ones (Europe/London by default, with its clock changes), because that is what residents and
//! crews mean by "Tuesday" and "5pm".

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use proto::TimestampMs;
use serde::{Deserialize, Serialize};

/// 17:00, the default end of rounds.
const FIVE_PM: NaiveTime = match NaiveTime::from_hms_opt(17, 0, 0) {
    Some(time) => time,
    None => NaiveTime::MIN,
};

/// The council's working calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CouncilCalendar {
    /// The council's time zone, by its IANA name. Default: `Europe/London`.
    #[serde(with = "tz_by_name")]
    pub tz: Tz,
    /// Days that are not working days although they fall Monday to Friday. Default:
    /// [`england_and_wales_2026`]; a council configures its own years and any extra closures.
    pub bank_holidays: BTreeSet<NaiveDate>,
    /// When rounds are scheduled to have finished, local time: from then on a resident may report
    /// a missed bin on collection day even if the crew has sent nothing. Default: 17:00.
    pub round_end: NaiveTime,
    /// How many working days after collection day a missed bin may still be reported (councils'
    /// usual rule is two). Default: 2.
    pub report_window_working_days: u32,
}

impl Default for CouncilCalendar {
    fn default() -> Self {
        Self {
            tz: chrono_tz::Europe::London,
            bank_holidays: england_and_wales_2026(),
            round_end: FIVE_PM,
            report_window_working_days: 2,
        }
    }
}

/// The bank holidays of England and Wales in 2026 (as GOV.UK lists them): New Year's Day
/// 1 January, Good Friday 3 April, Easter Monday 6 April, the early May bank holiday 4 May, the
/// spring bank holiday 25 May, the summer bank holiday 31 August, Christmas Day 25 December and
/// Boxing Day (substitute day) 28 December.
///
/// Only 2026: other years, Scotland's and Northern Ireland's holidays and local closures must be
/// configured. A missing holiday makes the report window one day shorter than it should be.
pub fn england_and_wales_2026() -> BTreeSet<NaiveDate> {
    [
        (1, 1),
        (4, 3),
        (4, 6),
        (5, 4),
        (5, 25),
        (8, 31),
        (12, 25),
        (12, 28),
    ]
    .into_iter()
    .filter_map(|(month, day)| NaiveDate::from_ymd_opt(2026, month, day))
    .collect()
}

impl CouncilCalendar {
    /// The instant in the council's time zone. Timestamps beyond chrono's range (hundreds of
    /// thousands of years away, so only from a broken clock) are clamped to that range.
    pub fn local(&self, ts: TimestampMs) -> DateTime<Tz> {
        local_in(self.tz, ts)
    }

    /// The local date of an instant.
    pub fn local_date(&self, ts: TimestampMs) -> NaiveDate {
        self.local(ts).date_naive()
    }

    /// The instant of a local date and time of day.
    ///
    /// Clock changes make some local times ambiguous or absent, and the answer must not depend on
    /// chance: a time that happens twice (the autumn fold) means its first occurrence, the earlier
    /// instant; a time that never happens (the spring gap) means the end of the gap, the first
    /// local minute that exists after it.
    pub fn to_utc(&self, date: NaiveDate, time: NaiveTime) -> TimestampMs {
        let naive = date.and_time(time);
        if let Some(at) = self.resolve(naive) {
            return at;
        }
        // In a gap: walk forward a minute at a time to its end. Gaps last at most a day (Samoa
        // skipped 30 December 2011), so this ends; the fallback only serves the edges of
        // chrono's range.
        let mut probe = naive
            .with_second(0)
            .and_then(|p| p.with_nanosecond(0))
            .unwrap_or(naive);
        for _ in 0..(2 * 24 * 60) {
            probe += Duration::minutes(1);
            if let Some(at) = self.resolve(probe) {
                return at;
            }
        }
        naive.and_utc().timestamp_millis()
    }

    fn resolve(&self, naive: NaiveDateTime) -> Option<TimestampMs> {
        match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(at) => Some(at.timestamp_millis()),
            LocalResult::Ambiguous(earlier, _) => Some(earlier.timestamp_millis()),
            LocalResult::None => None,
        }
    }

    /// When the rounds of a collection day are scheduled to have finished ([`Self::round_end`]
    /// on that date), as an instant.
    pub fn round_end_on(&self, date: NaiveDate) -> TimestampMs {
        self.to_utc(date, self.round_end)
    }

    /// Whether the council works that day: Monday to Friday and not a bank holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
            && !self.bank_holidays.contains(&date)
    }

    /// The `n`th working day after `date` (`date` itself when `n` is 0, working day or not).
    pub fn add_working_days(&self, date: NaiveDate, n: u32) -> NaiveDate {
        let mut day = date;
        let mut left = n;
        while left > 0 {
            match day.succ_opt() {
                Some(next) => day = next,
                None => return day,
            }
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// How many working days fall after `from` and on or before `to` (0 when `to` is not after
    /// `from`). After a Friday collection, Saturday and Sunday count 0 and Monday 1.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        from.iter_days()
            .skip(1)
            .take_while(|day| *day <= to)
            .filter(|day| self.is_working_day(*day))
            .fold(0u32, |n, _| n.saturating_add(1))
    }

    /// The last local day on which a missed collection on `collection_day` may be reported: the
    /// [`Self::report_window_working_days`]th working day after it.
    pub fn last_report_day(&self, collection_day: NaiveDate) -> NaiveDate {
        self.add_working_days(collection_day, self.report_window_working_days)
    }
}

/// An instant in a time zone, clamped to chrono's range as [`CouncilCalendar::local`] is.
pub fn local_in(tz: Tz, ts: TimestampMs) -> DateTime<Tz> {
    let utc = DateTime::<Utc>::from_timestamp_millis(ts).unwrap_or(if ts < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    utc.with_timezone(&tz)
}

/// (De)serializes a time zone as its IANA name ("Europe/London"), since chrono-tz's own serde
/// support is not enabled in this workspace.
mod tz_by_name {
    use chrono_tz::Tz;
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse::<Tz>().map_err(|_| {
            de::Error::custom(format!(
                "unknown time zone {name:?}: use an IANA name such as \"Europe/London\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> TimestampMs {
        date(y, mo, d)
            .and_time(time(h, mi))
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn default_is_london_with_the_2026_holidays_and_five_pm() {
        let cal = CouncilCalendar::default();
        assert_eq!(cal.tz, chrono_tz::Europe::London);
        assert_eq!(cal.bank_holidays.len(), 8);
        assert!(cal.bank_holidays.contains(&date(2026, 12, 28)));
        assert_eq!(cal.round_end, time(17, 0));
        assert_eq!(cal.report_window_working_days, 2);
    }

    #[test]
    fn local_date_in_winter_is_the_utc_date() {
        let cal = CouncilCalendar::default();
        assert_eq!(
            cal.local_date(utc_ms(2026, 1, 13, 23, 59)),
            date(2026, 1, 13)
        );
        assert_eq!(cal.local_date(utc_ms(2026, 1, 14, 0, 0)), date(2026, 1, 14));
    }

    #[test]
    fn local_date_in_summer_runs_an_hour_ahead_of_utc() {
        let cal = CouncilCalendar::default();
        // 23:30 UTC on 30 June is 00:30 BST on 1 July.
        assert_eq!(
            cal.local_date(utc_ms(2026, 6, 30, 23, 30)),
            date(2026, 7, 1)
        );
        assert_eq!(
            cal.local_date(utc_ms(2026, 6, 30, 22, 59)),
            date(2026, 6, 30)
        );
    }

    #[test]
    fn spring_clock_change_2026_03_29() {
        let cal = CouncilCalendar::default();
        // Clocks go forward at 01:00 UTC: 00:59 UTC is 00:59 GMT, 01:00 UTC is 02:00 BST.
        assert_eq!(
            cal.local_date(utc_ms(2026, 3, 28, 23, 59)),
            date(2026, 3, 28)
        );
        assert_eq!(
            cal.local_date(utc_ms(2026, 3, 29, 0, 30)),
            date(2026, 3, 29)
        );
        assert_eq!(cal.local(utc_ms(2026, 3, 29, 1, 0)).time(), time(2, 0));
        // After the change, local midnight is 23:00 UTC the evening before.
        assert_eq!(
            cal.local_date(utc_ms(2026, 3, 29, 23, 0)),
            date(2026, 3, 30)
        );
        assert_eq!(
            cal.local_date(utc_ms(2026, 3, 29, 22, 59)),
            date(2026, 3, 29)
        );
        // 01:30 local does not exist that night: it means the end of the gap, 02:00 BST.
        assert_eq!(
            cal.to_utc(date(2026, 3, 29), time(1, 30)),
            utc_ms(2026, 3, 29, 1, 0)
        );
        assert_eq!(
            cal.to_utc(date(2026, 3, 29), time(0, 30)),
            utc_ms(2026, 3, 29, 0, 30)
        );
        assert_eq!(
            cal.round_end_on(date(2026, 3, 29)),
            utc_ms(2026, 3, 29, 16, 0)
        );
    }

    #[test]
    fn autumn_clock_change_2026_10_25() {
        let cal = CouncilCalendar::default();
        // Clocks go back at 01:00 UTC: 00:30 UTC is 01:30 BST, 01:30 UTC is 01:30 GMT.
        assert_eq!(
            cal.local_date(utc_ms(2026, 10, 24, 22, 59)),
            date(2026, 10, 24)
        );
        assert_eq!(
            cal.local_date(utc_ms(2026, 10, 24, 23, 0)),
            date(2026, 10, 25)
        );
        assert_eq!(cal.local(utc_ms(2026, 10, 25, 0, 30)).time(), time(1, 30));
        assert_eq!(cal.local(utc_ms(2026, 10, 25, 1, 30)).time(), time(1, 30));
        // 01:30 local happens twice: it means the first, in BST.
        assert_eq!(
            cal.to_utc(date(2026, 10, 25), time(1, 30)),
            utc_ms(2026, 10, 25, 0, 30)
        );
        // After the change, local midnight is UTC midnight again.
        assert_eq!(
            cal.local_date(utc_ms(2026, 10, 25, 23, 59)),
            date(2026, 10, 25)
        );
        assert_eq!(
            cal.round_end_on(date(2026, 10, 25)),
            utc_ms(2026, 10, 25, 17, 0)
        );
        assert_eq!(
            cal.round_end_on(date(2026, 10, 23)),
            utc_ms(2026, 10, 23, 16, 0)
        );
    }

    #[test]
    fn working_days_skip_weekends_and_bank_holidays() {
        let cal = CouncilCalendar::default();
        assert!(cal.is_working_day(date(2026, 11, 24))); // Tuesday
        assert!(!cal.is_working_day(date(2026, 11, 28))); // Saturday
        assert!(!cal.is_working_day(date(2026, 4, 6))); // Easter Monday
                                                        // Tuesday + 2 = Thursday.
        assert_eq!(
            cal.add_working_days(date(2026, 11, 24), 2),
            date(2026, 11, 26)
        );
        // Friday + 2 = Tuesday, over the weekend.
        assert_eq!(
            cal.add_working_days(date(2026, 11, 27), 2),
            date(2026, 12, 1)
        );
        // Thursday 2 April + 2 = Wednesday 8 April, over Good Friday and Easter Monday.
        assert_eq!(cal.add_working_days(date(2026, 4, 2), 2), date(2026, 4, 8));
        assert_eq!(cal.add_working_days(date(2026, 4, 4), 0), date(2026, 4, 4));
        assert_eq!(
            cal.working_days_between(date(2026, 4, 2), date(2026, 4, 8)),
            2
        );
        assert_eq!(
            cal.working_days_between(date(2026, 11, 27), date(2026, 11, 29)),
            0
        );
        assert_eq!(
            cal.working_days_between(date(2026, 11, 27), date(2026, 11, 27)),
            0
        );
        assert_eq!(
            cal.working_days_between(date(2026, 11, 27), date(2026, 11, 20)),
            0
        );
        assert_eq!(cal.last_report_day(date(2026, 12, 24)), date(2026, 12, 30));
    }

    #[test]
    fn bank_holidays_are_configurable() {
        let mut cal = CouncilCalendar::default();
        cal.bank_holidays.clear();
        assert!(cal.is_working_day(date(2026, 4, 6)));
        cal.bank_holidays.insert(date(2027, 1, 1));
        assert!(!cal.is_working_day(date(2027, 1, 1)));
    }

    #[test]
    fn serializes_the_time_zone_by_name() {
        let cal = CouncilCalendar::default();
        let json = serde_json::to_string(&cal).unwrap();
        assert!(json.contains("\"Europe/London\""), "{json}");
        assert_eq!(serde_json::from_str::<CouncilCalendar>(&json).unwrap(), cal);
        let bad = json.replace("Europe/London", "Europe/Nowhere");
        let err = serde_json::from_str::<CouncilCalendar>(&bad).unwrap_err();
        assert!(err.to_string().contains("Europe/Nowhere"), "{err}");
    }
}

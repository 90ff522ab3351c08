//! When a property's bins are collected: on some weekdays, every week or every other week.

use std::fmt;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// A property's collection days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The weekdays of collection, in week order without repeats (most properties have one).
    pub weekdays: Vec<Weekday>,
    /// Every week, or every other week.
    pub frequency: Frequency,
}

/// How often collection weeks come round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Frequency {
    /// Every week.
    Weekly,
    /// Every other week: the week (Monday to Sunday) holding `anchor` is a collection week, and
    /// so is every second week before and after it.
    Fortnightly {
        /// Any date in a collection week, conventionally a collection day.
        anchor: NaiveDate,
    },
}

/// How far back or forward a collection day can be: two weeks cover both frequencies.
const FORTNIGHT_DAYS: u64 = 14;

impl Schedule {
    /// A schedule, with the weekdays put in week order and repeats dropped.
    pub fn new(weekdays: impl IntoIterator<Item = Weekday>, frequency: Frequency) -> Self {
        let mut weekdays: Vec<Weekday> = weekdays.into_iter().collect();
        weekdays.sort_by_key(|day| day.num_days_from_monday());
        weekdays.dedup();
        Self {
            weekdays,
            frequency,
        }
    }

    /// Whether bins are collected on `date`.
    pub fn is_collection_day(&self, date: NaiveDate) -> bool {
        self.weekdays.contains(&date.weekday()) && self.is_collection_week(date)
    }

    fn is_collection_week(&self, date: NaiveDate) -> bool {
        match self.frequency {
            Frequency::Weekly => true,
            Frequency::Fortnightly { anchor } => {
                let weeks = (week_start(date) - week_start(anchor)).num_days() / 7;
                weeks.rem_euclid(2) == 0
            }
        }
    }

    /// The latest collection day on or before `date`; `None` only when the schedule has no
    /// weekdays.
    pub fn last_collection_on_or_before(&self, date: NaiveDate) -> Option<NaiveDate> {
        std::iter::successors(Some(date), |day| day.pred_opt())
            .take(FORTNIGHT_DAYS as usize)
            .find(|day| self.is_collection_day(*day))
    }

    /// The earliest collection day on or after `date`; `None` only when the schedule has no
    /// weekdays.
    pub fn next_collection_on_or_after(&self, date: NaiveDate) -> Option<NaiveDate> {
        date.iter_days()
            .take(FORTNIGHT_DAYS as usize)
            .find(|day| self.is_collection_day(*day))
    }
}

/// The Monday of the week holding `date`.
fn week_start(date: NaiveDate) -> NaiveDate {
    date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday()))
}

impl fmt::Display for Schedule {
    /// "Tue weekly", "Mon;Thu fortnightly from 2026-01-06": the register's CSV notation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = self.weekdays.iter().map(|d| d.to_string()).collect();
        match self.frequency {
            Frequency::Weekly => write!(f, "{} weekly", days.join(";")),
            Frequency::Fortnightly { anchor } => {
                write!(f, "{} fortnightly from {anchor}", days.join(";"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn weekly_on_one_day() {
        let s = Schedule::new([Weekday::Tue], Frequency::Weekly);
        assert!(s.is_collection_day(date(2026, 11, 24)));
        assert!(!s.is_collection_day(date(2026, 11, 25)));
        assert_eq!(
            s.last_collection_on_or_before(date(2026, 11, 24)),
            Some(date(2026, 11, 24))
        );
        assert_eq!(
            s.last_collection_on_or_before(date(2026, 11, 23)),
            Some(date(2026, 11, 17))
        );
        assert_eq!(
            s.next_collection_on_or_after(date(2026, 11, 25)),
            Some(date(2026, 12, 1))
        );
    }

    #[test]
    fn twice_weekly_in_week_order() {
        let s = Schedule::new(
            [Weekday::Thu, Weekday::Mon, Weekday::Thu],
            Frequency::Weekly,
        );
        assert_eq!(s.weekdays, vec![Weekday::Mon, Weekday::Thu]);
        assert_eq!(
            s.last_collection_on_or_before(date(2026, 11, 25)),
            Some(date(2026, 11, 23))
        );
        assert_eq!(
            s.last_collection_on_or_before(date(2026, 11, 29)),
            Some(date(2026, 11, 26))
        );
        assert_eq!(s.to_string(), "Mon;Thu weekly");
    }

    #[test]
    fn fortnightly_alternates_weeks_either_side_of_the_anchor() {
        // Anchor on Wednesday 7 January 2026.
        let s = Schedule::new(
            [Weekday::Wed],
            Frequency::Fortnightly {
                anchor: date(2026, 1, 7),
            },
        );
        assert!(s.is_collection_day(date(2026, 1, 7)));
        assert!(!s.is_collection_day(date(2026, 1, 14)));
        assert!(s.is_collection_day(date(2026, 1, 21)));
        assert!(s.is_collection_day(date(2025, 12, 24)));
        assert!(!s.is_collection_day(date(2025, 12, 31)));
        // In the off week, the last collection was the fortnight before.
        assert_eq!(
            s.last_collection_on_or_before(date(2026, 1, 15)),
            Some(date(2026, 1, 7))
        );
        assert_eq!(
            s.next_collection_on_or_after(date(2026, 1, 8)),
            Some(date(2026, 1, 21))
        );
    }

    #[test]
    fn fortnightly_anchor_may_be_any_day_of_its_week() {
        // A Sunday anchor marks the week Monday 29 December 2025 to Sunday 4 January 2026.
        let s = Schedule::new(
            [Weekday::Mon],
            Frequency::Fortnightly {
                anchor: date(2026, 1, 4),
            },
        );
        assert!(s.is_collection_day(date(2025, 12, 29)));
        assert!(!s.is_collection_day(date(2026, 1, 5)));
        assert!(s.is_collection_day(date(2026, 1, 12)));
    }

    #[test]
    fn no_weekdays_means_no_collection() {
        let s = Schedule::new([], Frequency::Weekly);
        assert_eq!(s.last_collection_on_or_before(date(2026, 1, 1)), None);
    }

    #[test]
    fn serde_round_trip() {
        let s = Schedule::new(
            [Weekday::Wed],
            Frequency::Fortnightly {
                anchor: date(2026, 1, 7),
            },
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }
}

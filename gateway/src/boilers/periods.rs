//! Days and months: rollups of the council's local calendar days and months, stored beside the
//! hours and kept equal to the merge of them, so that a year or an estate is read from a few
//! hundred values instead of thousands of hours per boiler.
//!
//! The rule that keeps them true, [`periods_to_write`]: a day's rollup is stored once its last
//! hour has data (or it is rebuilt from the hours, see [`all_periods`]), and from then on is
//! recomputed from its hours in the same write as any of them changes; a month likewise from its
//! days. A day still filling (today) has no stored rollup, so folding the current hour never
//! pays for its day and month: readers merge that day's hours instead.
//!
//! Readers ask [`rollup_over`] for any span: it takes the stored months wholly inside it, then
//! the stored days in what is left, then the hours for the rest. The answer is the same as
//! merging the span's hours ([`merge_period`]), which a property test checks on the embedded
//! store; a log without stored periods (as [`super::MemoryLog`], or the ingest's pending view
//! while it folds) is read from its hours.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate};
use chrono_tz::Tz;
use proto::TimestampMs;

use super::efficiency::month_bounds;
use super::rollup::{day_bounds, hour_of, merge_period, Rollup, TelemetryLog};

/// Which stored period a rollup is: a local day or a local month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// A local calendar day (23 or 25 hours when the clocks change).
    Day,
    /// A local calendar month.
    Month,
}

/// The UTC bounds of the local day holding `at_ms`.
pub fn day_holding(at_ms: TimestampMs, tz: Tz) -> (TimestampMs, TimestampMs) {
    day_bounds(local_date(at_ms, tz), tz)
}

/// The UTC bounds of the local month holding `at_ms`.
pub fn month_holding(at_ms: TimestampMs, tz: Tz) -> (TimestampMs, TimestampMs) {
    let date = local_date(at_ms, tz);
    month_bounds(date.year(), date.month(), tz).unwrap_or_else(|| day_bounds(date, tz))
}

fn local_date(at_ms: TimestampMs, tz: Tz) -> NaiveDate {
    DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .date_naive()
}

/// The rollup of `[start_ms, end_ms)` from the coarsest levels `log` stores: equal to
/// [`merge_period`] over the span's hours.
pub fn rollup_over<L: TelemetryLog>(
    log: &L,
    start_ms: TimestampMs,
    end_ms: TimestampMs,
) -> Result<Rollup, L::Error> {
    let mut period = Rollup::empty(start_ms, end_ms);
    for part in parts_of(log, start_ms, end_ms)? {
        period.merge(&part);
    }
    period.start_ms = start_ms;
    period.end_ms = end_ms;
    Ok(period)
}

/// Rollups that together cover `[start_ms, end_ms)` without overlap: stored months and days
/// wholly inside it, and hours for the rest.
fn parts_of<L: TelemetryLog>(
    log: &L,
    start_ms: TimestampMs,
    end_ms: TimestampMs,
) -> Result<Vec<Rollup>, L::Error> {
    if end_ms <= start_ms {
        return Ok(Vec::new());
    }
    let Some(months) = log.periods_in(Level::Month, start_ms, end_ms)? else {
        return log.hours_in(start_ms, end_ms);
    };
    let mut parts = Vec::new();
    let mut rest = vec![(start_ms, end_ms)];
    take_whole(&mut rest, &mut parts, months);
    let mut days = Vec::new();
    for (from, to) in &rest {
        days.extend(log.periods_in(Level::Day, *from, *to)?.unwrap_or_default());
    }
    take_whole(&mut rest, &mut parts, days);
    for (from, to) in rest {
        parts.extend(log.hours_in(from, to)?);
    }
    Ok(parts)
}

/// Moves the periods of `stored` that lie wholly inside one of the spans of `rest` into
/// `parts`, and cuts them out of `rest`.
fn take_whole(
    rest: &mut Vec<(TimestampMs, TimestampMs)>,
    parts: &mut Vec<Rollup>,
    stored: Vec<Rollup>,
) {
    let inside: Vec<Rollup> = stored
        .into_iter()
        .filter(|p| rest.iter().any(|(a, b)| p.start_ms >= *a && p.end_ms <= *b))
        .collect();
    *rest = uncovered(rest, &inside);
    parts.extend(inside);
}

/// What of `spans` is left once `taken` (each within one span, none overlapping) is cut out.
fn uncovered(
    spans: &[(TimestampMs, TimestampMs)],
    taken: &[Rollup],
) -> Vec<(TimestampMs, TimestampMs)> {
    let mut cuts: Vec<(TimestampMs, TimestampMs)> =
        taken.iter().map(|p| (p.start_ms, p.end_ms)).collect();
    cuts.sort_unstable();
    let mut left = Vec::new();
    for &(from, to) in spans {
        let mut at = from;
        for &(a, b) in cuts.iter().filter(|(a, b)| *a >= from && *b <= to) {
            if a > at {
                left.push((at, a));
            }
            at = at.max(b);
        }
        if at < to {
            left.push((at, to));
        }
    }
    left
}

/// A local day's rollup.
pub fn day_rollup<L: TelemetryLog>(log: &L, date: NaiveDate, tz: Tz) -> Result<Rollup, L::Error> {
    let (start, end) = day_bounds(date, tz);
    rollup_over(log, start, end)
}

/// Each local day from `first` to `last` inclusive with its rollup: stored days where the log
/// has them, the day's hours merged otherwise; days without data have coverage 0.
pub fn daily_series<L: TelemetryLog>(
    log: &L,
    first: NaiveDate,
    last: NaiveDate,
    tz: Tz,
) -> Result<Vec<(NaiveDate, Rollup)>, L::Error> {
    let Some(after_last) = last.succ_opt() else {
        return Ok(Vec::new());
    };
    let (from, to) = (day_bounds(first, tz).0, day_bounds(after_last, tz).0);
    let dates: Vec<(NaiveDate, TimestampMs, TimestampMs)> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|date| {
            let (start, end) = day_bounds(date, tz);
            (date, start, end)
        })
        .collect();
    let stored: BTreeMap<TimestampMs, Rollup> = log
        .periods_in(Level::Day, from, to)?
        .unwrap_or_default()
        .into_iter()
        .map(|day| (day.start_ms, day))
        .collect();
    // The days without a stored rollup, read from their hours a run of days at a time: a year
    // without stored days is one range scan, not 365.
    let mut hours = Vec::new();
    let mut run: Option<(TimestampMs, TimestampMs)> = None;
    for (_, start, end) in dates.iter().filter(|(_, s, _)| !stored.contains_key(s)) {
        run = match run {
            Some((a, b)) if b == *start => Some((a, *end)),
            Some((a, b)) => {
                hours.extend(log.hours_in(a, b)?);
                Some((*start, *end))
            }
            None => Some((*start, *end)),
        };
    }
    if let Some((a, b)) = run {
        hours.extend(log.hours_in(a, b)?);
    }
    // In time order, so each day's hours are the next run of them.
    let mut rest = hours.as_slice();
    let mut series = Vec::with_capacity(dates.len());
    for (date, start, end) in dates {
        let day = match stored.get(&start) {
            Some(day) => merge_period(start, end, std::slice::from_ref(day)),
            None => {
                let skipped = rest.iter().take_while(|h| h.start_ms < start).count();
                rest = &rest[skipped..];
                let within = rest.iter().take_while(|h| h.start_ms < end).count();
                let day = merge_period(start, end, &rest[..within]);
                rest = &rest[within..];
                day
            }
        };
        series.push((date, day));
    }
    Ok(series)
}

/// Where stored periods come from while a group is written: the store's days and months as
/// they were before the group.
pub trait StoredPeriods {
    /// Why the store failed.
    type Error;
    /// The stored periods of `level` starting in `[from_ms, to_ms)`, in time order.
    fn stored(
        &self,
        level: Level,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<Rollup>, Self::Error>;
}

/// The days and months to store when the hours starting at `touched` change, with `log`
/// reading the hours as they will be after the write and `stored` the periods as they are
/// before it: every day and month already stored over a touched hour (so they stay equal to
/// their hours), and those whose last hour or day is now among the touched.
pub fn periods_to_write<L, S>(
    log: &L,
    stored: &S,
    touched: &BTreeSet<TimestampMs>,
    tz: Tz,
) -> Result<Vec<(Level, Rollup)>, L::Error>
where
    L: TelemetryLog,
    S: StoredPeriods<Error = L::Error>,
{
    let days: BTreeSet<(TimestampMs, TimestampMs)> =
        touched.iter().map(|&hour| day_holding(hour, tz)).collect();
    let mut writes = Vec::new();
    let mut new_days: BTreeMap<TimestampMs, Rollup> = BTreeMap::new();
    for &(start, end) in &days {
        let last_hour_touched = touched.contains(&hour_of(end - 1));
        if last_hour_touched || !stored.stored(Level::Day, start, start + 1)?.is_empty() {
            let day = merge_period(start, end, &log.hours_in(start, end)?);
            new_days.insert(start, day.clone());
            writes.push((Level::Day, day));
        }
    }
    let months: BTreeSet<(TimestampMs, TimestampMs)> = days
        .iter()
        .map(|&(start, _)| month_holding(start, tz))
        .collect();
    for (start, end) in months {
        let last_day_touched = days.iter().any(|&(_, day_end)| day_end == end);
        if !last_day_touched && stored.stored(Level::Month, start, start + 1)?.is_empty() {
            continue;
        }
        let mut days_of_month: BTreeMap<TimestampMs, Rollup> = stored
            .stored(Level::Day, start, end)?
            .into_iter()
            .map(|day| (day.start_ms, day))
            .collect();
        days_of_month.extend(
            new_days
                .range(start..end)
                .map(|(at, day)| (*at, day.clone())),
        );
        let mut month = Rollup::empty(start, end);
        let mut day_start = start;
        while day_start < end {
            let (_, day_end) = day_holding(day_start, tz);
            match days_of_month.get(&day_start) {
                Some(day) => month.merge(day),
                None => {
                    for hour in log.hours_in(day_start, day_end)? {
                        month.merge(&hour);
                    }
                }
            }
            day_start = day_end;
        }
        month.start_ms = start;
        month.end_ms = end;
        writes.push((Level::Month, month));
    }
    Ok(writes)
}

/// Every day and month with data in `hours` (one boiler's, in time order): what a store holds
/// once its periods are rebuilt from its hours.
pub fn all_periods(hours: &[Rollup], tz: Tz) -> Vec<(Level, Rollup)> {
    let mut days: BTreeMap<(TimestampMs, TimestampMs), Rollup> = BTreeMap::new();
    for hour in hours {
        let (start, end) = day_holding(hour.start_ms, tz);
        days.entry((start, end))
            .or_insert_with(|| Rollup::empty(start, end))
            .merge(hour);
    }
    let mut months: BTreeMap<(TimestampMs, TimestampMs), Rollup> = BTreeMap::new();
    for (&(start, _), day) in &days {
        let (m_start, m_end) = month_holding(start, tz);
        months
            .entry((m_start, m_end))
            .or_insert_with(|| Rollup::empty(m_start, m_end))
            .merge(day);
    }
    let stamp = |level, ((start, end), mut rollup): ((TimestampMs, TimestampMs), Rollup)| {
        rollup.start_ms = start;
        rollup.end_ms = end;
        (level, rollup)
    };
    days.into_iter()
        .map(|entry| stamp(Level::Day, entry))
        .chain(months.into_iter().map(|entry| stamp(Level::Month, entry)))
        .collect()
}

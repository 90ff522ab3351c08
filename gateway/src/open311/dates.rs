//! W3C date-times, the subset of ISO 8601 that GeoReport v2 requires: written in the council's
//! local offset (what a resident reading the raw answer expects), read with any offset.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Formats `instant` as a W3C date-time with the offset `tz` has at that instant, to the second:
/// `2026-11-24T07:42:00+00:00` in winter, `2026-07-01T07:42:00+01:00` in summer in London.
pub fn format_w3c(instant: DateTime<Utc>, tz: Tz) -> String {
    instant
        .with_timezone(&tz)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A date the client sent that is not a W3C date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be a W3C date-time with a time zone, such as 2026-11-24T07:42:00Z or \
     2026-06-24T07:42:00+01:00, or a date such as 2026-11-24"
)]
pub struct DateError;

/// Which end of a range a date without a time stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The first instant of that day in the council's time zone.
    Start,
    /// The last instant of that day in the council's time zone.
    End,
}

/// The longest date text worth trying to parse.
const MAX_DATE_CHARS: usize = 64;

/// Parses a W3C date-time with a time zone (seconds and fractions optional). A date alone
/// (`2026-11-24`, which the W3C note also allows) is a whole day in the council's time zone,
/// `bound` saying which end of it.
///
/// A space where the offset's sign should be is read as `+`: clients that build query strings
/// by hand often leave `+01:00` unencoded, and the query decoder turns `+` into a space.
pub fn parse_w3c(text: &str, tz: Tz, bound: Bound) -> Result<DateTime<Utc>, DateError> {
    let text = text.trim();
    if text.len() > MAX_DATE_CHARS {
        return Err(DateError);
    }
    let text = restore_plus(text);

    if text.len() == 10 {
        let day = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| DateError)?;
        return Ok(match bound {
            Bound::Start => local_midnight(day, tz),
            Bound::End => match day.succ_opt() {
                Some(next) => local_midnight(next, tz) - Duration::nanoseconds(1),
                None => return Err(DateError),
            },
        });
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(&text) {
        return Ok(instant.with_timezone(&Utc));
    }
    // The W3C note also allows hours and minutes without seconds.
    let with_offset = match text.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => text.into_owned(),
    };
    DateTime::<FixedOffset>::parse_from_str(&with_offset, "%Y-%m-%dT%H:%M%:z")
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| DateError)
}

/// Parses a date-time a client stamped something with (FixMyStreet's `updated_datetime` on a
/// comment): a W3C date-time as [`parse_w3c`] reads it, or one without an offset, read as the
/// council's local time. FixMyStreet writes its comment times with Perl's W3CDTF formatter,
/// which leaves the offset out of a time that has no zone attached.
pub fn parse_client_time(text: &str, tz: Tz) -> Result<DateTime<Utc>, DateError> {
    if let Ok(instant) = parse_w3c(text, tz, Bound::Start) {
        return Ok(instant);
    }
    let text = text.trim();
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .and_then(|naive| tz.from_local_datetime(&naive).earliest())
        .map(|local| local.with_timezone(&Utc))
        .ok_or(DateError)
}

/// `2026-07-01T07:42:00 01:00` → `2026-07-01T07:42:00+01:00`; anything else unchanged.
fn restore_plus(text: &str) -> std::borrow::Cow<'_, str> {
    if let Some((head, offset)) = text.rsplit_once(' ') {
        let b = offset.as_bytes();
        let looks_like_offset =
            b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
        if looks_like_offset && head.contains('T') {
            return format!("{head}+{offset}").into();
        }
    }
    text.into()
}

/// Midnight at the start of `day` in `tz`. Midnight always exists in the UK (clocks change at
/// 01:00 and 02:00); for a zone where it may not, the day's start in UTC is close enough.
fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = day.and_time(NaiveTime::MIN);
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|local| local.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono_tz::Europe::London;

    #[test]
    fn client_times_without_an_offset_are_local() {
        let utc = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        // What FixMyStreet's W3CDTF formatter writes for a zoned and for a floating time.
        assert_eq!(
            parse_client_time("2026-07-01T10:05:00+01:00", London).unwrap(),
            utc("2026-07-01T09:05:00Z")
        );
        assert_eq!(
            parse_client_time("2026-07-01T10:05:00", London).unwrap(),
            utc("2026-07-01T09:05:00Z")
        );
        assert_eq!(
            parse_client_time("2026-11-25T10:05:00Z", London).unwrap(),
            utc("2026-11-25T10:05:00Z")
        );
        assert!(parse_client_time("yesterday", London).is_err());
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn formats_with_greenwich_offset_in_winter_and_summer_time_in_summer() {
        assert_eq!(
            format_w3c(utc("2026-11-24T07:42:00Z"), London),
            "2026-11-24T07:42:00+00:00"
        );
        assert_eq!(
            format_w3c(utc("2026-07-01T06:42:00Z"), London),
            "2026-07-01T07:42:00+01:00"
        );
        // Either side of the spring change (01:00 GMT on 29 March 2026).
        assert_eq!(
            format_w3c(utc("2026-03-29T00:59:59Z"), London),
            "2026-03-29T00:59:59+00:00"
        );
        assert_eq!(
            format_w3c(utc("2026-03-29T01:00:00Z"), London),
            "2026-03-29T02:00:00+01:00"
        );
    }

    #[test]
    fn parses_every_w3c_form_with_a_zone() {
        let expected = utc("2026-07-01T06:42:00Z");
        for text in [
            "2026-07-01T06:42:00Z",
            "2026-07-01T07:42:00+01:00",
            "2026-07-01T07:42:00 01:00",
            "2026-07-01T06:42Z",
            "2026-07-01T07:42+01:00",
            "2026-07-01T06:42:00.000Z",
            " 2026-07-01T06:42:00Z ",
        ] {
            assert_eq!(
                parse_w3c(text, London, Bound::Start),
                Ok(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn a_date_alone_is_a_local_day() {
        assert_eq!(
            parse_w3c("2026-07-01", London, Bound::Start),
            Ok(utc("2026-06-30T23:00:00Z"))
        );
        assert_eq!(
            parse_w3c("2026-07-01", London, Bound::End),
            Ok(utc("2026-07-01T22:59:59.999999999Z"))
        );
        assert_eq!(
            parse_w3c("2026-12-01", London, Bound::Start),
            Ok(utc("2026-12-01T00:00:00Z"))
        );
    }

    #[test]
    fn rejects_dates_without_a_zone_or_malformed() {
        for text in [
            "",
            "2026",
            "2026-07",
            "2026-07-01T07:42:00",
            "2026-13-01",
            "yesterday",
            "2026-07-01T07:42:00+25:00",
            &"9".repeat(100),
        ] {
            assert_eq!(
                parse_w3c(text, London, Bound::Start),
                Err(DateError),
                "{text}"
            );
        }
    }
}

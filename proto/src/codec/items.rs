//! Where each CBOR data item lies in a byte string, without decoding it: what lets
//! [`super::decode_batch`] decode a batch's header fields and its records one by one, so that one
//! bad record is refused on its own instead of taking its batch with it. serde reads each record
//! where it starts; only a refused record is walked over here, to find where the next begins.
//!
//! Only well-formedness (RFC 8949 section 3) is checked here: heads, lengths that the bytes can
//! back, breaks where indefinite lengths allow them, and a nesting limit. What the items mean is
//! serde's job.

/// How deep items may nest before the walk gives up, as serde_cbor's own limit.
const MAX_DEPTH: usize = 128;

/// Why the bytes are not a well-formed item where one was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} at byte {1}")]
pub(super) struct NotWellFormed(&'static str, usize);

/// An item's head: its major type and its argument (`None` for an indefinite length).
struct Head {
    major: u8,
    argument: Option<u64>,
    /// Where the item's content (or, for a tag, its tagged item) starts.
    next: usize,
}

/// The break code that ends an indefinite-length item.
const BREAK: u8 = 0xff;

fn head(bytes: &[u8], at: usize) -> Result<Head, NotWellFormed> {
    let initial = *bytes.get(at).ok_or(NotWellFormed("unexpected end", at))?;
    let (major, info) = (initial >> 5, initial & 0x1f);
    let width = match info {
        0..=23 => {
            return Ok(Head {
                major,
                argument: Some(u64::from(info)),
                next: at + 1,
            })
        }
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 if matches!(major, 2..=5) => {
            return Ok(Head {
                major,
                argument: None,
                next: at + 1,
            })
        }
        _ => {
            return Err(NotWellFormed(
                "reserved or misplaced additional information",
                at,
            ))
        }
    };
    let start = at + 1;
    let raw = bytes
        .get(start..start + width)
        .ok_or(NotWellFormed("unexpected end", start))?;
    let argument = raw.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
    Ok(Head {
        major,
        argument: Some(argument),
        next: start + width,
    })
}

/// `at + length`, if the bytes hold that many after `at`.
fn advance(bytes: &[u8], at: usize, length: u64) -> Result<usize, NotWellFormed> {
    usize::try_from(length)
        .ok()
        .and_then(|length| at.checked_add(length))
        .filter(|&end| end <= bytes.len())
        .ok_or(NotWellFormed("length runs past the end", at))
}

/// Where the item starting at `at` ends.
pub(super) fn skip(bytes: &[u8], at: usize) -> Result<usize, NotWellFormed> {
    skip_nested(bytes, at, 0)
}

fn skip_nested(bytes: &[u8], at: usize, depth: usize) -> Result<usize, NotWellFormed> {
    if depth > MAX_DEPTH {
        return Err(NotWellFormed("nested too deeply", at));
    }
    let head = head(bytes, at)?;
    match (head.major, head.argument) {
        (0 | 1 | 7, _) => Ok(head.next),
        (2 | 3, Some(length)) => advance(bytes, head.next, length),
        (2 | 3, None) => {
            // Chunks of the same major type, each definite, until the break.
            let mut at = head.next;
            while bytes.get(at) != Some(&BREAK) {
                let chunk = self::head(bytes, at)?;
                match (chunk.major == head.major, chunk.argument) {
                    (true, Some(length)) => at = advance(bytes, chunk.next, length)?,
                    _ => return Err(NotWellFormed("bad chunk in an indefinite string", at)),
                }
            }
            Ok(at + 1)
        }
        (4 | 5, Some(count)) => {
            let items = if head.major == 5 {
                count.checked_mul(2)
            } else {
                Some(count)
            };
            let items = items.ok_or(NotWellFormed("length runs past the end", at))?;
            let mut at = head.next;
            for _ in 0..items {
                at = skip_nested(bytes, at, depth + 1)?;
            }
            Ok(at)
        }
        (4 | 5, None) => {
            let mut at = head.next;
            while bytes.get(at) != Some(&BREAK) {
                at = skip_nested(bytes, at, depth + 1)?;
                if head.major == 5 {
                    at = skip_nested(bytes, at, depth + 1)?;
                }
            }
            Ok(at + 1)
        }
        // A tag: its content is one item.
        _ => skip_nested(bytes, head.next, depth + 1),
    }
}

/// Where a map or an array starts: how many entries or items it claims (`None` for an indefinite
/// length) and where the first begins. `None` when the item at `at` is not of that major type
/// (`MAP` or `ARRAY`).
pub(super) fn container(
    bytes: &[u8],
    at: usize,
    major: u8,
) -> Result<Option<(Option<u64>, usize)>, NotWellFormed> {
    let h = head(bytes, at)?;
    Ok((h.major == major).then_some((h.argument, h.next)))
}

/// The major type of a map.
pub(super) const MAP: u8 = 5;
/// The major type of an array.
pub(super) const ARRAY: u8 = 4;

/// Whether a map or array has no more entries at `*at`, with `left` the entries it has left
/// (`None` for an indefinite length); steps past the break code that ends an indefinite one, and
/// counts one entry off a definite one that goes on.
pub(super) fn at_end(bytes: &[u8], at: &mut usize, left: &mut Option<u64>) -> bool {
    match left {
        Some(0) => true,
        Some(n) => {
            *n -= 1;
            false
        }
        None if bytes.get(*at) == Some(&BREAK) => {
            *at += 1;
            true
        }
        None => false,
    }
}

/// `item` as text, if it is a definite-length, valid UTF-8 text string.
pub(super) fn text(item: &[u8]) -> Option<&str> {
    let h = head(item, 0).ok()?;
    let content = item.get(h.next..)?;
    (h.major == 3 && h.argument == Some(content.len() as u64))
        .then(|| std::str::from_utf8(content).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_maps_and_arrays_of_either_length() {
        // {"a": [1, "xy"]} and {_ "a": [_ 1, (_ h'01', h'02') ] }
        for bytes in [
            &[0xa1, 0x61, b'a', 0x82, 0x01, 0x62, b'x', b'y'][..],
            &[
                0xbf, 0x61, b'a', 0x9f, 0x01, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0xff, 0xff,
            ],
        ] {
            let (mut left, mut at) = container(bytes, 0, MAP).unwrap().unwrap();
            assert!(!at_end(bytes, &mut at, &mut left));
            let key_end = skip(bytes, at).unwrap();
            assert_eq!(text(&bytes[at..key_end]), Some("a"));
            let (mut items_left, mut item) = container(bytes, key_end, ARRAY).unwrap().unwrap();
            let mut items = 0;
            while !at_end(bytes, &mut item, &mut items_left) {
                item = skip(bytes, item).unwrap();
                items += 1;
            }
            assert_eq!(items, 2);
            assert!(at_end(bytes, &mut item, &mut left));
            assert_eq!(item, bytes.len());
            assert_eq!(skip(bytes, 0).unwrap(), bytes.len());
        }
        assert_eq!(container(&[0x80], 0, MAP).unwrap(), None);
        assert_eq!(text(&[0x41, b'a']), None, "bytes are not text");
    }

    #[test]
    fn refuses_what_the_bytes_cannot_back() {
        assert!(skip(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0).is_err());
        assert!(skip(&[0x62, b'x'], 0).is_err());
        assert!(skip(&[0x1c], 0).is_err());
        assert!(skip(&[0x81; 200], 0).is_err());
        assert!(skip(&[], 0).is_err());
    }
}

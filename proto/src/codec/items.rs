//! Where each CBOR data item lies in a byte string, without decoding it: what lets
//! [`super::decode_batch`] decode a batch's records one by one, so that one bad record is refused
//! on its own instead of taking its batch with it.
//!
//! Only well-formedness (RFC 8949 section 3) is checked here: heads, lengths that the bytes can
//! back, breaks where indefinite lengths allow them, and a nesting limit. What the items mean is
//! serde's job.

use std::ops::Range;

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

/// The spans of the items of the array under the text key `key` in the map that makes up all of
/// `bytes`, or `None` when the map has no such key or its value is not an array.
pub(super) fn array_under_key(
    bytes: &[u8],
    key: &str,
) -> Result<Option<Vec<Range<usize>>>, NotWellFormed> {
    let map = head(bytes, 0)?;
    if map.major != 5 {
        return Ok(None);
    }
    let mut at = map.next;
    let mut entries_left = map.argument;
    loop {
        match entries_left {
            Some(0) => return Ok(None),
            Some(ref mut n) => *n -= 1,
            None if bytes.get(at) == Some(&BREAK) => return Ok(None),
            None => {}
        }
        let key_end = skip(bytes, at)?;
        if is_text(&bytes[at..key_end], key) {
            return array_items(bytes, key_end).map(Some);
        }
        at = skip(bytes, key_end)?;
    }
}

/// Whether `item` is `text` as a definite-length text string.
fn is_text(item: &[u8], text: &str) -> bool {
    head(item, 0).is_ok_and(|h| {
        h.major == 3 && h.argument == Some(text.len() as u64) && &item[h.next..] == text.as_bytes()
    })
}

/// The spans of the items of the array starting at `at`, or none if it is not an array.
fn array_items(bytes: &[u8], at: usize) -> Result<Vec<Range<usize>>, NotWellFormed> {
    let array = head(bytes, at)?;
    if array.major != 4 {
        return Ok(Vec::new());
    }
    // Never reserve on the header's word alone; a batch's array has been counted by now anyway.
    let claimed = array.argument.unwrap_or(0);
    let reserve = usize::try_from(claimed)
        .unwrap_or(0)
        .min(crate::MAX_BATCH_RECORDS);
    let mut spans = Vec::with_capacity(reserve);
    let mut at = array.next;
    loop {
        match array.argument {
            Some(count) if spans.len() as u64 == count => return Ok(spans),
            None if bytes.get(at) == Some(&BREAK) => return Ok(spans),
            _ => {}
        }
        let end = skip(bytes, at)?;
        spans.push(at..end);
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_item_of_the_array_under_a_key() {
        // {"a": 1, "recs": [1, "xy", [2]]}
        let bytes = [
            0xa2, 0x61, b'a', 0x01, 0x64, b'r', b'e', b'c', b's', 0x83, 0x01, 0x62, b'x', b'y',
            0x81, 0x02,
        ];
        let spans = array_under_key(&bytes, "recs").unwrap().unwrap();
        assert_eq!(spans, vec![10..11, 11..14, 14..16]);
        assert_eq!(array_under_key(&bytes, "other").unwrap(), None);
    }

    #[test]
    fn handles_indefinite_lengths() {
        // {_ "recs": [_ 1, (_ h'01', h'02') ] }
        let bytes = [
            0xbf, 0x64, b'r', b'e', b'c', b's', 0x9f, 0x01, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff,
            0xff, 0xff,
        ];
        let spans = array_under_key(&bytes, "recs").unwrap().unwrap();
        assert_eq!(spans, vec![7..8, 8..14]);
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

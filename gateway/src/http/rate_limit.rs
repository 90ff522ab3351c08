//! Rate limits on Open311 posts, per client address and per `api_key`: token buckets (a burst,
//! refilled at a steady rate) kept for a bounded number of keys, so that what outsiders send
//! cannot grow the gateway's memory. The buckets are pure bookkeeping over the caller's clock;
//! the middleware answers 429 with `Retry-After` when one is empty.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::TimestampMs;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

/// A rate: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// How many may come at once after a quiet spell.
    pub burst: u32,
    /// How many a minute, sustained.
    pub per_minute: u32,
}

/// One key's bucket: its tokens (in thousandths, so that slow rates refill smoothly) and when
/// they were counted.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli_tokens: u64,
    at: TimestampMs,
}

impl Bucket {
    fn full(rate: Rate, now: TimestampMs) -> Self {
        Self {
            milli_tokens: u64::from(rate.burst) * 1000,
            at: now,
        }
    }

    /// Refills for the time since it was last counted.
    fn refill(&mut self, rate: Rate, now: TimestampMs) {
        let elapsed_ms = u64::try_from(now.saturating_sub(self.at)).unwrap_or(0);
        // per_minute tokens a minute = per_minute thousandths of a token per 60 ms.
        let added = elapsed_ms.saturating_mul(u64::from(rate.per_minute)) / 60;
        let cap = u64::from(rate.burst) * 1000;
        self.milli_tokens = self.milli_tokens.saturating_add(added).min(cap);
        self.at = self.at.max(now);
    }

    /// Takes one token, or says in how many seconds one will be there.
    fn take(&mut self, rate: Rate, now: TimestampMs) -> Result<(), u64> {
        self.refill(rate, now);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            return Ok(());
        }
        let missing = 1000 - self.milli_tokens;
        let per_minute = u64::from(rate.per_minute.max(1));
        Err((missing * 60).div_ceil(per_minute * 1000).max(1))
    }

    fn is_full(&self, rate: Rate) -> bool {
        self.milli_tokens >= u64::from(rate.burst) * 1000
    }
}

/// Buckets for up to `max_keys` keys. When every place is taken, buckets that have refilled are
/// dropped (they hold nothing a new bucket would not); if none has, new keys share one bucket,
/// so that a crowd of new keys is limited together rather than growing the map.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: Rate,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
    overflow: Option<Bucket>,
    last_sweep: Option<TimestampMs>,
}

impl<K: Eq + Hash + Clone> KeyedBuckets<K> {
    /// Buckets at `rate` for up to `max_keys` keys.
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys,
            buckets: HashMap::new(),
            overflow: None,
            last_sweep: None,
        }
    }

    /// Takes one token from `key`'s bucket at `now`: `Err(seconds)` to wait when it is empty.
    pub fn take(&mut self, key: &K, now: TimestampMs) -> Result<(), u64> {
        let rate = self.rate;
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.sweep(now);
        }
        if let Some(bucket) = self.buckets.get_mut(key) {
            return bucket.take(rate, now);
        }
        if self.buckets.len() < self.max_keys {
            let mut bucket = Bucket::full(rate, now);
            let taken = bucket.take(rate, now);
            self.buckets.insert(key.clone(), bucket);
            return taken;
        }
        self.overflow
            .get_or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Drops the buckets that have refilled, at most once a second (a sweep visits them all).
    fn sweep(&mut self, now: TimestampMs) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_sub(last) < 1000)
        {
            return;
        }
        self.last_sweep = Some(now);
        let rate = self.rate;
        self.buckets.retain(|_, bucket| {
            bucket.refill(rate, now);
            !bucket.is_full(rate)
        });
    }

    /// How many keys have a bucket of their own.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The address a limit counts a client by: IPv4 as it is, IPv6 by its /64 (one subscriber's
/// network, which a client can pick addresses in at will).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// The longest part of an `api_key` a limit keys by: longer keys are no key the gateway issued,
/// and are limited together by their first bytes.
const MAX_KEY_BYTES: usize = 128;
/// Keys (addresses, api keys) with a bucket of their own, for each limit.
const MAX_KEYS: usize = 10_000;

/// The Open311 post limits, shared by every request.
#[derive(Clone)]
pub struct Open311Limits {
    per_address: Arc<Mutex<KeyedBuckets<IpAddr>>>,
    per_key: Arc<Mutex<KeyedBuckets<String>>>,
    /// The largest urlencoded body read for its `api_key` (the handler's own limit).
    max_form_bytes: usize,
    clock: SharedClock,
}

impl Open311Limits {
    /// Limits at `per_address` and `per_key`.
    pub fn new(
        per_address: Rate,
        per_key: Rate,
        max_form_bytes: usize,
        clock: SharedClock,
    ) -> Self {
        Self {
            per_address: Arc::new(Mutex::new(KeyedBuckets::new(per_address, MAX_KEYS))),
            per_key: Arc::new(Mutex::new(KeyedBuckets::new(per_key, MAX_KEYS))),
            max_form_bytes,
            clock,
        }
    }

    fn take_address(&self, ip: IpAddr) -> Result<(), u64> {
        let now = self.clock.now_ms();
        match self.per_address.lock() {
            Ok(mut buckets) => buckets.take(&client_key(ip), now),
            Err(poisoned) => poisoned.into_inner().take(&client_key(ip), now),
        }
    }

    fn take_key(&self, key: &str) -> Result<(), u64> {
        let now = self.clock.now_ms();
        let key = truncate(key, MAX_KEY_BYTES).to_owned();
        match self.per_key.lock() {
            Ok(mut buckets) => buckets.take(&key, now),
            Err(poisoned) => poisoned.into_inner().take(&key, now),
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The raw value of the first `api_key` in a urlencoded string, as it arrived (not decoded).
fn api_key_in(form: &str) -> Option<&str> {
    form.split('&')
        .find_map(|pair| pair.strip_prefix("api_key="))
        .filter(|key| !key.is_empty())
}

/// The middleware: every POST under Open311 is counted against its client's address, then
/// against its `api_key` (from the query string, or a urlencoded body, read here within the
/// handler's own limit and handed on).
pub async fn limit_open311_posts(
    State(limits): State<Open311Limits>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(ip) = peer {
        if let Err(retry) = limits.take_address(ip) {
            return too_many(retry, "this address");
        }
    }
    let in_query = request
        .uri()
        .query()
        .and_then(api_key_in)
        .map(str::to_owned);
    let urlencoded = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let (request, key) = match in_query {
        Some(key) => (request, Some(key)),
        None if urlencoded => {
            let (parts, body) = request.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, limits.max_form_bytes).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").into_response();
            };
            let key = std::str::from_utf8(&bytes)
                .ok()
                .and_then(api_key_in)
                .map(str::to_owned);
            (Request::from_parts(parts, Body::from(bytes)), key)
        }
        None => (request, None),
    };
    if let Some(key) = key {
        if let Err(retry) = limits.take_key(&key) {
            return too_many(retry, "this api_key");
        }
    }
    next.run(request).await
}

/// 429, in Open311's error shape, with when to try again.
fn too_many(retry_after_s: u64, whose: &str) -> Response {
    let body = axum::Json(serde_json::json!([{
        "code": 429,
        "description": format!("too many requests from {whose}: try again in {retry_after_s} s"),
    }]));
    let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 3,
        per_minute: 60,
    };

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut buckets = KeyedBuckets::new(RATE, 10);
        for _ in 0..3 {
            assert_eq!(buckets.take(&"a", 0), Ok(()));
        }
        assert_eq!(buckets.take(&"a", 0), Err(1));
        // One a second at 60 a minute.
        assert_eq!(buckets.take(&"a", 999), Err(1));
        assert_eq!(buckets.take(&"a", 1000), Ok(()));
        assert_eq!(buckets.take(&"a", 1000), Err(1));
        // Another key has its own burst.
        assert_eq!(buckets.take(&"b", 1000), Ok(()));
        // A long quiet spell refills to the burst, no further.
        for _ in 0..3 {
            assert_eq!(buckets.take(&"a", 600_000), Ok(()));
        }
        assert!(buckets.take(&"a", 600_000).is_err());
    }

    #[test]
    fn slow_rates_say_how_long_to_wait() {
        let rate = Rate {
            burst: 1,
            per_minute: 2,
        };
        let mut buckets = KeyedBuckets::new(rate, 10);
        assert_eq!(buckets.take(&"a", 0), Ok(()));
        assert_eq!(buckets.take(&"a", 0), Err(30));
        assert_eq!(buckets.take(&"a", 30_000), Ok(()));
    }

    #[test]
    fn new_keys_beyond_the_bound_share_a_bucket_and_refilled_ones_make_room() {
        let mut buckets = KeyedBuckets::new(RATE, 2);
        assert_eq!(buckets.take(&1, 0), Ok(()));
        assert_eq!(buckets.take(&2, 0), Ok(()));
        // Keys 3.. share the overflow bucket: three at once between them.
        assert_eq!(buckets.take(&3, 0), Ok(()));
        assert_eq!(buckets.take(&4, 0), Ok(()));
        assert_eq!(buckets.take(&5, 0), Ok(()));
        assert!(buckets.take(&6, 0).is_err());
        assert_eq!(buckets.len(), 2);
        // Once keys 1 and 2 have refilled, a new key gets a place of its own.
        assert_eq!(buckets.take(&7, 10_000), Ok(()));
        assert!(buckets.len() <= 2);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn finds_the_api_key_as_it_arrived() {
        assert_eq!(
            api_key_in("service_code=refuse&api_key=abc%21&x=1"),
            Some("abc%21")
        );
        assert_eq!(api_key_in("api_key=&x=1"), None);
        assert_eq!(api_key_in("x=1"), None);
        assert_eq!(truncate("ééé", 3), "é");
    }
}

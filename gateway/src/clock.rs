//! The gateway's clock, in the protocol's unit (UTC milliseconds). Device clocks can be wrong;
//! this one is the reference the gateway stores beside them.

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> proto::TimestampMs {
    chrono::Utc::now().timestamp_millis()
}

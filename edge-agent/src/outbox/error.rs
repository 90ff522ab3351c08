//! Why an outbox operation failed, as one enum callers can match on (the API maps [`OutboxError::Full`]
//! to HTTP 507, for instance).

use std::sync::Arc;

use proto::RecordKind;

/// An outbox operation that did not happen, or did not become durable.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// sled failed to open, read or write.
    #[error("outbox storage failed")]
    Storage(#[from] sled::Error),
    /// Writing the outbox to disk failed; records written since the last flush may not survive a
    /// power cut. Shared by every writer of the failed flush, hence the `Arc`.
    #[error("flushing the outbox to disk failed")]
    Flush(#[source] Arc<std::io::Error>),
    /// The flusher thread could not be started.
    #[error("cannot start the outbox's flusher thread")]
    Spawn(#[source] std::io::Error),
    /// The flusher thread has stopped (the outbox is shutting down, or the thread died), so the
    /// write can no longer be made durable.
    #[error("the outbox's flusher has stopped")]
    FlusherStopped,
    /// The record breaks the wire contract; storing it would poison every batch it joined.
    #[error("record refused")]
    Invalid(#[from] proto::Invalid),
    /// The record could not be encoded.
    #[error("record could not be encoded")]
    Encode(#[from] proto::EncodeError),
    /// The encoded record is larger than the outbox stores (see [`super::MAX_RECORD_BYTES`]).
    #[error("record is {size} bytes, over the {max}-byte limit")]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Records of this kind are written by the outbox itself, never by callers: a gap record
    /// vouches for sequence numbers only the outbox knows the fate of.
    #[error("{} records are written by the outbox itself", .0.as_str())]
    ReservedKind(RecordKind),
    /// The disk budget is spent on records that may not be dropped; nothing was written.
    #[error(
        "outbox full: a {record_bytes}-byte record does not fit in the {budget_bytes}-byte budget \
         even after dropping all older telemetry"
    )]
    Full {
        /// The refused record's encoded size.
        record_bytes: u64,
        /// The configured budget.
        budget_bytes: u64,
    },
    /// A stored record can no longer be decoded. Reopening the outbox replaces it with a gap
    /// record so that the gateway's acks are not held up by it.
    #[error("stored record {seq} is unreadable")]
    Corrupt {
        /// The record's sequence number.
        seq: u64,
        /// Why it could not be decoded.
        #[source]
        source: proto::DecodeError,
    },
    /// The gateway acked a sequence number this outbox never issued: its store belongs to an
    /// earlier life of this device id (a wiped outbox, a reused id). Nothing was deleted.
    #[error("ack through {thru} is beyond the last sequence number issued ({last_issued})")]
    AckAhead {
        /// The acked sequence number.
        thru: u64,
        /// The highest sequence number this outbox has issued.
        last_issued: u64,
    },
    /// Every sequence number has been issued (after 2^64 - 1 records).
    #[error("sequence numbers are exhausted")]
    SequenceExhausted,
    /// The tree name belongs to the outbox itself (see [`super::Outbox::open_tree`]).
    #[error("tree {0:?} is the outbox's own")]
    ReservedTree(String),
    /// The storage is down (the disk is full, or a write failed): nothing is stored until the
    /// outbox has reopened its database, which it does by itself once there is room.
    #[error("{0}")]
    StorageDown(super::StorageFault),
    /// The idempotency key was used before for a different record; nothing was written.
    #[error("Idempotency-Key {0:?} was used before for a different request")]
    KeyReused(String),
    /// A thread panicked while holding the outbox's state, which may be inconsistent.
    #[error("outbox state is unusable after a panic; reopen the outbox")]
    Poisoned,
}

//! What every store behind the seam can fail with, whatever the backend: callers match on
//! [`StoreError`]'s kinds, never on a database's own error types.

/// What a store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (disk full, I/O error, corruption).
    #[error("storage failed: {0}")]
    Backend(#[from] BackendError),
    /// A stored value could not be read back.
    #[error("stored value under {key} is unreadable: {reason}")]
    Corrupt {
        /// Which key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("could not encode a value for storage: {0}")]
    Encode(#[from] proto::EncodeError),
    /// The store was written by a newer gateway, in a format this build cannot read.
    #[error(
        "the store is in format {found}, written by a newer gateway; this build reads up to \
         format {supported}: run the newer gateway, or restore a backup"
    )]
    NewerFormat {
        /// The store's format.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
}

/// The database underneath failed, as its backend describes it. Opaque on purpose: nothing above
/// the seam can act on one backend's error kinds, and a second backend must not change what
/// callers match on.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    /// Wraps a backend's own error.
    pub(crate) fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

//! The dashboard's sign-in sessions: a random id in an HttpOnly cookie standing for the staff
//! token it was opened with. Kept in memory, bounded in number and in age, so signing in again
//! after a restart is the cost, and nothing outsiders send can make it grow.

use std::collections::HashMap;
use std::sync::Mutex;

use proto::TimestampMs;

/// The most sessions held at once: past it, the one nearest its expiry makes room.
pub const MAX_SESSIONS: usize = 1_024;
/// How long a session lasts from sign-in: a working day.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// The session cookie's name.
pub const COOKIE: &str = "fieldsync_session";

/// One signed-in browser.
#[derive(Debug, Clone)]
struct Session {
    /// The staff token signed in with: checked again on every request, so a token taken out of
    /// the configuration stops its sessions too.
    token: String,
    expires_ms: TimestampMs,
}

/// The open sessions, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The OS's random source failed.
    #[error("no random source for a session id")]
    Random,
}

impl Sessions {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `token` at `now_ms`, returning its id.
    pub fn open(&self, token: &str, now_ms: TimestampMs) -> Result<String, SessionError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| SessionError::Random)?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.lock();
        open.retain(|_, session| session.expires_ms > now_ms);
        if open.len() >= MAX_SESSIONS {
            let nearest = open
                .iter()
                .min_by_key(|(_, session)| session.expires_ms)
                .map(|(id, _)| id.clone());
            if let Some(nearest) = nearest {
                open.remove(&nearest);
            }
        }
        open.insert(
            id.clone(),
            Session {
                token: token.to_owned(),
                expires_ms: now_ms.saturating_add(SESSION_TTL_MS),
            },
        );
        Ok(id)
    }

    /// The token behind session `id`, if it is open and unexpired at `now_ms`.
    pub fn token(&self, id: &str, now_ms: TimestampMs) -> Option<String> {
        let mut open = self.lock();
        match open.get(id) {
            Some(session) if session.expires_ms > now_ms => Some(session.token.clone()),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id` (signing out).
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_session_stands_for_its_token_until_it_expires_or_closes() {
        let sessions = Sessions::new();
        let id = sessions.open("secret", 1_000).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(
            sessions.token(&id, 1_000 + SESSION_TTL_MS - 1).as_deref(),
            Some("secret")
        );
        assert_eq!(sessions.token(&id, 1_000 + SESSION_TTL_MS), None);
        assert!(
            sessions.is_empty(),
            "an expired session is dropped when seen"
        );
        let id = sessions.open("secret", 1_000).unwrap();
        sessions.close(&id);
        assert_eq!(sessions.token(&id, 1_000), None);
        assert_eq!(sessions.token("made-up", 1_000), None);
    }

    #[test]
    fn sessions_are_bounded_in_number() {
        let sessions = Sessions::new();
        let first = sessions.open("t", 0).unwrap();
        for at in 1..=MAX_SESSIONS as i64 {
            sessions.open("t", at).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.token(&first, 2), None, "the oldest made room");
    }
}

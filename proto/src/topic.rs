//! Device ids and the MQTT topics built from them: `fieldsync/v1/{device}/{up|ack|down|state}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The prefix every fieldsync topic starts with; the `v1` is the topic layout's version, not the
/// schema version of the payloads.
pub const TOPIC_PREFIX: &str = "fieldsync/v1";

/// The longest device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// A device's id: 1 to 64 of `[A-Za-z0-9_-]`, so that it is safe in a topic level (no `/`, `+`,
/// `#`), a file name and a log line.
///
/// Deserializing does not check the id: [`crate::codec::decode`] validates whole messages, so that
/// a bad id is reported with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(String);

/// Why a string is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDeviceId {
    /// The id is empty.
    #[error("device id is empty")]
    Empty,
    /// The id is longer than [`MAX_DEVICE_ID_LEN`].
    #[error("device id is {0} bytes, over the {MAX_DEVICE_ID_LEN}-byte limit")]
    TooLong(usize),
    /// The id has a character outside `[A-Za-z0-9_-]`.
    #[error("device id has {0:?}, outside [A-Za-z0-9_-]")]
    BadCharacter(char),
}

impl DeviceId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidDeviceId> {
        let id = id.into();
        Self::check(&id)?;
        Ok(Self(id))
    }

    /// Checks that `id` would make a valid device id.
    pub fn check(id: &str) -> Result<(), InvalidDeviceId> {
        if id.is_empty() {
            return Err(InvalidDeviceId::Empty);
        }
        if id.len() > MAX_DEVICE_ID_LEN {
            return Err(InvalidDeviceId::TooLong(id.len()));
        }
        match id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            Some(bad) => Err(InvalidDeviceId::BadCharacter(bad)),
            None => Ok(()),
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic of `kind` for this device.
    pub fn topic(&self, kind: TopicKind) -> String {
        format!("{TOPIC_PREFIX}/{}/{}", self.0, kind.as_str())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = InvalidDeviceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The last level of a device topic: which way the message goes and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Device → gateway: an [`Envelope`](crate::Envelope) of records.
    Up,
    /// Gateway → device: an [`Ack`](crate::Ack), "stored durably through sequence N".
    Ack,
    /// Gateway → device: a [`Down`](crate::Down) message (job, cancellation, configuration).
    Down,
    /// Retained [`State`](crate::State): online, or offline as the device's MQTT Last Will.
    State,
}

impl TopicKind {
    /// The topic level's text.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Up => "up",
            TopicKind::Ack => "ack",
            TopicKind::Down => "down",
            TopicKind::State => "state",
        }
    }

    /// A filter matching this kind of topic for every device, e.g. `fieldsync/v1/+/up`.
    pub fn filter_all_devices(self) -> String {
        format!("{TOPIC_PREFIX}/+/{}", self.as_str())
    }
}

/// A parsed fieldsync topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    /// The device the topic belongs to.
    pub device: DeviceId,
    /// What the topic carries.
    pub kind: TopicKind,
}

/// Why a topic is not a fieldsync device topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic does not start with [`TOPIC_PREFIX`] or has the wrong number of levels.
    #[error("topic {0:?} is not of the form {TOPIC_PREFIX}/{{device}}/{{up|ack|down|state}}")]
    NotFieldsync(String),
    /// The last level is not one of `up`, `ack`, `down`, `state`.
    #[error("topic {0:?} ends in an unknown kind")]
    UnknownKind(String),
    /// The device level is not a valid device id.
    #[error("topic {topic:?} names an invalid device: {source}")]
    InvalidDevice {
        /// The whole topic.
        topic: String,
        /// What is wrong with the device level.
        source: InvalidDeviceId,
    },
}

impl Topic {
    /// The topic of `kind` for `device`.
    pub fn new(device: DeviceId, kind: TopicKind) -> Self {
        Self { device, kind }
    }

    /// Parses `fieldsync/v1/{device}/{kind}`.
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        let not_ours = || TopicError::NotFieldsync(topic.to_owned());
        let rest = topic
            .strip_prefix(TOPIC_PREFIX)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(not_ours)?;
        let (device, kind) = rest.split_once('/').ok_or_else(not_ours)?;
        let kind = match kind {
            "up" => TopicKind::Up,
            "ack" => TopicKind::Ack,
            "down" => TopicKind::Down,
            "state" => TopicKind::State,
            other if other.contains('/') => return Err(not_ours()),
            _ => return Err(TopicError::UnknownKind(topic.to_owned())),
        };
        let device = DeviceId::new(device).map_err(|source| TopicError::InvalidDevice {
            topic: topic.to_owned(),
            source,
        })?;
        Ok(Self { device, kind })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOPIC_PREFIX}/{}/{}",
            self.device.as_str(),
            self.kind.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_kind() {
        let device = DeviceId::new("cab-0042_A").unwrap();
        for kind in [
            TopicKind::Up,
            TopicKind::Ack,
            TopicKind::Down,
            TopicKind::State,
        ] {
            let text = device.topic(kind);
            let topic = Topic::parse(&text).unwrap();
            assert_eq!(topic, Topic::new(device.clone(), kind));
            assert_eq!(topic.to_string(), text);
        }
        assert_eq!(
            DeviceId::new("hub-1").unwrap().topic(TopicKind::Up),
            "fieldsync/v1/hub-1/up"
        );
    }

    #[test]
    fn rejects_invalid_device_ids() {
        assert_eq!(DeviceId::new(""), Err(InvalidDeviceId::Empty));
        assert_eq!(
            DeviceId::new("a+b"),
            Err(InvalidDeviceId::BadCharacter('+'))
        );
        assert_eq!(DeviceId::new("a#"), Err(InvalidDeviceId::BadCharacter('#')));
        assert_eq!(
            DeviceId::new("café"),
            Err(InvalidDeviceId::BadCharacter('é'))
        );
        assert_eq!(
            DeviceId::new("x".repeat(65)),
            Err(InvalidDeviceId::TooLong(65))
        );
        assert!(DeviceId::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_foreign_and_malformed_topics() {
        for bad in [
            "fieldsync/v2/dev/up",
            "fieldsync/v1/dev",
            "fieldsync/v1/dev/up/extra",
            "other/v1/dev/up",
            "fieldsync/v1//up",
            "fieldsync/v1/+/up",
            "fieldsync/v1/dev/sideways",
            "fieldsync/v1dev/up",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(matches!(
            Topic::parse("fieldsync/v1/a b/up"),
            Err(TopicError::InvalidDevice { .. })
        ));
    }

    #[test]
    fn all_devices_filter() {
        assert_eq!(TopicKind::Up.filter_all_devices(), "fieldsync/v1/+/up");
    }
}

//! Commands the agent sends an OTGW over the connection it reads (a TCP connection, a serial
//! port): what to send when a connection opens, the writer that sends them, and the schedule of
//! `PM=` requests that make the gateway poll data ids the thermostat does not.
//!
//! The OTGW takes commands of two letters, `=` and an argument, each ended by a carriage return
//! (the firmware's command list at the top of `gateway.asm`, <https://github.com/hvxl/otgw>, and
//! <https://otgw.tclcode.com/firmware.html>), and answers each with a line such as `PS: 0` or
//! `PM: 116`, which the source skips like any other line that is not a frame. The agent uses two:
//!
//! - `PS=0`: print every frame rather than a summary. Sent on every (re)connection when
//!   [`OtgwCommands::summary_off`] is set, so that a gateway someone left in `PS=1` mode is
//!   switched back; summary lines are still read if it is switched again (see `otgw::summary`).
//! - `PM=id`: "priority message": the gateway asks the boiler for `id` at its next opportunity, and
//!   the boiler's answer is printed as a normal `B` frame, which decodes like any other. The
//!   gateway holds one priority message at a time (`prioritymsgid` in `gateway.asm`), so ids are
//!   sent one by one, [`POLL_SPACING`] apart, and the whole list again every
//!   [`OtgwCommands::poll_every_s`].
//!
//! The writer is a task per connection fed by a bounded channel, so that queueing a command never
//! waits and never grows memory: when the channel is full the command is dropped and the next
//! round sends it again. It ends when its connection is replaced or dropped.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Time between two `PM=` commands: the gateway keeps only the latest, and a thermostat's cycle
/// leaves it an opportunity every few seconds.
pub const POLL_SPACING: Duration = Duration::from_secs(5);

/// The most ids a poll list may hold (the OTGW's own list of alternatives holds 32).
pub const MAX_POLL_IDS: usize = 32;

/// The shortest time between two rounds of the poll list.
pub const MIN_POLL_EVERY_S: u64 = 60;

/// Commands queued and not yet written, per connection.
const QUEUE: usize = 16;

/// What the agent tells an OTGW it can write to, in the agent's TOML under `[source.commands]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtgwCommands {
    /// Send `PS=0` on every connection, so that the gateway prints frames rather than `PS=1`
    /// summaries. Default true.
    pub summary_off: bool,
    /// Data ids to have the gateway ask the boiler for (`PM=id`), for those the thermostat does
    /// not poll, such as `[116, 117, 118, 119, 120, 121, 122, 123, 113, 114, 15, 3]`. Default
    /// none.
    pub poll: Vec<u8>,
    /// Seconds between two rounds of `poll`. Default 300; at least 60.
    pub poll_every_s: u64,
}

impl Default for OtgwCommands {
    fn default() -> Self {
        Self {
            summary_off: true,
            poll: Vec::new(),
            poll_every_s: 300,
        }
    }
}

impl OtgwCommands {
    /// Checks the settings; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.poll.len() > MAX_POLL_IDS {
            return Err(format!(
                "source.commands.poll holds {} ids, more than {MAX_POLL_IDS}",
                self.poll.len()
            ));
        }
        if self.poll.contains(&0) {
            return Err("source.commands.poll: id 0 (status) is always polled".into());
        }
        if self.poll_every_s < MIN_POLL_EVERY_S {
            return Err(format!(
                "source.commands.poll_every_s must be at least {MIN_POLL_EVERY_S}"
            ));
        }
        Ok(())
    }

    /// What to send on every new connection.
    pub fn greeting(&self) -> Vec<String> {
        if self.summary_off {
            vec!["PS=0".to_owned()]
        } else {
            Vec::new()
        }
    }

    /// The poll schedule, if any ids are to be polled.
    pub fn poller(&self) -> Option<Poller> {
        (!self.poll.is_empty())
            .then(|| Poller::new(self.poll.clone(), Duration::from_secs(self.poll_every_s)))
    }
}

/// The writing side of the current connection, if there is one.
#[derive(Debug, Default)]
pub struct CommandLink {
    greeting: Vec<String>,
    sender: Option<mpsc::Sender<String>>,
}

impl CommandLink {
    /// A link that sends `greeting` on every connection.
    pub fn new(greeting: Vec<String>) -> Self {
        Self {
            greeting,
            sender: None,
        }
    }

    /// A new connection: starts its writer (replacing the last one's) and queues the greeting.
    /// Must be called within a tokio runtime.
    pub fn attach<W: AsyncWrite + Unpin + Send + 'static>(&mut self, writer: W) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write_commands(writer, receiver));
        self.sender = Some(sender);
        for command in self.greeting.clone() {
            self.send(&command);
        }
    }

    /// The connection is gone; its writer ends.
    pub fn detach(&mut self) {
        self.sender = None;
    }

    /// Queues `command` (without its carriage return); false if there is no connection or its
    /// queue is full.
    pub fn send(&self, command: &str) -> bool {
        let Some(sender) = &self.sender else {
            return false;
        };
        match sender.try_send(command.to_owned()) {
            Ok(()) => true,
            Err(error) => {
                debug!(command, %error, "OTGW command not queued");
                false
            }
        }
    }
}

/// Writes each command with its carriage return until the channel closes or a write fails (the
/// connection's reader notices the failure too, and reconnects).
async fn write_commands<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut commands: mpsc::Receiver<String>,
) {
    while let Some(command) = commands.recv().await {
        let line = format!("{command}\r");
        let written = async {
            writer.write_all(line.as_bytes()).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            warn!(command, %error, "cannot send a command to the OTGW");
            return;
        }
        debug!(command, "command sent to the OTGW");
    }
}

/// When to ask for which id: one id per [`POLL_SPACING`], the list once per round, a round every
/// `every` (from the start of the previous one). No I/O: the source asks it at each line it reads.
#[derive(Debug, Clone)]
pub struct Poller {
    ids: Vec<u8>,
    every: Duration,
    /// The next id's index in `ids`; `ids.len()` once the round is done.
    cursor: usize,
    /// When the current round started.
    round: Option<Instant>,
    /// When the last id was asked for.
    last: Option<Instant>,
}

impl Poller {
    /// Polls `ids` (in that order) every `every`.
    pub fn new(ids: Vec<u8>, every: Duration) -> Self {
        Self {
            ids,
            every,
            cursor: 0,
            round: None,
            last: None,
        }
    }

    /// The id to ask for at `now`, if one is due; it counts as asked.
    pub fn due(&mut self, now: Instant) -> Option<u8> {
        if self.ids.is_empty() {
            return None;
        }
        if self.cursor == self.ids.len() {
            if self.round.is_some_and(|round| now < round + self.every) {
                return None;
            }
            self.cursor = 0;
        }
        if self.last.is_some_and(|last| now < last + POLL_SPACING) {
            return None;
        }
        if self.cursor == 0 {
            self.round = Some(now);
        }
        let id = self.ids[self.cursor];
        self.cursor += 1;
        self.last = Some(now);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[test]
    fn polls_one_id_at_a_time_and_the_list_every_round() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut poller = Poller::new(vec![116, 120, 3], Duration::from_secs(60));
        assert_eq!(poller.due(at(0)), Some(116));
        assert_eq!(poller.due(at(1)), None, "spaced");
        assert_eq!(poller.due(at(5)), Some(120));
        assert_eq!(poller.due(at(12)), Some(3));
        // The round is done: nothing until a minute after it started.
        assert_eq!(poller.due(at(30)), None);
        assert_eq!(poller.due(at(59)), None);
        assert_eq!(poller.due(at(60)), Some(116));
        assert_eq!(poller.due(at(64)), None);
        assert_eq!(poller.due(at(65)), Some(120));
        assert_eq!(
            Poller::new(Vec::new(), Duration::from_secs(60)).due(at(0)),
            None
        );
    }

    #[test]
    fn settings_are_checked() {
        let ok = OtgwCommands {
            poll: vec![116, 117, 3],
            ..OtgwCommands::default()
        };
        ok.check().unwrap();
        assert_eq!(ok.greeting(), vec!["PS=0"]);
        assert!(ok.poller().is_some());
        let quiet = OtgwCommands {
            summary_off: false,
            ..OtgwCommands::default()
        };
        assert!(quiet.greeting().is_empty() && quiet.poller().is_none());
        let too_many = OtgwCommands {
            poll: (1..=33).collect(),
            ..OtgwCommands::default()
        };
        assert!(too_many.check().unwrap_err().contains("poll"));
        let zero = OtgwCommands {
            poll: vec![0],
            ..OtgwCommands::default()
        };
        assert!(zero.check().is_err());
        let often = OtgwCommands {
            poll_every_s: 5,
            ..OtgwCommands::default()
        };
        assert!(often.check().unwrap_err().contains("poll_every_s"));
    }

    #[tokio::test]
    async fn a_link_greets_each_connection_and_sends_while_attached() {
        let mut link = CommandLink::new(vec!["PS=0".into()]);
        assert!(!link.send("PM=116"), "not connected");
        let (writer, mut device) = tokio::io::duplex(64);
        link.attach(writer);
        assert!(link.send("PM=116"));
        let mut received = vec![0; 12];
        device.read_exact(&mut received).await.unwrap();
        assert_eq!(received, b"PS=0\rPM=116\r");
        link.detach();
        assert!(!link.send("PM=117"));
        // The writer ended with its connection: the device sees the end of the stream.
        assert_eq!(device.read(&mut [0; 8]).await.unwrap(), 0);
    }
}

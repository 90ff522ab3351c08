//! The in-process source: readings sent over a tokio channel, by the device simulator or a test,
//! so that simulated boilers go through the same sampler, checks and sink as real ones.
//!
//! A simulator that has whole samples sends [`Reading::from_telemetry`]'s readings; one that wants
//! to exercise the OpenTherm decoder too can instead write OTGW lines (built with
//! [`Frame::new`](super::otgw::frame::Frame::new)) into a [`tokio::io::duplex`] and read the other
//! end, wrapped in a `BufReader`, with [`OtgwSource::from_reader`](super::OtgwSource::from_reader).

use tokio::sync::mpsc;

use super::stats::SourceStats;
use super::{Reading, Source, SourceError};

/// Readings from a channel; ends when every sender is dropped.
#[derive(Debug)]
pub struct ChannelSource {
    readings: mpsc::Receiver<Reading>,
    stats: SourceStats,
}

impl ChannelSource {
    /// Reads from `readings`, counting into `stats`.
    pub fn new(readings: mpsc::Receiver<Reading>, stats: SourceStats) -> Self {
        Self { readings, stats }
    }
}

/// A channel of `capacity` readings and the source that reads it.
pub fn channel(capacity: usize) -> (mpsc::Sender<Reading>, ChannelSource) {
    let (sender, receiver) = mpsc::channel(capacity);
    (sender, ChannelSource::new(receiver, SourceStats::default()))
}

impl Source for ChannelSource {
    async fn next_reading(&mut self) -> Result<Option<Reading>, SourceError> {
        // `recv` is cancel-safe.
        Ok(self.readings.recv().await)
    }

    fn stats(&self) -> &SourceStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use proto::Telemetry;

    use super::*;

    #[tokio::test]
    async fn delivers_readings_until_the_senders_are_gone() {
        let (sender, mut source) = channel(8);
        let sample = Telemetry {
            asset: "sim-1".into(),
            flow: Some(60.0),
            flame: Some(true),
            ..Telemetry::default()
        };
        for reading in Reading::from_telemetry(&sample) {
            sender.send(reading).await.unwrap();
        }
        drop(sender);
        assert_eq!(
            source.next_reading().await.unwrap(),
            Some(Reading::Flow(60.0))
        );
        assert_eq!(
            source.next_reading().await.unwrap(),
            Some(Reading::Flame(true))
        );
        assert_eq!(source.next_reading().await.unwrap(), None);
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The load command against a gateway in the same process: every sample offered is acked, and
//! what the agents saw acked is what the gateway stored.

use std::time::Duration;

use firmware_sim::load::{self, LoadConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_offered_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = LoadConfig {
        mqtt: None,
        hubs: 5,
        interval: Duration::from_millis(50),
        duration: Some(Duration::from_secs(1)),
        prefix: "load".into(),
        data_dir: dir.path().to_owned(),
        speed: 60.0,
        seed: 1,
        report_every: Duration::from_secs(10),
    };
    let report = load::run(config, std::future::pending()).await.unwrap();
    assert_eq!(report.hubs, 5);
    assert!(report.offered >= 50, "{report}");
    assert!(report.acked >= report.offered, "{report}");
    assert_eq!(report.left, 0, "{report}");
    assert_eq!(report.gateway_stored, Some(report.acked), "{report}");
}

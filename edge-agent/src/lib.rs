//! The store-and-forward agent for in-cab devices, handhelds and boiler sensor hubs: makes records
//! durable, forwards them over MQTT exactly once, receives jobs back.
//!
//! ```text
//!  app ──HTTP──► api ─┐                                          ┌──► MQTT …/up ──► gateway
//!  sensor ► source ───┼─► uplink::Intake ─► outbox (sled) ─► uplink (sender)
//!  health ────────────┘                        ▲ delete on ack   └──◄ MQTT …/ack, …/down
//!                                              └──── uplink (receiver) ──► downlink ─► jobs
//! ```
//!
//! - [`agent`]: the wiring ([`agent::Agent::start`]) and the one shutdown path; `main.rs` only
//!   parses flags and calls [`agent::run`].
//! - [`config`]: the TOML configuration, its defaults and validation.
//! - [`outbox`]: the durable queue: numbering, priorities, the disk budget and gap records, group
//!   commit, crash recovery. Records leave it only when the gateway's ack covers them.
//! - [`uplink`]: the MQTT connection: batches up, acks and downlink messages down, reconnection
//!   with backoff, and [`uplink::Intake`], the one way records enter the outbox.
//! - [`downlink`]: applies jobs, cancellations and configuration from the gateway.
//! - [`jobs`]: the job store beside the outbox (with finished jobs pruned), the pushed
//!   configuration and the boot counter.
//! - [`api`]: the local HTTP API for the app: collections, round events, job updates, status.
//! - [`source`]: a boiler hub's sensor input (JSON lines or an OpenTherm Gateway), sampled into
//!   telemetry.
//! - [`health`]: the device's periodic health record (outbox depth, free disk, uptime).
//! - [`stamp`]: boot and monotonic time on records and envelopes, for the gateway's clock.
//!
//! Why acks are the gateway's, not MQTT's: `docs/decisions/0001-app-level-acks.md`.

pub mod agent;
pub mod api;
pub mod config;
pub mod downlink;
pub mod health;
pub mod jobs;
pub mod outbox;
pub mod source;
pub mod stamp;
pub mod uplink;

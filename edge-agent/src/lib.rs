//! The store-and-forward agent for in-cab devices, handhelds and boiler sensor hubs: makes records durable, forwards them over MQTT, receives jobs back.

pub mod agent;
pub mod api;
pub mod config;
pub mod downlink;
pub mod health;
pub mod jobs;
pub mod outbox;
pub mod source;
pub mod uplink;

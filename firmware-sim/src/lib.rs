//! Simulated boiler hubs, refuse crews, repairs operatives, residents, tenants and an asset
//! manager, driving real edge agents and a real gateway's APIs: for demos, tests and load.
//!
//! - [`boiler`]: the physical model of a condensing combi boiler and its flat (pure, seeded).
//! - [`hub`]: a boiler model feeding a hub's agent through its in-process sensor source.
//! - [`crew`]: a refuse crew walking rounds from a property register over the agent's HTTP API.
//! - [`operative`]: a repairs operative working jobs over the agent's HTTP API.
//! - [`residents`]: residents and tenants reporting through the gateway's Open311 endpoint, as a
//!   council's website posts for them, and following their reports.
//! - [`asset_manager`]: an asset manager raising repairs from boiler alerts at the staff API.
//! - [`proxy`]: a link that drops and comes back, for patchy 4G.
//! - [`demo`]: the whole system in one process, wired together.
//! - [`load`]: many fast-sampling hubs, to load a gateway.
//! - [`soak`]: the demo at high speed for a set time, its memory and open files judged.
//! - [`agents`]: the agents' settings for simulated devices; [`clock`]: compressed time;
//!   [`http`]: the small JSON client the simulated people use.

pub mod agents;
pub mod asset_manager;
pub mod boiler;
pub mod clock;
pub mod crew;
pub mod demo;
pub mod http;
pub mod hub;
pub mod load;
pub mod operative;
pub mod proxy;
pub mod residents;
pub mod soak;

use std::time::Duration;

/// Why a simulation could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The gateway could not start.
    #[error("the gateway could not start")]
    Gateway(#[from] gateway::GatewayError),
    /// The gateway's ingest did not subscribe in time.
    #[error("the gateway's ingest did not subscribe to the broker within {0:?}")]
    NotReady(Duration),
    /// A device's agent could not start.
    #[error("the agent of {device} could not start")]
    Agent {
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: edge_agent::agent::AgentError,
    },
    /// A hub's sensor source could not start.
    #[error("the sensor source of {device} could not start")]
    Source {
        /// The device.
        device: String,
        /// Why.
        #[source]
        source: edge_agent::source::SourceError,
    },
    /// The property register could not be read.
    #[error("cannot read the property register")]
    Properties(#[from] gateway::missed_bins::ImportError),
    /// The gateway could not take the property register.
    #[error("the gateway could not import the property register")]
    Register(#[source] gateway::reports::DeskError),
    /// The gateway could not issue a simulated device its credential.
    #[error("the gateway could not issue a device its credential")]
    Devices(#[from] gateway::devices::DeviceError),
    /// The gateway could not issue the demo's staff token.
    #[error("the gateway could not issue the demo's staff token")]
    Access(#[from] gateway::access::AccessError),
    /// A link proxy could not listen.
    #[error("cannot start a link proxy")]
    Proxy(#[source] std::io::Error),
    /// No free local port could be found.
    #[error("cannot find a free local port")]
    Port(#[source] std::io::Error),
    /// The settings make no sense.
    #[error("invalid settings: {0}")]
    Invalid(String),
    /// The demo's data directory could not be cleared or marked.
    #[error("cannot prepare the demo's data directory {dir}")]
    DataDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

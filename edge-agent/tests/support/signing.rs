//! The signing every test agent runs with: its keys for the test gateway
//! ([`fieldsync_tests::test_gateway::keys_for`]), required, as in production.

use edge_agent::config::SigningConfig;

/// `device`'s signing configuration for the test gateway.
pub fn signing(device: &str) -> SigningConfig {
    let (key, gateway) = fieldsync_tests::test_gateway::keys_for(device).hex();
    SigningConfig::with_keys(key, gateway)
}

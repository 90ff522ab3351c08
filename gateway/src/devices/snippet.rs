//! The agent's configuration for a newly issued credential, as `gateway devices add` prints it:
//! the lines to put in the device's `edge-agent` configuration file, so that what the gateway
//! checks (client id = username = device id, the secret as password, envelopes signed with the
//! device's key) is what the agent sends, and the agent checks what the gateway signs.

use std::fmt::Write;
use std::net::SocketAddr;

use proto::signed::key_hex;

use super::Issued;

/// The snippet for `issued`, reaching the broker the gateway listens on at `mqtt_listen` (an
/// address of any interface is shown as a placeholder to fill in).
pub fn agent_config(issued: &Issued, mqtt_listen: SocketAddr) -> String {
    let device = issued.device.as_str();
    let host = match mqtt_listen.ip() {
        ip if ip.is_unspecified() => "GATEWAY-ADDRESS".to_owned(),
        ip => ip.to_string(),
    };
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let _ = write!(
        out,
        r#"# edge-agent configuration for device {device}.
# The password and the signing key are shown this once: the gateway keeps only the password's
# hash and the key's public half. Keep them out of version control; FIELDSYNC_AGENT_MQTT_PASSWORD
# and FIELDSYNC_AGENT_SIGNING_KEY may carry them instead of this file.
device_id = "{device}"

[mqtt]
host = "{host}"
port = {port}
# The gateway's broker wants the device id as username, and as client id (the default).
username = "{device}"
password = "{secret}"

[signing]
# This device's Ed25519 private key: it signs every batch, so no one else can send as {device}.
key = "{key}"
# The gateway's public key: acks and jobs not signed with it are ignored.
gateway_key = "{gateway_key}"
"#,
        port = mqtt_listen.port(),
        secret = issued.secret.reveal(),
        key = key_hex(&issued.signing_key.to_bytes()),
        gateway_key = key_hex(&issued.gateway_key.to_bytes()),
    );
    out
}

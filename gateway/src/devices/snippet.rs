//! The agent's configuration for a newly issued secret, as `gateway devices add` prints it: the
//! lines to put in the device's `edge-agent` configuration file, so that what the gateway checks
//! (client id = username = device id, the secret as password) is what the agent sends.

use std::fmt::Write;
use std::net::SocketAddr;

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
# The password is shown this once: the gateway keeps only its hash. Keep it out of version
# control; FIELDSYNC_AGENT_MQTT_PASSWORD may carry it instead of this file.
device_id = "{device}"

[mqtt]
host = "{host}"
port = {port}
# The gateway's broker wants the device id as username, and as client id (the default).
username = "{device}"
password = "{secret}"
"#,
        port = mqtt_listen.port(),
        secret = issued.secret.reveal(),
    );
    out
}

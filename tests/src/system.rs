//! The whole system as separate processes, as it runs in production: the `gateway` and
//! `edge-agent` binaries started, killed with SIGKILL, restarted and stopped by a test, over the
//! gateway's embedded broker or an external one (`FIELDSYNC_TEST_MQTT_URL`, e.g. the machine's
//! Mosquitto), and a private Mosquitto that a test may restart.
//!
//! The binaries are the ones cargo built beside the test (`cargo test --workspace` builds every
//! package's binaries); a test fails with a clear message when they are missing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{free_port, wait_for, DeviceKeys};

/// How long a process may take to start, stop or catch up.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A binary of the workspace, built by cargo beside the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/{profile}/deps/{test} → target/{profile}/{name}
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/{profile}/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's binaries first (`cargo test --workspace` does)",
        path.display()
    );
    path
}

/// An id unique to this run, so that tests sharing an external broker never meet each other's
/// devices or sessions (`prefix-{pid}-{n}`).
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where the devices and the gateway meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// The gateway's embedded rumqttd, on this port.
    Embedded(u16),
    /// An MQTT broker of its own, at (host, port).
    External(String, u16),
}

impl Broker {
    /// The embedded broker on a free port, and the external one when `FIELDSYNC_TEST_MQTT_URL`
    /// names one (`.ci/run` sets it to the machine's Mosquitto).
    pub fn under_test() -> Vec<Broker> {
        let mut brokers = vec![Broker::Embedded(free_port())];
        if let Some(external) = external_from_env() {
            brokers.push(external);
        }
        brokers
    }

    /// (host, port) for a device to connect to.
    pub fn address(&self) -> (String, u16) {
        match self {
            Broker::Embedded(port) => ("127.0.0.1".to_owned(), *port),
            Broker::External(host, port) => (host.clone(), *port),
        }
    }

    /// A short name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Broker::Embedded(_) => "embedded broker",
            Broker::External(..) => "external broker",
        }
    }
}

/// The broker `FIELDSYNC_TEST_MQTT_URL` names (`mqtt://host:port`), if any.
fn external_from_env() -> Option<Broker> {
    let url = std::env::var("FIELDSYNC_TEST_MQTT_URL").ok()?;
    let rest = url.strip_prefix("mqtt://").unwrap_or(&url);
    let (host, port) = rest.rsplit_once(':')?;
    Some(Broker::External(host.to_owned(), port.parse().ok()?))
}

/// Tests that use an external broker take this lock: every gateway subscribed to a broker
/// receives every device's batches, so two tests' gateways must not share one at once.
pub async fn external_broker_lock(broker: &Broker) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    match broker {
        Broker::Embedded(_) => None,
        Broker::External(..) => Some(LOCK.lock().await),
    }
}

/// Sends SIGTERM to `child` and waits for it to exit, up to `deadline`; SIGKILL after that.
fn terminate(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let give_up = std::time::Instant::now() + deadline;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if std::time::Instant::now() >= give_up {
            let _ = child.kill();
            return child.wait().expect("the process's exit status");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process owned by a test: killed when dropped, so that a failing test leaves nothing
/// running.
#[derive(Default)]
struct Owned(Option<Child>);

impl Owned {
    fn set(&mut self, child: Child) {
        self.0 = Some(child);
    }

    /// SIGKILL, and reaped.
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, waiting for a clean exit; `what` names the process if it fails.
    fn stop(&mut self, what: &str) {
        if let Some(mut child) = self.0.take() {
            let status = terminate(&mut child, DEADLINE);
            assert!(status.success(), "{what} exited with {status}");
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `gateway` process with a configuration file of its own.
pub struct GatewayProcess {
    child: Owned,
    config: PathBuf,
    /// Its store.
    pub data_dir: PathBuf,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// The broker it uses.
    pub broker: Broker,
    /// An admin's bearer token, issued by `gateway staff add` before the first start.
    pub admin_token: String,
    /// A front end's Open311 `api_key`, issued by `gateway integrations add`.
    pub api_key: String,
    /// Each enrolled device's signing keys, as `gateway devices add` printed them.
    keys: BTreeMap<String, DeviceKeys>,
    /// With TLS on both listeners: the CA its certificate is signed by, and the embedded
    /// broker's TLS port.
    pub tls: Option<(PathBuf, u16)>,
}

impl GatewayProcess {
    /// Writes a configuration into `dir`, enrols `devices` (`gateway devices add`, for their
    /// signing keys) and starts the gateway; returns once it is ready (`/healthz` answers 200:
    /// the ingest is subscribed). Its embedded broker lets any client in: the agents started
    /// for `devices` sign, and device identity is tested with `start_with_devices`.
    pub async fn start(dir: &Path, broker: &Broker, devices: &[&str]) -> Self {
        let mut gateway = Self::configure(dir, broker, true);
        for device in devices {
            gateway.enrol(device);
        }
        gateway.spawn().await;
        gateway
    }

    /// Runs `gateway devices add DEVICE --replace` (the gateway stopped) and keeps the keys it
    /// printed; returns the whole agent configuration it printed.
    pub fn enrol(&mut self, device: &str) -> String {
        let config = self.devices(&["add", device, "--replace"]);
        let keys = DeviceKeys::from_agent_config(&config)
            .expect("`gateway devices add` printed no signing keys");
        self.keys.insert(device.to_owned(), keys);
        config
    }

    /// `device`'s keys, as enrolled.
    pub fn keys(&self, device: &str) -> &DeviceKeys {
        self.keys
            .get(device)
            .unwrap_or_else(|| panic!("{device} was not enrolled with this gateway"))
    }

    /// Starts a gateway on its embedded broker on `port` that lets in only `devices`, each
    /// issued its credential first by `gateway devices add`; returns it once ready, with each
    /// device's password.
    pub async fn start_with_devices(
        dir: &Path,
        port: u16,
        devices: &[&str],
    ) -> (Self, Vec<(String, String)>) {
        Self::configure(dir, &Broker::Embedded(port), false)
            .issue_and_spawn(devices)
            .await
    }

    /// Starts a gateway on the external broker on 127.0.0.1:`port`, logging in as `username`
    /// (also its client id, as a broker with `use_username_as_clientid` makes it) with
    /// `password`, with `signing.required` off (what the broker lets through is under test);
    /// returns it once ready (subscribed: the broker granted its subscriptions).
    pub async fn start_with_broker_login(
        dir: &Path,
        port: u16,
        username: &str,
        password: &str,
    ) -> Self {
        let broker = Broker::External("127.0.0.1".into(), port);
        let mut gateway = Self::configure_with(dir, &broker, true, Some((username, password)));
        // What the broker lets through is under test, not signatures: bare envelopes and acks.
        let text = std::fs::read_to_string(&gateway.config).expect("the gateway's configuration");
        std::fs::write(&gateway.config, text + "[signing]\nrequired = false\n")
            .expect("writing its signing setting");
        gateway.spawn().await;
        gateway
    }

    /// [`GatewayProcess::start_with_devices`] with TLS on both listeners: HTTPS, and the embedded
    /// broker's TLS listener on a port of its own, both serving `pki`'s server certificate.
    pub async fn start_with_devices_tls(
        dir: &Path,
        port: u16,
        devices: &[&str],
        pki: &crate::pki::TestPki,
    ) -> (Self, Vec<(String, String)>) {
        let tls_port = free_port();
        let extra = format!(
            "[http.tls]\ncert = {:?}\nkey = {:?}\n\
             [mqtt.tls]\nlisten = \"127.0.0.1:{tls_port}\"\ncert = {:?}\nkey = {:?}\n",
            pki.cert, pki.key, pki.cert, pki.key
        );
        let gateway = Self::configure(dir, &Broker::Embedded(port), false);
        let text = std::fs::read_to_string(&gateway.config).expect("the gateway's configuration");
        std::fs::write(&gateway.config, text + &extra).expect("writing its TLS settings");
        Self {
            tls: Some((pki.ca.clone(), tls_port)),
            ..gateway
        }
        .issue_and_spawn(devices)
        .await
    }

    /// Issues each of `devices` its credential, then starts; returns each device's password.
    async fn issue_and_spawn(mut self, devices: &[&str]) -> (Self, Vec<(String, String)>) {
        let passwords = devices
            .iter()
            .map(|device| {
                let config = self.enrol(device);
                let password = config
                    .lines()
                    .find_map(|line| line.strip_prefix("password = "))
                    .map(|quoted| quoted.trim_matches('"').to_owned())
                    .expect("`gateway devices add` printed no password");
                ((*device).to_owned(), password)
            })
            .collect();
        self.spawn().await;
        (self, passwords)
    }

    /// Runs `gateway devices ARGS` on its configuration (the gateway must be stopped); returns
    /// what it printed, panicking if it failed.
    pub fn devices(&self, args: &[&str]) -> String {
        let output = Command::new(binary("gateway"))
            .arg("--config")
            .arg(&self.config)
            .arg("devices")
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("cannot run the gateway binary");
        assert!(
            output.status.success(),
            "gateway devices {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Writes its configuration; `anonymous` lets any client into the embedded broker.
    fn configure(dir: &Path, broker: &Broker, anonymous: bool) -> Self {
        Self::configure_with(dir, broker, anonymous, None)
    }

    /// As [`GatewayProcess::configure`], logging in to an external broker with `login`
    /// (username, password), the username also its client id.
    fn configure_with(
        dir: &Path,
        broker: &Broker,
        anonymous: bool,
        login: Option<(&str, &str)>,
    ) -> Self {
        let data_dir = dir.join("gateway-store");
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mqtt = match broker {
            // Agents and fake devices started while the gateway runs have no credentials (they
            // are issued with the gateway stopped), so most tests let anyone in; device identity
            // is tested with `start_with_devices`.
            Broker::Embedded(port) => {
                format!("listen = \"127.0.0.1:{port}\"\nallow_anonymous = {anonymous}")
            }
            Broker::External(host, port) => match login {
                Some((username, password)) => format!(
                    "url = \"mqtt://{host}:{port}\"\nclient_id = {username:?}\n\
                     username = {username:?}\npassword = {password:?}"
                ),
                None => format!(
                    "url = \"mqtt://{host}:{port}\"\nclient_id = \"{}\"",
                    unique_id("gateway")
                ),
            },
        };
        let config = dir.join("gateway.toml");
        let text = format!(
            "data_dir = {data_dir:?}\n\
             [mqtt]\n{mqtt}\n\
             [http]\nlisten = \"{http}\"\n\
             [missed_bins.calendar]\nbank_holidays = []\n"
        );
        std::fs::write(&config, text).expect("writing the gateway's configuration");
        let mut gateway = Self {
            child: Owned::default(),
            config,
            data_dir,
            http,
            broker: broker.clone(),
            admin_token: String::new(),
            api_key: String::new(),
            keys: BTreeMap::new(),
            tls: None,
        };
        gateway.admin_token = gateway.issue(&["staff", "add", "admin", "--role", "admin"]);
        gateway.api_key = gateway.issue(&["integrations", "add", "front-end"]);
        gateway
    }

    /// Runs `gateway ARGS` on its configuration (the gateway must be stopped) to issue a token
    /// or key; returns it (the line the command prints).
    fn issue(&self, args: &[&str]) -> String {
        let output = Command::new(binary("gateway"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("cannot run the gateway binary");
        assert!(
            output.status.success(),
            "gateway {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    async fn spawn(&mut self) {
        let child = Command::new(binary("gateway"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the gateway binary");
        self.child.set(child);
        let url = self.url("/healthz");
        let ca = self.tls.as_ref().map(|(ca, _)| ca.clone());
        wait_for("the gateway to be ready", DEADLINE, || async {
            let status = match &ca {
                None => crate::http::try_request("GET", &url, None, None, Vec::new())
                    .await
                    .ok()
                    .map(|r| r.status),
                Some(ca) => crate::http::try_request_tls("GET", &url, ca, None, Vec::new())
                    .await
                    .ok()
                    .map(|r| r.status),
            };
            (status == Some(200)).then_some(())
        })
        .await;
    }

    /// `http://{its address}{path}`, or `https://` with TLS.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.http)
    }

    /// Kills it with SIGKILL: nothing is flushed, nothing said goodbye.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts it again on the same store and addresses; returns once it is ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Stops it with SIGTERM and waits for a clean exit, so its store can be opened.
    pub fn stop(&mut self) {
        self.child.stop("the gateway");
    }
}

/// An `edge-agent` process for one device.
pub struct AgentProcess {
    child: Owned,
    data_dir: PathBuf,
    broker: (String, u16),
    env: Vec<(String, String)>,
    /// The device's id.
    pub device: String,
    /// The port of its local API (new at every start).
    pub api_port: u16,
}

impl AgentProcess {
    /// Starts an agent for `device`, its store in `dir/{device}`, connected to `broker`, with the
    /// signing keys `gateway` enrolled it with; returns once its API answers.
    pub async fn start(
        dir: &Path,
        device: &str,
        broker: (String, u16),
        gateway: &GatewayProcess,
    ) -> Self {
        Self::start_with_env(dir, device, broker, gateway, Vec::new()).await
    }

    /// As [`AgentProcess::start`], with `env` set for the process at every start too (a faked
    /// clock, say: [`crate::faketime`]).
    pub async fn start_with_env(
        dir: &Path,
        device: &str,
        broker: (String, u16),
        gateway: &GatewayProcess,
        mut env: Vec<(String, String)>,
    ) -> Self {
        env.extend(gateway.keys(device).agent_env());
        let mut agent = Self {
            child: Owned::default(),
            data_dir: dir.join(device),
            broker,
            env,
            device: device.to_owned(),
            api_port: 0,
        };
        agent.spawn().await;
        agent
    }

    async fn spawn(&mut self) {
        self.api_port = free_port();
        let child = Command::new(binary("edge-agent"))
            .args(["--device-id", &self.device, "--data-dir"])
            .arg(&self.data_dir)
            .args(["--mqtt-host", &self.broker.0])
            .args(["--mqtt-port", &self.broker.1.to_string()])
            .args(["--api-listen", &format!("127.0.0.1:{}", self.api_port)])
            .args(["--linger-ms", "10", "--resend-after-s", "2"])
            .args(["--batch-max-records", "50"])
            .args([
                "--mqtt-reconnect-min-ms",
                "50",
                "--mqtt-reconnect-max-ms",
                "500",
            ])
            .args(["--shutdown-deadline-s", "5"])
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the edge-agent binary");
        self.child.set(child);
        let port = self.api_port;
        wait_for("the agent's API", DEADLINE, || async move {
            agent_request(port, "GET", "/v1/status", "")
                .await
                .map(|_| ())
        })
        .await;
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts it again on the same store (its API on a new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Stops it with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        self.child.stop("the agent");
    }

    /// Its `/v1/status`, or `None` while it does not answer.
    pub async fn status(&self) -> Option<serde_json::Value> {
        let (status, body) = agent_request(self.api_port, "GET", "/v1/status", "").await?;
        (status == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    /// Waits until its outbox is empty: everything it accepted is acked by the gateway.
    pub async fn wait_drained(&self) {
        wait_for(
            &format!("{}'s outbox to empty", self.device),
            DEADLINE,
            || async {
                let status = self.status().await?;
                (status["outbox"]["depth"] == 0).then_some(())
            },
        )
        .await;
    }
}

/// One HTTP/1.1 request to an agent's API over a fresh connection; `None` if the agent is not
/// there or the connection breaks (it may be killed at any moment).
pub async fn agent_request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, String)> {
    agent_request_with_key(port, method, path, None, body).await
}

/// [`agent_request`] with an `Idempotency-Key` header, as an app that retries sends it.
pub async fn agent_request_with_key(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let key = key.map_or(String::new(), |key| format!("Idempotency-Key: {key}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {key}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// A crew's confirmation as the app posts it to the agent.
pub fn collection_json(uprn: u64, outcome: &str, round: &str) -> String {
    format!(
        r#"{{"uprn": {uprn}, "stream": "refuse", "outcome": "{outcome}",
            "pos": {{"lat": 51.5624, "lon": -0.4462, "acc": 4.0}},
            "vehicle": "RCV-07", "round": "{round}"}}"#
    )
}

/// Posts one confirmation; the sequence number of its 201, `Err(None)` when the agent did not
/// answer (it may have stored it or not), `Err(Some(status))` for another answer.
pub async fn post_collection(
    port: u16,
    uprn: u64,
    outcome: &str,
    round: &str,
) -> Result<u64, Option<u16>> {
    match agent_request(
        port,
        "POST",
        "/v1/collections",
        &collection_json(uprn, outcome, round),
    )
    .await
    {
        Some((201, body)) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|created| created["seq"].as_u64())
            .ok_or(Some(201)),
        Some((status, _)) => Err(Some(status)),
        None => Err(None),
    }
}

/// A Mosquitto of the test's own on a free port, which the test may stop and start again
/// (the machine's Mosquitto is shared and must not be restarted by a test). `None` when there is
/// no `mosquitto` binary on this machine.
pub struct PrivateMosquitto {
    child: Owned,
    binary: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    config: PathBuf,
}

impl PrivateMosquitto {
    /// Starts one, configured from `dir`; waits until it listens.
    pub async fn start(dir: &Path) -> Option<Self> {
        Self::start_with(dir, |port| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 100000\nmessage_size_limit 0\n"
            )
        })
        .await
    }

    /// Starts one on the configuration `config` gives for its port, written into `dir`; waits
    /// until it listens.
    pub async fn start_with(dir: &Path, config: impl FnOnce(u16) -> String) -> Option<Self> {
        let binary = [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())?;
        let port = free_port();
        let text = config(port);
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, text).ok()?;
        let mut mosquitto = Self {
            child: Owned::default(),
            binary,
            port,
            config,
        };
        mosquitto.spawn().await;
        Some(mosquitto)
    }

    async fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start mosquitto");
        self.child.set(child);
        let port = self.port;
        wait_for("the private Mosquitto to listen", DEADLINE, || async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    /// Stops it abruptly (SIGKILL): everything it held in memory is gone.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

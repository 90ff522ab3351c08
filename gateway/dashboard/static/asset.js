// One boiler, for asset managers: its facts, flow and return temperatures, pressure (with the
// forecast), modulation and daily efficiency over a chosen period, its alerts marked on the
// charts' time axis and listed (with acknowledgement), all kept live over server-sent events.

import { api, el, figure, fillTable, live, navigation, run, showError, when, words } from "./common.js";
import { timeChart } from "./charts.js";
import { forecastOf, withForecast } from "./forecast.js";

const DAY_S = 86400;
const id = decodeURIComponent(location.pathname.split("/").pop());
const base = `/api/v1/assets/${encodeURIComponent(id)}`;
const charts = {};
const alerts = new Map();
let serverNow = null;
let raw = null;

/** Inserts a null where samples stop for more than three usual intervals, so charts gap. */
function withGaps(xs, ys) {
  if (xs.length < 3) return [xs, ys];
  const steps = xs.slice(1).map((x, i) => x - xs[i]).sort((a, b) => a - b);
  const usual = steps[Math.floor(steps.length / 2)];
  const outX = [];
  const outY = ys.map(() => []);
  xs.forEach((x, i) => {
    if (i > 0 && x - xs[i - 1] > 3 * usual) {
      outX.push((x + xs[i - 1]) / 2);
      outY.forEach((y) => y.push(null));
    }
    outX.push(x);
    outY.forEach((y, j) => y.push(ys[j][i]));
  });
  return [outX, outY];
}

const seconds = (iso) => Date.parse(iso) / 1000;
const value = (v) => (v === undefined ? null : v);

/** The telemetry answer's points as columns: samples' readings, or rollups' means. */
function columns(answer, fields) {
  if (answer.step === "raw") {
    const xs = answer.points.map((p) => seconds(p.at));
    const ys = fields.map((f) => answer.points.map((p) => value(p.readings[f])));
    return withGaps(xs, ys);
  }
  // Rollups: a period without data has coverage 0 and no mean, a gap already.
  const xs = answer.points.map((p) => seconds(p.start));
  const ys = fields.map((f) => answer.points.map((p) => value(p[f] && p[f].mean)));
  return [xs, ys];
}

function markers() {
  return [...alerts.values()].map((a) => ({ at: seconds(a.opened), label: words(a.kind) }));
}

function drawPressure() {
  if (!raw) return;
  const [xs, [bar]] = raw.pressure;
  const f = forecastOf([...alerts.values()]);
  const [allX, ys] = withForecast(xs, bar, f);
  charts.pressure.set(allX, ys, markers());
  document.getElementById("forecast").textContent = f
    ? `Falling ${figure(-f.slope, 3)} bar a day from ${figure(f.level, 2)} bar: below 1 bar in about ${figure(f.days, 0)} days.`
    : "No forecast: the pressure is not trending towards 1 bar (or there is too little data since the last refill).";
}

function drawAll() {
  if (!raw) return;
  charts.temperatures.set(...raw.temperatures, markers());
  charts.modulation.set(...raw.modulation, markers());
  charts.efficiency.set(...raw.efficiency, markers());
  drawPressure();
}

async function loadTelemetry(days) {
  const range = serverNow
    ? `?from=${new Date((serverNow - days * DAY_S) * 1000).toISOString()}&to=${new Date(serverNow * 1000).toISOString()}`
    : "";
  const answer = await api(`${base}/telemetry${range}`);
  serverNow = seconds(answer.to);
  const effDays = Math.max(30, days);
  const from = new Date((serverNow - effDays * DAY_S) * 1000).toISOString();
  const eff = await api(`${base}/efficiency?step=day&from=${from}&to=${answer.to}`);
  const effX = eff.points.map((p) => seconds(p.start));
  const measured = eff.points.map((p) => (p.basis === "measured" ? value(p.efficiency_pct) : null));
  const estimated = eff.points.map((p) => (p.basis === "estimated" ? value(p.efficiency_pct) : null));
  raw = {
    answer,
    temperatures: columns(answer, ["flow_c", "return_c"]),
    pressure: columns(answer, ["pressure_bar"]),
    modulation: columns(answer, ["modulation_pct"]),
    efficiency: [effX, [measured, estimated]],
  };
  drawAll();
  document.body.dataset.range = String(days);
}

function renderFacts(asset) {
  document.getElementById("title").textContent = `Boiler ${asset.asset}`;
  document.title = `${asset.asset} · fieldsync`;
  const facts = [
    ["Address", asset.address],
    ["Make and model", `${asset.make ?? ""} ${asset.model ?? ""}`.trim() || "–"],
    ["Rated output", figure(asset.rated_output_kw, 0, " kW")],
    ["State", asset.state],
    ["Last heard", asset.latest ? when(asset.latest.at) : "never"],
    ["Hub", asset.hub],
  ];
  document.getElementById("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { class: k === "State" ? `state-${v}` : null, text: v ?? "–" })]));
}

function ackForm(alert) {
  const input = el("input", { id: `note-${alert.id}`, name: "note", maxlength: "2000", autocomplete: "off" });
  const form = el("form", { class: "ack" },
    el("label", { for: input.id, class: "visually-hidden", text: `Note acknowledging ${words(alert.kind)}` }),
    input,
    el("button", { type: "submit", text: alert.ack ? "Acknowledge again" : "Acknowledge" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const done = await api(`/api/v1/alerts/${encodeURIComponent(alert.id)}/ack`, input.value ? { note: input.value } : {});
      alerts.set(done.id, done);
      renderAlerts();
    } catch (e) {
      showError(`Could not acknowledge: ${e.message}`);
    }
  });
  return form;
}

/** An alert's evidence, the latest of each kind: it keeps the opening readings and the latest. */
function latestEvidence(alert) {
  return Object.values(Object.fromEntries(alert.evidence.map((e) => [e.what, e])));
}

function renderAlerts() {
  const list = [...alerts.values()].sort((a, b) => (a.state === b.state ? b.opened.localeCompare(a.opened) : a.state === "open" ? -1 : 1));
  fillTable(
    document.getElementById("alerts"),
    list.map((a) =>
      el("tr", { "data-alert": a.id },
        el("td", { text: words(a.kind) }),
        el("td", { class: `sev-${a.severity}`, text: a.severity }),
        el("td", { text: a.state === "open" ? "open" : `closed ${when(a.closed)}` }),
        el("td", { text: when(a.opened) }),
        el("td", { text: latestEvidence(a).map((e) => `${words(e.what)} ${figure(e.value, 2)} ${e.unit}`).join("; ") }),
        el("td", {},
          a.ack ? el("p", { text: `${words(a.ack.by)}, ${when(a.ack.at)}${a.ack.note ? `: ${a.ack.note}` : ""}` }) : null,
          a.state === "open" ? ackForm(a) : null,
        ),
      ),
    ),
    "No alerts.",
  );
}

async function loadAlerts() {
  const [open, closed] = await Promise.all([
    api(`/api/v1/alerts?asset=${encodeURIComponent(id)}&state=open`),
    api(`/api/v1/alerts?asset=${encodeURIComponent(id)}&state=closed`),
  ]);
  alerts.clear();
  for (const a of [...closed, ...open]) alerts.set(a.id, a);
  renderAlerts();
}

/** A live sample, appended when the charts show samples. */
function onSample(sample) {
  if (!raw || raw.answer.step !== "raw") return;
  raw.answer.points.push(sample);
  raw.temperatures = columns(raw.answer, ["flow_c", "return_c"]);
  raw.pressure = columns(raw.answer, ["pressure_bar"]);
  raw.modulation = columns(raw.answer, ["modulation_pct"]);
  drawAll();
}

function onAlert(alert) {
  if (alert.asset !== id) return;
  alerts.set(alert.id, alert);
  renderAlerts();
  drawAll();
  // The boiler's state follows its alerts.
  api(base).then(renderFacts).catch(() => {});
}

run(async () => {
  await navigation();
  charts.temperatures = timeChart(document.getElementById("temperatures"), [
    { label: "Flow", unit: "°C" },
    { label: "Return", unit: "°C" },
  ]);
  charts.pressure = timeChart(document.getElementById("pressure"), [
    { label: "Pressure", unit: "bar", digits: 2 },
    { label: "Forecast", unit: "bar", digits: 2 },
  ]);
  charts.modulation = timeChart(document.getElementById("modulation"), [{ label: "Modulation", unit: "%", digits: 0 }]);
  charts.efficiency = timeChart(
    document.getElementById("efficiency"),
    [
      { label: "Measured", unit: "%", bars: true },
      { label: "Estimated", unit: "%", bars: true },
    ],
    { y: [0, 100] },
  );
  live("/api/v1/alerts/events", { opened: onAlert, escalated: onAlert, closed: onAlert, lagged: () => loadAlerts() });
  live(`${base}/events`, { sample: onSample });
  const asset = await api(base);
  renderFacts(asset);
  await loadAlerts();
  await loadTelemetry(1);
  document.getElementById("range").addEventListener("change", (event) => {
    loadTelemetry(Number(event.target.value)).catch((e) => showError(`Could not load: ${e.message}`));
  });
  document.getElementById("range-form").addEventListener("submit", (event) => event.preventDefault());
  document.body.dataset.ready = "true";
});

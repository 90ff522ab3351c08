// One boiler, for asset managers: its facts, flow and return temperatures, pressure (with the
// forecast), modulation and daily efficiency over a chosen period, its alerts marked on the
// charts' time axis and listed (with acknowledgement, and a repair job raised from one), and its
// repair jobs with the operatives' updates, all kept live over server-sent events; a form raises
// a job on the boiler itself.

import { api, councilTime, councilZone, el, figure, fillTable, live, navigation, run, showError, when, words } from "./common.js";
import { timeChart } from "./charts.js";
import { forecastOf, withForecast } from "./forecast.js";

const DAY_S = 86400;
const id = decodeURIComponent(location.pathname.split("/").pop());
const base = `/api/v1/assets/${encodeURIComponent(id)}`;
const charts = {};
const alerts = new Map();
/** This boiler's repair jobs by id, as `GET /api/v1/repairs/{id}` shows them. */
const repairs = new Map();
/** Whether the signed-in role may read repair jobs; false once the API has answered 403. */
let repairsReadable = true;
/** Whether the signed-in role may acknowledge alerts and raise jobs, as the session says: the
 * page offers no form the API would refuse. */
let mayAct = false;
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
          a.state === "open" && mayAct ? ackForm(a) : null,
        ),
        repairCell(a),
      ),
    ),
    "No alerts.",
  );
}

const isOpenJob = (job) => job.status !== "completed" && job.status !== "cancelled";

/** The jobs answering `alert`: those listed with it, as this page now knows them. */
function jobsFor(alert) {
  const jobs = new Map((alert.repairs ?? []).map((j) => [j.id, j]));
  for (const job of repairs.values()) if (job.alert === alert.id) jobs.set(job.id, job);
  return [...jobs.values()];
}

/** An alert's repair jobs, and for an open alert without an open job the button raising one. */
function repairCell(alert) {
  const jobs = jobsFor(alert);
  const raise = mayAct && alert.state === "open" && !jobs.some(isOpenJob) ? raiseButton(alert) : null;
  return el("td", { class: "repair" }, ...jobs.map((j) => el("p", { text: `${j.id}: ${words(j.status)}` })), raise);
}

/** Redraws only the repair cell of `alertId`'s row, so a note being typed beside it is kept. */
function refreshRepairCell(alertId) {
  const alert = alerts.get(alertId);
  const row = [...document.querySelectorAll("#alerts tr[data-alert]")].find((r) => r.dataset.alert === alertId);
  const cell = row && row.querySelector("td.repair");
  if (alert && cell) cell.replaceWith(repairCell(alert));
}

function raiseButton(alert) {
  const button = el("button", {
    type: "button",
    "aria-label": `Raise a repair job for the ${words(alert.kind)} alert`,
    text: "Raise a repair job",
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      // Priority and description default from the alert (its severity and evidence).
      const job = await api(`/api/v1/alerts/${encodeURIComponent(alert.id)}/repair`, {});
      keepRepair(job);
      renderRepairs();
      refreshRepairCell(alert.id);
      // The button is gone: the keyboard carries on from the new job's row.
      document.getElementById(`job-${job.id}`)?.focus();
    } catch (e) {
      button.disabled = false;
      showError(`Could not raise a repair job: ${e.message}`);
    }
  });
  return button;
}

/** Keeps `job` unless the page already holds a later view of it: a listing and the events can
 * cross, and a job's history only grows (up to its bound, where the later view still wins). */
function keepRepair(job) {
  const held = repairs.get(job.id);
  if (!held || job.history.length >= held.history.length) repairs.set(job.id, job);
}

/** The alert's name for a job raised from it: its kind, from the id when the page lacks it. */
function alertName(alertId) {
  const alert = alerts.get(alertId);
  return words(alert ? alert.kind : alertId.split(":").at(-2));
}

/** When a job was raised, by whom and from what. */
function raisedBy(job) {
  const origin = job.origin ?? {};
  const by =
    origin.by === "staff" ? `by ${origin.name}`
    : origin.by === "alert" ? "by its alert, automatically"
    : origin.by === "tenant" ? `from tenant's report ${origin.report}`
    : null;
  return [when(job.raised), by, job.alert ? `from the ${alertName(job.alert)} alert` : null].filter(Boolean).join(", ");
}

/** A job's status in words, with what follows a completion. */
function statusOf(job) {
  const flags = [
    job.resolved_alert ? "its alert cleared" : null,
    job.needs_attention ? "needs attention: its alert has not cleared" : null,
  ].filter(Boolean);
  return [words(job.status), ...flags].join("; ");
}

/** The operatives' updates from their handhelds, oldest first, each with its time. */
function updatesOf(job) {
  const updates = job.history.filter((t) => t.event === "update");
  if (updates.length === 0) return el("p", { text: "No updates yet." });
  return el("ol", { class: "updates" },
    ...updates.map((t) => el("li", { text: `${words(t.details.status)}, ${when(t.at)}${t.details.note ? `: ${t.details.note}` : ""}` })),
  );
}

const jobNumber = (job) => Number(job.id.replace(/^RP-/, "")) || 0;

function renderRepairs() {
  const table = document.getElementById("repairs");
  if (!repairsReadable) {
    fillTable(table, [], "Your role may not see repair jobs: the gateway refused them (403).");
    return;
  }
  const list = [...repairs.values()].sort((a, b) => b.raised.localeCompare(a.raised) || jobNumber(b) - jobNumber(a));
  fillTable(
    table,
    list.map((j) =>
      el("tr", { "data-job": j.id },
        el("th", { scope: "row", id: `job-${j.id}`, tabindex: "-1", text: j.id }),
        el("td", { class: "what", text: j.description }),
        el("td", { class: `job-${j.status}`, text: statusOf(j) }),
        el("td", { class: `prio-${j.priority}`, text: j.priority }),
        el("td", { text: j.operative ?? (j.status === "raised" ? "waiting for one" : "–") }),
        el("td", { text: raisedBy(j) }),
        el("td", { text: when(j.due) }),
        el("td", {}, updatesOf(j)),
      ),
    ),
    "No repair jobs for this boiler.",
  );
}

/** Lists the boiler's jobs afresh; says so in the table if the role may not read them. Answers
 * whether it may. */
async function loadRepairs() {
  try {
    const jobs = await api(`/api/v1/repairs?asset=${encodeURIComponent(id)}`);
    // Merged, not replaced: an event may have brought a later view while this was asked.
    for (const job of jobs) keepRepair(job);
    repairsReadable = true;
  } catch (e) {
    if (e.status !== 403) throw e;
    repairsReadable = false;
  }
  renderRepairs();
  for (const alertId of alerts.keys()) refreshRepairCell(alertId);
  return repairsReadable;
}

/** A job as it changed, from the events of every boiler's jobs: only this boiler's are kept. */
function onRepair(job) {
  if (job.asset !== id) return;
  keepRepair(job);
  renderRepairs();
  if (job.alert) refreshRepairCell(job.alert);
}

/** The form raising a job on this boiler (`POST /api/v1/repairs`), shown to a role that may:
 * the new job joins the table at once (its event may come before or after the answer), the form
 * is cleared, and what happened is said politely beside it. */
function raiseForm() {
  const form = document.getElementById("raise-form");
  const said = document.getElementById("raise-said");
  const button = form.querySelector("button[type='submit']");
  document.getElementById("raise-zone").textContent = councilZone() ?? "this device's";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const say = (text, error) => {
      said.textContent = text;
      said.classList.toggle("error", Boolean(error));
    };
    let due;
    try {
      due = councilTime(form.elements.due.value);
    } catch (e) {
      say(`Could not raise the job: due: ${e.message}`, true);
      return;
    }
    const body = { asset: id, description: form.elements.description.value, priority: form.elements.priority.value };
    if (due) body.due = due;
    button.disabled = true;
    say("Raising the job…");
    try {
      const job = await api("/api/v1/repairs", body);
      keepRepair(job);
      renderRepairs();
      form.reset();
      say(`Raised ${job.id}: ${job.priority}, due ${when(job.due)}.`);
    } catch (e) {
      // 400 (a field the gateway refuses, named in its message), 422 (a body it cannot read or
      // an asset it does not know), 403: the gateway's words, the form kept as typed.
      say(`Could not raise the job: ${e.message}`, true);
    } finally {
      button.disabled = false;
    }
  });
  form.hidden = false;
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
  const session = await navigation();
  mayAct = session.may_act_on_boilers === true;
  if (mayAct) raiseForm();
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
  // Jobs only once the role is known to read them, so a refusal is one message, not a stream
  // retrying. Each (re)connection lists them again, for what changed while it was not open.
  if (await loadRepairs()) {
    const reload = () => loadRepairs().catch((e) => showError(`Could not load repair jobs: ${e.message}`));
    const jobs = live("/api/v1/repairs/events", { repair: onRepair, lagged: reload });
    jobs.addEventListener("open", reload);
  }
  await loadTelemetry(1);
  document.getElementById("range").addEventListener("change", (event) => {
    loadTelemetry(Number(event.target.value)).catch((e) => showError(`Could not load: ${e.message}`));
  });
  document.getElementById("range-form").addEventListener("submit", (event) => event.preventDefault());
  document.body.dataset.ready = "true";
});

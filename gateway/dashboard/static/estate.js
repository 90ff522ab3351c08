// The estate at a glance, for asset managers: boilers by state, open alerts by severity (live
// over server-sent events), boilers ranked by gas wasted, and the worst efficiencies.

import { api, boilerLink, debounce, el, figure, fillTable, live, navigation, run, when, words } from "./common.js";

const SEVERITIES = ["critical", "high", "warning", "info"];
const open = new Map();

function counts(list, entries) {
  list.replaceChildren(...entries.map(([name, n]) => el("div", {}, el("dt", { text: words(name) }), el("dd", { text: n }))));
}

function renderAlerts() {
  const alerts = [...open.values()].sort((a, b) => b.opened.localeCompare(a.opened));
  const bySeverity = SEVERITIES.map((s) => [s, alerts.filter((a) => a.severity === s).length]);
  counts(document.getElementById("by-severity"), bySeverity);
  fillTable(
    document.getElementById("alerts"),
    alerts.map((a) =>
      el("tr", { "data-alert": a.id },
        el("td", {}, boilerLink(a.asset)),
        el("td", { text: words(a.kind) }),
        el("td", { class: `sev-${a.severity}`, text: a.severity }),
        el("td", { text: when(a.opened) }),
        el("td", { text: a.ack ? `${words(a.ack.by)}, ${when(a.ack.at)}` : "no" }),
      ),
    ),
    "No open alerts.",
  );
}

async function loadEstate() {
  const estate = await api("/api/v1/estate");
  counts(document.getElementById("by-state"), ["ok", "alerting", "silent"].map((s) => [s, estate.by_state[s] ?? 0]));
  document.getElementById("ranking-title").textContent = `Most gas wasted, ${estate.period}`;
  fillTable(
    document.getElementById("ranking"),
    estate.ranking.slice(0, 10).map((r) =>
      el("tr", {},
        el("td", {}, boilerLink(r.asset)),
        el("td", { class: "num", text: figure(r.wasted_kwh, 0) }),
        el("td", { class: "num", text: figure(r.wasted_gbp, 2) }),
        el("td", { class: "num", text: figure(r.wasted_co2e_kg, 0) }),
        el("td", { class: "num", text: `${figure(r.efficiency_pct, 1, " %")} (${r.efficiency_basis})` }),
        el("td", { text: r.advice ?? "" }),
      ),
    ),
    "No boiler has enough data this period to rank.",
  );
}

async function loadWorst() {
  // The listing comes in pages of at most 1,000, by id.
  const assets = [];
  for (;;) {
    const after = assets.length ? `&after=${encodeURIComponent(assets[assets.length - 1].asset)}` : "";
    const page = await api(`/api/v1/assets?limit=1000${after}`);
    assets.push(...page);
    if (page.length < 1000) break;
  }
  const known = assets.filter((a) => a.last_day_efficiency && a.last_day_efficiency.efficiency_pct !== null);
  known.sort((a, b) => a.last_day_efficiency.efficiency_pct - b.last_day_efficiency.efficiency_pct);
  fillTable(
    document.getElementById("worst"),
    known.slice(0, 10).map((a) => {
      const e = a.last_day_efficiency;
      return el("tr", {},
        el("td", {}, boilerLink(a.asset)),
        el("td", { class: "num", text: figure(e.efficiency_pct, 1, " %") }),
        el("td", { text: e.basis }),
        el("td", { class: "num", text: figure(e.coverage * 100, 0, " %") }),
        el("td", { class: `state-${a.state}`, text: a.state }),
      );
    }),
    "No boiler's efficiency is known for yesterday.",
  );
}

async function loadAlerts() {
  const alerts = await api("/api/v1/alerts?state=open&limit=5000");
  open.clear();
  for (const a of alerts) open.set(a.id, a);
  renderAlerts();
}

run(async () => {
  await navigation();
  const refreshEstate = debounce(() => loadEstate().catch(() => {}), 1000);
  live("/api/v1/alerts/events", {
    opened: (a) => { open.set(a.id, a); renderAlerts(); refreshEstate(); },
    escalated: (a) => { open.set(a.id, a); renderAlerts(); },
    closed: (a) => { open.delete(a.id); renderAlerts(); refreshEstate(); },
    lagged: () => loadAlerts(),
  });
  await Promise.all([loadEstate(), loadWorst(), loadAlerts()]);
  document.body.dataset.ready = "true";
});

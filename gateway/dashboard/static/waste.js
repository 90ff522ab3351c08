// The waste supervisors' page: today's rounds and their progress, missed-bin reports with their
// state and the crew's evidence, confirmations that matched no property, and the devices with
// their link, outbox depth and clock skew; refreshed live from the reports' event stream.

import { api, debounce, el, figure, fillTable, live, navigation, run, when, words } from "./common.js";

async function loadRounds() {
  const rounds = await api("/api/v1/rounds");
  fillTable(
    document.getElementById("rounds"),
    rounds.map((r) => {
      const due = Math.max(r.scheduled, r.done.length);
      const label = `${r.done.length} of ${due} properties`;
      const exceptions = Object.entries(r.exceptions).map(([outcome, list]) => `${list.length} ${words(outcome)}`);
      return el("tr", {},
        el("th", { scope: "row", text: r.round }),
        el("td", {}, el("progress", { max: due || 1, value: r.done.length, "aria-label": `${r.round}: ${label}` }), ` ${label}`),
        el("td", { class: "num", text: r.outstanding.length }),
        el("td", { text: exceptions.join(", ") || "none" }),
        el("td", { text: when(r.started_at && new Date(r.started_at).toISOString()) }),
        el("td", { text: when(r.completed_at && new Date(r.completed_at).toISOString()) }),
      );
    }),
    "No rounds are due today.",
  );
}

async function loadReports() {
  const reports = await api("/api/v1/reports");
  reports.sort((a, b) => b.created.localeCompare(a.created));
  fillTable(
    document.getElementById("reports"),
    reports.map((r) =>
      el("tr", {},
        el("th", { scope: "row", text: r.id }),
        el("td", { text: r.address ?? (r.uprn ? `UPRN ${r.uprn}` : "not yet placed") }),
        el("td", { text: words(r.stream) }),
        el("td", { text: words(r.status) }),
        el("td", { text: when(r.created) }),
        el("td", {}, el("ul", {}, ...r.notes.map((note, i) => {
          // The crew's record behind a step, as `device#sequence`.
          const evidence = r.history[i] && r.history[i].evidence;
          return el("li", { text: evidence ? `${note} (crew record ${evidence})` : note });
        }))),
      ),
    ),
    "No missed-bin reports in the last 30 days.",
  );
}

async function loadUnmatched() {
  const unmatched = await api("/api/v1/unmatched");
  fillTable(
    document.getElementById("unmatched"),
    unmatched.map((c) =>
      el("tr", {},
        el("td", { text: when(new Date(c.at).toISOString()) }),
        el("td", { text: c.round }),
        el("td", { text: c.vehicle }),
        el("td", { text: words(c.stream) }),
        el("td", { text: words(c.outcome) }),
        el("td", { text: words(c.matched && c.matched.reason ? JSON.stringify(c.matched.reason).replaceAll('"', "") : "unmatched") }),
      ),
    ),
    "Every confirmation today matched a property.",
  );
}

async function loadDevices() {
  const devices = await api("/api/v1/devices");
  fillTable(
    document.getElementById("devices"),
    devices.map((d) =>
      el("tr", {},
        el("th", { scope: "row", text: d.id }),
        el("td", { class: d.online === true ? "state-ok" : d.online === false ? "state-silent" : null, text: d.online === true ? "online" : d.online === false ? "offline" : "not said" }),
        el("td", { text: when(d.last_seen && new Date(d.last_seen).toISOString()) }),
        el("td", { class: "num", text: d.health ? d.health.depth : "–" }),
        el("td", { class: d.clock_skew_flagged ? "state-silent" : null, text: d.clock_skew_ms === null || d.clock_skew_ms === undefined ? "–" : `${figure(d.clock_skew_ms / 1000, 1, " s")}${d.clock_skew_flagged ? " (beyond the limit)" : ""}` }),
      ),
    ),
    "No devices have been heard from.",
  );
}

const loadAll = () => Promise.all([loadRounds(), loadReports(), loadUnmatched(), loadDevices()]);

run(async () => {
  await navigation();
  const refresh = debounce(() => loadAll().catch(() => {}), 500);
  live("/api/v1/events", { change: refresh, lagged: refresh });
  await loadAll();
  document.body.dataset.ready = "true";
});

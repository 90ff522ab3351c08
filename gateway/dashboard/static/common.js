// What every dashboard page shares: calls to the gateway's JSON API (with the session cookie
// the browser holds), live event streams, the navigation for the signed-in role, and small
// helpers to build elements and format figures. No framework: plain modules.

/** Builds an element: `attrs` are attributes (or `text`), `children` nodes or strings. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Says `message` in the page's alert region (or clears it). */
export function showError(message) {
  const region = document.getElementById("error");
  if (!region) return;
  region.textContent = message || "";
  region.hidden = !message;
}

/** GETs (or, with `body`, POSTs JSON to) `path`; to the sign-in form if the session ended. An
 * error answer throws, with the HTTP status as the error's `status`. */
export async function api(path, body) {
  const init = { headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.assign("/dashboard/sign-in");
    throw new Error("signed out");
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((answer && answer.error) || `${path}: ${response.status}`);
    // Callers tell a refusal (403) from a failure by it.
    error.status = response.status;
    throw error;
  }
  return answer;
}

/** The council's time zone, in which times are shown (the device's until the session says). */
let timeZone;

/** Fills the navigation with the pages the signed-in role may see. */
export async function navigation() {
  const session = await api("/dashboard/session");
  timeZone = session.time_zone;
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    ...session.pages.map((page) => {
      const here =
        location.pathname === page.path ||
        (page.path === "/dashboard/" && location.pathname.startsWith("/dashboard/boilers/"));
      return el("a", { href: page.path, "aria-current": here ? "page" : null, text: page.title });
    }),
  );
  return session;
}

/** Listens to the server-sent events at `path`: `handlers` by event name. */
export function live(path, handlers) {
  const status = document.getElementById("live");
  const source = new EventSource(path);
  source.addEventListener("open", () => {
    if (status) status.textContent = "Live";
  });
  source.addEventListener("error", () => {
    if (status) status.textContent = "Reconnecting…";
  });
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      let data = event.data;
      try {
        data = JSON.parse(event.data);
      } catch {
        // `lagged` carries a plain count.
      }
      handler(data);
    });
  }
  addEventListener("pagehide", () => source.close());
  return source;
}

/** Calls `fn` at most once per `ms`, after the last call: to refresh after bursts of events. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A figure to `digits` places with its unit, or a dash when unknown. */
export function figure(value, digits = 1, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${Number(value).toFixed(digits)}${unit}`;
}

/** An RFC 3339 time as a date and time in the council's time zone, or a dash. */
export function when(iso) {
  if (!iso) return "–";
  const at = new Date(iso);
  return at.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short", timeZone });
}

/** The council's time zone's offset from UTC at the instant `ms`, in milliseconds: its wall
 * time then, read as if UTC, less the instant. */
function offsetAt(ms) {
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const part = Object.fromEntries(format.formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]));
  const wall = Date.UTC(part.year, part.month - 1, part.day, part.hour, part.minute, part.second);
  return wall - Math.floor(ms / 1000) * 1000;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** A `datetime-local` field's value (`2027-06-01T09:00`: a wall time, no zone) read in the
 * council's time zone, as RFC 3339 with the zone's offset then (`2027-06-01T09:00:00+01:00`),
 * whatever the device's own zone; null for an empty field. A wall time the clocks skip when they
 * go forward is read an hour on; one they pass twice going back, as the later. */
export function councilTime(local) {
  if (!local) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(local);
  if (!m) throw new Error(`not a date and time: ${local}`);
  const [year, month, day, hour, minute, second = 0] = m.slice(1).map((v) => Number(v ?? 0));
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  // The offset at the wall time read as UTC is at most one change of offset away from the
  // offset at the instant meant; a second pass settles it.
  let at = wall - offsetAt(wall);
  at = wall - offsetAt(at);
  const offset = offsetAt(at);
  const shown = new Date(at + offset);
  const minutes = Math.abs(offset) / 60000;
  return `${shown.getUTCFullYear()}-${pad(shown.getUTCMonth() + 1)}-${pad(shown.getUTCDate())}T` +
    `${pad(shown.getUTCHours())}:${pad(shown.getUTCMinutes())}:${pad(shown.getUTCSeconds())}` +
    `${offset < 0 ? "-" : "+"}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

/** The council's time zone's name, once the session has said it. */
export function councilZone() {
  return timeZone;
}

/** Words for a snake_case name: `pressure_low` → `pressure low`. */
export function words(name) {
  return String(name ?? "").replaceAll("_", " ");
}

/** Replaces `table`'s body with `rows`, or one row saying `empty`. */
export function fillTable(table, rows, empty) {
  const body = table.tBodies[0];
  const columns = table.tHead.rows[0].cells.length;
  if (rows.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: columns, text: empty })));
  } else {
    body.replaceChildren(...rows);
  }
}

/** A link to a boiler's page. */
export function boilerLink(asset) {
  return el("a", { href: `/dashboard/boilers/${encodeURIComponent(asset)}`, text: asset });
}

/** Runs a page's `start`, saying any failure on the page. */
export function run(start) {
  start().catch((e) => {
    if (e.message !== "signed out") showError(`Could not load: ${e.message}`);
  });
}

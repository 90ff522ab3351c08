// The pressure forecast as the gateway gives it: the evidence of an open `pressure_forecast`
// alert (the trend's level and slope, and the days until 1 bar). Pure functions, so the browser
// test can check them on an alert shaped as the API answers.

const DAY_S = 86400;

/** The forecast in `alerts` (as `/api/v1/alerts` lists them), or null when there is none. */
export function forecastOf(alerts) {
  const open = alerts.find((a) => a.kind === "pressure_forecast" && a.state === "open");
  if (!open) return null;
  const of = (what) => open.evidence.filter((e) => e.what === what).pop();
  const slope = of("pressure_trend_bar_per_day");
  const level = of("pressure_trend_bar");
  const days = of("days_until_below_1_bar");
  if (!slope || !level) return null;
  return { at: Date.parse(slope.at) / 1000, slope: slope.value, level: level.value, days: days ? days.value : null };
}

/**
 * The pressure series `xs`/`bar` (seconds, bar) with the forecast `f` as a second series, from
 * the trend's level when it was made down to 1 bar: `[xs, [bar, forecast]]`, in time order.
 */
export function withForecast(xs, bar, f) {
  let points = xs.map((x, i) => [x, bar[i], null]);
  if (f) {
    const reach = f.at + Math.max(0, (f.level - 1) / Math.max(-f.slope, 1e-6)) * DAY_S;
    points = [...points, [f.at, null, f.level], [reach, null, 1]].sort((a, b) => a[0] - b[0]);
  }
  return [points.map((p) => p[0]), [points.map((p) => p[1]), points.map((p) => p[2])]];
}

// Time-series charts on uPlot (vendored, see vendor/uplot/README.md), each with a text
// alternative: an aria-label summing the series up and a table of the same figures. Missing
// values are nulls, drawn as gaps, never joined across; alerts are dashed lines at their time.

import { el, figure } from "./common.js";

const HEIGHT = 240;
const COLOURS = ["#0b5cad", "#b00020", "#1e6b30", "#8a5300"];

/** Latest, lowest and highest of a series, ignoring gaps. */
function stats(values) {
  const known = values.filter((v) => v !== null && v !== undefined);
  if (known.length === 0) return null;
  return { latest: known[known.length - 1], min: Math.min(...known), max: Math.max(...known) };
}

/** Draws `markers` (times in seconds, with labels) as dashed vertical lines. */
function markerPlugin(chart) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx, bbox } = u;
          ctx.save();
          ctx.strokeStyle = "#8a5300";
          ctx.lineWidth = 2;
          ctx.setLineDash([6, 4]);
          for (const marker of chart.markers) {
            const x = u.valToPos(marker.at, "x", true);
            if (x < bbox.left || x > bbox.left + bbox.width) continue;
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

/**
 * A chart in `figureNode` of `series` ({label, unit, digits, bars}) against time, the y axis
 * spanning at least `y` ([min, max]) when given. Returns an object whose `set(xs, ys, markers)`
 * replaces its data: xs in seconds, one array per series.
 */
export function timeChart(figureNode, series, { y } = {}) {
  const plot = el("div", { class: "plot", role: "img" });
  const table = el(
    "table",
    {},
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: "Series" }),
      el("th", { scope: "col", text: "Latest" }),
      el("th", { scope: "col", text: "Lowest" }),
      el("th", { scope: "col", text: "Highest" }),
    )),
    el("tbody"),
  );
  figureNode.append(plot, el("details", {}, el("summary", { text: "The figures as a table" }), table));
  const chart = { markers: [], uplot: null };
  const width = () => Math.max(280, plot.clientWidth || figureNode.clientWidth - 16 || 600);
  const options = {
    width: width(),
    height: HEIGHT,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true },
      ...(y ? { y: { range: (u, min, max) => [Math.min(y[0], min ?? y[0]), Math.max(y[1], max ?? y[1])] } } : {}),
    },
    series: [
      {},
      ...series.map((s, i) => ({
        label: `${s.label} (${s.unit})`,
        stroke: COLOURS[i % COLOURS.length],
        width: 2,
        spanGaps: false,
        ...(s.bars
          ? { paths: uPlot.paths.bars({ size: [0.6, 40] }), fill: `${COLOURS[i % COLOURS.length]}99` }
          : {}),
        value: (u, v) => figure(v, s.digits ?? 1),
      })),
    ],
    plugins: [markerPlugin(chart)],
  };
  chart.uplot = new uPlot(options, [[], ...series.map(() => [])], plot);
  new ResizeObserver(() => chart.uplot.setSize({ width: width(), height: HEIGHT })).observe(figureNode);

  chart.set = (xs, ys, markers = chart.markers) => {
    chart.markers = markers;
    chart.uplot.setData([xs, ...ys]);
    const rows = series.map((s, i) => {
      const st = stats(ys[i]);
      const f = (v) => (st ? figure(v, s.digits ?? 1, ` ${s.unit}`) : "no data");
      return { s, st, cells: [s.label, f(st?.latest), f(st?.min), f(st?.max)] };
    });
    table.tBodies[0].replaceChildren(
      ...rows.map((r) => el("tr", {}, ...r.cells.map((c, i) => el(i ? "td" : "th", i ? { class: "num" } : { scope: "row" }, c)))),
    );
    const said = rows
      .map((r) => (r.st ? `${r.s.label}: latest ${r.cells[1]}, from ${r.cells[2]} to ${r.cells[3]}` : `${r.s.label}: no data`))
      .join("; ");
    const alerts = markers.length ? `; ${markers.length} alert${markers.length > 1 ? "s" : ""} marked` : "";
    plot.setAttribute("aria-label", `${figureNode.querySelector("figcaption").textContent}. ${said}${alerts}.`);
  };
  chart.redraw = () => chart.uplot.redraw(false);
  return chart;
}

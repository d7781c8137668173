// Ulak web manager: charts as plain SVG (no library, no build step). Every chart has a name for
// screen readers (role="img" + aria-label) and its figures beside it as text, so that nothing is
// only a picture. Loaded before app.js, whose helpers (h, svg, num, pct, t, locale) it uses.
"use strict";

const COLORS = ["#0b6bcb", "#e8710a", "#1a7f37", "#9334e6", "#c62828", "#00838f"];

function legend(names) {
  return h("div", { class: "legend" }, names.map((n, k) => h("span", {}, h("i", { style: `background:${COLORS[k % COLORS.length]}` }), n)));
}

// series: {name: [numbers]}, one line each, sharing the x axis (index) and the y axis.
function lineChart(series, { height = 200, unit = "", label = "", labels = null, percent = false } = {}) {
  const names = Object.keys(series);
  const points = Math.max(2, ...names.map((n) => series[n].length));
  const values = names.flatMap((n) => series[n].filter((v) => v !== null && v !== undefined));
  const max = percent ? Math.max(0.01, ...values) : Math.max(1, ...values);
  const w = 600, pad = 42;
  const x = (i) => pad + (i * (w - pad - 5)) / (points - 1);
  const y = (v) => height - 18 - (v / max) * (height - 28);
  const show = (v) => (percent ? pct(v) : Math.round(v).toLocaleString(locale()) + unit);
  const line = (values) => {
    const out = [];
    values.forEach((v, i) => { if (v !== null && v !== undefined) out.push(`${x(i)},${y(v)}`); });
    return out.join(" ");
  };
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${w} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": label || names.join(", ") || t("job.curves") },
    svg("line", { x1: pad, y1: y(0), x2: w - 5, y2: y(0), stroke: "#dde1e8" }),
    svg("text", { x: 2, y: y(max) + 4 }, show(max)),
    svg("text", { x: 2, y: y(0) + 4 }, percent ? "0 %" : "0"),
    labels ? labels.map((text, i) => svg("text", { x: x(i) - 4, y: height - 4 }, text)) : [],
    // The first series (a total) last, thickest, on top: where the others coincide with it, it shows.
    names.map((n, k) => svg("polyline", {
      fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": k ? 2 : 3, "data-series": n, points: line(series[n]),
    })).reverse(),
    names.flatMap((n, k) => series[n].map((v, i) => (v === null || v === undefined ? null
      : svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: COLORS[k % COLORS.length] }))).filter(Boolean)));
  return h("div", {}, chart, legend(names));
}

// A summary's time series as cumulative curves (sent, delivered, unique clicks, conversions), with
// each curve's total in the legend: the same figures as the summary's points, summed.
function curvesChart(summary) {
  const points = summary.series.points;
  const kinds = [["sent", t("k.sent")], ["delivered", t("k.delivered")], ["unique_clicks", t("k.clicks")], ["conversions", t("k.conversions")]];
  const series = {};
  const totals = {};
  for (const [field, label] of kinds) {
    let sum = 0;
    series[label] = points.map((p) => (sum += p[field] || 0));
    totals[field] = sum;
  }
  const times = points.map((p) => new Date(p.at).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" }));
  const every = Math.max(1, Math.ceil(times.length / 6));
  return h("div", { class: "card", id: "curves" }, h("h2", {}, t("job.curves")),
    lineChart(series, { label: t("job.curves"), labels: times.map((s, i) => (i % every === 0 ? s : "")) }),
    h("p", { class: "muted" }, ...kinds.map(([field, label], i) => [i ? " · " : "", `${label}: `,
      h("b", { "data-curve": field }, num(totals[field]))])));
}

// A NPS survey's answers 0-10 as bars: detractors red, passives amber, promoters green.
function npsChart(nps) {
  const dist = nps.distribution;
  const scores = Object.keys(dist).map(Number).sort((a, b) => a - b);
  const top = Math.max(1, ...Object.values(dist));
  const w = 600, height = 180, bar = (w - 20) / scores.length;
  const colour = (s) => (s >= 9 ? "#1a7f37" : s >= 7 ? "#b35900" : "#c62828");
  const label = `${t("k.nps")} ${nps.nps === null ? t("none") : num(nps.nps)}: ` + scores.map((s) => `${s}: ${dist[s]}`).join(", ");
  return svg("svg", { class: "chart", id: "nps-chart", viewBox: `0 0 ${w} ${height}`, role: "img", "aria-label": label },
    scores.map((s, i) => {
      const hgt = ((height - 40) * dist[s]) / top;
      return svg("g", { "data-score": s, "data-count": dist[s] },
        svg("rect", { x: 10 + i * bar + 2, y: height - 20 - hgt, width: bar - 4, height: hgt, fill: colour(s) }),
        svg("text", { x: 10 + i * bar + bar / 2 - 4, y: height - 6 }, String(s)),
        svg("text", { x: 10 + i * bar + bar / 2 - 6, y: height - 24 - hgt }, String(dist[s])));
    }));
}

// An A/B test's rates per variant with their 95 % intervals (whiskers), on one scale.
function intervalChart(test, label) {
  const entries = Object.entries(test.intervals_95 || {}).filter(([, v]) => v);
  if (!entries.length) return null;
  const top = Math.max(0.01, ...entries.map(([, v]) => v.high));
  const w = 600, row = 34, pad = 90, height = entries.length * row + 24;
  const x = (v) => pad + (v / top) * (w - pad - 20);
  const aria = `${label}: ` + entries.map(([n, v]) => `${n} ${pct(v.rate)} (${pct(v.low)}–${pct(v.high)})`).join("; ");
  return svg("svg", { class: "chart ab-chart", viewBox: `0 0 ${w} ${height}`, role: "img", "aria-label": aria },
    svg("line", { x1: pad, y1: 4, x2: pad, y2: height - 20, stroke: "#dde1e8" }),
    svg("text", { x: pad - 4, y: height - 6 }, "0 %"),
    svg("text", { x: x(top) - 30, y: height - 6 }, pct(top)),
    entries.map(([name, v], i) => {
      const cy = 14 + i * row;
      const colour = COLORS[i % COLORS.length];
      return svg("g", { "data-variant": name, "data-rate": v.rate, "data-low": v.low, "data-high": v.high },
        svg("text", { x: 4, y: cy + 4 }, name),
        svg("line", { x1: x(v.low), y1: cy, x2: x(v.high), y2: cy, stroke: colour, "stroke-width": 2 }),
        svg("line", { x1: x(v.low), y1: cy - 6, x2: x(v.low), y2: cy + 6, stroke: colour, "stroke-width": 2 }),
        svg("line", { x1: x(v.high), y1: cy - 6, x2: x(v.high), y2: cy + 6, stroke: colour, "stroke-width": 2 }),
        svg("circle", { cx: x(v.rate), cy, r: 5, fill: colour }));
    }));
}

// charts.js — time-series charts with dygraphs (Debian's libjs-dygraphs,
// served by the collector at /vendor/dygraphs/). The library is a classic
// script that defines `Dygraph`; it is loaded once, on the first chart.
// Each chart is a <div data-chart=NAME> holding dygraphs' canvas, with
// `data-points` (rows drawn) for tests; a chart without rows says so in
// words instead of drawing an empty frame.
import { h } from './dom.js';

let loading = null;

function loadDygraph() {
  if (window.Dygraph) return Promise.resolve(window.Dygraph);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      document.head.append(h('link', { rel: 'stylesheet', href: '/vendor/dygraphs/dygraph.min.css' }));
      const s = h('script', { src: '/vendor/dygraphs/dygraph.min.js' });
      s.addEventListener('load', () => resolve(window.Dygraph));
      s.addEventListener('error', () => reject(new Error('dygraphs did not load (is libjs-dygraphs installed?)')));
      document.head.append(s);
    });
  }
  return loading;
}

/** Series colours: fixed, so a series keeps its colour (and tests can find it). */
export const COLOURS = ['#1f5fbf', '#e07b00', '#c62828', '#2e9e44', '#7b3fb5', '#5b6575'];

/**
 * A chart in `box` (a data-chart element): `rows` are [Date, v1, v2, …],
 * `labels` ['time', 'p50', …]. Called again with new rows it updates the
 * same chart.
 */
export async function drawChart(box, title, labels, rows, options = {}) {
  box.dataset.points = String(rows.length);
  if (!rows.length) {
    if (box.graph) { box.graph.destroy(); box.graph = null; }
    box.replaceChildren(h('div', { class: 'chart-title' }, title), h('p', { class: 'muted chart-empty' }, 'No data in this range.'));
    return;
  }
  const Dygraph = await loadDygraph();
  if (box.graph && box.graph.labels === labels.join()) {
    box.graph.updateOptions({ file: rows });
    return;
  }
  if (box.graph) box.graph.destroy();
  box.replaceChildren(h('div', { class: 'chart-title' }, title));
  const plot = h('div', { class: 'chart-plot' });
  box.append(plot);
  box.graph = new Dygraph(plot, rows, {
    labels, colors: COLOURS.slice(0, labels.length - 1), legend: 'always', labelsSeparateLines: false,
    strokeWidth: 2, drawPoints: rows.length < 60, pointSize: 2, includeZero: true, height: 220,
    axes: { y: { axisLabelWidth: 60 } }, ...options,
  });
  box.graph.labels = labels.join();
}

/** The range choices of the measurement and collector pages. */
export const RANGES = [
  ['15m', 'last 15 minutes', 15 * 60e3], ['1h', 'last hour', 3600e3], ['6h', 'last 6 hours', 6 * 3600e3],
  ['24h', 'last 24 hours', 24 * 3600e3], ['7d', 'last 7 days', 7 * 24 * 3600e3],
];

export function rangeSelect(value, onchange) {
  return h('select', { dataset: { field: 'range' }, onchange },
    RANGES.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

export function rangeMs(value) {
  return (RANGES.find(([v]) => v === value) || RANGES[1])[2];
}

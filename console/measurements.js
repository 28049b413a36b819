// measurements.js — the Measurements page: latency (p50/p95/p99) and calls
// per window for one monitor and check of a project over a chosen range,
// the in-process measurements (source `ipa`, from agents and uploads) and
// the synthetic ones (source `synthetic`, the monitors) of the same name
// side by side. Reads GET /api/v1/measurements (bounded: one series, at
// most 10,000 windows) and GET /api/v1/projects.
import { api, query } from './api.js';
import { h, fill } from './dom.js';
import { register } from './pages.js';
import { drawChart, rangeSelect, rangeMs } from './charts.js';

const SOURCES = [['ipa', 'In-process (agents, uploads)'], ['synthetic', 'Synthetic (monitors)']];

register({
  name: 'measurements', title: 'Measurements', nav: true, order: 40,
  async mount(main, params) {
    const state = { project: params[0] || '', series: params[1] || '', range: '1h' };
    const projectSel = h('select', { dataset: { field: 'project' } });
    const seriesSel = h('select', { dataset: { field: 'series' } });
    const charts = {};
    const columns = SOURCES.map(([source, title]) => {
      charts[source] = {
        latency: h('div', { class: 'chart', dataset: { chart: 'latency', source } }),
        calls: h('div', { class: 'chart', dataset: { chart: 'calls', source } }),
      };
      return h('section', { class: 'chart-column', dataset: { source } }, h('h2', {}, title),
        charts[source].latency, charts[source].calls);
    });
    const note = h('p', { class: 'muted', dataset: { info: 'measurements' } });
    main.append(h('h1', {}, 'Measurements'),
      h('div', { class: 'toolbar' }, h('label', {}, 'Project ', projectSel), h('label', {}, 'Monitor / check ', seriesSel),
        h('label', {}, 'Range ', rangeSelect(state.range, (e) => { state.range = e.target.value; refresh(); }))),
      note, h('div', { class: 'chart-columns' }, columns));

    projectSel.addEventListener('change', () => { state.project = projectSel.value; state.series = ''; refresh(); });
    seriesSel.addEventListener('change', () => { state.series = seriesSel.value; refresh(); });

    async function refresh() {
      const { projects } = await api('GET', '/projects');
      if (!state.project && projects.length) state.project = projects[0].name;
      fill(projectSel, projects.map((p) => h('option', { value: p.name, selected: p.name === state.project }, p.name)));
      if (!state.project) { note.textContent = 'No project yet.'; return; }
      const since = Date.now() - rangeMs(state.range);
      // The series of the range: the newest 1,000 windows name them.
      const recent = await api('GET', '/measurements' + query({ project: state.project, since, limit: 1000 }));
      const keys = [...new Set(recent.measurements.map((m) => m.monitor + '\u0000' + m.check))].sort();
      if (state.series && !keys.includes(state.series)) keys.unshift(state.series);
      if (!state.series && keys.length) state.series = keys[0];
      fill(seriesSel, keys.map((k) => h('option', { value: k, selected: k === state.series }, k.replace('\u0000', ' / '))));
      seriesSel.dataset.series = state.series.replace('\u0000', '/');
      if (!state.series) { note.textContent = 'No measurements in this range.'; }
      const [monitor, check] = state.series.split('\u0000');
      const rows = state.series ? (await api('GET', '/measurements' + query({
        project: state.project, monitor, check, since, limit: 10000 }))).measurements : [];
      note.textContent = state.series ? `${rows.length} windows of ${monitor} / ${check}` : note.textContent;
      for (const [source, title] of SOURCES) {
        // Windows of every agent, summed per window start, oldest first.
        const byTs = new Map();
        for (const m of rows.filter((r) => r.source === source)) {
          const w = byTs.get(m.ts) || { count: 0, p50: 0, p95: 0, p99: 0 };
          // Percentiles of several agents: the count-weighted mean (an approximation, said in the docs).
          w.p50 += m.p50_ms * m.count; w.p95 += m.p95_ms * m.count; w.p99 += m.p99_ms * m.count; w.count += m.count;
          byTs.set(m.ts, w);
        }
        const ts = [...byTs.keys()].sort((a, b) => a - b);
        const latency = ts.map((t) => { const w = byTs.get(t); return [new Date(t), w.p50 / w.count, w.p95 / w.count, w.p99 / w.count]; });
        const calls = ts.map((t) => [new Date(t), byTs.get(t).count]);
        await drawChart(charts[source].latency, `${title}: latency (ms)`, ['time', 'p50', 'p95', 'p99'], latency);
        await drawChart(charts[source].calls, `${title}: calls per window`, ['time', 'calls'], calls, { stepPlot: true, fillGraph: true });
      }
    }
    return { refresh };
  },
});

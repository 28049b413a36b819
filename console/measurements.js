// measurements.js — the Measurements page: latency (p50/p95/p99) and calls
// over time for one monitor and check of a project over a chosen range, the
// in-process measurements (source `ipa`, from agents and uploads) and the
// synthetic ones (source `synthetic`, the monitors) of the same name side by
// side, with the error rate per bucket from the outcome counts (5xx and
// transport errors of the calls that carry a status) and over the whole
// range. Reads GET /api/v1/projects and GET /api/v1/measurements, bounded:
// the newest 1,000 windows name the series; the chosen series comes merged
// by the collector into about 240 buckets (`step`, `group_by=none`: counts
// added, percentiles from the merged latency histograms, never averaged).
import { api, query } from './api.js';
import { h, fill } from './dom.js';
import { register } from './pages.js';
import { drawChart, rangeSelect, rangeMs } from './charts.js';
import { errorRate, percent } from './outcomes.js';

/** The bucket length for a range: about 240 buckets, whole seconds, at least 10 s. */
export function stepFor(range) {
  return Math.max(10_000, Math.round(range / 240 / 1000) * 1000);
}

function stepWords(step) {
  return step % 60_000 === 0 ? `${step / 60_000} min` : `${step / 1000} s`;
}

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
        errors: h('div', { class: 'chart', dataset: { chart: 'errors', source } }),
        rate: h('p', { class: 'muted', dataset: { errorRate: source } }),
      };
      return h('section', { class: 'chart-column', dataset: { source } }, h('h2', {}, title),
        charts[source].latency, charts[source].calls, charts[source].rate, charts[source].errors);
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
      // Buckets of `step`, every agent's windows of the series merged by the
      // collector: counts added, percentiles from the merged histograms.
      const step = stepFor(rangeMs(state.range));
      const groups = state.series ? (await api('GET', '/measurements' + query({
        project: state.project, monitor, check, since, step, group_by: 'none', limit: 2000 }))).measurements : [];
      note.dataset.step = String(step);
      const approximate = groups.filter((g) => g.merged === false).length;
      note.textContent = state.series ? `${monitor} / ${check}: ${groups.length} buckets of ${stepWords(step)}, every agent merged`
        + (approximate ? ` (${approximate} from windows stored without a histogram: their percentiles are weighted means)` : '')
        : note.textContent;
      for (const [source, title] of SOURCES) {
        const ofSource = groups.filter((g) => g.source === source).sort((a, b) => a.ts - b.ts);
        const latency = ofSource.map((g) => [new Date(g.ts), g.p50_ms, g.p95_ms, g.p99_ms]);
        const calls = ofSource.map((g) => [new Date(g.ts), g.count]);
        await drawChart(charts[source].latency, `${title}: latency (ms)`, ['time', 'p50', 'p95', 'p99'], latency);
        await drawChart(charts[source].calls, `${title}: calls per ${stepWords(step)}`, ['time', 'calls'], calls, { stepPlot: true, fillGraph: true });
        // Error rate per bucket, only buckets with calls that carry a status (IPA v2, http monitors).
        const errors = ofSource.map((g) => [g.ts, errorRate([g])]).filter(([, e]) => e.calls > 0)
          .map(([t, e]) => [new Date(t), e.rate * 100]);
        const whole = errorRate(ofSource);
        charts[source].rate.dataset.rate = whole.rate === null ? '' : String(whole.rate);
        charts[source].rate.textContent = whole.rate === null ? 'Error rate: no calls with a status in this range.'
          : `Error rate over the range: ${percent(whole.rate)} (${whole.errors} of ${whole.calls} calls with a status: 5xx or transport errors)`;
        await drawChart(charts[source].errors, `${title}: error rate (%)`, ['time', 'error %'], errors, { stepPlot: true });
      }
    }
    return { refresh };
  },
});

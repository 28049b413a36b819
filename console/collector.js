// collector.js — the Collector page: the collector's own health over a
// chosen range, from the history it keeps in its store
// (GET /api/v1/collector/history, in at most ~720 buckets): sessions,
// connected agents by state, handshakes and failures, ingest rate, store
// commit latency, loop lag, drops.
import { api, query } from './api.js';
import { h } from './dom.js';
import { register } from './pages.js';
import { drawChart, rangeSelect, rangeMs } from './charts.js';

const CHARTS = [
  ['sessions', 'Sessions', ['established', 'handshake', 'closing'], (s) => [s.sessions.established, s.sessions.handshake, s.sessions.closing]],
  ['agents', 'Connected agents by state', ['capturing', 'stopped', 'connecting', 'wrong configuration'],
    (s) => [s.agents.capturing, s.agents.stopped, s.agents.connecting, s.agents.wrong_configuration]],
  ['handshakes', 'Handshakes and failures', ['handshakes', 'failures'], (s) => [s.handshakes, s.handshake_failures]],
  ['ingest', 'Ingest (per second)', ['rows stored', 'records in'], (s) => [s.rows_per_s, s.records_per_s]],
  ['commit', 'Store commit latency (ms)', ['p99', 'max'], (s) => [s.commit_p99_ms, s.commit_max_ms]],
  ['lag', 'Loop lag (ms)', ['p99', 'max'], (s) => [s.lag_p99_ms, s.lag_max_ms]],
  ['drops', 'Drops and store failures', ['dropped', 'store failures', 'pending rows'], (s) => [s.dropped, s.store_failures, s.pending_rows]],
];

register({
  name: 'collector', title: 'Collector', nav: true, order: 50,
  mount(main) {
    const state = { range: '1h' };
    const boxes = CHARTS.map(([name]) => h('div', { class: 'chart', dataset: { chart: name } }));
    const note = h('p', { class: 'muted', dataset: { info: 'history' } });
    main.append(h('h1', {}, 'Collector'),
      h('div', { class: 'toolbar' }, h('label', {}, 'Range ', rangeSelect(state.range, (e) => { state.range = e.target.value; refresh(); }))),
      note, h('div', { class: 'chart-grid' }, boxes));

    async function refresh() {
      const to = Date.now();
      const data = await api('GET', '/collector/history' + query({ from: to - rangeMs(state.range), to }));
      note.textContent = `${data.samples.length} buckets of ${data.step / 1000} s (a sample every self_metrics_interval_ms)`;
      for (const [i, [, title, labels, pick]] of CHARTS.entries()) {
        const rows = data.samples.map((s) => [new Date(s.ts), ...pick(s)]);
        await drawChart(boxes[i], title, ['time', ...labels], rows);
      }
    }
    return { refresh };
  },
});

// agent.js — the Agent page (#/agent/<id>): a summary from its latest
// status (with its disk spool, its StatsD ingest when on, and the error
// rate of its calls over the last 5 minutes, from the outcome counts of its
// measurements), its network interfaces, its state history, and the START/STOP
// CAPTURE button, which shows the agent's answer or why there was none
// (not connected, no answer in time, refused).
import { api, enc, query } from './api.js';
import { h, fill, stateBadge, time, ago, num, bytes, STATE_WORDS } from './dom.js';
import { register, link } from './pages.js';
import { totalDrops } from './fleet.js';
import { errorRate, percent } from './outcomes.js';

function card(label, value, key) {
  return h('div', { class: 'card', dataset: { summary: key } },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

/** The spool's figures and its drops by cause (docs/AGENT.md, Spool), in this order. */
export const SPOOL_FIGURES = [
  ['spool_batches', 'unacknowledged batches', num], ['spool_bytes', 'bytes on disk', bytes],
  ['spool_oldest_age_ms', 'oldest unacknowledged', (v) => `${num(v / 1000, 1)} s`],
  ['spool_written', 'batches written', num], ['spool_replayed', 'batches replayed', num],
  ['spool_corrupt', 'dropped: corrupt or torn records', num], ['spool_dropped_full', 'dropped: spool_max_bytes reached', num],
  ['spool_dropped_disk_full', 'dropped: disk full', num], ['spool_unwritten', 'dropped: not written (memory only)', num],
  ['spool_write_failures', 'write failures', num],
];

/** The window of the error rate: the agent's measurements of the last 5 minutes. */
const ERROR_RATE_MS = 5 * 60 * 1000;

/** Why a capture request failed, in words, from the API's answer. */
export function controlFailure(e) {
  const d = e.body && e.body.detail;
  switch (e.status) {
    case 409: return 'not connected: the agent has no session with this collector';
    case 504: return 'no answer: the agent did not answer in time';
    case 422: return 'refused: ' + (d && (d.message || JSON.stringify(d.keys || d)) || e.message);
    case 404: return 'unknown agent';
    default: return `failed (${e.status || 'network'}): ${e.message}`;
  }
}

register({
  name: 'agent', title: 'Agent', order: 20,
  mount(main, params) {
    const id = params[0];
    const title = h('h1', {}, 'Agent');
    const badge = h('span');
    const button = h('button', { type: 'button', class: 'big', dataset: { action: 'capture' } }, '…');
    const result = h('p', { class: 'message', dataset: { captureResult: '' } });
    const cards = h('div', { class: 'cards', dataset: { section: 'summary' } });
    const drops = h('tbody');
    const spool = h('tbody');
    const spoolNote = h('p', { class: 'muted', dataset: { info: 'spool' } });
    const statsd = h('tbody');
    const statsdSection = h('section', { dataset: { section: 'statsd' }, hidden: true },
      h('h2', {}, 'StatsD'),
      h('table', { dataset: { table: 'statsd' } }, h('thead', {}, h('tr', {}, h('th', {}, 'counter'), h('th', {}, 'count'))), statsd));
    const ifaces = h('tbody');
    const states = h('tbody');
    main.append(title,
      h('div', { class: 'toolbar' }, badge, button,
        h('a', { href: link('config', id), dataset: { link: 'config' } }, 'configuration'), h('span', { class: 'muted' }, id)),
      result,
      h('h2', {}, 'Summary'), cards,
      h('h2', {}, 'Drops by cause'),
      h('table', { dataset: { table: 'drops' } }, h('thead', {}, h('tr', {}, h('th', {}, 'cause'), h('th', {}, 'count'))), drops),
      h('h2', {}, 'Disk spool'), spoolNote,
      h('table', { dataset: { table: 'spool' } }, h('thead', {}, h('tr', {}, h('th', {}, 'figure'), h('th', {}, 'value'))), spool),
      statsdSection,
      h('h2', {}, 'Network interfaces'),
      h('table', { dataset: { table: 'interfaces' } },
        h('thead', {}, h('tr', {}, ['Name', 'Up', 'Addresses', 'Capturing'].map((t) => h('th', {}, t)))), ifaces),
      h('h2', {}, 'State history'),
      h('table', { dataset: { table: 'states' } },
        h('thead', {}, h('tr', {}, ['When', 'State', 'Messages'].map((t) => h('th', {}, t)))), states));

    let agent = null;
    let busy = false;
    button.addEventListener('click', async () => {
      if (!agent || busy) return;
      const action = agent.state === 'capturing' ? 'stop' : 'start';
      busy = true;
      button.disabled = true;
      result.dataset.captureResult = 'pending';
      result.textContent = `${action === 'stop' ? 'Stopping' : 'Starting'} capture…`;
      try {
        const r = await api('POST', `/agents/${enc(id)}/capture`, { action });
        result.dataset.captureResult = 'ok';
        result.textContent = `The agent answered: ${r.result}${r.message ? ' — ' + r.message : ''}`;
      } catch (e) {
        result.dataset.captureResult = 'failed';
        result.textContent = `${action === 'stop' ? 'STOP' : 'START'} CAPTURE ${controlFailure(e)}`;
      } finally {
        busy = false;
        await refresh();
      }
    });

    const refresh = async () => {
      agent = await api('GET', `/agents/${enc(id)}`);
      const hist = await api('GET', `/agents/${enc(id)}/states?limit=20`);
      const recent = await api('GET', '/measurements' + query({ agent: id, since: Date.now() - ERROR_RATE_MS, limit: 1000 }));
      const er = errorRate(recent.measurements);
      title.textContent = `Agent ${agent.name || agent.id}`;
      fill(badge, stateBadge(agent.state));
      main.dataset.agentId = agent.id;
      main.dataset.state = agent.state;
      if (!busy) {
        button.disabled = !agent.connected;
        button.textContent = agent.state === 'capturing' ? 'STOP CAPTURE' : 'START CAPTURE';
        button.dataset.capture = agent.state === 'capturing' ? 'stop' : 'start';
      }
      const s = agent.status || {};
      const c = s.counters || {};
      fill(cards,
        card('State', `${STATE_WORDS[agent.state] || agent.state} since ${time(agent.state_since)}`, 'state'),
        card('Project', h('a', { href: link('project', agent.project) }, agent.project), 'project'),
        card('Host / version', `${agent.hostname} / ${agent.version}`, 'host'),
        card('Last seen', ago(agent.last_seen), 'last_seen'),
        card('CPU (average since last status)', s.cpu_permille !== undefined ? `${num(s.cpu_permille / 10, 1)} %` : '—', 'cpu'),
        card('Memory (RSS)', bytes(s.rss_bytes), 'memory'),
        card('Capture started', time(c.capture_start_ms), 'capture_start'),
        card('Capture speed', c.ingest_rate !== undefined ? `${num(c.ingest_rate)} records/s` : '—', 'ingest_rate'),
        card('Total uploaded', bytes(c.bytes_uploaded), 'bytes_uploaded'),
        card('Calls to the collector', c.send_rate !== undefined ? `${bytes(c.send_rate)}/s` : '—', 'send_rate'),
        card('Records / matched', `${num(c.records)} / ${num(c.records_matched)}`, 'records'),
        card('Batches sent / acked items', `${num(c.batches_sent)} / ${num(c.items_acked)}`, 'batches'),
        card('Drops (total)', num(totalDrops(c)), 'drops'),
        card('Error rate (last 5 min)', er.rate === null ? '— (no calls with a status)'
          : `${percent(er.rate)} (${num(er.errors)} of ${num(er.calls)})`, 'error_rate'),
        card('Spool (batches / bytes)', c.spool_batches !== undefined ? `${num(c.spool_batches)} / ${bytes(c.spool_bytes)}` : 'off', 'spool'),
        card('Queue depths (1 / 2 / in flight)', `${num(c.queue1_depth)} / ${num(c.queue2_depth)} / ${num(c.inflight_batches)}`, 'queues'),
        card('Loop lag (p99 / max)', c.loop_lag_p99_us !== undefined ? `${num(c.loop_lag_p99_us)} / ${num(c.loop_lag_max_us)} µs` : '—', 'loop_lag'),
        card('Current collector', c.collector_index !== undefined ? `#${c.collector_index} since ${time(c.session_start_ms)}` : '—', 'collector'),
        card('Reconnects / failures', `${num(c.reconnects)} / ${num(c.connect_failures)}`, 'reconnects'));
      fill(drops, Object.entries(c).filter(([k]) => k.startsWith('drops_'))
        .map(([k, v]) => h('tr', { dataset: { drop: k.slice(6) } }, h('td', {}, k.slice(6)), h('td', { class: 'num' }, num(v)))));
      const hasSpool = c.spool_batches !== undefined;
      spoolNote.textContent = hasSpool ? '' : 'No spool: the agent keeps what it holds in memory only (spool_max_bytes = 0), or it has not reported yet.';
      fill(spool, hasSpool ? SPOOL_FIGURES.filter(([k]) => c[k] !== undefined).map(([k, label, fmt]) =>
        h('tr', { dataset: { spool: k } }, h('td', {}, label), h('td', { class: 'num' }, fmt(c[k])))) : []);
      const sd = Object.entries(c).filter(([k]) => k.startsWith('statsd_'));
      statsdSection.hidden = sd.length === 0;
      fill(statsd, sd.map(([k, v]) => h('tr', { dataset: { statsd: k.slice(7) } }, h('td', {}, k.slice(7)), h('td', { class: 'num' }, num(v)))));
      fill(ifaces, (s.interfaces || []).map((i) => h('tr', { dataset: { interface: i.name } },
        h('td', {}, i.name), h('td', {}, i.up ? 'up' : 'down'),
        h('td', {}, (i.addresses || []).join(', ')), h('td', {}, i.capturing ? 'capturing' : '—'))));
      fill(states, hist.states.map((x) => h('tr', { dataset: { state: x.state } },
        h('td', {}, time(x.ts)), h('td', {}, stateBadge(x.state)), h('td', {}, (x.messages || []).join('; ')))));
    };
    return { refresh };
  },
});

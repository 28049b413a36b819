// configeditor.js — the configuration editor the Agent configuration page
// and the Project page share: every key with its help behind an (i), its
// default, its effective value and where it comes from, and a colour code
// with its `data-status`:
//   default (blue)   the default value, not set for this agent/project
//   editing (orange) edited, not yet checked
//   valid   (green)  checked against the schema, ready to apply
//   set     (black)  set specifically for this agent (or project)
//   invalid (red)    refused by the in-page check or, after Apply, by the
//                    collector or the agent; the message is in the error
//                    icon's tooltip and written beside it
// Apply sends every valid change as one update (the API applies all or none).
import { h, fill } from './dom.js';

const MS_UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000 };
const K = 1024;
const BYTE_UNITS = { b: 1, k: K, kb: K, kib: K, m: K * K, mb: K * K, mib: K * K, g: K * K * K, gb: K * K * K, gib: K * K * K };

function scaled(text, units) {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  if (!m) return null;
  const unit = m[2].toLowerCase();
  if (unit && !(unit in units)) return null;
  return Number(m[1]) * (unit ? units[unit] : 1);
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const isIP = (s) => IPV4.test(s) || (s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s));
const isHost = (s) => isIP(s) || /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(s);

/** The schema's check of one value: null when valid, else the message (as the collector words it). */
export function check(spec, text) {
  const bad = `expected ${spec.expects}, got ${JSON.stringify(text)}`;
  const t = text.trim();
  switch (spec.type) {
    case 'string': return !spec.allow_empty && text === '' ? bad : null;
    case 'integer': {
      if (!/^[+-]?\d+$/.test(t)) return bad;
      const v = Number(t);
      return v < spec.min || v > spec.max ? bad : null;
    }
    case 'milliseconds': case 'bytes': {
      const v = scaled(t, spec.type === 'bytes' ? BYTE_UNITS : MS_UNITS);
      return v === null || v < spec.min || v > spec.max ? bad : null;
    }
    case 'bool': return ['on', 'off', 'true', 'false', 'yes', 'no'].includes(t.toLowerCase()) ? null : bad;
    case 'choice': return spec.choices.some((c) => c.toLowerCase() === t.toLowerCase()) ? null : bad;
    case 'list': {
      if (t === '') return spec.allow_empty ? null : bad;
      for (const item of t.split(',').map((s) => s.trim())) {
        if (item === '') return `${bad} (an element is empty)`;
        if (check({ ...spec.element, expects: spec.element.type }, item)) return `${bad} ('${item}' is not ${spec.element.type.replace('_', ' ')})`;
      }
      return null;
    }
    case 'host': return isHost(t.replace(/^\[|\]$/g, '')) ? null : bad;
    case 'ip_address': return isIP(t.replace(/^\[|\]$/g, '')) ? null : bad;
    case 'address': return /^(\[[0-9a-fA-F:.]+\]|[^:\s]+)(:\d{1,5})?$/.test(t) ? null : bad;
    default: return null;
  }
}

const ORIGIN_WORDS = {
  default: 'default', project: 'project default', agent: 'set for this agent',
  file: 'agent\'s file', environment: 'agent\'s environment', command_line: 'agent\'s command line',
};

/**
 * Builds the editor into `root`. `owner` is 'agent' or 'project'.
 * `suggestions(key)` may return values offered as help (an agent's addresses).
 * `apply(changes)` sends `{key: value|null}` and resolves to the API's answer.
 * Returns {update(configEntries)} for each refresh.
 */
export function configEditor(root, { owner, schema, apply, suggestions = () => [] }) {
  const specs = new Map(schema.keys.map((k) => [k.key, k]));
  const rows = new Map();          // key -> {tr, input, entry, status, pending}
  const message = h('p', { class: 'message', dataset: { applyResult: '' } });
  const applyBtn = h('button', { type: 'button', class: 'big', dataset: { action: 'apply' } }, 'Apply');
  const body = h('tbody');
  root.append(
    h('p', { class: 'legend' },
      h('span', { class: 'cfg-legend', dataset: { legend: 'default' } }, '● default (blue)'),
      h('span', { dataset: { legend: 'editing' } }, '● editing (orange)'),
      h('span', { dataset: { legend: 'valid' } }, '● valid, ready to apply (green)'),
      h('span', { dataset: { legend: 'set' } }, `● set for this ${owner} (black)`),
      h('span', { dataset: { legend: 'invalid' } }, '● invalid (red)')),
    h('table', { dataset: { table: 'config' } },
      h('thead', {}, h('tr', {}, ['Key', '', 'Value', 'Status', 'Default', 'Origin', ''].map((t) => h('th', {}, t)))),
      body),
    h('div', { class: 'toolbar' }, applyBtn, message));

  const baseStatus = (entry) => {
    if (owner === 'project') return entry.origin === 'project' ? 'set' : 'default';
    return entry.origin === 'default' || entry.origin === 'project' ? 'default' : 'set';
  };

  function setStatus(row, status, error) {
    row.status = status;
    row.tr.dataset.status = status;
    row.statusCell.textContent = { default: 'default', editing: 'editing', valid: 'ready to apply', set: 'set', invalid: 'invalid' }[status];
    if (error) {
      fill(row.errorCell, h('span', { class: 'err-icon', title: error, dataset: { error: row.key } }, '⚠'), ' ', h('span', { class: 'muted' }, error));
    } else {
      row.errorCell.replaceChildren();
    }
  }

  function checkRow(row) {
    if (row.pending === undefined) return;
    if (row.pending === null) return setStatus(row, 'valid');
    const err = check(specs.get(row.key), row.input.value);
    if (err) setStatus(row, 'invalid', err); else setStatus(row, 'valid');
  }

  function buildRow(entry) {
    const spec = specs.get(entry.key) || { type: 'string', expects: 'a string', help: '', live: false };
    const editable = entry.live && !entry.secret && spec.live;
    const listId = `suggest-${entry.key}`;
    const input = h('input', {
      class: 'cfg-value', value: entry.value === null ? '' : entry.value, disabled: !editable,
      list: listId, dataset: { input: entry.key }, 'aria-label': entry.key,
      title: editable ? '' : 'cannot be changed remotely (restart the agent with a new value)',
    });
    const datalist = h('datalist', { id: listId });
    const row = { key: entry.key, input, entry, pending: undefined };
    const reset = h('button', { type: 'button', dataset: { action: 'reset', key: entry.key }, title: `remove the ${owner}'s own value`, hidden: !editable }, '×');
    row.statusCell = h('td', { class: 'cfg-status' });
    row.errorCell = h('span', { class: 'cfg-error' });
    row.originCell = h('td');
    row.tr = h('tr', { dataset: { key: entry.key } },
      h('td', {}, h('code', {}, entry.key)),
      h('td', {}, h('span', { class: 'info', title: `${spec.help}\nexpects ${spec.expects}${spec.live ? '' : '\n(not changeable remotely)'}`, dataset: { help: entry.key } }, 'i')),
      h('td', {}, input, datalist, ' ', row.errorCell),
      row.statusCell,
      h('td', { class: 'muted', dataset: { default: entry.key } }, spec.default === null ? '—' : spec.default),
      row.originCell,
      h('td', {}, reset));
    input.addEventListener('focus', () => {
      fill(datalist, suggestions(entry.key).map((v) => h('option', { value: v })));
    });
    input.addEventListener('input', () => {
      row.pending = input.value;
      setStatus(row, 'editing');
    });
    input.addEventListener('change', () => { row.pending = input.value; checkRow(row); });
    input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { row.pending = input.value; checkRow(row); } });
    reset.addEventListener('click', () => {
      row.pending = null;
      input.value = spec.default || '';
      setStatus(row, 'valid');
    });
    rows.set(entry.key, row);
    return row;
  }

  function show(row, entry) {
    row.entry = entry;
    row.originCell.textContent = (ORIGIN_WORDS[entry.origin] || entry.origin) + (entry.source ? ` (${entry.source})` : '');
    row.tr.dataset.origin = entry.origin;
    if (row.pending !== undefined) return;            // being edited: keep the operator's text
    row.input.value = entry.value === null ? '' : entry.value;
    setStatus(row, baseStatus(entry));
  }

  applyBtn.addEventListener('click', async () => {
    const edited = [...rows.values()].filter((r) => r.pending !== undefined);
    for (const r of edited) if (r.status === 'editing') checkRow(r);
    const invalid = edited.filter((r) => r.status === 'invalid');
    if (invalid.length) {
      message.dataset.applyResult = 'invalid';
      message.textContent = `Not sent: fix ${invalid.map((r) => r.key).join(', ')} first.`;
      return;
    }
    if (!edited.length) {
      message.dataset.applyResult = 'nothing';
      message.textContent = 'Nothing to apply.';
      return;
    }
    const changes = {};
    for (const r of edited) changes[r.key] = r.pending;
    applyBtn.disabled = true;
    message.dataset.applyResult = 'pending';
    message.textContent = 'Applying…';
    try {
      const answer = await apply(changes);
      for (const r of edited) r.pending = undefined;
      if (answer && answer.config) update(answer.config);
      message.dataset.applyResult = answer && answer.result === 'staged' ? 'staged' : 'ok';
      message.textContent = answer && answer.result === 'staged'
        ? `Stored; the agent is not connected and gets ${Object.keys(changes).join(', ')} when it connects.`
        : `Applied: ${Object.keys(changes).join(', ')}.`;
    } catch (e) {
      const d = (e.body && e.body.detail) || {};
      const keys = d.keys || {};
      for (const [k, why] of Object.entries(keys)) {
        const r = rows.get(k);
        if (r) setStatus(r, 'invalid', `${why}${d.by ? ` (${d.by})` : ''}`);
      }
      message.dataset.applyResult = 'failed';
      message.textContent = `Not applied: ${e.message}${d.message ? ' — ' + d.message : ''}` +
        (Object.keys(keys).length ? ` (see ${Object.keys(keys).join(', ')})` : '');
    } finally {
      applyBtn.disabled = false;
    }
  });

  function update(entries) {
    for (const entry of entries) {
      const row = rows.get(entry.key) || (body.append(buildRow(entry).tr), rows.get(entry.key));
      show(row, entry);
    }
  }

  return { update };
}

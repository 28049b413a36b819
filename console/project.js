// project.js — the Project page (#/project/<name>): its agents, its filter
// rules (ordered, moved up and down, checked by the collector with a
// message per field), its synthetic monitors (one JSON definition each,
// with the collector's per-field messages, and each monitor's last runs
// with phase timings and up/down), and the project-wide configuration
// defaults in the same editor as an agent's, and its access keys (listed
// without secrets; a new key's text is shown once, when it is made; Revoke
// asks first — both are audited by the collector).
import { api, enc, query } from './api.js';
import { h, fill, stateBadge, ago, time, num } from './dom.js';
import { register, link } from './pages.js';
import { configEditor } from './configeditor.js';

const RULE_FIELDS = ['method', 'host', 'path', 'monitor', 'check'];

/** Per-field messages of a 422 answer, `{"patterns[0].host": "…"}`. */
function fieldErrors(e) {
  const d = e && e.body && e.body.detail;
  return d && typeof d === 'object' ? d : {};
}

function rulesEditor(root, project) {
  let rules = [];
  let dirty = false;
  const body = h('tbody');
  const message = h('p', { class: 'message', dataset: { rulesResult: '' } });
  const listError = h('p', { class: 'error', dataset: { fieldError: 'patterns' } });
  const add = h('button', { type: 'button', dataset: { action: 'add-rule' } }, 'Add rule');
  const save = h('button', { type: 'button', class: 'big', dataset: { action: 'save-rules' } }, 'Save rules');
  root.append(h('h2', {}, 'Filter rules (first match wins)'),
    h('table', { dataset: { table: 'rules' } },
      h('thead', {}, h('tr', {}, ['#', ...RULE_FIELDS, 'exclude', ''].map((t) => h('th', {}, t)))), body),
    listError, h('div', { class: 'toolbar' }, add, save, message));

  function render(errors = {}) {
    fill(body, rules.map((r, i) => {
      const cells = RULE_FIELDS.map((f) => {
        const err = errors[`patterns[${i}].${f}`];
        const input = h('input', { value: r[f] || '', dataset: { rule: String(i), field: f }, 'aria-label': `rule ${i + 1} ${f}` });
        input.addEventListener('input', () => { r[f] = input.value; dirty = true; });
        return h('td', {}, input, err ? h('div', { class: 'error', dataset: { fieldError: `patterns[${i}].${f}` } }, err) : null);
      });
      const ex = h('input', { type: 'checkbox', dataset: { rule: String(i), field: 'exclude' } });
      ex.checked = !!r.exclude;
      ex.addEventListener('change', () => { r.exclude = ex.checked; dirty = true; });
      const move = (d) => () => {
        const j = i + d;
        if (j < 0 || j >= rules.length) return;
        [rules[i], rules[j]] = [rules[j], rules[i]];
        dirty = true;
        render();
      };
      const other = Object.entries(errors).filter(([k]) => k.startsWith(`patterns[${i}].`) && !RULE_FIELDS.includes(k.split('.')[1]));
      return h('tr', { dataset: { ruleIndex: String(i) } },
        h('td', {}, String(i + 1), other.map(([k, v]) => h('div', { class: 'error', dataset: { fieldError: k } }, `${k}: ${v}`))),
        cells, h('td', {}, ex),
        h('td', {},
          h('button', { type: 'button', dataset: { action: 'rule-up' }, onclick: move(-1), disabled: i === 0, title: 'move up' }, '↑'),
          h('button', { type: 'button', dataset: { action: 'rule-down' }, onclick: move(1), disabled: i === rules.length - 1, title: 'move down' }, '↓'),
          h('button', { type: 'button', dataset: { action: 'rule-delete' }, onclick: () => { rules.splice(i, 1); dirty = true; render(); }, title: 'delete' }, '×')));
    }));
    listError.textContent = errors.patterns || '';
  }

  add.addEventListener('click', () => {
    rules.push({ method: '', host: '*', path: '*', monitor: '', check: '', exclude: false });
    dirty = true;
    render();
  });
  save.addEventListener('click', async () => {
    message.dataset.rulesResult = 'pending';
    message.textContent = 'Saving…';
    try {
      const r = await api('PUT', `/projects/${enc(project)}/patterns`, { patterns: rules });
      rules = r.patterns; dirty = false;
      render();
      message.dataset.rulesResult = 'ok';
      message.textContent = `Saved as version ${r.version}; pushed to the project's agents.`;
    } catch (e) {
      render(fieldErrors(e));
      message.dataset.rulesResult = 'failed';
      message.textContent = `Not saved: ${e.message}`;
    }
  });

  return {
    async refresh() {
      if (dirty) return;
      const r = await api('GET', `/projects/${enc(project)}/patterns`);
      rules = r.patterns;
      render();
    },
  };
}

function keysSection(root, project) {
  const body = h('tbody');
  const created = h('div', { class: 'card', dataset: { newKey: '' }, hidden: true });
  const message = h('p', { class: 'message', dataset: { keysResult: '' } });
  const create = h('button', { type: 'button', dataset: { action: 'create-key' } }, 'Create key');
  root.append(h('h2', {}, 'Access keys'),
    h('p', { class: 'muted' }, 'Agents authenticate with a key of their project. A key\'s text is shown once, when it is created.'),
    h('table', { dataset: { table: 'keys' } },
      h('thead', {}, h('tr', {}, ['Id', 'Created', 'Revoked', ''].map((t) => h('th', {}, t)))), body),
    h('div', { class: 'toolbar' }, create, message), created);

  async function refresh() {
    const r = await api('GET', `/projects/${enc(project)}/keys`);
    fill(body, r.keys.map((k) => {
      const revoke = h('button', { type: 'button', dataset: { action: 'revoke-key' } }, 'Revoke');
      revoke.addEventListener('click', async () => {
        if (!window.confirm(`Revoke key ${k.id} of ${project}? Agents using it are disconnected at once.`)) return;
        message.dataset.keysResult = 'pending';
        try {
          await api('DELETE', `/projects/${enc(project)}/keys/${enc(String(k.id))}`);
          message.dataset.keysResult = 'revoked';
          message.textContent = `Key ${k.id} revoked.`;
        } catch (e) {
          message.dataset.keysResult = 'failed';
          message.textContent = `Not revoked: ${e.message}`;
        }
        await refresh();
      });
      return h('tr', { dataset: { keyId: String(k.id), keyState: k.revoked ? 'revoked' : 'active' } },
        h('td', { class: 'num' }, String(k.id)), h('td', {}, time(k.created)),
        h('td', {}, k.revoked ? time(k.revoked) : 'active'),
        h('td', {}, k.revoked ? null : revoke));
    }));
  }

  create.addEventListener('click', async () => {
    message.dataset.keysResult = 'pending';
    try {
      const k = await api('POST', `/projects/${enc(project)}/keys`);
      const text = h('code', { dataset: { keyText: '' } }, k.access_key);
      fill(created, h('div', { class: 'label' }, `Key ${k.id} — copy it now: it is not shown again`), text);
      created.hidden = false;
      message.dataset.keysResult = 'created';
      message.textContent = `Key ${k.id} created.`;
    } catch (e) {
      message.dataset.keysResult = 'failed';
      message.textContent = `Not created: ${e.message}`;
    }
    await refresh();
  });
  return { refresh };
}

const MONITOR_TEMPLATE = { id: 'new-monitor', kind: 'tcp', host: '127.0.0.1', port: 80, interval_secs: 60 };

function monitorsEditor(root, project) {
  let doc = [];
  let state = {};
  let dirty = false;
  const list = h('div', { dataset: { section: 'monitors' } });
  const message = h('p', { class: 'message', dataset: { monitorsResult: '' } });
  const add = h('button', { type: 'button', dataset: { action: 'add-monitor' } }, 'Add monitor');
  const save = h('button', { type: 'button', class: 'big', dataset: { action: 'save-monitors' } }, 'Save monitors');
  root.append(h('h2', {}, 'Synthetic monitors'), list, h('div', { class: 'toolbar' }, add, save, message));
  const texts = [];

  async function render(errors = {}) {
    texts.length = 0;
    const blocks = [];
    for (const [i, m] of doc.entries()) {
      const text = h('textarea', { rows: 7, dataset: { monitor: String(i) }, 'aria-label': `monitor ${i + 1}` });
      text.value = typeof m === 'string' ? m : JSON.stringify(m, null, 2);
      text.addEventListener('input', () => { dirty = true; });
      texts.push(text);
      const errs = Object.entries(errors).filter(([k]) => k === `monitors[${i}]` || k.startsWith(`monitors[${i}].`));
      const st = (m && state[m.id]) || {};
      const runs = h('tbody');
      blocks.push(h('div', { class: 'card', dataset: { monitorId: (m && m.id) || '' } },
        h('div', { class: 'toolbar' }, h('strong', {}, (m && m.id) || `monitor ${i + 1}`),
          h('span', { class: 'muted' }, st.last_run_ms ? `last run ${ago(st.last_run_ms)}` : 'no run yet'),
          st.stale ? h('span', { class: 'error' }, 'stale') : null,
          h('button', { type: 'button', dataset: { action: 'monitor-delete' }, onclick: () => { doc.splice(i, 1); dirty = true; render(); } }, 'delete')),
        text,
        errs.map(([k, v]) => h('div', { class: 'error', dataset: { fieldError: k } }, `${k.replace(/^monitors\[\d+\]\.?/, '') || 'definition'}: ${v}`)),
        h('table', { dataset: { table: 'runs' } },
          h('thead', {}, h('tr', {}, ['When', 'Agent', 'Result', 'Duration', 'Phases'].map((t) => h('th', {}, t)))), runs)));
      if (m && m.id && !dirty) {
        api('GET', `/projects/${enc(project)}/monitors/${enc(m.id)}/runs` + query({ limit: 5 })).then((r) => {
          fill(runs, r.runs.filter((x) => x.step === '').map((x) => h('tr', { dataset: { result: x.ok ? 'up' : 'down' } },
            h('td', {}, time(x.ts)), h('td', {}, x.agent.slice(0, 12)),
            h('td', {}, h('span', { class: 'state', dataset: { state: x.ok ? 'capturing' : 'wrong_configuration' } }, x.ok ? 'up' : 'down')),
            h('td', { class: 'num' }, `${num(x.duration_ms, 1)} ms`),
            h('td', {}, Object.entries((x.detail && x.detail.phases_ms) || {}).map(([p, v]) => `${p} ${num(v, 1)} ms`).join(', ')))));
        }).catch(() => {});
      }
    }
    fill(list, blocks.length ? blocks : h('p', { class: 'muted' }, 'No monitors.'));
  }

  add.addEventListener('click', () => { doc.push({ ...MONITOR_TEMPLATE }); dirty = true; render(); });
  save.addEventListener('click', async () => {
    const monitors = [];
    const parseErrors = {};
    texts.forEach((t, i) => {
      try { monitors.push(JSON.parse(t.value)); } catch (e) { parseErrors[`monitors[${i}]`] = `not JSON: ${e.message}`; monitors.push(t.value); }
    });
    if (Object.keys(parseErrors).length) {
      doc = monitors;
      render(parseErrors);
      message.dataset.monitorsResult = 'invalid';
      message.textContent = 'Not sent: a definition is not JSON.';
      return;
    }
    message.dataset.monitorsResult = 'pending';
    try {
      const r = await api('PUT', `/projects/${enc(project)}/monitors`, { monitors });
      doc = r.monitors; state = r.state || {}; dirty = false;
      render();
      message.dataset.monitorsResult = 'ok';
      message.textContent = `Saved as version ${r.version}.`;
    } catch (e) {
      doc = monitors;
      render(fieldErrors(e));
      message.dataset.monitorsResult = 'failed';
      message.textContent = `Not saved: ${e.message}`;
    }
  });

  return {
    async refresh() {
      if (dirty) return;
      const r = await api('GET', `/projects/${enc(project)}/monitors`);
      doc = r.monitors; state = r.state || {};
      render();
    },
  };
}

register({
  name: 'project', title: 'Projects', nav: true, order: 40,
  async mount(main, params) {
    if (!params[0]) {
      const r = await api('GET', '/projects');
      main.append(h('h1', {}, 'Projects'),
        h('ul', { dataset: { list: 'projects' } }, r.projects.map((p) =>
          h('li', {}, h('a', { href: link('project', p.name), dataset: { project: p.name } }, p.name),
            h('span', { class: 'muted' }, ` created ${time(p.created)}`)))));
      return {};
    }
    const project = params[0];
    main.dataset.project = project;
    const agents = h('tbody');
    main.append(h('h1', {}, `Project ${project}`),
      h('h2', {}, 'Agents'),
      h('table', { dataset: { table: 'project-agents' } },
        h('thead', {}, h('tr', {}, ['State', 'Name', 'Host', 'Last seen'].map((t) => h('th', {}, t)))), agents),
      h('p', {}, h('a', { href: link('fleet', project) }, 'all agents of this project in the fleet view')));
    const rules = rulesEditor(main, project);
    const monitors = monitorsEditor(main, project);
    const keys = keysSection(main, project);
    const cfgRoot = h('section', { dataset: { section: 'project-config' } }, h('h2', {}, 'Configuration defaults for the project\'s agents'));
    main.append(cfgRoot);
    const schema = await api('GET', '/schema/agent-config');
    const editor = configEditor(cfgRoot, {
      owner: 'project', schema,
      apply: (changes) => api('PUT', `/projects/${enc(project)}/config`, changes),
    });
    return {
      async refresh() {
        const a = await api('GET', '/agents' + query({ project, limit: 50 }));
        fill(agents, a.agents.map((x) => h('tr', { dataset: { agentId: x.id, state: x.state } },
          h('td', {}, stateBadge(x.state)), h('td', {}, h('a', { href: link('agent', x.id) }, x.name || x.id)),
          h('td', {}, x.hostname), h('td', {}, ago(x.last_seen)))));
        await rules.refresh();
        await monitors.refresh();
        await keys.refresh();
        editor.update((await api('GET', `/projects/${enc(project)}/config`)).config);
      },
    };
  },
});

// alerts.js — the Alerts page: a project's rules with their state (colour
// and word), the selected rule's history and notifications, the silences
// not yet ended, a one-hour silence per rule and ending a silence early.
// Everything through the public API (docs/API.md, "Alerts").
import { api, query, enc } from './api.js';
import { h, fill, time, ago } from './dom.js';
import { register } from './pages.js';

/** A state dot with the state in words (`data-alert-state` = the API's value). */
function alertBadge(state) {
  return h('span', { class: 'alert-state', dataset: { alertState: state } }, state);
}

register({
  name: 'alerts', title: 'Alerts', nav: true, order: 45,
  mount(main) {
    const state = { project: '', selected: null };
    const projectSel = h('select', { dataset: { field: 'alerts-project' } });
    const rules = h('tbody');
    const history = h('tbody');
    const notifications = h('tbody');
    const silences = h('tbody');
    const selectedName = h('span', { dataset: { info: 'alert-selected' } }, '—');
    main.append(h('h1', {}, 'Alerts'),
      h('div', { class: 'toolbar' }, h('label', {}, 'Project ', projectSel)),
      h('table', { dataset: { table: 'alerts' } },
        h('thead', {}, h('tr', {}, ['Rule', 'State', 'Since', 'Value', 'Detail', ''].map((t) => h('th', {}, t)))), rules),
      h('h2', {}, 'History of ', selectedName),
      h('table', { dataset: { table: 'alert-history' } },
        h('thead', {}, h('tr', {}, ['When', 'From', 'To', 'Detail'].map((t) => h('th', {}, t)))), history),
      h('h2', {}, 'Notifications'),
      h('table', { dataset: { table: 'alert-notifications' } },
        h('thead', {}, h('tr', {}, ['When', 'Rule', 'Event', 'Receiver', 'Result', 'Attempts', 'Detail'].map((t) => h('th', {}, t)))),
        notifications),
      h('h2', {}, 'Silences'),
      h('table', { dataset: { table: 'alert-silences' } },
        h('thead', {}, h('tr', {}, ['Rule', 'Labels', 'Until', 'Comment', ''].map((t) => h('th', {}, t)))), silences));

    projectSel.addEventListener('change', () => { state.project = projectSel.value; state.selected = null; refresh(); });

    async function silence(rule) {
      await api('POST', `/projects/${enc(state.project)}/silences`,
        { rule_id: rule.id, duration_s: 3600, comment: 'from the console' });
      refresh();
    }

    async function unsilence(s) {
      await api('DELETE', `/projects/${enc(state.project)}/silences/${s.id}`);
      refresh();
    }

    async function refresh() {
      if (!state.project) {
        const { projects } = await api('GET', '/projects');
        fill(projectSel, projects.map((p) => h('option', { value: p.name }, p.name)));
        if (!projects.length) return fill(rules, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No project yet.')));
        state.project = projects[0].name;
        projectSel.value = state.project;
      }
      const p = enc(state.project);
      const [list, sil, notes] = await Promise.all([
        api('GET', `/projects/${p}/alerts`), api('GET', `/projects/${p}/silences`),
        api('GET', `/projects/${p}/notifications` + query({ limit: 20 }))]);
      const names = new Map(list.alerts.map((a) => [a.id, a.rule ? a.rule.name : String(a.id)]));
      if (state.selected === null && list.alerts.length) state.selected = list.alerts[0].id;
      fill(rules, list.alerts.map((a) => {
        const row = h('tr', { dataset: { alertId: a.id, alertState: a.state.state }, class: a.id === state.selected ? 'selected' : '' },
          h('td', {}, names.get(a.id)), h('td', {}, alertBadge(a.state.state)),
          h('td', {}, a.state.since ? ago(a.state.since) : '—'),
          h('td', {}, a.state.value === null ? '—' : String(a.state.value)), h('td', {}, a.state.detail || ''),
          h('td', {}, h('button', { type: 'button', dataset: { action: 'silence' } }, 'Silence 1 h')));
        row.addEventListener('click', (e) => {
          if (e.target.dataset.action === 'silence') return silence(a);
          state.selected = a.id; refresh();
        });
        return row;
      }));
      if (!list.alerts.length) fill(rules, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No alert rule in this project.')));
      if (state.selected !== null) {
        selectedName.textContent = names.get(state.selected) || '—';
        const one = await api('GET', `/projects/${p}/alerts/${state.selected}` + query({ limit: 20 }));
        fill(history, one.history.map((t) => h('tr', { dataset: { transition: t.to } },
          h('td', {}, time(t.ts)), h('td', {}, alertBadge(t.from)), h('td', {}, alertBadge(t.to)), h('td', {}, t.detail))));
        if (!one.history.length) fill(history, h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No change yet.')));
      }
      fill(notifications, notes.notifications.map((n) => h('tr', { dataset: { notification: n.result } },
        h('td', {}, time(n.ts)), h('td', {}, names.get(n.rule_id) || String(n.rule_id)), h('td', {}, n.event),
        h('td', {}, n.receiver), h('td', { class: 'result' }, n.result), h('td', {}, String(n.attempts)), h('td', {}, n.detail))));
      if (!notes.notifications.length) fill(notifications, h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'None sent yet.')));
      fill(silences, sil.silences.map((s) => {
        const end = h('button', { type: 'button', dataset: { action: 'unsilence' } }, 'End now');
        end.addEventListener('click', () => unsilence(s));
        return h('tr', { dataset: { silenceId: s.id } },
          h('td', {}, s.rule_id === null ? 'any' : (names.get(s.rule_id) || String(s.rule_id))),
          h('td', {}, Object.entries(s.matchers).map(([k, v]) => `${k}=${v}`).join(', ') || '—'),
          h('td', {}, time(s.ends)), h('td', {}, s.comment), h('td', {}, end));
      }));
      if (!sil.silences.length) fill(silences, h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No silence.')));
    }
    return { refresh };
  },
});

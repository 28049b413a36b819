// fleet.js — the Fleet page: agents a page at a time (50, cursor paging:
// the API call behind it is bounded whatever the fleet's size), by name
// within their project (or by id), each with its state in colour and in
// words, and above them how many agents are in each state (the same call,
// counts=state); filter by project and state, search by name or id; a
// count is a link that filters by its state. Refreshed every 2 s.
import { api, query } from './api.js';
import { h, fill, stateBadge, ago, num, STATE_WORDS } from './dom.js';
import { register, link } from './pages.js';

const PAGE = 50;

/** Every drop counter an agent reports, summed (`drops_parse` already holds its sub-causes). */
export function totalDrops(counters) {
  if (!counters) return null;
  return Object.entries(counters)
    .filter(([k]) => k.startsWith('drops_') && !k.startsWith('drops_parse_'))
    .reduce((s, [, v]) => s + v, 0);
}

register({
  name: 'fleet', title: 'Fleet', nav: true, order: 10,
  async mount(main, params) {
    const state = { project: '', state: '', search: '', sort: 'name', cursors: [null] };
    const projectSel = h('select', { dataset: { filter: 'project' } }, h('option', { value: '' }, 'all projects'));
    const stateSel = h('select', { dataset: { filter: 'state' } }, h('option', { value: '' }, 'all states'),
      Object.entries(STATE_WORDS).map(([v, w]) => h('option', { value: v }, w)));
    const search = h('input', { type: 'search', placeholder: 'search name or id', dataset: { field: 'search' } });
    const sortSel = h('select', { dataset: { field: 'sort' } },
      h('option', { value: 'name' }, 'by project and name'), h('option', { value: 'id' }, 'by id'));
    const counts = h('div', { class: 'state-counts', dataset: { section: 'state-counts' } });
    const prev = h('button', { type: 'button', dataset: { action: 'prev-page' } }, '‹ previous');
    const next = h('button', { type: 'button', dataset: { action: 'next-page' } }, 'next ›');
    const pageInfo = h('span', { class: 'muted', dataset: { pageInfo: '' } });
    const body = h('tbody');
    const empty = h('p', { class: 'muted', dataset: { empty: 'fleet' }, hidden: true }, 'No agent matches.');
    main.append(h('h1', {}, 'Fleet'),
      h('div', { class: 'toolbar' }, projectSel, stateSel, search, h('label', {}, 'sorted ', sortSel)),
      counts,
      h('table', { dataset: { table: 'fleet' } },
        h('thead', {}, h('tr', {}, ['State', 'Name', 'Project', 'Host', 'Version', 'Last seen', 'Ingest /s', 'Drops']
          .map((t) => h('th', {}, t)))),
        body),
      empty,
      h('div', { class: 'pager' }, prev, pageInfo, next));

    const projects = await api('GET', '/projects');
    for (const p of projects.projects) projectSel.append(h('option', { value: p.name }, p.name));
    if (params[0]) { projectSel.value = params[0]; state.project = params[0]; }

    let lastNext = null;
    const refresh = async () => {
      const cursor = state.cursors[state.cursors.length - 1];
      const data = await api('GET', '/agents' + query({
        project: state.project, state: state.state, search: state.search, limit: PAGE, cursor,
        sort: state.sort, counts: 'state',
      }));
      const c = data.counts || {};
      fill(counts, h('span', { dataset: { count: 'total' } }, h('strong', {}, num(c.total)), ' agents'),
        Object.keys(STATE_WORDS).map((s) => {
          const a = h('a', { href: '#', class: 'state', dataset: { state: s, count: s },
            'aria-current': state.state === s ? 'true' : null }, h('strong', {}, num(c[s] || 0)), ' ', STATE_WORDS[s]);
          a.addEventListener('click', (e) => {
            e.preventDefault();
            state.state = state.state === s ? '' : s;
            stateSel.value = state.state;
            restart();
          });
          return a;
        }));
      lastNext = data.next_cursor;
      fill(body, data.agents.map((a) => {
        const c = (a.status && a.status.counters) || null;
        return h('tr', { dataset: { agentId: a.id, state: a.state } },
          h('td', {}, stateBadge(a.state)),
          h('td', {}, h('a', { href: link('agent', a.id), dataset: { link: 'agent' } }, a.name || a.id)),
          h('td', {}, h('a', { href: link('project', a.project) }, a.project)),
          h('td', {}, a.hostname), h('td', {}, a.version),
          h('td', {}, ago(a.last_seen)),
          h('td', { class: 'num' }, c ? num(c.ingest_rate) : '—'),
          h('td', { class: 'num' }, c ? num(totalDrops(c)) : '—'));
      }));
      empty.hidden = data.agents.length > 0;
      prev.disabled = state.cursors.length <= 1;
      next.disabled = !lastNext;
      pageInfo.textContent = `page ${state.cursors.length}`;
    };
    const restart = () => { state.cursors = [null]; refresh(); };
    projectSel.addEventListener('change', () => { state.project = projectSel.value; restart(); });
    stateSel.addEventListener('change', () => { state.state = stateSel.value; restart(); });
    sortSel.addEventListener('change', () => { state.sort = sortSel.value; restart(); });
    let typing = null;
    search.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.search = search.value.trim(); restart(); }, 250);
    });
    next.addEventListener('click', () => { if (lastNext) { state.cursors.push(lastNext); refresh(); } });
    prev.addEventListener('click', () => { if (state.cursors.length > 1) { state.cursors.pop(); refresh(); } });
    return { refresh, unmount() { clearTimeout(typing); } };
  },
});

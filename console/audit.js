// audit.js — the Audit page: every control action (who, what, on what,
// when, with what result), newest first, 50 a page with the API's cursor
// paging (GET /api/v1/audit), filtered by action and target.
import { api, query } from './api.js';
import { h, fill, time } from './dom.js';
import { register } from './pages.js';

const PAGE = 50;

register({
  name: 'audit', title: 'Audit', nav: true, order: 60,
  mount(main) {
    // cursors[i]: the cursor of page i (page 0: none, the newest).
    const state = { cursors: [null], page: 0, action: '', target: '' };
    const body = h('tbody');
    const pageInfo = h('span', { class: 'muted', dataset: { info: 'page' } });
    const newer = h('button', { type: 'button', dataset: { action: 'newer' } }, '← Newer');
    const older = h('button', { type: 'button', dataset: { action: 'older' } }, 'Older →');
    const action = h('input', { type: 'search', placeholder: 'action, e.g. capture.stop', dataset: { field: 'action' } });
    const target = h('input', { type: 'search', placeholder: 'target (agent id, project)', dataset: { field: 'target' } });
    main.append(h('h1', {}, 'Audit'),
      h('div', { class: 'toolbar' }, action, target),
      h('table', { dataset: { table: 'audit' } },
        h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Target', 'Detail', 'Result'].map((t) => h('th', {}, t)))), body),
      h('div', { class: 'pager' }, newer, older, pageInfo));

    const restart = () => { state.cursors = [null]; state.page = 0; refresh(); };
    action.addEventListener('change', () => { state.action = action.value.trim(); restart(); });
    target.addEventListener('change', () => { state.target = target.value.trim(); restart(); });
    newer.addEventListener('click', () => { if (state.page > 0) { state.page--; refresh(); } });
    older.addEventListener('click', () => { if (state.cursors[state.page + 1]) { state.page++; refresh(); } });

    async function refresh() {
      const data = await api('GET', '/audit' + query({ limit: PAGE, cursor: state.cursors[state.page],
        action: state.action, target: state.target }));
      state.cursors[state.page + 1] = data.next_cursor;
      fill(body, data.audit.map((e) => h('tr', { dataset: { auditId: e.id, auditAction: e.action, result: e.result } },
        h('td', {}, time(e.ts)), h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, e.target),
        h('td', {}, e.detail), h('td', { class: 'result' }, e.result))));
      if (!data.audit.length) fill(body, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No control action recorded.')));
      newer.disabled = state.page === 0;
      older.disabled = !data.next_cursor;
      pageInfo.textContent = `page ${state.page + 1}`;
    }
    return { refresh };
  },
});

// fleet.js — the Fleet page: every agent with its state in colour and in
// words. (Filled in below the frame: filters, search, paging.)
import { api } from './api.js';
import { h, fill, stateBadge, ago } from './dom.js';
import { register, link } from './pages.js';

register({
  name: 'fleet', title: 'Fleet', nav: true, order: 10,
  mount(main) {
    const body = h('tbody');
    main.append(h('h1', {}, 'Fleet'),
      h('table', { dataset: { table: 'fleet' } },
        h('thead', {}, h('tr', {}, ['State', 'Name', 'Project', 'Host', 'Version', 'Last seen'].map((t) => h('th', {}, t)))),
        body));
    return {
      async refresh() {
        const data = await api('GET', '/agents?limit=50');
        fill(body, data.agents.map((a) => h('tr', { dataset: { agentId: a.id, state: a.state } },
          h('td', {}, stateBadge(a.state)),
          h('td', {}, h('a', { href: link('agent', a.id) }, a.name || a.id)),
          h('td', {}, a.project), h('td', {}, a.hostname), h('td', {}, a.version),
          h('td', {}, ago(a.last_seen)))));
      },
    };
  },
});

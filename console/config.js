// config.js — the Agent configuration page (#/config/<id>): the shared
// editor (configeditor.js) over GET/PUT /api/v1/agents/<id>/config, with the
// agent's interface addresses offered as help for keys that name them.
import { api, enc } from './api.js';
import { h } from './dom.js';
import { register, link } from './pages.js';
import { configEditor } from './configeditor.js';

register({
  name: 'config', title: 'Agent configuration', order: 30,
  async mount(main, params) {
    const id = params[0];
    const [schema, agent] = await Promise.all([api('GET', '/schema/agent-config'), api('GET', `/agents/${enc(id)}`)]);
    main.dataset.agentId = id;
    main.append(h('h1', {}, `Configuration of ${agent.name || id}`),
      h('p', {}, h('a', { href: link('agent', id) }, '← agent'), ' · ',
        h('a', { href: link('project', agent.project) }, `project ${agent.project} (its defaults)`)));
    let addresses = [];
    const editor = configEditor(main, {
      owner: 'agent', schema,
      apply: (changes) => api('PUT', `/agents/${enc(id)}/config`, changes),
      suggestions: (key) => (key === 'ipa_bind' ? addresses : []),
    });
    return {
      async refresh() {
        const [view, a] = await Promise.all([api('GET', `/agents/${enc(id)}/config`), api('GET', `/agents/${enc(id)}`)]);
        addresses = ((a.status && a.status.interfaces) || []).flatMap((i) => (i.addresses || []).map((x) => x.split('/')[0]));
        editor.update(view.config);
      },
    };
  },
});

// upload.js — the Upload page: a capture file (IPA records, one per line,
// as `vigil-agent replay` reads them) sent to a project with
// POST /api/v1/projects/{project}/uploads as a form (the part `file`), with
// the bytes sent shown while it goes, then its counts from the status URL
// the answer gives: read, stored, dropped by cause. An XMLHttpRequest, not
// fetch: only it reports upload progress.
import { api, changeHeaders, enc } from './api.js';
import { h, fill, num, bytes } from './dom.js';
import { register, link } from './pages.js';

register({
  name: 'upload', title: 'Upload', nav: true, order: 70,
  mount(main) {
    let statusUrl = null;
    const projectSel = h('select', { dataset: { field: 'project' } });
    const file = h('input', { type: 'file', dataset: { field: 'file' } });
    const send = h('button', { type: 'button', class: 'big', dataset: { action: 'upload' } }, 'Upload');
    const progress = h('progress', { max: 1, value: 0, dataset: { progress: 'upload' } });
    const stateText = h('span', { class: 'upload-state', dataset: { uploadState: 'none' } }, '');
    const counts = h('div', { class: 'cards', dataset: { counts: 'upload' } });
    const error = h('p', { class: 'error', dataset: { error: 'upload' } });
    main.append(h('h1', {}, 'Upload a capture'),
      h('p', { class: 'muted' }, 'IPA records, one per line (as vigil-agent replay reads them). The collector runs them ',
        'through the agents\u2019 parse, filter and aggregate code with the project\u2019s rules and stores them under ',
        'the project\u2019s virtual agent upload-<project>.'),
      h('div', { class: 'toolbar' }, h('label', {}, 'Project ', projectSel), file, send),
      h('div', { class: 'toolbar' }, progress, stateText), error, counts);

    function showCounts(s) {
      stateText.dataset.uploadState = s.state;
      stateText.textContent = s.state === 'running' ? 'storing…' : s.state;
      const card = (label, value, hook) => h('div', { class: 'card', dataset: hook },
        h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
      fill(counts,
        card('bytes read', bytes(s.bytes), { count: 'bytes' }),
        card('lines read', num(s.read), { count: 'read' }),
        card('records stored', num(s.stored), { count: 'stored' }),
        Object.entries(s.dropped).map(([cause, n]) => card('dropped: ' + cause.replace(/_/g, ' '), num(n), { dropped: cause })),
        s.state === 'done' ? h('div', { class: 'card' }, h('a', { href: link('measurements', s.project), dataset: { link: 'measurements' } },
          'See the measurements')) : null);
      if (s.error) error.textContent = s.error;
    }

    send.addEventListener('click', () => {
      error.textContent = '';
      if (!file.files.length) { error.textContent = 'Choose a file first.'; return; }
      const form = new FormData();
      form.append('file', file.files[0]);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `/api/v1/projects/${enc(projectSel.value)}/uploads`);
      for (const [k, v] of Object.entries(changeHeaders())) xhr.setRequestHeader(k, v);
      progress.max = file.files[0].size || 1;
      progress.value = 0;
      stateText.dataset.uploadState = 'sending';
      stateText.textContent = 'sending…';
      send.disabled = true;
      xhr.upload.addEventListener('progress', (e) => { progress.value = e.loaded; stateText.textContent = `sending… ${bytes(e.loaded)}`; });
      xhr.addEventListener('loadend', async () => {
        send.disabled = false;
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status !== 202) {
          stateText.dataset.uploadState = 'failed';
          stateText.textContent = 'failed';
          error.textContent = `${xhr.status || 'no answer'}: ${body ? body.error + (body.detail ? ' — ' + JSON.stringify(body.detail) : '') : xhr.statusText}`;
          return;
        }
        progress.value = progress.max;
        statusUrl = body.url;
        await refresh();
      });
      xhr.send(form);
    });

    async function refresh() {
      if (!projectSel.options.length) {
        const { projects } = await api('GET', '/projects');
        fill(projectSel, projects.map((p) => h('option', { value: p.name }, p.name)));
      }
      if (!statusUrl) return;
      const s = await api('GET', statusUrl.replace(/^\/api\/v1/, ''));
      showCounts(s);
      if (s.state !== 'running') statusUrl = null;
    }
    return { refresh };
  },
});

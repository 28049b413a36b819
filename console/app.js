// app.js — the console's frame: sign-in and sign-out, navigation, the
// fragment router and the 2-second refresh of the page shown. Pages are
// separate modules (imported below) registered in pages.js.
import { resume, signIn, signOut, setUnauthorizedHandler } from './api.js';
import { h, fill } from './dom.js';
import { pages, link } from './pages.js';
import './fleet.js';
import './agent.js';
import './config.js';
import './project.js';
import './measurements.js';
import './collector.js';
import './alerts.js';
import './audit.js';
import './upload.js';

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let current = null;      // { page, handle }
let timer = null;
let refreshing = false;

function showSignIn(message) {
  stopPage();
  $('main').hidden = true;
  $('sign-out').hidden = true;
  $('nav').replaceChildren();
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
  document.body.dataset.signedIn = 'false';
  $('token').focus();
}

function showConsole() {
  $('sign-in').hidden = true;
  $('main').hidden = false;
  $('sign-out').hidden = false;
  document.body.dataset.signedIn = 'true';
  const items = [...pages.values()].filter((p) => p.nav).sort((a, b) => a.order - b.order);
  fill($('nav'), items.map((p) => h('a', { href: link(p.name), dataset: { nav: p.name } }, p.title)));
  route();
}

function stopPage() {
  if (timer) { clearInterval(timer); timer = null; }
  if (current && current.handle && current.handle.unmount) current.handle.unmount();
  current = null;
}

async function refresh() {
  if (!current || !current.handle || !current.handle.refresh || refreshing) return;
  refreshing = true;
  try {
    await current.handle.refresh();
    $('live').textContent = 'updated ' + new Date().toLocaleTimeString();
    $('live').dataset.live = 'ok';
  } catch (e) {
    $('live').textContent = 'update failed: ' + e.message;
    $('live').dataset.live = 'failed';
  } finally {
    refreshing = false;
  }
}

async function route() {
  if (document.body.dataset.signedIn !== 'true') return;
  const parts = (location.hash.replace(/^#\/?/, '') || 'fleet').split('/').map(decodeURIComponent);
  const page = pages.get(parts[0]) || pages.get('fleet');
  stopPage();
  for (const a of $('nav').querySelectorAll('a')) a.classList.toggle('current', a.dataset.nav === page.name);
  const main = $('main');
  main.replaceChildren();
  main.dataset.page = page.name;
  document.title = `Vigil — ${page.title}`;
  const handle = (await page.mount(main, parts.slice(1))) || {};
  current = { page, handle };
  await refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

$('sign-in-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const field = $('token');
  try {
    await signIn(field.value);
    field.value = '';
    showConsole();
  } catch (e) {
    field.value = '';
    $('sign-in-error').textContent = e.status === 401 ? 'Wrong token.' : `Sign-in failed: ${e.message}`;
  }
});

$('sign-out').addEventListener('click', async () => {
  try { await signOut(); } finally { showSignIn('Signed out.'); }
});

setUnauthorizedHandler(() => showSignIn('Your session ended; sign in again.'));
window.addEventListener('hashchange', route);

(async () => {
  if (await resume()) showConsole(); else showSignIn();
})();

// api.js — the console's only way to the collector: the public HTTP API
// (docs/API.md), authenticated by the session cookie the sign-in set. The
// anti-CSRF value is kept in this module's memory only (never in
// localStorage/sessionStorage); a reloaded page asks GET /api/v1/session
// for it again. A 401 anywhere sends the page back to the sign-in form.

let csrf = null;
let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Calls the API; resolves to the parsed JSON body, rejects with APIError. */
export async function api(method, path, body) {
  const headers = { 'Accept': 'application/json', 'X-Vigil-Actor': 'console' };
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-Vigil-CSRF'] = csrf;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch('/api/v1' + path, init);
  let data = null;
  const text = await res.text();
  if (text) { try { data = JSON.parse(text); } catch (_) { data = { error: text }; } }
  if (res.status === 401 && path !== '/session') { csrf = null; onUnauthorized(); }
  if (!res.ok && res.status !== 202) throw new APIError(res.status, data);
  return data;
}

/** Signs in with the admin token; the answer's csrf value stays here. */
export async function signIn(token) {
  const data = await api('POST', '/session', { token });
  csrf = data.csrf;
  return data;
}

/** Whether a session cookie is live (restores the csrf value after a reload). */
export async function resume() {
  try {
    const data = await api('GET', '/session');
    csrf = data.csrf || null;
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

/** The headers a change sent outside `api()` needs (an upload's XMLHttpRequest). */
export function changeHeaders() {
  return csrf ? { 'X-Vigil-CSRF': csrf, 'X-Vigil-Actor': 'console' } : { 'X-Vigil-Actor': 'console' };
}

export async function signOut() {
  try { await api('DELETE', '/session'); } finally { csrf = null; }
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v));
  return parts.length ? '?' + parts.join('&') : '';
}

export const enc = encodeURIComponent;

// pages.js — the console's page registry. A page module calls
// `register({name, title, nav, order, mount})`; app.js imports every page
// module, builds the navigation from the pages with `nav: true`, and routes
// `#/<name>/<param>…` to `mount(main, params)`. `mount` returns
// `{refresh, unmount}` (both optional): `refresh()` runs every 2 s while
// the page is shown (live updates by polling bounded API calls).

export const pages = new Map();

export function register(page) {
  pages.set(page.name, { order: 100, nav: false, ...page });
}

/** `#/agent/<id>` for a page and its parameters. */
export function link(name, ...params) {
  return '#/' + [name, ...params.map(encodeURIComponent)].join('/');
}

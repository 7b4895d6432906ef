// The app's entry: routes the URL fragment to a page, keeps the header in step with the session,
// and runs the live connection while someone is signed in.
//
// Pages (each a function that renders into <main>; it may return a cleanup run on leaving):
//   #/shop?…  #/product/{id}  #/orders  #/orders/{id}     storefront (shop.js)
//   #/bank  #/bank/{code}/{account id}                    banking (bank.js)
//   #/console?…                                           operator console, admin role (console.js)
//   #/login  #/signup                                     (auth.js)

import { session } from './api.js';
import { h, flash, pageRender, startPage, isCurrent } from './ui.js';
import { live } from './live.js';
import * as auth from './auth.js';
import * as shop from './shop.js';
import * as bank from './bank.js';
import { console_ } from './console.js';

/** Navigates to `hash` (re-rendering even when it is the current one). */
export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** The query of the current fragment (`#/shop?q=lamp` → `q=lamp`). */
export function params() {
  const q = location.hash.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : location.hash.slice(q + 1));
}

const pages = [
  [/^#\/login$/, () => auth.login()],
  [/^#\/signup$/, () => auth.signup()],
  [/^#\/shop(\?.*)?$/, () => shop.search()],
  [/^#\/product\/(\d+)$/, (m) => shop.product(m[1])],
  [/^#\/orders$/, () => shop.orders(), 'user'],
  [/^#\/orders\/([\w-]+)$/, (m) => shop.order(m[1]), 'user'],
  [/^#\/bank$/, () => bank.overview(), 'user'],
  [/^#\/bank\/(\d{3})\/([\w-]+)$/, (m) => bank.statement(m[1], m[2]), 'user'],
  [/^#\/console(\?.*)?$/, () => console_(), 'admin'],
];

let leave = null;

async function route() {
  if (typeof leave === 'function') leave();
  leave = null;
  const current = startPage();
  const render = pageRender();
  const hash = location.hash || '#/shop';
  header();
  for (const [pattern, page, needs] of pages) {
    const m = hash.match(pattern);
    if (!m) continue;
    if (needs && !session.user()) {
      sessionStorage.setItem('sagaway.after-login', hash);
      return go('#/login');
    }
    if (needs === 'admin' && !session.isAdmin()) {
      return render(h('h1', {}, 'Operators only'), h('p', {}, 'The console needs the admin role; sign in with an operator account.'));
    }
    try {
      const cleanup = await page(m);
      // The user may have moved on while this page loaded: then its subscription ends at once.
      if (isCurrent(current)) leave = cleanup;
      else if (typeof cleanup === 'function') cleanup();
    } catch (e) {
      if (!isCurrent(current)) return;
      if (e.status === 401) return go('#/login');
      flash(e.message || String(e));
    }
    return;
  }
  render(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/shop' }, 'Go to the shop')));
}

function header() {
  const user = session.user();
  for (const a of document.querySelectorAll('nav a')) {
    const needs = a.dataset.needs;
    a.hidden = (needs === 'user' && !user) || (needs === 'admin' && !session.isAdmin());
    a.toggleAttribute('aria-current', (location.hash || '#/shop').startsWith(a.getAttribute('href')));
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  const who = document.getElementById('who');
  who.replaceChildren(...(user
    ? [h('span', { id: 'signed-in-as' }, user.sub), h('button', { type: 'button', class: 'secondary', id: 'logout', onclick: () => auth.logout() }, 'Sign out')]
    : [h('a', { href: '#/login' }, 'Sign in'), h('a', { href: '#/signup' }, 'Sign up')]));
  if (user) live.start(); else live.stop();
}

window.addEventListener('hashchange', () => { flash(''); route(); });
window.addEventListener('sagaway:signed-out', () => { live.stop(); header(); });
route();

// Sign up and sign in.

import { api, session } from './api.js';
import { h, pageRender, field, submitting, flash } from './ui.js';
import { go } from './main.js';

export function login() {
  const render = pageRender();
  render(
    h('h1', {}, 'Sign in'),
    submitting(h('form', { class: 'stack card', id: 'login-form' },
      field('Username', { name: 'username', autocomplete: 'username', required: true }),
      field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
      h('button', { type: 'submit' }, 'Sign in'),
      h('p', { class: 'muted' }, 'New here? ', h('a', { href: '#/signup' }, 'Create an account')),
    ), async ({ username, password }) => {
      session.set(await api('POST', '/api/auth/login', { body: { username, password } }));
      go(sessionStorage.getItem('sagaway.after-login') || '#/shop');
      sessionStorage.removeItem('sagaway.after-login');
    }),
  );
}

export function signup() {
  const render = pageRender();
  render(
    h('h1', {}, 'Create an account'),
    submitting(h('form', { class: 'stack card', id: 'signup-form' },
      field('Username (letters, digits, _ - . @ :)', { name: 'username', autocomplete: 'username', required: true, maxlength: 64 }),
      field('Password (at least 10 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }),
      h('button', { type: 'submit' }, 'Create account'),
    ), async ({ username, password }) => {
      await api('POST', '/api/auth/signup', { body: { username, password } });
      session.set(await api('POST', '/api/auth/login', { body: { username, password } }));
      flash(`Welcome, ${username}.`, 'info');
      go('#/shop');
    }),
  );
}

export async function logout() {
  const s = session.get();
  if (s?.refresh) {
    try { await api('POST', '/api/auth/logout', { body: { refresh_token: s.refresh } }); } catch { /* signed out locally anyway */ }
  }
  session.clear();
  window.dispatchEvent(new Event('sagaway:signed-out'));
  go('#/login');
}

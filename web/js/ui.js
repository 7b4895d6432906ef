// Small DOM helpers. Every text from the server goes in as a text node (never as HTML), so nothing
// a user typed can run as script; an absent value (null, undefined, false) renders as nothing.

import { idempotencyKey } from './api.js';

/** `h('a', {href: '#/x'}, 'text', child…)`: an element; `on…` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let generation = 0;

/** A new page begins (the router calls this): what older pages render from now on is dropped. */
export function startPage() {
  generation += 1;
  return generation;
}

/** Whether the page started as `page` is still the one shown. */
export function isCurrent(page) {
  return page === generation;
}

/**
 * The render function of the page being started: call it first, before any `await`. A page whose
 * data arrives after the user moved on must not paint over the page they moved to.
 */
export function pageRender() {
  const mine = generation;
  return (...children) => {
    if (mine === generation) render(...children);
    return mine === generation;
  };
}

/** Replaces the page's content and moves focus to it (keyboard and screen reader users land there). */
function render(...children) {
  const view = document.getElementById('view');
  // replaceChildren(null) would insert the text "null": absent parts are left out.
  view.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  view.focus({ preventScroll: true });
}

/** The banner under the header; `link` (`{href, text}`) adds a way on (e.g. to the original order). */
export function flash(message, kind = 'error', link = null) {
  const el = document.getElementById('flash');
  el.className = message ? kind : '';
  el.replaceChildren(message || '', ...(link ? [' ', h('a', { href: link.href }, link.text)] : []));
}

/** A labelled input: `field('Amount', {name: 'amount', required: true})`. */
export function field(label, attrs) {
  return h('label', {}, label, h('input', attrs));
}

export function select(label, name, options, value) {
  return h('label', {}, label, h('select', { name },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
}

export function status(s) {
  return h('span', { class: `status ${s}`, dataset: { status: s } }, s);
}

/** An amount with its currency (`12.50 USD`); `—` when the amount is unknown. */
export function money(amount, currency) {
  if (amount === null || amount === undefined || amount === '') return '—';
  return currency ? `${amount} ${currency}` : String(amount);
}

/**
 * Asks the operator or user to confirm a destructive action in a modal dialog; resolves to
 * true only for the confirm button (`#confirm-yes`), false for cancel (`#confirm-no`) or Escape.
 */
export function confirmAction(question, yes = 'Confirm') {
  document.getElementById('confirm')?.remove();
  return new Promise((resolve) => {
    const dialog = h('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-question' },
      h('p', { id: 'confirm-question' }, question),
      h('p', {},
        h('button', { type: 'button', id: 'confirm-yes', class: 'danger', onclick: () => { dialog.close('yes'); } }, yes), ' ',
        h('button', { type: 'button', id: 'confirm-no', class: 'secondary', onclick: () => { dialog.close('no'); } }, 'Cancel')));
    dialog.addEventListener('close', () => { resolve(dialog.returnValue === 'yes'); dialog.remove(); });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector('#confirm-no').focus();
  });
}

export function when(at) {
  if (!at) return '';
  const d = new Date(at);
  return isNaN(d) ? at : d.toLocaleString();
}

/** Whether an error leaves the outcome of a request unknown (it may have been applied). */
function outcomeUnknown(err) {
  const s = err?.status;
  return s === undefined || s === 0 || s === 408 || s === 409 || s === 425 || s === 429 || s >= 500;
}

/**
 * Runs `work(values, form, key)` for a form submit: the button is disabled meanwhile, errors are
 * shown (from the problem+json body) and the focus goes to the field they name.
 *
 * `key` is the Idempotency-Key of this intent: the same across resubmits of the same values while
 * the outcome is unknown (no answer, a timeout, a 5xx: the first may have been applied — the
 * server answers a resubmit with its first answer instead of doing it twice), and a new one after
 * a success, a definite refusal, or when the form's values change.
 */
export function submitting(form, work) {
  let intent = null;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    flash('');
    const values = Object.fromEntries(new FormData(form));
    const sig = JSON.stringify(values);
    if (!intent || intent.sig !== sig) intent = { sig, key: idempotencyKey() };
    try {
      await work(values, form, intent.key);
      intent = null;
    } catch (err) {
      if (!outcomeUnknown(err)) intent = null;
      const original = err.problem?.original_order_id;
      flash(err.message || String(err), 'error', original ? { href: `#/orders/${original}`, text: 'Open that order' } : null);
      if (err.field) form.querySelector(`[name="${CSS.escape(err.field)}"]`)?.focus();
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}

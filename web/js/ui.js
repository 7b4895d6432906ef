// Small DOM helpers. Every text from the server goes in as a text node (never as HTML), so nothing
// a user typed can run as script.

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
  view.replaceChildren(...children.flat());
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

export function when(at) {
  if (!at) return '';
  const d = new Date(at);
  return isNaN(d) ? at : d.toLocaleString();
}

/**
 * Runs `work` for a form submit: the button is disabled meanwhile, errors are shown (from the
 * problem+json body) and the focus goes to the field they name.
 */
export function submitting(form, work) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    flash('');
    try {
      await work(Object.fromEntries(new FormData(form)), form);
    } catch (err) {
      const original = err.problem?.original_order_id;
      flash(err.message || String(err), 'error', original ? { href: `#/orders/${original}`, text: 'Open that order' } : null);
      if (err.field) form.querySelector(`[name="${CSS.escape(err.field)}"]`)?.focus();
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}

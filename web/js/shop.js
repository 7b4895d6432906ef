// The storefront: search, a product, reserve and pay, the caller's orders and one order's live
// status timeline (the saga's steps with their times, updated as they happen).

import { api, session, idempotencyKey } from './api.js';
import { h, pageRender, field, select, submitting, status, when, flash, money } from './ui.js';
import { live } from './live.js';
import { go, params } from './main.js';
import { myAccounts, catalogueCurrency } from './bank.js';

const SORTS = [['relevance', 'Relevance'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['newest', 'Newest']];
const PER_PAGE = 12;

/** `#/shop?q=…&category=…&min_price=…&max_price=…&in_stock=true&sort=…&page=N` */
export async function search() {
  const render = pageRender();
  const p = params();
  const form = h('form', { class: 'card', id: 'search-form', role: 'search' },
    field('Search', { name: 'q', type: 'search', value: p.get('q') || '', placeholder: 'lamp, desk…' }),
    field('Category', { name: 'category', value: p.get('category') || '' }),
    field('Min price', { name: 'min_price', inputmode: 'decimal', size: 7, value: p.get('min_price') || '' }),
    field('Max price', { name: 'max_price', inputmode: 'decimal', size: 7, value: p.get('max_price') || '' }),
    h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'in_stock', value: 'true', checked: p.get('in_stock') === 'true' }), 'In stock only'),
    select('Sort', 'sort', SORTS, p.get('sort') || 'relevance'),
    h('button', { type: 'submit' }, 'Search'),
  );
  submitting(form, async (values) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(values)) if (v && !(k === 'sort' && v === 'relevance')) q.set(k, v);
    go(`#/shop?${q}`);
  });
  const results = h('div', { id: 'results', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Searching…'));
  render(h('h1', {}, 'Shop'), form, results);

  const query = new URLSearchParams(p);
  query.set('per_page', PER_PAGE);
  query.set('facets', 'true');
  const page = Number(p.get('page') || 1);
  const [found, currency] = await Promise.all([api('GET', `/api/findAll?${query}`), catalogueCurrency()]);
  const pages = Math.max(1, Math.ceil(found.total / PER_PAGE));
  const to = (n) => { const q = new URLSearchParams(p); q.set('page', n); return `#/shop?${q}`; };
  results.replaceChildren(
    facetsNav(p, found.facets),
    h('p', { class: 'muted' }, `${found.total} product${found.total === 1 ? '' : 's'}`),
    h('div', { class: 'products' }, found.items.map((item) => h('article', { dataset: { product: item.id } },
      h('h3', {}, h('a', { href: `#/product/${item.id}` }, marked(item.highlight?.name, item.name))),
      item.highlight?.description ? h('p', { class: 'muted' }, marked(item.highlight.description)) : null,
      h('div', { class: 'price' }, money(item.price, currency)),
      h('div', { class: 'muted' }, item.category || ''),
      h('div', { class: 'muted' }, item.stock > 0 ? `${item.stock} in stock` : 'Sold out'),
    ))),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      page > 1 ? h('a', { href: to(page - 1), rel: 'prev' }, '← Previous') : null,
      h('span', {}, `Page ${page} of ${pages}`),
      page < pages ? h('a', { href: to(page + 1), rel: 'next' }, 'Next →') : null,
    ),
  );
}

/** A highlighted field: the matched words in <mark> (text nodes only), or `plain` without one. */
function marked(segments, plain) {
  if (!segments) return plain;
  return segments.map((s) => (s.match ? h('mark', {}, s.text) : s.text));
}

/** Counts per category and price band for the current search; each a link that applies it. */
function facetsNav(p, facets) {
  if (!facets) return null;
  const link = (changes, text, count, current) => {
    const q = new URLSearchParams(p);
    q.delete('page');
    for (const [k, v] of Object.entries(changes)) (v === null ? q.delete(k) : q.set(k, v));
    return h('li', {}, h('a', { href: `#/shop?${q}`, 'aria-current': current ? 'true' : null }, text), count === null ? '' : ` (${count})`);
  };
  const chosen = (p.get('category') || '').toLowerCase();
  const band = (b) => (b.below ? `${b.min} – ${b.below}` : `${b.min} and up`);
  // max_price is inclusive: a band ends just below its `below`.
  const upTo = (b) => (b.below ? (Number(b.below) - 0.0001).toFixed(4) : null);
  return h('nav', { class: 'card facets', id: 'facets', 'aria-label': 'Refine' },
    h('div', {}, h('h2', {}, 'Category'), h('ul', {},
      chosen ? link({ category: null }, 'Any category', null, false) : null,
      facets.categories.map((c) => link({ category: c.value }, c.value, c.count, c.value === chosen)))),
    h('div', {}, h('h2', {}, 'Price'), h('ul', {},
      (p.get('min_price') || p.get('max_price')) ? link({ min_price: null, max_price: null }, 'Any price', null, false) : null,
      facets.price_bands.filter((b) => b.count > 0).map((b) => link({ min_price: b.min, max_price: upTo(b) }, band(b), b.count,
        p.get('min_price') === b.min && (p.get('max_price') || null) === upTo(b))))),
  );
}

/** `#/product/{id}`: details, reserve, then pay for the reservation. */
export async function product(id) {
  const render = pageRender();
  const [item, currency] = await Promise.all([api('GET', `/api/products/${encodeURIComponent(id)}`), catalogueCurrency()]);
  const payArea = h('div', { id: 'pay-area' });
  const reserve = submitting(h('form', { class: 'card', id: 'reserve-form' },
    field('Quantity', { name: 'quantity', type: 'number', min: 1, max: 1000, value: 1, required: true }),
    h('button', { type: 'submit' }, 'Reserve'),
  ), async ({ quantity }, _form, key) => {
    const user = session.user();
    if (!user) { sessionStorage.setItem('sagaway.after-login', location.hash); return go('#/login'); }
    // One hold per intent: a resubmit after a lost answer gets the first hold back, not a second.
    const r = await api('POST', '/api/reserve', { headers: { 'idempotency-key': key }, body: { product_id: item.id, user_id: user.sub, quantity: Number(quantity) } });
    payArea.replaceChildren(await payForm(r, currency, item.name));
    payArea.querySelector('input, select')?.focus();
  });
  render(
    h('p', {}, h('a', { href: '#/shop' }, '← Back to the shop')),
    h('h1', {}, item.name),
    h('section', {},
      h('p', { class: 'price' }, money(item.price, currency)),
      item.description ? h('p', {}, item.description) : null,
      h('p', { class: 'muted' }, `${item.category || 'uncategorised'} · ${item.stock} in stock`),
    ),
    reserve,
    payArea,
  );
}

async function payForm(reservation, currency, name) {
  const accounts = await myAccounts().catch(() => []);
  const method = select('Pay with', 'method', [['card', 'Card'], ...(accounts.length ? [['account', 'Bank account']] : [])], 'card');
  const card = h('fieldset', { id: 'card-fields' }, h('legend', {}, 'Card'),
    field('Card number', { name: 'number', inputmode: 'numeric', autocomplete: 'cc-number', required: true, maxlength: 23 }),
    field('Month', { name: 'exp_month', inputmode: 'numeric', autocomplete: 'cc-exp-month', size: 3, required: true }),
    field('Year', { name: 'exp_year', inputmode: 'numeric', autocomplete: 'cc-exp-year', size: 5, required: true }),
    field('CVC', { name: 'cvc', inputmode: 'numeric', autocomplete: 'cc-csc', size: 5, required: true }),
    h('p', { class: 'muted' }, 'Test cards: 4242 4242 4242 4242 approves, 4000 0000 0000 0002 declines, 4000 0000 0000 0119 fails until an operator steps in.'),
  );
  const account = h('fieldset', { id: 'account-fields', hidden: true }, h('legend', {}, 'Bank account'),
    select('Account', 'account', accounts.map((a) => [`${a.bank}:${a.id}`, `${a.bank} · ${a.number} · ${money(a.available, a.currency)}`])));
  // Hidden fields are not required (the browser would refuse the form otherwise).
  const switchTo = (m) => {
    card.hidden = m !== 'card';
    account.hidden = m !== 'account';
    for (const input of card.querySelectorAll('input')) input.required = m === 'card';
  };
  method.querySelector('select').addEventListener('change', (e) => switchTo(e.target.value));
  const key = idempotencyKey();
  return submitting(h('form', { class: 'card', id: 'pay-form' },
    h('p', {}, `Reserved ${reservation.quantity} × ${name} for ${money(reservation.total_price, currency)} until ${when(reservation.expires_at)}.`),
    method, card, account,
    h('button', { type: 'submit' }, `Pay ${money(reservation.total_price, currency)}`),
  ), async (v) => {
    const payment_method = v.method === 'account'
      ? { type: 'account', bank: v.account.split(':')[0], account_id: v.account.split(':')[1] }
      : { type: 'card', card: { number: v.number.replace(/\s+/g, ''), exp_month: Number(v.exp_month), exp_year: Number(v.exp_year), cvc: v.cvc } };
    const order = await api('POST', '/api/payment', {
      headers: { 'idempotency-key': key },
      body: { reservation_id: reservation.id, user_id: session.user().sub, payment_method },
    });
    go(`#/orders/${order.order_id}`);
  });
}

const names = new Map();

/** The product's name (asked once per product); its id when the product cannot be read. */
async function productName(id) {
  if (!names.has(id)) names.set(id, api('GET', `/api/products/${encodeURIComponent(id)}`).then((p) => p.name).catch(() => `product ${id}`));
  return names.get(id);
}

/** `#/orders`: the caller's orders, newest first, a page at a time (`Older` loads the next). */
export async function orders() {
  const render = pageRender();
  const body = h('tbody', {});
  const more = h('p', { id: 'orders-more' });
  const page = async (cursor) => {
    const list = await api('GET', `/api/orders?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    const items = Array.isArray(list) ? list : list.items || [];
    const rows = await Promise.all(items.map(async (o) => h('tr', { dataset: { order: o.id } },
      h('td', {}, h('a', { href: `#/orders/${o.id}` }, o.id)),
      h('td', {}, `${o.quantity ?? ''} × ${await productName(o.product_id)}`),
      h('td', {}, status(o.status)),
      h('td', { class: 'num' }, money(o.amount, o.currency)),
      h('td', {}, when(o.created_at)),
    )));
    body.append(...rows);
    more.replaceChildren(...(list.next_cursor
      ? [h('button', { type: 'button', class: 'secondary', id: 'orders-older', onclick: () => page(list.next_cursor).catch((e) => flash(e.message)) }, 'Older orders')]
      : []));
    return items.length;
  };
  const first = await page(null);
  render(
    h('h1', {}, 'Your orders'),
    first === 0 ? h('p', { class: 'muted' }, 'No orders yet.') : h('table', { id: 'orders' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Order'), h('th', {}, 'What'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Amount'), h('th', {}, 'Placed'))),
      body),
    more,
  );
}

const TERMINAL = new Set(['COMPLETED', 'COMPENSATED']);
const key = (e) => `${e.status}|${Date.parse(e.at)}`;

/** `#/orders/{id}`: the order and its timeline, live. Returns the cleanup for the router. */
export async function order(id) {
  const render = pageRender();
  const steps = new Map();
  let current = null;
  const badge = h('span', { id: 'order-status' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline', 'aria-live': 'polite' });
  const detail = h('div', {});
  const redraw = () => {
    const sorted = [...steps.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    const last = sorted[sorted.length - 1];
    current = last ? last.status : current;
    badge.replaceChildren(current ? status(current) : '');
    badge.dataset.status = current || '';
    timeline.replaceChildren(...sorted.map((s) => h('li', { dataset: { status: s.status } },
      status(s.status), ' ', h('time', { datetime: s.at }, when(s.at)), s.reason ? h('span', { class: 'muted' }, ` — ${s.reason}`) : null)));
    if (TERMINAL.has(current)) flash(current === 'COMPLETED' ? 'Paid — your order is complete.' : `Order ${current.toLowerCase()}: nothing was charged that was not refunded.`, 'info');
  };
  const add = (e) => { steps.set(key(e), e); };
  const load = async () => {
    const o = await api('GET', `/api/orders/${encodeURIComponent(id)}`);
    for (const e of o.history || []) add(e);
    detail.replaceChildren(h('p', { id: 'order-detail' }, `${o.quantity} × ${await productName(o.product_id)} · ${money(o.amount, o.currency)}` +
      (o.payment?.last4 ? ` · ${o.payment.brand || 'card'} ••${o.payment.last4}` : '')));
    redraw();
  };
  // Subscribe before reading, so a step between the read and the subscription is not lost; the
  // map drops what arrives twice.
  const off = live.on((frame) => {
    if (frame.event === 'order' && frame.data.order_id === id) {
      add(frame.data);
      redraw();
    } else if (frame.event === 'resync' || (frame.event === 'snapshot' && frame.data.orders?.some((o) => o.id === id))) {
      load().catch((e) => flash(e.message));
    }
  });
  render(h('p', {}, h('a', { href: '#/orders' }, '← Your orders')), h('h1', {}, 'Order ', h('code', {}, id), ' ', badge), detail,
    h('section', {}, h('h2', {}, 'Status'), timeline));
  await load();
  return off;
}

// The operator console (admin role): the acquirer outage switch, saga counters from the
// orchestrator's metrics, and dead letters of every service — filter, show, dry-run, replay,
// abandon, resolve (with a reason). Every write is
// audited by the orchestrator under the operator's user id.

import { api } from './api.js';
import { h, pageRender, field, select, submitting, status, when, flash, confirmAction } from './ui.js';
import { params, go } from './main.js';

const COUNTERS = [
  ['sagaway_order_transitions_total', 'Order transitions'],
  ['sagaway_payments_accepted_total', 'Payments accepted'],
  ['sagaway_dlq_recorded_total', 'Dead letters recorded'],
  ['sagaway_dlq_replayed_total', 'Replayed'],
  ['sagaway_dlq_abandoned_total', 'Abandoned'],
];

/** Sums of the Prometheus counters named in COUNTERS, with `sagaway_order_transitions_total` per status. */
function counters(text) {
  const sums = new Map();
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$/);
    if (!m) continue;
    const [, name, labels, value] = m;
    if (!COUNTERS.some(([n]) => n === name)) continue;
    sums.set(name, (sums.get(name) || 0) + Number(value));
    const to = labels?.match(/to="([A-Z_]+)"/);
    if (to) sums.set(`→ ${to[1]}`, (sums.get(`→ ${to[1]}`) || 0) + Number(value));
  }
  return sums;
}

/** `#/console?status=PENDING&error_class=…&order_id=…&page=N` */
export async function console_() {
  const render = pageRender();
  const p = params();
  const filters = {};
  for (const k of ['status', 'error_class', 'order_id', 'compensation', 'page']) if (p.get(k)) filters[k] = p.get(k);
  // Pending ones by default; any status once the operator picks "Any" or looks up one order.
  if (!p.has('status') && !filters.order_id) filters.status = 'PENDING';
  const [outage, metrics, list] = await Promise.all([
    api('GET', '/api/admin/outage'),
    api('GET', '/api/admin/metrics/orchestrator', { raw: true }).catch(() => ''),
    api('GET', `/api/admin/dlq?${new URLSearchParams({ ...filters, per_page: 25 })}`),
  ]);
  const sums = counters(metrics);
  const detail = h('div', { id: 'dlq-detail' });
  render(
    h('h1', {}, 'Operator console'),
    h('section', { id: 'outage' }, h('h2', {}, 'Acquirer'),
      h('p', {}, 'Outage switch: ', h('strong', { id: 'outage-state' }, outage.enabled ? 'ON — every card charge fails' : 'off'),
        outage.updated_at ? h('span', { class: 'muted' }, ` (since ${when(outage.updated_at)})`) : null),
      h('button', { id: 'outage-toggle', type: 'button', class: outage.enabled ? '' : 'danger', onclick: async () => {
        const question = outage.enabled ? 'Turn the acquirer outage off? Card charges go through again.' : 'Simulate an acquirer outage? Every card charge will fail until it is turned off.';
        if (!await confirmAction(question, outage.enabled ? 'Turn it off' : 'Simulate the outage')) return;
        try {
          await api('POST', '/api/admin/outage', { body: { enabled: !outage.enabled } });
          go(location.hash);
        } catch (e) { flash(e.message); }
      } }, outage.enabled ? 'Turn the outage off' : 'Simulate an outage')),
    h('section', {}, h('h2', {}, 'Saga counters'),
      h('div', { class: 'counters', id: 'counters' }, [...sums].map(([name, v]) =>
        h('div', {}, h('b', {}, String(v)), COUNTERS.find(([n]) => n === name)?.[1] || name)))),
    h('section', {}, h('h2', {}, 'Dead letters'),
      submitting(h('form', { id: 'dlq-filter' },
        select('Status', 'status', [['', 'Any'], ['PENDING', 'Pending'], ['REPLAYED', 'Replayed'], ['ABANDONED', 'Abandoned'], ['RESOLVED', 'Resolved'], ['PURGED', 'Purged']], filters.status || ''),
        select('Kind', 'compensation', [['', 'Any'], ['true', 'Compensations (release, refund, void)'], ['false', 'Others']], filters.compensation || ''),
        field('Error class', { name: 'error_class', value: filters.error_class || '', placeholder: 'processing_error' }),
        field('Order id', { name: 'order_id', value: filters.order_id || '' }),
        h('button', { type: 'submit' }, 'Filter'),
      ), async (v) => {
        const q = new URLSearchParams({ status: v.status });
        for (const [k, val] of Object.entries(v)) if (val) q.set(k, val);
        go(`#/console?${q}`);
      }),
      h('p', { class: 'muted' }, `${list.total} dead letter${list.total === 1 ? '' : 's'}`),
      h('table', { id: 'dlq' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Order'), h('th', {}, 'Step'), h('th', {}, 'Error'), h('th', {}, 'Attempts'), h('th', {}, 'Last failure'), h('th', {}, 'Status'), h('th', {}, ''))),
        h('tbody', {}, list.items.map((d) => h('tr', { dataset: { deadLetter: d.id, order: d.order_id || '' } },
          h('td', {}, d.id), h('td', {}, h('code', {}, d.order_id || '—')),
          h('td', {}, d.message_type || '', d.compensation ? h('strong', { class: 'compensation' }, ` (compensation: ${d.compensation})`) : null),
          h('td', {}, d.error_class || ''), h('td', {}, d.attempts ?? ''), h('td', {}, when(d.last_failure)), h('td', {}, status(d.status)),
          h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: () => show(d.id, detail) }, `Show ${d.id}`))))))),
    detail,
  );
  if (p.get('show')) await show(Number(p.get('show')), detail);
}

async function show(id, into) {
  try {
    const d = await api('GET', `/api/admin/dlq/${id}`);
    const dl = d; // the dead letter's fields, flattened, beside order_status and audit
    const result = h('div', { id: 'dlq-result', 'aria-live': 'polite' });
    const reason = h('input', { id: 'dlq-resolve-reason', name: 'reason', maxlength: 255, placeholder: 'what was done by hand', 'aria-label': 'Reason' });
    const act = (operation, dry_run) => async () => {
      // What cannot be taken back is confirmed first (a dry run changes nothing).
      if (!dry_run && (operation === 'abandon' || operation === 'resolve')
        && !await confirmAction(`${operation === 'abandon' ? 'Abandon' : 'Resolve'} dead letter ${id}? It will not be replayed afterwards.`, operation === 'abandon' ? 'Abandon' : 'Resolve')) return;
      try {
        const body = { ids: [id], dry_run };
        if (operation === 'resolve') {
          body.reason = reason.value.trim();
          if (!body.reason) { flash('Say why it needs nothing more (the reason is audited).'); return; }
        }
        const r = await api('POST', `/api/admin/dlq/${operation}`, { body });
        result.replaceChildren(h('p', {}, `${dry_run ? 'Dry run — ' : ''}${operation}: `,
          Object.entries(r.summary).map(([k, v]) => `${k} ${v}`).join(', '), ` (audit ${r.audit_id})`));
        if (!dry_run && into.isConnected) {
          // The list and this dead letter as they are now (`show` keeps it open).
          const q = params();
          q.set('show', id);
          go(`#/console?${q}`);
        }
      } catch (e) { flash(e.message); }
    };
    into.replaceChildren(h('section', { dataset: { deadLetter: id } },
      h('h2', {}, `Dead letter ${id} `, status(dl.status)),
      h('p', {}, 'Order ', h('a', { href: `#/orders/${dl.order_id}` }, dl.order_id || '—'), d.order_status ? [' — now ', status(d.order_status)] : null),
      h('p', {}, `${dl.service || ''} gave up on ${dl.message_type || 'a message'} after ${dl.attempts ?? '?'} attempts: ${dl.error_class || ''} ${dl.error_message || ''}`),
      dl.compensation ? h('p', { class: 'compensation' }, `A compensation step (${dl.compensation}): until it is replayed or resolved, the order cannot finish compensating.`) : null,
      dl.status_reason ? h('p', { class: 'muted' }, dl.status_reason) : null,
      dl.payload ? h('pre', {}, dl.payload) : null,
      h('p', {},
        h('button', { type: 'button', class: 'secondary', onclick: act('replay', true) }, 'Dry-run replay'), ' ',
        h('button', { type: 'button', id: 'dlq-replay', onclick: act('replay', false), disabled: dl.status !== 'PENDING' }, 'Replay'), ' ',
        h('button', { type: 'button', id: 'dlq-abandon', class: 'danger', onclick: act('abandon', false), disabled: dl.status !== 'PENDING' || !!dl.compensation }, 'Abandon')),
      h('p', {}, reason, ' ',
        h('button', { type: 'button', class: 'secondary', onclick: act('resolve', true), disabled: dl.status !== 'PENDING' }, 'Dry-run resolve'), ' ',
        h('button', { type: 'button', id: 'dlq-resolve', onclick: act('resolve', false), disabled: dl.status !== 'PENDING' }, 'Resolve')),
      result,
      d.audit?.length ? h('table', {}, h('tbody', {}, d.audit.map((a) => h('tr', {},
        h('td', {}, when(a.at)), h('td', {}, a.operator || ''), h('td', {}, `${a.operation}${a.dry_run ? ' (dry run)' : ''}`), h('td', {}, (a.outcomes || []).map((o) => o.outcome).join(', ')))))) : null,
    ));
    into.querySelector('button')?.focus();
  } catch (e) { flash(e.message); }
}

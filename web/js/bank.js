// Banking: balances across every bank, accounts, deposits and withdrawals, transfers (instant or in
// business hours, with the scheduled time and a cancel), and an account's statement. Bank events
// pushed by the gateway refresh what is on screen.

import { api, session } from './api.js';
import { h, pageRender, field, select, submitting, status, when, flash, money, confirmAction } from './ui.js';
import { live } from './live.js';
import { go } from './main.js';

let edge = null;

/** The banks behind the gateway (`["001", "002", …]`). */
export async function banks() {
  edge ??= api('GET', '/api/banks').catch((e) => { edge = null; throw e; });
  return (await edge).banks;
}

/** The currency of the catalogue's prices (the gateway says which). */
export async function catalogueCurrency() {
  edge ??= api('GET', '/api/banks').catch((e) => { edge = null; throw e; });
  return (await edge).currency || '';
}

/** The balances card's rows: one per currency, or a line saying there is nothing yet. */
function balanceRows(balances) {
  const totals = balances.totals || [];
  if (!totals.length) return [h('tr', {}, h('td', { class: 'muted', id: 'no-balances' }, 'No balances yet: open an account below.'))];
  return totals.map((t) => h('tr', {},
    h('th', {}, t.currency), h('td', { class: 'num' }, `${money(t.available, t.currency)} available`), h('td', { class: 'num' }, `${money(t.held, t.currency)} held`)));
}

/** Balances across banks; without an account there is nothing to ask any bank. */
async function myBalances(codes, accounts) {
  if (!accounts.length) return { totals: [] };
  return api('GET', `/api/banks/${codes[0]}/me/balances`);
}

/** Every account of the caller at every bank that answers, each with its `bank`. */
export async function myAccounts() {
  const lists = await Promise.all((await banks()).map((code) =>
    api('GET', `/api/banks/${code}/accounts`).then((list) => list.map((a) => ({ ...a, bank: a.bank || code }))).catch(() => [])));
  return lists.flat();
}

/** The invitations to hold a joint account waiting for the caller's answer, at every bank. */
async function myInvitations() {
  const lists = await Promise.all((await banks()).map((code) =>
    api('GET', `/api/banks/${code}/me/invitations`).then((list) => list.map((i) => ({ ...i, bank: i.bank || code }))).catch(() => [])));
  return lists.flat();
}

/** Pending invitations, each with Accept and Decline; nothing when there are none. */
function invitationsCard(invitations) {
  if (!invitations.length) return null;
  const answer = (i, verb) => async (e) => {
    e.target.disabled = true;
    try {
      await api('POST', `/api/banks/${i.bank}/accounts/${encodeURIComponent(i.account_id)}/invitations/${encodeURIComponent(i.user_id)}/${verb}`);
      flash(verb === 'accept' ? `You now hold account ${i.number} at bank ${i.bank}.` : `Invitation to account ${i.number} declined.`, 'info');
      go('#/bank');
    } catch (err) {
      e.target.disabled = false;
      flash(err.message || String(err), 'error');
    }
  };
  return h('section', { id: 'invitations', class: 'card' }, h('h2', {}, 'Invitations to joint accounts'),
    h('table', {}, h('tbody', {}, invitations.map((i) => h('tr', { dataset: { invitation: `${i.bank}:${i.account_id}` } },
      h('td', {}, `${i.bank} · ${i.number} (${i.currency})`), h('td', { class: 'muted' }, `from ${i.invited_by}`),
      h('td', {}, h('button', { type: 'button', onclick: answer(i, 'accept') }, 'Accept'), ' ',
        h('button', { type: 'button', class: 'secondary', onclick: answer(i, 'decline') }, 'Decline')))))));
}

/** `#/bank`: balances, accounts, and the forms. Returns the cleanup for the router. */
export async function overview() {
  const render = pageRender();
  const codes = await banks();
  const accounts = await myAccounts();
  const balances = await myBalances(codes, accounts);
  const invitations = await myInvitations();
  const transfers = h('div', { id: 'transfers' });
  render(
    h('h1', {}, 'Bank'),
    invitationsCard(invitations),
    h('section', { id: 'balances' }, h('h2', {}, 'Balances across banks'),
      balances.partial ? h('p', { class: 'muted' }, `Not answering now: ${(balances.unavailable || []).join(', ')} — the totals leave them out.`) : null,
      h('table', {}, h('tbody', {}, balanceRows(balances)))),
    h('section', {}, h('h2', {}, 'Accounts'), accountsTable(accounts)),
    openAccountForm(codes),
    accounts.length ? operationForm(accounts) : null,
    accounts.length ? transferForm(accounts, codes, transfers) : null,
    transfers,
  );
  return live.on((frame) => {
    if (frame.event === 'bank') setTimeout(() => { if (location.hash === '#/bank') refreshBalances(); }, 0);
  });
}

async function refreshBalances() {
  const codes = await banks();
  const accounts = await myAccounts();
  const balances = await myBalances(codes, accounts);
  const section = document.getElementById('balances');
  if (!section) return;
  section.querySelector('tbody')?.replaceChildren(...balanceRows(balances));
  document.getElementById('accounts')?.replaceWith(accountsTable(accounts));
}

function accountsTable(accounts) {
  if (!accounts.length) return h('p', { id: 'accounts', class: 'muted' }, 'No accounts yet: open one below.');
  return h('table', { id: 'accounts' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Bank'), h('th', {}, 'Number'), h('th', {}, 'Type'), h('th', { class: 'num' }, 'Available'), h('th', { class: 'num' }, 'Held'), h('th', {}, ''))),
    h('tbody', {}, accounts.map((a) => h('tr', { dataset: { account: a.id } },
      h('td', {}, a.bank), h('td', {}, a.number), h('td', {}, a.type),
      h('td', { class: 'num' }, money(a.available, a.currency)), h('td', { class: 'num' }, money(a.held, a.currency)),
      h('td', {}, h('a', { href: `#/bank/${a.bank}/${a.id}` }, 'Statement'))))));
}

function openAccountForm(codes) {
  return submitting(h('form', { class: 'card', id: 'open-account-form' },
    h('h2', {}, 'Open an account'),
    select('Bank', 'bank', codes.map((c) => [c, c]), codes[0]),
    select('Type', 'type', [['individual', 'Individual (CPF)'], ['business', 'Business (CNPJ)'], ['joint', 'Joint (co-holders are invited)']], 'individual'),
    select('Currency', 'currency', [['BRL', 'BRL'], ['USD', 'USD'], ['EUR', 'EUR']], 'BRL'),
    field('Document (CPF/CNPJ; optional for a joint account)', { name: 'document', placeholder: '529.982.247-25' }),
    field('Co-holders to invite (joint: usernames, comma-separated)', { name: 'holders', placeholder: 'bruno, carla' }),
    h('button', { type: 'submit' }, 'Open'),
  ), async ({ bank, type, currency, document, holders }) => {
    const body = { type, currency };
    if (document) body.document = document;
    // A joint account's holders include its opener; the others are invited and hold it once they accept.
    if (type === 'joint') body.holders = [session.user()?.sub, ...String(holders || '').split(',').map((u) => u.trim()).filter(Boolean)];
    const a = await api('POST', `/api/banks/${bank}/accounts`, { body });
    go('#/bank');
    const invited = (a.invited || []).length ? ` Invited: ${a.invited.join(', ')} (they hold it once they accept).` : '';
    flash(`Account ${a.number} opened at bank ${bank}.${invited}`, 'info');
  });
}

function operationForm(accounts) {
  return submitting(h('form', { class: 'card', id: 'operation-form' },
    h('h2', {}, 'Deposit or withdraw'),
    select('Account', 'account', accounts.map((a) => [`${a.bank}:${a.id}`, `${a.bank} · ${a.number} (${a.currency})`])),
    select('Operation', 'type', [['deposit', 'Deposit'], ['withdrawal', 'Withdraw']], 'deposit'),
    field('Amount', { name: 'amount', inputmode: 'decimal', required: true, placeholder: '100.00' }),
    h('button', { type: 'submit' }, 'Queue'),
  ), async ({ account, type, amount }, _form, key) => {
    const [bank, id] = account.split(':');
    const currency = accounts.find((a) => `${a.bank}:${a.id}` === account)?.currency;
    const op = await api('POST', `/api/banks/${bank}/accounts/${id}/operations`, { headers: { 'idempotency-key': key }, body: { type, amount } });
    flash(`${type === 'deposit' ? 'Deposit' : 'Withdrawal'} of ${money(amount, currency)} queued (operation ${op.operation_id}); the balance updates when it is applied.`, 'info');
    // The queue applies it in a moment; the bank event refreshes the page, this is the fallback.
    setTimeout(() => { if (location.hash === '#/bank') refreshBalances(); }, 1500);
  });
}

function transferForm(accounts, codes, out) {
  return submitting(h('form', { class: 'card', id: 'transfer-form' },
    h('h2', {}, 'Transfer'),
    select('From', 'from', accounts.map((a) => [`${a.bank}:${a.id}`, `${a.bank} · ${a.number} · ${money(a.available, a.currency)}`])),
    select('To bank', 'to_bank', codes.map((c) => [c, c]), codes[0]),
    field('To account number', { name: 'to_number', required: true, placeholder: '48213907-2' }),
    field('Amount', { name: 'amount', inputmode: 'decimal', required: true }),
    select('When', 'kind', [['instant', 'Instant'], ['business_hours', 'Business hours']], 'instant'),
    field('Description', { name: 'description', maxlength: 140 }),
    h('button', { type: 'submit' }, 'Send'),
  ), async (v, _form, key) => {
    const [bank, id] = v.from.split(':');
    const body = { kind: v.kind, from_account: id, to: { bank: v.to_bank, account_number: v.to_number.trim() }, amount: v.amount };
    if (v.description) body.description = v.description;
    const t = await api('POST', `/api/banks/${bank}/transfers`, { headers: { 'idempotency-key': key }, body });
    out.prepend(transferCard(bank, t));
  });
}

/** One transfer as answered; a scheduled one shows when it runs and can be canceled. */
function transferCard(bank, t) {
  const card = h('div', { class: 'card', dataset: { transfer: t.id } },
    h('p', {}, 'Transfer ', h('code', {}, t.id), ' ', status(t.status), ` ${money(t.amount, t.currency)} → ${t.to?.bank || ''} ${t.to?.account_number || ''}`),
    t.execute_at ? h('p', {}, `Runs at ${when(t.execute_at)} (the next business-hours window).`) : null,
    t.reason ? h('p', { class: 'muted' }, `Reason: ${t.reason}`) : null,
    t.status === 'SCHEDULED' ? h('button', { class: 'danger', type: 'button', onclick: async () => {
      if (!await confirmAction(`Cancel the transfer of ${money(t.amount, t.currency)} to ${t.to?.account_number || 'its payee'}?`, 'Cancel transfer')) return;
      try {
        card.replaceWith(transferCard(bank, await api('DELETE', `/api/banks/${bank}/transfers/${t.id}`)));
      } catch (e) { flash(e.message); }
    } }, 'Cancel transfer') : null,
  );
  return card;
}

/** `#/bank/{code}/{id}`: the account's postings, newest first, a page at a time. */
export async function statement(bank, id, cursor) {
  const render = pageRender();
  const [account, page] = await Promise.all([
    api('GET', `/api/banks/${bank}/accounts/${encodeURIComponent(id)}`),
    api('GET', `/api/banks/${bank}/accounts/${encodeURIComponent(id)}/statement?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
  ]);
  render(
    h('p', {}, h('a', { href: '#/bank' }, '← Bank')),
    h('h1', {}, `Account ${account.number} at bank ${bank}`),
    h('p', {}, `${money(account.available, account.currency)} available · ${money(account.held, account.currency)} held`),
    h('table', { id: 'statement' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'What'), h('th', {}, 'Bucket'), h('th', { class: 'num' }, 'Amount'), h('th', {}, 'Reference'))),
      h('tbody', {}, page.items.map((e) => h('tr', {},
        h('td', {}, when(e.at)), h('td', {}, e.kind), h('td', {}, e.bucket), h('td', { class: 'num' }, money(e.amount, account.currency)), h('td', {}, e.reference ? h('code', {}, e.reference) : ''))))),
    page.next_cursor ? h('p', {}, h('button', { class: 'secondary', type: 'button', onclick: () => statement(bank, id, page.next_cursor).catch((e) => flash(e.message)) }, 'Older')) : null,
  );
  if (!page.items.length) flash('No postings yet.', 'info');
}


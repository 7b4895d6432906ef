// Live events over the gateway's WebSocket: one connection per signed-in tab, authenticated by a
// single-use ticket (the token never goes in a URL), resumed after a drop from the last event seen,
// so nothing is missed or repeated. When the token the socket was opened with expires, the gateway
// sends `auth_expired` and closes it: the client reconnects at once with a fresh ticket (asking for
// it refreshes the token) from that frame's id. Pages subscribe with `live.on(fn)`.

import { api } from './api.js';

const listeners = new Set();
let socket = null;
let lastId = null;
let wanted = false;
let backoff = 500;
let renew = false;

function setState(text) {
  const el = document.getElementById('live-state');
  if (el) el.textContent = `live: ${text}`;
}

function deliver(frame) {
  for (const fn of listeners) {
    try { fn(frame); } catch (e) { console.error(e); }
  }
}

async function open() {
  if (!wanted || socket) return;
  setState('connecting');
  let ticket;
  try {
    ticket = (await api('POST', '/api/ws/ticket')).ticket;
  } catch {
    return retry();
  }
  const url = new URL('/api/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('ticket', ticket);
  if (lastId) url.searchParams.set('last_event_id', lastId);
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => { backoff = 500; setState('on'); };
  ws.onmessage = (m) => {
    let frame;
    try { frame = JSON.parse(m.data); } catch { return; }
    if (frame.event === 'resync') {
      // The gateway could not resume: start over with a fresh snapshot.
      lastId = null;
    } else if (frame.id) {
      lastId = frame.id;
    }
    if (frame.event === 'auth_expired') {
      renew = true;
      return;
    }
    deliver(frame);
  };
  ws.onclose = (e) => {
    if (socket === ws) socket = null;
    setState('off');
    if (renew || e.reason === 'auth_expired') {
      // Not a failure: the token ran out. Straight back, with a fresh one.
      renew = false;
      backoff = 500;
      if (wanted) open();
      return;
    }
    retry();
  };
}

function retry() {
  if (!wanted) return;
  setTimeout(open, backoff);
  backoff = Math.min(backoff * 2, 10_000);
}

export const live = {
  start() { wanted = true; open(); },
  stop() {
    wanted = false;
    lastId = null;
    if (socket) { const s = socket; socket = null; s.close(); }
    setState('off');
  },
  /** Calls `fn({event, id, data})` for every frame; returns the unsubscribe function. */
  on(fn) { listeners.add(fn); return () => listeners.delete(fn); },
};

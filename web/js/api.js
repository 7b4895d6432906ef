// Talking to the gateway: the session's tokens, JSON calls, and problem+json errors as exceptions.
// Tokens live in sessionStorage (this tab only, gone when it closes); nothing else is stored.

const KEY = 'sagaway.session';

/** A problem+json answer (RFC 9457): `status`, `code`, `field` and a message a person can read. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem.detail || problem.title || `the server answered ${status}`;
    super(problem.field ? `${problem.field}: ${detail}` : detail);
    this.status = status;
    this.code = problem.code || problem.type || '';
    this.field = problem.field || '';
    this.problem = problem;
  }
}

function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

export const session = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(KEY)) || null; } catch { return null; }
  },
  set(tokens) {
    sessionStorage.setItem(KEY, JSON.stringify({ access: tokens.access_token, refresh: tokens.refresh_token }));
  },
  clear() { sessionStorage.removeItem(KEY); },
  /** `{sub, roles}` of the signed-in user, or null. */
  user() {
    const s = this.get();
    if (!s) return null;
    const c = claims(s.access);
    return { sub: c.sub, roles: Array.isArray(c.roles) ? c.roles : [] };
  },
  isAdmin() { return (this.user()?.roles || []).includes('admin'); },
};

async function refresh() {
  const s = session.get();
  if (!s?.refresh) return false;
  const res = await fetch('/api/auth/refresh', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refresh_token: s.refresh }),
  });
  if (!res.ok) { session.clear(); return false; }
  session.set(await res.json());
  return true;
}

/**
 * `method path` against the gateway (`/api…`), JSON in and out. Throws ApiError for any 4xx/5xx;
 * a 401 first tries the refresh token once. `raw` answers the body as text.
 */
export async function api(method, path, { body, headers = {}, raw = false, retried = false } = {}) {
  const h = { ...headers };
  // An access token about to expire is renewed first (no request is sent to be refused with 401).
  const before = session.get();
  if (before?.refresh && !path.startsWith('/api/auth/') && (claims(before.access).exp || 0) * 1000 < Date.now() + 5000) await refresh();
  const s = session.get();
  if (s?.access) h.authorization = `Bearer ${s.access}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: 'the gateway cannot be reached; check your connection and try again' });
  }
  if (res.status === 401 && s?.refresh && !retried && !path.startsWith('/api/auth/')) {
    if (await refresh()) return api(method, path, { body, headers, raw, retried: true });
    window.dispatchEvent(new Event('sagaway:signed-out'));
  }
  const text = await res.text();
  if (!res.ok) {
    let problem = {};
    try { problem = JSON.parse(text); } catch { problem = { detail: text.slice(0, 200) }; }
    throw new ApiError(res.status, problem);
  }
  if (raw) return text;
  return text ? JSON.parse(text) : null;
}

/** A fresh idempotency key: one per intent (a retried submit of the same form reuses it). */
export function idempotencyKey() {
  return crypto.randomUUID();
}

// REST client: the signed-in token (kept in localStorage until it expires,
// refreshed through /api/auth/session before it does) and JSON requests
// whose failures carry the server's message.

const TOKEN_KEY = 'gpuhub.token';
const REFRESH_MARGIN_S = 300; // refresh this long before expiry (or at 80% of a short life)

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let token = null;
let refreshTimer = null;
const listeners = new Set();

// Calls fn(token) whenever the token changes (null: signed out).
export function onTokenChange(fn) {
  listeners.add(fn);
}

function claims(t) {
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

export function currentToken() {
  return token;
}

function setToken(t) {
  token = t;
  clearTimeout(refreshTimer);
  if (t) {
    localStorage.setItem(TOKEN_KEY, t);
    scheduleRefresh();
  } else {
    localStorage.removeItem(TOKEN_KEY);
  }
  for (const fn of listeners) fn(t);
}

function scheduleRefresh() {
  const c = claims(token);
  if (!c || !c.exp) return;
  const now = Date.now() / 1000;
  const life = c.exp - (c.iat || now);
  const at = Math.min(c.exp - REFRESH_MARGIN_S, (c.iat || now) + life * 0.8);
  const delayMs = Math.max(1000, (at - now) * 1000);
  refreshTimer = setTimeout(refresh, Math.min(delayMs, 2 ** 31 - 1));
}

async function refresh() {
  try {
    const r = await request('GET', '/api/auth/session');
    setToken(r.access_token);
  } catch (e) {
    if (e.status === 401) setToken(null);
    else refreshTimer = setTimeout(refresh, 30000); // network trouble: try again
  }
}

// The stored token if it has not expired (refreshing it when it is close).
export function restoreSession() {
  const t = localStorage.getItem(TOKEN_KEY);
  const c = t && claims(t);
  if (!c || (c.exp && c.exp * 1000 <= Date.now())) {
    localStorage.removeItem(TOKEN_KEY);
    return false;
  }
  setToken(t);
  return true;
}

export async function login(account, password) {
  const r = await request('POST', '/api/auth/login', { account, password }, { anonymous: true });
  setToken(r.access_token);
}

export async function logout() {
  try {
    await request('POST', '/api/auth/logout');
  } catch {
    // signed out locally whatever the server says
  }
  setToken(null);
}

// Sends a request; resolves to the parsed JSON (or text) body, rejects with
// ApiError(status, server message). A 401 on a signed-in request signs out.
export async function request(method, path, body, opts = {}) {
  const headers = {};
  if (token && !opts.anonymous) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  Object.assign(headers, opts.headers || {});
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch {
    throw new ApiError(0, 'The server cannot be reached; check your connection.');
  }
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) {
    const message = (data && data.message) || `Request failed (${res.status})`;
    if (res.status === 401 && token && !opts.anonymous) setToken(null);
    throw new ApiError(res.status, message);
  }
  return data;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body);
export const del = (path) => request('DELETE', path);

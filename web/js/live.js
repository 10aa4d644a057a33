// The browser WebSocket /ws: authenticates with the token, reconnects with
// backoff, subscribes to machine_info, dispatches pushed events (machine,
// machine_info, task) and matches container
// replies to their requests by request_id.

import { currentToken } from './api.js';

let socket = null;
let authed = false;
let wanted = false;
let retryMs = 500;
let nextId = 1;
const pending = new Map(); // request_id -> {resolve, reject, timer}
const handlers = new Map(); // type -> Set(fn)
const stateListeners = new Set();

export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
}

export function off(type, fn) {
  handlers.get(type)?.delete(fn);
}

// fn(state): 'connecting' | 'live' | 'offline'
export function onState(fn) {
  stateListeners.add(fn);
}

function setState(s) {
  for (const fn of stateListeners) fn(s);
}

function emit(type, data) {
  for (const fn of handlers.get(type) || []) fn(data);
}

export function connect() {
  wanted = true;
  if (socket) return;
  const token = currentToken();
  if (!token) return;
  setState('connecting');
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', data: { token } }));
  ws.onmessage = (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    const data = msg.data || {};
    if (msg.type === 'auth' && data.ok) {
      authed = true;
      retryMs = 500;
      // Every change of a machine (measurements, GPU holders) as machine_info.
      ws.send(JSON.stringify({ type: 'subscribe', data: { machines: true } }));
      setState('live');
      emit('open', data);
    } else if (msg.type === 'container' && pending.has(data.request_id)) {
      const p = pending.get(data.request_id);
      pending.delete(data.request_id);
      clearTimeout(p.timer);
      if (data.ok) p.resolve(data);
      else p.reject(new Error(data.message || 'Container operation failed'));
    } else {
      emit(msg.type, data);
    }
  };
  ws.onclose = () => {
    if (socket === ws) {
      socket = null;
      authed = false;
    }
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(new Error('The live connection to the server was lost; try again.'));
      pending.delete(id);
    }
    setState('offline');
    if (wanted && currentToken()) {
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    }
  };
}

export function disconnect() {
  wanted = false;
  if (socket) socket.close();
  socket = null;
}

export function isLive() {
  return Boolean(socket && authed && socket.readyState === WebSocket.OPEN);
}

// A container operation over /ws; resolves to the reply's data.
export function container(data, timeoutMs = 120000) {
  return new Promise((resolve, reject) => {
    if (!isLive()) {
      reject(new Error('Not connected to the server for live operations; wait a moment and retry.'));
      return;
    }
    const request_id = `r${nextId++}`;
    const timer = setTimeout(() => {
      pending.delete(request_id);
      reject(new Error('The server did not answer in time.'));
    }, timeoutMs);
    pending.set(request_id, { resolve, reject, timer });
    socket.send(JSON.stringify({ type: 'container', data: { ...data, request_id } }));
  });
}

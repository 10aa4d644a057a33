// The gpuhub web UI: sign-in, the header, and hash routes to the views.

import * as api from './api.js';
import * as live from './live.js';
import { h, field, statusLine, showStatus, invalid, busy, ACCOUNT_RE } from './ui.js';
import { state, onChange, loadMe } from './state.js';
import { clusterView } from './cluster.js';
import { tasksView } from './tasks.js';
import { containersView } from './containers.js';
import { profileView } from './profile.js';
import { adminView } from './admin.js';

const views = { cluster: clusterView, tasks: tasksView, containers: containersView, profile: profileView, admin: adminView };
const main = document.getElementById('main');
let cleanup = null;
let signInMessage = '';

function mount(node) {
  if (cleanup) cleanup();
  cleanup = null;
  main.replaceChildren(node.el || node);
  cleanup = node.cleanup || null;
}

function signInView() {
  document.getElementById('top').hidden = true;
  const account = field({ label: 'Account', name: 'account', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const password = field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const line = statusLine();
  const form = h('form', { class: 'card signin', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to gpuhub'),
    account, password,
    h('button', { type: 'submit' }, 'Sign in'),
    line);
  if (signInMessage) showStatus(line, signInMessage);
  signInMessage = '';
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const a = form.account.value.trim();
    const p = form.password.value;
    if (!ACCOUNT_RE.test(a)) return invalid(form.account, line, 'Account: 1–32 characters of a-z, 0-9, _ . -, starting with a letter.');
    if (!p) return invalid(form.password, line, 'Enter your password.');
    await busy(form, line, async () => {
      await api.login(a, p);
    });
    return undefined;
  });
  mount(h('div', { class: 'center' }, form));
  form.account.focus();
}

function renderHeader() {
  const me = state.me;
  if (!me) return;
  document.getElementById('top').hidden = false;
  document.getElementById('me-name').textContent = me.nickname || me.account;
  const img = document.getElementById('me-photo');
  img.hidden = !me.photo;
  if (me.photo) img.src = me.photo;
  document.querySelector('[data-admin]').hidden = me.role !== 'admin';
}

function route() {
  if (!api.currentToken() || !state.me) return;
  let name = (location.hash.match(/^#\/(\w+)/) || [])[1] || 'cluster';
  if (!views[name] || (name === 'admin' && state.me.role !== 'admin')) name = 'cluster';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  mount(views[name]());
  document.title = `gpuhub · ${name[0].toUpperCase()}${name.slice(1)}`;
}

async function start() {
  try {
    await loadMe();
  } catch (e) {
    signInMessage = e.message;
    if (api.currentToken()) await api.logout();
    return;
  }
  live.connect();
  renderHeader();
  route();
  main.focus();
}

api.onTokenChange((t) => {
  if (!t) {
    live.disconnect();
    state.me = null;
    if (!signInMessage) signInMessage = 'You are signed out.';
    signInView();
  } else if (!state.me) {
    start();
  }
});
onChange('me', renderHeader);
live.onState((s) => {
  const el = document.getElementById('live');
  el.textContent = s === 'live' ? 'live' : s === 'connecting' ? 'connecting…' : 'offline';
  el.dataset.state = s;
});
window.addEventListener('hashchange', route);
document.getElementById('sign-out').addEventListener('click', async () => {
  signInMessage = 'You are signed out.';
  await api.logout();
});

if (!api.restoreSession()) signInView();

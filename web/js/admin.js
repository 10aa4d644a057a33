// Admin: users (add, delete, reset password), machines (add, showing the
// agent token once with the agent's command line; remove), images (add, remove).

import { get, post, del } from './api.js';
import { h, field, statusLine, showStatus, invalid, busy, fmtTime, announce, ACCOUNT_RE } from './ui.js';
import { loadImages, loadMachines } from './state.js';

const MACHINE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// A table section that loads `path` and renders rows; returns {el, reload}.
function listSection(title, columns, path, row) {
  const line = statusLine();
  const tbody = h('tbody');
  const reload = async () => {
    try {
      const items = await get(path);
      tbody.replaceChildren(...items.map((it) => row(it, reload)));
      if (!items.length) tbody.append(h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, 'None yet.')));
    } catch (e) {
      showStatus(line, e.message);
    }
  };
  const el = h('div', { class: 'table-wrap' },
    h('table', { class: 'responsive' },
      h('caption', { class: 'visually-hidden' }, title),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      tbody),
    line);
  return { el, reload };
}

// A button that confirms, runs `work`, and shows its error in `line`.
function actionButton(label, aria, line, work, cls = 'danger', confirmText = null) {
  return h('button', {
    type: 'button', class: cls, 'aria-label': aria,
    onclick: async (ev) => {
      if (confirmText && !window.confirm(confirmText)) return;
      ev.target.disabled = true;
      try {
        await work();
      } catch (e) {
        ev.target.disabled = false;
        showStatus(line, e.message);
      }
    },
  }, label);
}

function usersSection() {
  const list = listSection('Users', ['Account', 'Nickname', 'Role', 'Actions'], '/api/admin/users', (u, reload) => {
    const line = statusLine();
    const reset = h('form', { class: 'inline-form', novalidate: true },
      field({ label: `New password for ${u.account}`, name: 'password', type: 'password', autocomplete: 'new-password' }),
      h('button', { type: 'submit', class: 'secondary' }, 'Reset'));
    reset.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const p = reset.password.value;
      if (p.length < 8 || p.length > 128) return invalid(reset.password, line, 'Password must be 8–128 characters.');
      await busy(reset, line, async () => {
        await post(`/api/admin/users/${encodeURIComponent(u.account)}/password`, { password: p });
        reset.reset();
        showStatus(line, `Password of ${u.account} reset.`, 'ok');
      });
      return undefined;
    });
    return h('tr', { dataset: { account: u.account } },
      h('td', { 'data-label': 'Account' }, u.account),
      h('td', { 'data-label': 'Nickname' }, u.nickname || ''),
      h('td', { 'data-label': 'Role' }, u.role),
      h('td', { 'data-label': 'Actions', class: 'actions' }, reset,
        actionButton('Delete', `Delete user ${u.account}`, line, async () => { await del(`/api/admin/users/${encodeURIComponent(u.account)}`); announce(`User ${u.account} deleted.`); await reload(); }, 'danger', `Delete user ${u.account}?`),
        line));
  });
  const line = statusLine();
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'add-user-title' },
    h('h3', { id: 'add-user-title' }, 'Add a user'),
    field({ label: 'Account', name: 'account', autocapitalize: 'none', hint: 'a-z, 0-9, _ . -, starting with a letter; at most 32.' }),
    field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'new-password', hint: '8–128 characters.' }),
    field({ label: 'Nickname', name: 'nickname' }),
    field({ label: 'Role', name: 'user_role', options: [{ value: 'user', label: 'user' }, { value: 'admin', label: 'admin' }] }),
    h('button', { type: 'submit' }, 'Add user'),
    line);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const account = form.account.value.trim();
    if (!ACCOUNT_RE.test(account)) return invalid(form.account, line, 'Account: 1–32 characters of a-z, 0-9, _ . -, starting with a letter.');
    if (form.password.value.length < 8 || form.password.value.length > 128) return invalid(form.password, line, 'Password must be 8–128 characters.');
    const body = { account, password: form.password.value, role: form.user_role.value };
    if (form.nickname.value.trim()) body.nickname = form.nickname.value.trim();
    await busy(form, line, async () => {
      await post('/api/auth/register', body);
      form.reset();
      showStatus(line, `User ${account} added.`, 'ok');
      await list.reload();
    });
    return undefined;
  });
  list.reload();
  return h('section', { class: 'admin-block', 'aria-labelledby': 'users-title' }, h('h2', { id: 'users-title' }, 'Users'), h('div', { class: 'split' }, list.el, form));
}

function machinesSection() {
  const list = listSection('Machines', ['Machine', 'Address', 'Added', 'Last seen', 'Actions'], '/api/admin/machines', (m, reload) => {
    const line = statusLine();
    return h('tr', { dataset: { machine: m.id } },
      h('td', { 'data-label': 'Machine' }, m.id),
      h('td', { 'data-label': 'Address' }, m.ip || '—'),
      h('td', { 'data-label': 'Added' }, fmtTime(m.created_at)),
      h('td', { 'data-label': 'Last seen' }, fmtTime(m.last_seen)),
      h('td', { 'data-label': 'Actions', class: 'actions' },
        actionButton('Remove', `Remove machine ${m.id}`, line, async () => { await del(`/api/admin/machines/${encodeURIComponent(m.id)}`); announce(`Machine ${m.id} removed.`); await reload(); loadMachines().catch(() => {}); }, 'danger', `Remove machine ${m.id}?`),
        line));
  });
  const line = statusLine();
  const secret = h('div', { class: 'secret', hidden: true, role: 'region', 'aria-label': 'New agent token' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'add-machine-title' },
    h('h3', { id: 'add-machine-title' }, 'Add a machine'),
    field({ label: 'Machine id', name: 'machine_id', placeholder: 'node-01', autocapitalize: 'none', hint: 'Letters, digits, . _ -; at most 64.' }),
    h('button', { type: 'submit' }, 'Add machine'),
    line, secret);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = form.machine_id.value.trim();
    if (!MACHINE_RE.test(id)) return invalid(form.machine_id, line, 'Machine id: 1–64 letters, digits, . _ -, starting with a letter or digit.');
    await busy(form, line, async () => {
      const r = await post('/api/admin/machines', { id });
      const server = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
      secret.hidden = false;
      secret.replaceChildren(
        h('p', {}, h('strong', {}, `Agent token of ${r.id}`), ' — shown only now; copy it:'),
        h('code', { class: 'token' }, r.agent_token),
        h('p', {}, 'On the machine, start the agent with:'),
        h('pre', { class: 'command' }, `echo '${r.agent_token}' > /etc/gpuhub/agent-token && chmod 600 /etc/gpuhub/agent-token\ngpuhub-agent --server ${server} --token-file /etc/gpuhub/agent-token --docker-host unix:///run/docker.sock`));
      form.reset();
      showStatus(line, `Machine ${r.id} added.`, 'ok');
      await list.reload();
      loadMachines().catch(() => {});
    });
    return undefined;
  });
  list.reload();
  return h('section', { class: 'admin-block', 'aria-labelledby': 'machines-title' }, h('h2', { id: 'machines-title' }, 'Machines'), h('div', { class: 'split' }, list.el, form));
}

function imagesSection() {
  const list = listSection('Images', ['Name', 'Reference', 'Description', 'Actions'], '/api/images', (i, reload) => {
    const line = statusLine();
    return h('tr', { dataset: { image: i.id } },
      h('td', { 'data-label': 'Name' }, i.name),
      h('td', { 'data-label': 'Reference' }, h('code', {}, i.image)),
      h('td', { 'data-label': 'Description' }, i.description || ''),
      h('td', { 'data-label': 'Actions', class: 'actions' },
        actionButton('Remove', `Remove image ${i.name}`, line, async () => { await del(`/api/admin/images/${i.id}`); await reload(); loadImages().catch(() => {}); }, 'danger', `Remove image ${i.name}?`),
        line));
  });
  const line = statusLine();
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'add-image-title' },
    h('h3', { id: 'add-image-title' }, 'Add an image'),
    field({ label: 'Name', name: 'image_name', maxlength: 100 }),
    field({ label: 'Image reference', name: 'image', placeholder: 'docker.io/lab/torch:2.3' }),
    field({ label: 'Description', name: 'description', textarea: true, rows: 2, maxlength: 1000 }),
    h('button', { type: 'submit' }, 'Add image'),
    line);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = form.image_name.value.trim();
    const image = form.image.value.trim();
    if (!name || name.length > 100) return invalid(form.image_name, line, 'Name must be 1–100 characters.');
    if (!image || image.length > 255 || /[\s\x00-\x1f]/.test(image)) return invalid(form.image, line, 'Image reference: 1–255 characters without spaces.');
    await busy(form, line, async () => {
      await post('/api/admin/images', { name, image, description: form.description.value });
      form.reset();
      showStatus(line, `Image ${name} added.`, 'ok');
      await list.reload();
      loadImages().catch(() => {});
    });
    return undefined;
  });
  list.reload();
  return h('section', { class: 'admin-block', 'aria-labelledby': 'images-title' }, h('h2', { id: 'images-title' }, 'Images'), h('div', { class: 'split' }, list.el, form));
}

export function adminView() {
  const el = h('section', { class: 'view admin', 'aria-labelledby': 'admin-title' },
    h('h1', { id: 'admin-title' }, 'Administration'),
    usersSection(), machinesSection(), imagesSection());
  return { el };
}

// Profile: nickname, email, phone, password, and the photo (an upload or a
// preset avatar), shown in the header.

import { get, post, request } from './api.js';
import { h, field, statusLine, showStatus, invalid, busy, announce } from './ui.js';
import { state, loadMe } from './state.js';

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PHONE_RE = /^[0-9 +-]{5,20}$/;
const MAX_PHOTO = 2 * 1024 * 1024;

function profileForm() {
  const me = state.me;
  const line = statusLine();
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'p-title' },
    h('h2', { id: 'p-title' }, 'Profile'),
    h('p', { class: 'muted' }, `Account ${me.account} · ${me.role}`),
    field({ label: 'Nickname', name: 'nickname', value: me.nickname || '', maxlength: 64, autocomplete: 'nickname' }),
    field({ label: 'Email', name: 'email', type: 'email', value: me.email || '', autocomplete: 'email', hint: 'Leave empty to remove it.' }),
    field({ label: 'Phone', name: 'phone', type: 'tel', value: me.phone || '', autocomplete: 'tel', hint: '5–20 digits, spaces, + or -; empty removes it.' }),
    h('button', { type: 'submit' }, 'Save profile'),
    line);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const nickname = form.nickname.value.trim();
    const email = form.email.value.trim();
    const phone = form.phone.value.trim();
    if (nickname.length < 1 || nickname.length > 64) return invalid(form.nickname, line, 'Nickname must be 1–64 characters.');
    if (email && !EMAIL_RE.test(email)) return invalid(form.email, line, 'Email must be a valid address.');
    if (phone && !PHONE_RE.test(phone)) return invalid(form.phone, line, 'Phone must be 5–20 of digits, spaces, + and -.');
    await busy(form, line, async () => {
      await post('/api/user/set_profile', { nickname, email: email || null, phone: phone || null });
      await loadMe();
      showStatus(line, 'Profile saved.', 'ok');
    });
    return undefined;
  });
  return form;
}

function passwordForm() {
  const line = statusLine();
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'pw-title' },
    h('h2', { id: 'pw-title' }, 'Password'),
    field({ label: 'Current password', name: 'old', type: 'password', autocomplete: 'current-password' }),
    field({ label: 'New password', name: 'new', type: 'password', autocomplete: 'new-password', hint: '8–128 characters.' }),
    field({ label: 'Repeat new password', name: 'again', type: 'password', autocomplete: 'new-password' }),
    h('button', { type: 'submit' }, 'Change password'),
    line);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.old.value) return invalid(form.old, line, 'Enter your current password.');
    if (form.new.value.length < 8 || form.new.value.length > 128) return invalid(form.new, line, 'The new password must be 8–128 characters.');
    if (form.new.value !== form.again.value) return invalid(form.again, line, 'The two new passwords differ.');
    await busy(form, line, async () => {
      await post('/api/user/set_password', { old_password: form.old.value, new_password: form.new.value });
      form.reset();
      showStatus(line, 'Password changed.', 'ok');
    });
    return undefined;
  });
  return form;
}

function photoForm() {
  const line = statusLine();
  const preview = h('img', { class: 'avatar big', alt: 'Your photo', width: 96, height: 96, src: state.me.photo || '', hidden: !state.me.photo });
  const presets = h('div', { class: 'presets', role: 'group', 'aria-label': 'Preset avatars' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'ph-title' },
    h('h2', { id: 'ph-title' }, 'Photo'),
    preview,
    field({ label: 'Upload a photo', name: 'file', type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp', hint: 'PNG, JPEG, GIF or WebP, at most 2 MiB.' }),
    h('button', { type: 'submit' }, 'Upload'),
    h('p', {}, 'Or pick a preset avatar:'),
    presets,
    line);
  const done = async (msg) => {
    await loadMe();
    preview.src = state.me.photo || '';
    preview.hidden = !state.me.photo;
    showStatus(line, msg, 'ok');
    announce(msg);
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const file = form.file.files[0];
    if (!file) return invalid(form.file, line, 'Choose an image file to upload.');
    if (file.size > MAX_PHOTO) return invalid(form.file, line, 'The photo is larger than 2 MiB.');
    if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type)) return invalid(form.file, line, 'The photo must be PNG, JPEG, GIF or WebP.');
    await busy(form, line, async () => {
      const body = new FormData();
      body.append('with_file', 'true');
      body.append('file', file, file.name);
      await request('POST', '/api/user/set_photo', body);
      form.file.value = '';
      await done('Photo uploaded.');
    });
    return undefined;
  });
  get('/api/user/avatars').then((names) => {
    presets.replaceChildren(...names.map((n) => h('button', {
      type: 'button', class: 'preset', 'aria-label': `Use avatar ${n}`,
      onclick: () => busy(form, line, async () => {
        await request('POST', '/api/user/set_photo', undefined, { headers: { with_file: 'false', file: n } });
        await done(`Avatar ${n} chosen.`);
      }),
    }, h('img', { src: `avatars/${encodeURIComponent(n)}.svg`, alt: '', width: 48, height: 48 }))));
  }).catch((e) => showStatus(line, e.message));
  return form;
}

export function profileView() {
  const el = h('section', { class: 'view profile', 'aria-labelledby': 'profile-title' },
    h('h1', { id: 'profile-title' }, 'Your profile'),
    h('div', { class: 'grid3' }, profileForm(), photoForm(), passwordForm()));
  return { el };
}

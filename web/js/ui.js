// Small DOM helpers shared by the views.

// h('button', {class: 'x', onclick: fn}, 'text', child...): an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

let fieldSeq = 0;

// A labelled form field: {label, name, type, value, required, hint, ...input attrs}.
export function field({ label, hint, options, textarea, ...attrs }) {
  const id = attrs.id || `f${++fieldSeq}`;
  const hintId = hint ? `${id}-hint` : undefined;
  let input;
  if (options) {
    input = h('select', { id, 'aria-describedby': hintId, ...attrs },
      options.map((o) => h('option', { value: o.value, selected: String(o.value) === String(attrs.value) }, o.label)));
  } else if (textarea) {
    input = h('textarea', { id, 'aria-describedby': hintId, ...attrs });
    if (attrs.value) input.value = attrs.value;
  } else {
    input = h('input', { id, type: 'text', 'aria-describedby': hintId, ...attrs });
  }
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('small', { id: hintId, class: 'hint' }, hint) : null);
}

// The status line of a form (errors and results), announced to screen readers.
export function statusLine() {
  return h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
}

export function showStatus(line, message, kind = 'error') {
  line.textContent = message || '';
  line.className = `status ${message ? kind : ''}`;
  if (kind === 'error' && message) line.setAttribute('role', 'alert');
  else line.setAttribute('role', 'status');
}

// Marks `input` invalid with `message` (shown in the form's status line).
export function invalid(input, line, message) {
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  showStatus(line, message);
  input.addEventListener('input', () => input.removeAttribute('aria-invalid'), { once: true });
  return false;
}

// Runs `work` with the form's submit button disabled; shows its error.
export async function busy(form, line, work) {
  const buttons = form.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  showStatus(line, '');
  try {
    return await work();
  } catch (e) {
    showStatus(line, e.message);
    return undefined;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

export function announce(text) {
  const el = document.getElementById('announce');
  el.textContent = '';
  setTimeout(() => { el.textContent = text; }, 50);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtDuration(seconds) {
  if (seconds <= 0) return '0s';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m ${ss}s`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

// A labelled bar: value of max, text beside it.
export function bar(label, value, max, text) {
  const pct = max > 0 ? Math.max(0, Math.min(100, (value / max) * 100)) : 0;
  const level = pct >= 90 ? 'high' : pct >= 60 ? 'mid' : 'low';
  return h('div', { class: 'bar-row' },
    h('span', { class: 'bar-label' }, label),
    h('div', { class: `bar ${level}`, role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': max, 'aria-valuenow': value, 'aria-valuetext': text },
      h('span', { style: `width:${pct.toFixed(1)}%` })),
    h('span', { class: 'bar-text' }, text));
}

// Duration rules of the API: a number is hours; a string takes s, m, h, d.
export function parseDuration(text) {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 3600;
  const re = /(\d+(?:\.\d+)?)([smhd])/gy;
  let total = 0;
  let m;
  let end = 0;
  while ((m = re.exec(t))) {
    total += Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
    end = re.lastIndex;
  }
  return end === t.length && end > 0 ? total : NaN;
}

export const ACCOUNT_RE = /^[a-z][a-z0-9_.-]{0,31}$/;

// My tasks: queued, running and finished leases, with the remaining time
// counting down, exit codes, the output log and cancel; live through the
// task events of /ws.

import { get, post, request } from './api.js';
import * as live from './live.js';
import { h, statusLine, showStatus, fmtTime, fmtDuration, announce } from './ui.js';
import { state } from './state.js';

const ACTIVE = new Set(['queued', 'running']);

function remaining(t) {
  if (t.status !== 'running' || !t.start_time) return null;
  return Date.parse(t.start_time) / 1000 + t.duration * 3600 - Date.now() / 1000;
}

function timeCell(t) {
  const left = remaining(t);
  if (left !== null) return h('span', { class: 'countdown', dataset: { task: t.taskId } }, `${fmtDuration(left)} left`);
  if (t.status === 'queued') return `starts ${t.estimated_start ? fmtTime(t.estimated_start) : 'when GPUs free up'}`;
  return t.end_time ? `ended ${fmtTime(t.end_time)}` : '—';
}

function taskRow(t, onCancel, onLog) {
  const line = statusLine();
  return h('tr', { dataset: { task: t.taskId, status: t.status } },
    h('td', { 'data-label': 'Task' }, `#${t.taskId}`),
    h('td', { 'data-label': 'Machine' }, `${t.machine_id} / ${t.containername}`),
    h('td', { 'data-label': 'Command' }, h('code', {}, t.command)),
    h('td', { 'data-label': 'GPUs' }, t.gpu_ids && t.gpu_ids.length ? t.gpu_ids.join(', ') : `${t.gpu_count} wanted`),
    h('td', { 'data-label': 'Status' }, h('span', { class: `badge st-${t.status}` }, t.status),
      t.exit_code !== null && t.exit_code !== undefined ? h('span', { class: 'exit' }, ` exit ${t.exit_code}`) : null),
    h('td', { 'data-label': 'Time' }, timeCell(t)),
    h('td', { 'data-label': 'Actions', class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => onLog(t), 'aria-label': `Output of task ${t.taskId}` }, 'Output'),
      ACTIVE.has(t.status) ? h('button', { type: 'button', class: 'danger', onclick: (ev) => onCancel(t, ev.target, line), 'aria-label': `Cancel task ${t.taskId}` }, 'Cancel') : null,
      line));
}

export function tasksView() {
  let tasks = [];
  const errorLine = statusLine();
  const tbody = h('tbody');
  const logBox = h('section', { class: 'card log', hidden: true, 'aria-labelledby': 'log-title' },
    h('header', {}, h('h2', { id: 'log-title' }, 'Output'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { logBox.hidden = true; } }, 'Close')),
    h('pre', { tabindex: 0 }));
  let logTask = null;

  const showLog = async (t) => {
    logTask = t.taskId;
    logBox.hidden = false;
    logBox.querySelector('h2').textContent = `Output of task ${t.taskId}`;
    const pre = logBox.querySelector('pre');
    try {
      const text = await request('GET', `/api/task/${t.taskId}/log`);
      pre.textContent = text || '(no output yet)';
    } catch (e) {
      pre.textContent = e.message;
    }
    pre.focus();
  };
  const cancel = async (t, button, line) => {
    button.disabled = true;
    try {
      await post('/api/task/cancel', { task_id: t.taskId, machine_id: t.machine_id });
      announce(`Task ${t.taskId} cancelled.`);
      await load();
    } catch (e) {
      button.disabled = false;
      showStatus(line, e.message);
    }
  };
  const render = () => {
    tbody.replaceChildren(...(tasks.length
      ? tasks.map((t) => taskRow(t, cancel, showLog))
      : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No tasks in the last 24 hours. Request GPUs on the Cluster page.'))]));
  };
  const load = async () => {
    try {
      tasks = await get(`/api/task/user/${encodeURIComponent(state.me.account)}`);
      showStatus(errorLine, '');
      render();
    } catch (e) {
      showStatus(errorLine, e.message);
    }
  };
  const onTask = (t) => {
    if (t.account !== state.me.account) return;
    const i = tasks.findIndex((x) => x.taskId === t.taskId);
    if (i >= 0) tasks[i] = t;
    else tasks.unshift(t);
    render();
    if (logTask === t.taskId && !logBox.hidden && !ACTIVE.has(t.status)) showLog(t);
  };
  live.on('task', onTask);
  // The countdowns tick locally; the server is not asked again.
  const ticker = setInterval(() => {
    for (const el of tbody.querySelectorAll('.countdown')) {
      const t = tasks.find((x) => String(x.taskId) === el.dataset.task);
      if (t) el.textContent = `${fmtDuration(remaining(t))} left`;
    }
  }, 1000);
  load();
  const el = h('section', { class: 'view tasks', 'aria-labelledby': 'tasks-title' },
    h('h1', { id: 'tasks-title' }, 'My tasks'),
    errorLine,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'responsive' },
        h('caption', { class: 'visually-hidden' }, 'Your tasks, newest first'),
        h('thead', {}, h('tr', {}, ['Task', 'Machine / container', 'Command', 'GPUs', 'Status', 'Time', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody)),
    logBox);
  return { el, cleanup: () => { clearInterval(ticker); live.off('task', onTask); } };
}

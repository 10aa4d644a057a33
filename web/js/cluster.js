// Cluster: every machine as a card (online state, CPU, memory, disk, GPUs
// with their holders), live; and the form that requests GPUs on one of them.

import { post } from './api.js';
import { h, field, statusLine, showStatus, invalid, busy, bar, fmtTime, parseDuration, announce } from './ui.js';
import { state, onChange, loadMachines, loadContainers } from './state.js';

const MAX_DURATION_S = 72 * 3600;

function gpuItem(m, g, selected, onToggle) {
  const holder = g.account ? `${g.account} · task ${g.task_id}` : 'free';
  const until = g.task_id ? holderUntil(g.task_id) : '';
  const memText = `${g.memory_used ?? 0} / ${g.memory_total ?? 0} MiB`;
  const pressed = selected.has(g.index);
  return h('li', { class: `gpu ${g.account ? 'held' : 'free'}`, dataset: { gpu: g.index } },
    h('button', {
      type: 'button', class: 'gpu-pick', 'aria-pressed': String(pressed),
      'aria-label': `GPU ${g.index} of ${m.id}: ${g.name}, ${holder}. Select for a request`,
      onclick: () => onToggle(g.index),
    }, h('strong', {}, `GPU ${g.index}`), ' ', h('span', { class: 'gpu-name' }, g.name)),
    bar('Util', g.utilization ?? 0, 100, `${g.utilization ?? 0}%`),
    bar('Mem', g.memory_used ?? 0, g.memory_total ?? 0, memText),
    h('p', { class: 'holder', dataset: { holder: g.account || '' } },
      g.account ? h('span', {}, 'Held by ', h('strong', {}, g.account), ` (task ${g.task_id})`, until ? ` until ${until}` : '') : 'Free'));
}

function holderUntil(taskId) {
  const end = state.leaseEnds.get(taskId);
  return end ? fmtTime(end) : '';
}

function machineCard(m, selected, onToggle) {
  const cpu = m.cpu;
  const mem = m.memory;
  const disk = m.disk;
  return h('article', { class: `card machine ${m.online ? 'online' : 'offline'}`, 'aria-labelledby': `m-${m.id}`, dataset: { machine: m.id } },
    h('header', {},
      h('h3', { id: `m-${m.id}` }, m.id),
      h('span', { class: `badge ${m.online ? 'ok' : 'off'}` }, m.online ? 'online' : 'offline')),
    h('p', { class: 'muted' }, [m.hostname, m.ip].filter(Boolean).join(' · ') || 'never reported',
      m.last_seen && !m.online ? ` · last seen ${fmtTime(m.last_seen)}` : ''),
    cpu ? bar('CPU', cpu.usage ?? 0, 100, `${(cpu.usage ?? 0).toFixed(1)}% of ${cpu.cores} cores`) : null,
    mem ? bar('RAM', mem.used, mem.total, `${(mem.used / 1024).toFixed(1)} / ${(mem.total / 1024).toFixed(1)} GiB`) : null,
    disk ? bar('Disk', disk.used, disk.total, `${disk.used} / ${disk.total} GiB`) : null,
    m.gpu.length
      ? h('ul', { class: 'gpus', 'aria-label': `GPUs of ${m.id}` }, m.gpu.map((g) => gpuItem(m, g, selected.machine === m.id ? selected.gpus : new Set(), (i) => onToggle(m.id, i))))
      : h('p', { class: 'muted' }, 'No GPUs reported.'));
}

function requestForm(selected, rerender) {
  const line = statusLine();
  const machines = state.machines.map((m) => ({ value: m.id, label: `${m.id}${m.online ? '' : ' (offline)'}` }));
  const form = h('form', { class: 'card request', novalidate: true, 'aria-labelledby': 'req-title' },
    h('h2', { id: 'req-title' }, 'Request GPUs'),
    field({ label: 'Machine', name: 'machine', options: [{ value: '', label: 'Choose a machine' }, ...machines], value: selected.machine || '' }),
    field({ label: 'Container', name: 'container', options: [] }),
    h('fieldset', {},
      h('legend', {}, 'GPUs'),
      h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'mode', value: 'count', checked: !selected.gpus.size }), ' A number of GPUs'),
      h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'mode', value: 'exact', checked: selected.gpus.size > 0 }), ' Exactly the GPUs selected on the card'),
      field({ label: 'Number of GPUs', name: 'count', type: 'number', min: 1, value: 1, inputmode: 'numeric' }),
      h('p', { class: 'picked', 'aria-live': 'polite' })),
    field({ label: 'Duration', name: 'duration', value: '1h', hint: 'Hours as a number, or with units: 30m, 1h30m, 2d (at most 72h).' }),
    field({ label: 'Command', name: 'command', textarea: true, rows: 3, placeholder: 'python train.py' }),
    h('button', { type: 'submit' }, 'Request'),
    line);

  const fillContainers = () => {
    const mine = state.containers.filter((c) => c.machine_id === form.machine.value);
    const prev = form.container.value;
    form.container.replaceChildren(...(mine.length
      ? mine.map((c) => h('option', { value: c.name, selected: c.name === prev }, `${c.name} (${c.status})`))
      : [h('option', { value: '' }, form.machine.value ? 'No container of yours on this machine' : 'Choose a machine first')]));
  };
  const showPicked = () => {
    const list = [...selected.gpus].sort((a, b) => a - b);
    form.querySelector('.picked').textContent = list.length
      ? `Selected on ${selected.machine}: GPU ${list.join(', ')}`
      : 'Click GPUs on a machine card to request exactly those.';
    if (list.length) form.mode.value = 'exact';
  };
  fillContainers();
  showPicked();
  form.machine.addEventListener('change', () => {
    selected.machine = form.machine.value;
    selected.gpus.clear();
    fillContainers();
    rerender();
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const m = state.machines.find((x) => x.id === form.machine.value);
    if (!m) return invalid(form.machine, line, 'Choose a machine.');
    if (!form.container.value) return invalid(form.container, line, 'Choose one of your containers on this machine (create one under Containers).');
    const body = { machine_id: m.id, containername: form.container.value, command: form.command.value };
    if (form.mode.value === 'exact') {
      if (!selected.gpus.size || selected.machine !== m.id) return invalid(form.machine, line, 'Select GPUs on this machine\'s card, or ask for a number of GPUs.');
      body.gpus = [...selected.gpus].sort((a, b) => a - b);
    } else {
      const n = Number(form.count.value);
      if (!Number.isInteger(n) || n < 1 || n > m.gpu.length) return invalid(form.count, line, `Number of GPUs must be between 1 and ${m.gpu.length} (the GPUs of ${m.id}).`);
      body.gpu_count = n;
    }
    const secs = parseDuration(form.duration.value);
    if (!(secs > 0)) return invalid(form.duration, line, 'Duration must be greater than 0, e.g. 90m or 1h30m.');
    if (secs > MAX_DURATION_S) return invalid(form.duration, line, 'Duration must be at most 72h.');
    body.duration = form.duration.value.trim();
    if (!body.command.trim()) return invalid(form.command, line, 'Enter the command to run.');
    await busy(form, line, async () => {
      const r = await post('/api/task/request', body);
      const msg = r.status === 'running'
        ? `Task ${r.taskId} is running now on GPU ${r.gpu_ids.join(', ')}.`
        : `Task ${r.taskId} is queued; estimated start ${r.estimated_start ? fmtTime(r.estimated_start) : 'unknown'}.`;
      showStatus(line, msg, 'ok');
      announce(msg);
      selected.gpus.clear();
      loadMachines().catch(() => {});
    });
    return undefined;
  });
  return { form, fillContainers, showPicked };
}

export function clusterView() {
  const selected = { machine: '', gpus: new Set() };
  const grid = h('div', { class: 'machines', 'aria-live': 'off' });
  const errorLine = statusLine();
  const toggle = (machineId, index) => {
    if (selected.machine !== machineId) {
      selected.machine = machineId;
      selected.gpus.clear();
      req.form.machine.value = machineId;
      req.fillContainers();
    }
    if (selected.gpus.has(index)) selected.gpus.delete(index);
    else selected.gpus.add(index);
    req.showPicked();
    render();
  };
  const render = () => {
    const focused = document.activeElement;
    const key = focused && focused.closest && focused.closest('[data-gpu]') && [focused.closest('[data-machine]').dataset.machine, focused.closest('[data-gpu]').dataset.gpu];
    grid.replaceChildren(...(state.machines.length
      ? state.machines.map((m) => machineCard(m, selected, toggle))
      : [h('p', { class: 'muted' }, 'No machines yet. An admin adds them under Admin.')]));
    if (key) grid.querySelector(`[data-machine="${CSS.escape(key[0])}"] [data-gpu="${key[1]}"] button`)?.focus();
  };
  const req = requestForm(selected, render);
  const rebuildMachineOptions = () => {
    const cur = req.form.machine.value;
    req.form.machine.replaceChildren(h('option', { value: '' }, 'Choose a machine'),
      ...state.machines.map((m) => h('option', { value: m.id, selected: m.id === cur }, `${m.id}${m.online ? '' : ' (offline)'}`)));
  };
  const offM = onChange('machines', () => { render(); rebuildMachineOptions(); });
  const offC = onChange('containers', () => req.fillContainers());
  render();
  loadMachines().catch((e) => showStatus(errorLine, e.message));
  loadContainers().catch(() => {});
  const el = h('section', { class: 'view cluster', 'aria-labelledby': 'cluster-title' },
    h('h1', { id: 'cluster-title' }, 'Cluster'),
    errorLine,
    h('div', { class: 'split' }, grid, req.form));
  return { el, cleanup: () => { offM(); offC(); } };
}

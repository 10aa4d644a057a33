// Containers: create from the image catalog with ports, see the host ports
// (an ssh line for port 22), start, stop, restart, delete; every operation
// goes over /ws and its result arrives there.

import * as live from './live.js';
import { h, field, statusLine, showStatus, invalid, busy, announce } from './ui.js';
import { state, onChange, loadContainers, loadImages, loadMachines, putContainer, machineById } from './state.js';

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

// "22, 8888" -> [22, 8888]; null when a port is invalid.
export function parsePorts(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  const ports = parts.map(Number);
  if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) return null;
  if (new Set(ports).size !== ports.length || ports.length > 16) return null;
  return ports;
}

function portList(c) {
  const m = machineById(c.machine_id);
  const host = (m && (m.ip || m.hostname)) || c.machine_id;
  if (!c.ports || !c.ports.length) return h('span', { class: 'muted' }, 'no ports');
  return h('ul', { class: 'ports' }, c.ports.map((p) => h('li', {},
    `${p.container} → ${host}:${p.host}`,
    p.container === 22 ? h('code', { class: 'ssh' }, `ssh -p ${p.host} root@${host}`) : null)));
}

function containerCard(c, act) {
  const line = statusLine();
  const running = c.status === 'running';
  const btn = (opt, label, cls = 'secondary') => h('button', {
    type: 'button', class: cls, 'aria-label': `${label} ${c.name}`, onclick: (ev) => act(c, opt, ev.target, line),
  }, label);
  return h('article', { class: 'card container', dataset: { container: c.name, status: c.status }, 'aria-labelledby': `c-${c.id}` },
    h('header', {}, h('h3', { id: `c-${c.id}` }, c.name), h('span', { class: `badge st-${c.status}` }, c.status)),
    h('p', { class: 'muted' }, `${c.machine_id} · ${c.image}`),
    portList(c),
    h('div', { class: 'actions' },
      running ? null : btn('start', 'Start'),
      running ? btn('stop', 'Stop') : null,
      btn('restart', 'Restart'),
      btn('delete', 'Delete', 'danger')),
    line);
}

export function containersView() {
  const list = h('div', { class: 'containers' });
  const errorLine = statusLine();
  const line = statusLine();
  const form = h('form', { class: 'card create', novalidate: true, 'aria-labelledby': 'create-title' },
    h('h2', { id: 'create-title' }, 'New container'),
    field({ label: 'Machine', name: 'machine', options: [] }),
    field({ label: 'Image', name: 'image', options: [] }),
    field({ label: 'Name', name: 'container_name', placeholder: 'dev', hint: 'Optional: a-z, 0-9 and -, up to 32 characters.', autocapitalize: 'none' }),
    field({ label: 'Ports', name: 'ports', value: '22', hint: 'Container ports to publish, separated by commas (22 for SSH).' }),
    h('button', { type: 'submit' }, 'Create'),
    line);

  const fillOptions = () => {
    const m = form.machine.value;
    const i = form.image.value;
    form.machine.replaceChildren(...(state.machines.length
      ? state.machines.map((x) => h('option', { value: x.id, selected: x.id === m }, `${x.id}${x.online ? '' : ' (offline)'}`))
      : [h('option', { value: '' }, 'No machines')]));
    form.image.replaceChildren(...(state.images.length
      ? state.images.map((x) => h('option', { value: x.id, selected: String(x.id) === i }, `${x.name} (${x.image})`))
      : [h('option', { value: '' }, 'No images in the catalog')]));
  };
  const act = async (c, opt, button, rowLine) => {
    if (opt === 'delete' && !window.confirm(`Delete container ${c.name}? Its files are lost.`)) return;
    button.disabled = true;
    showStatus(rowLine, `${opt}…`, 'ok');
    try {
      const r = await live.container({ opt, container_id: c.id });
      putContainer(r.container);
      announce(`Container ${c.name}: ${opt} done.`);
    } catch (e) {
      button.disabled = false;
      showStatus(rowLine, e.message);
    }
  };
  const render = () => {
    list.replaceChildren(...(state.containers.length
      ? state.containers.map((c) => containerCard(c, act))
      : [h('p', { class: 'muted' }, 'You have no containers yet.')]));
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!form.machine.value) return invalid(form.machine, line, 'Choose a machine.');
    if (!form.image.value) return invalid(form.image, line, 'Choose an image (admins add them to the catalog).');
    const name = form.container_name.value.trim();
    if (name && !NAME_RE.test(name)) return invalid(form.container_name, line, 'Name: 1–32 characters of a-z, 0-9 and -, starting with a letter or digit.');
    const ports = parsePorts(form.ports.value);
    if (!ports) return invalid(form.ports, line, 'Ports: up to 16 distinct numbers from 1 to 65535.');
    const data = { opt: 'create', machine_id: form.machine.value, image_id: Number(form.image.value), port: ports };
    if (name) data.name = name;
    await busy(form, line, async () => {
      showStatus(line, 'Creating… (pulling the image may take a while)', 'ok');
      const r = await live.container(data);
      putContainer(r.container);
      const msg = `Container ${r.container.name} is ${r.container.status}.`;
      showStatus(line, msg, 'ok');
      announce(msg);
      form.container_name.value = '';
    });
    return undefined;
  });
  const offC = onChange('containers', render);
  const offM = onChange('machines', () => { fillOptions(); render(); });
  const offI = onChange('images', fillOptions);
  fillOptions();
  render();
  Promise.all([loadContainers(), loadImages(), loadMachines()]).catch((e) => showStatus(errorLine, e.message));
  const el = h('section', { class: 'view containers-view', 'aria-labelledby': 'containers-title' },
    h('h1', { id: 'containers-title' }, 'Containers'),
    errorLine,
    h('div', { class: 'split' }, list, form));
  return { el, cleanup: () => { offC(); offM(); offI(); } };
}

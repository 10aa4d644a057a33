// What the views share: the signed-in user, the machines, the caller's
// containers and the image catalog, each re-read on demand and on the live
// events that change it. Views subscribe with onChange(key, fn).

import { get } from './api.js';
import * as live from './live.js';

// leaseEnds: task id -> ISO end time of the leases holding GPUs.
export const state = { me: null, machines: [], containers: [], images: [], leaseEnds: new Map() };
const subs = new Map();

export function onChange(key, fn) {
  if (!subs.has(key)) subs.set(key, new Set());
  subs.get(key).add(fn);
  return () => subs.get(key).delete(fn);
}

function changed(key) {
  for (const fn of subs.get(key) || []) fn(state[key]);
}

export async function loadMe() {
  state.me = await get('/api/user/info');
  changed('me');
  return state.me;
}

let machinesLoading = null;
let machinesAgain = false;
// Re-reads /api/machines/info; calls made while one is in flight coalesce into one more.
export function loadMachines() {
  if (machinesLoading) {
    machinesAgain = true;
    return machinesLoading;
  }
  machinesLoading = get('/api/machines/info')
    .then(async (m) => {
      await loadLeaseEnds(m);
      state.machines = m;
      changed('machines');
    })
    .finally(() => {
      machinesLoading = null;
      if (machinesAgain) {
        machinesAgain = false;
        loadMachines();
      }
    });
  return machinesLoading;
}

// The end times of the leases that hold GPUs (task lists are readable by everyone).
async function loadLeaseEnds(machines) {
  const held = machines.filter((m) => m.gpu.some((g) => g.task_id && !state.leaseEnds.has(g.task_id)));
  const lists = await Promise.all(held.map((m) => get(`/api/task/machine/${encodeURIComponent(m.id)}`).catch(() => [])));
  for (const t of lists.flat()) {
    if (t.start_time && t.duration) {
      state.leaseEnds.set(t.taskId, new Date(Date.parse(t.start_time) + t.duration * 3600e3).toISOString());
    }
  }
}

export async function loadContainers() {
  state.containers = await get('/api/containers');
  changed('containers');
}

export async function loadImages() {
  state.images = await get('/api/images');
  changed('images');
}

// A container's new record (a reply over /ws); status "deleted" removes it.
export function putContainer(c) {
  const rest = state.containers.filter((x) => x.id !== c.id);
  state.containers = c.status === 'deleted' ? rest : [...rest, c].sort((a, b) => a.id - b.id);
  changed('containers');
}

export function machineById(id) {
  return state.machines.find((m) => m.id === id);
}

// A machine as /api/machines/info shows it, pushed when it changed (its
// measurements, GPU holders or online state); a new machine means a reload.
async function putMachine(m) {
  const i = state.machines.findIndex((x) => x.id === m.id);
  if (i < 0) return loadMachines();
  await loadLeaseEnds([m]);
  const at = state.machines.findIndex((x) => x.id === m.id);
  if (at < 0) return undefined;
  state.machines = [...state.machines.slice(0, at), m, ...state.machines.slice(at + 1)];
  changed('machines');
  return undefined;
}

// Live events: a machine changed or went on/offline, or one of our tasks did.
live.on('machine_info', (m) => putMachine(m).catch(() => {}));
live.on('machine', () => loadMachines().catch(() => {}));
live.on('task', () => loadMachines().catch(() => {}));
live.on('open', () => {
  loadMachines().catch(() => {});
  loadContainers().catch(() => {});
});

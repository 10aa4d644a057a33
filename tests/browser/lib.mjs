// Helpers of the browser scenarios: Debian's chromium through playwright-core,
// signing in, screenshots into the test output folder, REST calls.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BASE = process.env.GPUHUB_URL;
export const OUT = process.env.GPUHUB_SHOT_DIR || 'build/test-output/browser';
export const CTX = JSON.parse(process.env.GPUHUB_SCENARIO || '{}');

// Flags that let Chromium run headless here: no sandbox (root in CI), and no
// background connections (this closed network refuses them).
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'];

export async function launch() {
  const dataDir = mkdtempSync(join(tmpdir(), 'gpuhub-chromium-'));
  const context = await chromium.launchPersistentContext(dataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 860 },
  });
  context.setDefaultTimeout(20000);
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
  return {
    context, page, errors,
    async close() {
      await context.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function shot(page, name) {
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

// Opens the UI. Chromium aborts loads with ERR_NETWORK_CHANGED when a network
// interface appears (Podman creating a container's network on this host), so
// a load that did not bring the sign-in form up is tried again.
export async function open(page) {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(`${BASE}/`);
      await page.getByLabel('Account').waitFor({ timeout: 5000 });
      return;
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

export async function signIn(page, account, password) {
  await open(page);
  await page.getByLabel('Account').fill(account);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#me-name').filter({ hasText: /\S/ }).waitFor();
}

export async function api(method, path, token, body) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// Runs scenario(page, browser) with a fresh browser; a failure saves a screenshot too.
export async function run(name, scenario) {
  const b = await launch();
  try {
    await scenario(b.page, b);
    const bad = b.errors.filter((e) => !/Failed to load resource/.test(e));
    check(bad.length === 0, `no errors in the page: ${bad.join('; ')}`);
    await shot(b.page, name);
    console.log(`${name}: ok`);
  } catch (e) {
    await shot(b.page, `${name}-FAILED`).catch(() => {});
    console.error(`${name}: FAILED: ${e.stack || e}`);
    console.error(b.errors.join('\n'));
    process.exitCode = 1;
  } finally {
    await b.close();
  }
}

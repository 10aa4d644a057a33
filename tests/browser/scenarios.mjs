// The browser scenarios; run one with `node scenarios.mjs <name>` and the
// environment tests/e2e/test_web_ui.py sets (GPUHUB_URL, GPUHUB_SCENARIO, GPUHUB_SHOT_DIR).
import { CTX, run, open, signIn, api, check, shot } from './lib.mjs';

const scenarios = {
  // Sign in, stay signed in across a reload, sign out; a wrong password is shown in words.
  async signin(page) {
    await open(page);
    await page.getByLabel('Account').fill(CTX.alice.account);
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong password' }).waitFor();
    await shot(page, 'signin-error');
    await signIn(page, CTX.alice.account, CTX.alice.password);
    await page.getByRole('heading', { name: 'Cluster' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Cluster' }).waitFor();
    check(await page.locator('#me-name').textContent() === CTX.alice.account, 'name in the header');
    await page.locator('#live[data-state="live"]').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to gpuhub' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to gpuhub' }).waitFor();
  },

  // The machine card shows its GPUs; a lease another user starts shows its
  // holder on the card without a reload, and the GPU shows free again when
  // it is cancelled.
  async cluster(page) {
    await signIn(page, CTX.bob.account, CTX.bob.password);
    const card = page.locator(`article[data-machine="${CTX.machine}"]`);
    await card.locator('.badge', { hasText: 'online' }).waitFor();
    check(await card.locator('li.gpu').count() === 4, 'four GPUs on the card');
    await page.locator('#live[data-state="live"]').waitFor();
    await page.setViewportSize({ width: 360, height: 800 });
    await shot(page, 'cluster-phone');
    await page.setViewportSize({ width: 1280, height: 860 });
    const task = await api('POST', '/api/task/request', CTX.alice.token2, {
      machine_id: CTX.machine, containername: 'dev', command: 'sleep 30', duration: '1m', gpus: [3],
    });
    check(task.status === 'running', `lease running: ${JSON.stringify(task)}`);
    await card.locator('li.gpu[data-gpu="3"] .holder', { hasText: CTX.alice.account }).waitFor({ timeout: 10000 });
    await shot(page, 'cluster-holder');
    await api('POST', '/api/task/cancel', CTX.alice.token2, { task_id: task.taskId, machine_id: CTX.machine });
    await card.locator('li.gpu[data-gpu="3"] .holder', { hasText: CTX.alice.account }).waitFor({ state: 'detached', timeout: 15000 });
  },

  // Create a container from the catalog with port 22; the ssh line appears.
  async container(page) {
    await signIn(page, CTX.bob.account, CTX.bob.password);
    await page.locator('nav').getByRole('link', { name: 'Containers', exact: true }).click();
    await page.locator('#live[data-state="live"]').waitFor();
    await page.getByLabel('Machine').selectOption(CTX.machine);
    await page.getByLabel('Name').fill('bad name!');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'Name:' }).waitFor();
    await page.getByLabel('Name').fill('web1');
    await page.getByLabel('Ports').fill('22, 8888');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const card = page.locator('article[data-container="web1"]');
    await card.locator('.badge', { hasText: 'running' }).waitFor({ timeout: 90000 });
    const ssh = await card.locator('code.ssh').textContent();
    check(/^ssh -p \d+ root@\S+$/.test(ssh), `ssh line: ${ssh}`);
    await shot(page, 'container-created');
    await card.getByRole('button', { name: 'Stop web1' }).click();
    await card.locator('.badge', { hasText: 'exited' }).waitFor({ timeout: 60000 });
    await card.getByRole('button', { name: 'Delete web1' }).click();
    await card.waitFor({ state: 'detached', timeout: 60000 });
  },

  // Request GPUs in the form (exact GPUs clicked on the card), then watch the
  // task run and finish in My tasks with its exit code and output.
  async request(page) {
    await signIn(page, CTX.alice.account, CTX.alice.password);
    await page.locator('#live[data-state="live"]').waitFor();
    const card = page.locator(`article[data-machine="${CTX.machine}"]`);
    await card.locator('li.gpu[data-gpu="1"] button.gpu-pick').click();
    await page.locator('form.request').getByLabel('Container').selectOption('dev');
    await page.getByLabel('Duration').fill('0');
    await page.getByRole('button', { name: 'Request', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'Duration must be greater than 0' }).waitFor();
    await page.getByLabel('Duration').fill('5m');
    await page.getByLabel('Command').fill('echo hello-from-web; sleep 4; exit 3');
    await page.getByRole('button', { name: 'Request', exact: true }).click();
    await page.locator('form.request .status.ok', { hasText: /running now on GPU 1/ }).waitFor();
    await shot(page, 'request-sent');
    await page.locator('nav').getByRole('link', { name: 'My tasks', exact: true }).click();
    const row = page.locator('tbody tr').first();
    await row.locator('.countdown').waitFor();
    await page.locator('tbody tr[data-status="failed"]').first().waitFor({ timeout: 30000 });
    check((await row.textContent()).includes('exit 3'), 'exit code shown');
    await row.getByRole('button', { name: /Output of task/ }).click();
    await page.locator('.log pre', { hasText: 'hello-from-web' }).waitFor();
    await shot(page, 'task-finished');
  },

  // Cancel a running task from My tasks.
  async cancel(page) {
    await signIn(page, CTX.alice.account, CTX.alice.password);
    const t = await api('POST', '/api/task/request', CTX.alice.token2, {
      machine_id: CTX.machine, containername: 'dev', command: 'sleep 300', duration: '10m', gpu_count: 1,
    });
    await page.locator('nav').getByRole('link', { name: 'My tasks', exact: true }).click();
    const row = page.locator(`tbody tr[data-task="${t.taskId}"]`);
    await row.locator('.countdown').waitFor();
    await row.getByRole('button', { name: `Cancel task ${t.taskId}` }).click();
    await page.locator(`tbody tr[data-task="${t.taskId}"][data-status="cancelled"]`).waitFor();
    await shot(page, 'task-cancelled');
  },

  // Upload a photo; it shows in the header.
  async photo(page) {
    await signIn(page, CTX.bob.account, CTX.bob.password);
    await page.locator('nav').getByRole('link', { name: 'Profile', exact: true }).click();
    await page.getByLabel('Upload a photo').setInputFiles(CTX.photo);
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.locator('.status.ok', { hasText: 'Photo uploaded.' }).waitFor();
    const src = await page.locator('#me-photo').getAttribute('src');
    check(src && src.startsWith('/api/user/photo/'), `header photo: ${src}`);
    check(await page.locator('#me-photo').evaluate((img) => img.complete && img.naturalWidth > 0), 'photo loads');
    await page.getByLabel('Nickname').fill('Bobby');
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.locator('#me-name', { hasText: 'Bobby' }).waitFor();
    await shot(page, 'profile-photo');
  },

  // An admin adds a user, who then signs in.
  async admin(page) {
    await signIn(page, 'admin', CTX.admin_password);
    await page.locator('nav').getByRole('link', { name: 'Admin', exact: true }).click();
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'Add a user' }) });
    await form.getByLabel('Account').fill(CTX.new_account);
    await form.getByLabel('Password').fill('short');
    await form.getByRole('button', { name: 'Add user' }).click();
    await form.getByRole('alert').filter({ hasText: '8–128' }).waitFor();
    await form.getByLabel('Password').fill('new-user-password');
    await form.getByRole('button', { name: 'Add user' }).click();
    await page.locator(`tr[data-account="${CTX.new_account}"]`).waitFor();
    await form.getByLabel('Account').fill(CTX.new_account);
    await form.getByLabel('Password').fill('new-user-password');
    await form.getByRole('button', { name: 'Add user' }).click();
    await form.getByRole('alert').filter({ hasText: 'Account already exists' }).waitFor();
    const mform = page.locator('form', { has: page.getByRole('heading', { name: 'Add a machine' }) });
    await mform.getByLabel('Machine id').fill(CTX.new_machine);
    await mform.getByRole('button', { name: 'Add machine' }).click();
    await mform.locator('code.token', { hasText: /^gpuhub-agent-/ }).waitFor();
    await shot(page, 'admin-page');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, CTX.new_account, 'new-user-password');
    await page.getByRole('heading', { name: 'Cluster' }).waitFor();
    check(await page.locator('[data-admin]').isHidden(), 'no admin link for a user');
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
await run(name, scenarios[name]);

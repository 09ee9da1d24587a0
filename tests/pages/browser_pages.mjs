// The browser half of test_browser_pages.py: Debian's Chromium driven by playwright-core (no
// browser download) walks the jobqueue's pages. As a member: the hub's login, the Services link
// to the dashboard, its figures for the workspace (printed as JSON for the test to check against
// the API), the usage chart, the 403 page of admin/. As an administrator: the admin page's
// figures, then its buttons: a priority, Cancel on the queued job, Requeue on the running one.
// Screenshots go to $ARTIFACTS. A step that never comes fails the run (exit 1).
import { launch, logIn, step } from '../hub_browser.mjs';

const { BASE, FB_USER, FB_PASSWORD, FB_ADMIN_PASSWORD, FB_WORKSPACE, FB_RUNNING, FB_QUEUED, ARTIFACTS, CHROMIUM } = process.env;
const JOBQUEUE = `${BASE}/services/jobqueue/`;
const shot = async (page, name) => {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
  console.log(`screenshot: ${name}.png`);
};
const report = (what, value) => console.log(`${what}: ${JSON.stringify(value)}`);

const browser = await launch(CHROMIUM);
let page;
try {
  // -- a member ------------------------------------------------------------------------------------
  page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  page.setDefaultTimeout(60000);
  page.on('pageerror', e => console.log(`page error: ${e.message}`));
  // what the page's own GET /dashboard requests answered for the queued job: the reason holds an
  // estimated start that moves with the clock, so the page is checked against these answers
  const apiReasons = [];
  let recording = true;
  page.on('response', r => {
    if (recording && r.request().method() === 'GET' && /\/api\/v1\/dashboard\?/.test(r.url())) {
      apiReasons.push(r.json().then(d => (d.queue.find(q => q.job_id === FB_QUEUED) || {}).reason, () => undefined));
    }
  });
  await logIn(page, BASE, FB_USER, FB_PASSWORD);

  step('the Flightbase entry of the hub nav bar leads to the dashboard');
  await page.goto(`${BASE}/hub/home`);
  await page.click('#flightbase-nav > a');
  await Promise.all([page.waitForURL(`${JOBQUEUE}dashboard/**`), page.click('#flightbase-nav a.dropdown-item >> text=Dashboard')]);
  report('dashboard url', page.url());

  step('the dashboard of the workspace');
  await page.waitForSelector(`#workspace option[value="${FB_WORKSPACE}"]`, { state: 'attached' });
  report('picker', await page.$$eval('#workspace option', os => os.map(o => o.value)));
  if ((await page.inputValue('#workspace')) !== FB_WORKSPACE) await page.selectOption('#workspace', FB_WORKSPACE);
  await page.waitForSelector(`#running tr[data-job="${FB_RUNNING}"]`);
  await page.waitForSelector(`#queue tr[data-job="${FB_QUEUED}"]`);
  await page.waitForFunction(() => window.Chart && window.Chart.getChart(document.getElementById('usage-chart')));
  const dashboard = await page.evaluate(({ running, queued }) => {
    const q = s => document.querySelector(s);
    const cells = (row, names) => Object.fromEntries(names.map(n => [n, row.querySelector('.' + n).textContent.trim()]));
    const chart = window.Chart.getChart(q('#usage-chart'));
    return {
      gpus_text: q('#gpus-in-use').textContent, in_use: Number(q('#gpus-in-use').dataset.inUse),
      quota: q('#gpus-in-use').dataset.quota === '' ? null : Number(q('#gpus-in-use').dataset.quota),
      running_count: Number(q('#running-count').textContent), queued_count: Number(q('#queued-count').textContent),
      running: cells(q(`#running tr[data-job="${running}"]`), ['user', 'gpus', 'hosts', 'elapsed']),
      queued: cells(q(`#queue tr[data-job="${queued}"]`), ['position', 'user', 'gpus', 'reason']),
      window: q('#window-state').textContent, window_dates: q('#window-dates').textContent,
      datasets: [...document.querySelectorAll('#datasets tr[data-dataset]')].map(r => r.dataset.dataset),
      chart_days: chart.data.labels.length, chart_members: chart.data.datasets.map(d => d.label),
      theme: document.documentElement.getAttribute('data-bs-theme'),
    };
  }, { running: FB_RUNNING, queued: FB_QUEUED });
  recording = false;
  report('dashboard', dashboard);
  report('dashboard api reasons', (await Promise.all(apiReasons)).filter(r => r !== undefined));
  await shot(page, 'dashboard-member');

  step('the dashboard in the dark theme (the hub\'s toggle sets data-bs-theme)');
  const tickColour = () => window.Chart.getChart(document.getElementById('usage-chart')).options.scales.y.ticks.color;
  const light = await page.evaluate(tickColour);
  await page.evaluate(() => document.documentElement.setAttribute('data-bs-theme', 'dark'));
  await page.waitForFunction(before => window.Chart.getChart(document.getElementById('usage-chart')).options.scales.y.ticks.color !== before, light);
  report('chart colours', { light, dark: await page.evaluate(tickColour) });
  await shot(page, 'dashboard-member-dark');
  await page.evaluate(() => document.documentElement.setAttribute('data-bs-theme', 'light'));

  step('admin/ is a 403 page for a member');
  const forbidden = await page.goto(`${JOBQUEUE}admin/`);
  report('member admin', { status: forbidden.status(), title: await page.title(), nav: !!(await page.$('#flightbase-nav')) });
  await shot(page, 'admin-forbidden-member');
  await page.context().close();

  // -- an administrator ----------------------------------------------------------------------------
  page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  page.setDefaultTimeout(60000);
  page.on('pageerror', e => console.log(`page error: ${e.message}`));
  page.on('dialog', dialog => { console.log(`dialog: ${dialog.message()}`); dialog.accept(); });
  await logIn(page, BASE, 'admin', FB_ADMIN_PASSWORD);

  step('the admin page');
  await page.goto(`${JOBQUEUE}admin/`);
  const runRow = `#jobs tr[data-job="${FB_RUNNING}"]`;
  const queuedRow = `#jobs tr[data-job="${FB_QUEUED}"]`;
  await page.waitForSelector(`${runRow}[data-state="running"]`);
  await page.waitForSelector(`${queuedRow}[data-state="queued"]`);
  await page.waitForSelector(`#nodes tr.slot[data-job="${FB_RUNNING}"]`);
  await page.waitForSelector(`#workspaces tr[data-workspace="${FB_WORKSPACE}"]`);
  const admin = await page.evaluate(({ running, queued, workspace }) => {
    const q = s => document.querySelector(s);
    const ws = q(`#workspaces tr[data-workspace="${workspace}"]`);
    return {
      slots: [...document.querySelectorAll(`#nodes tr.slot[data-job="${running}"]`)].map(r => Number(r.dataset.index)),
      free: q('#nodes .node-free').textContent,
      workspace: { in_use: ws.querySelector('.in-use').textContent, queued: ws.querySelector('.queued').textContent },
      queued_position: q(`#jobs tr[data-job="${queued}"] .position`).textContent,
      buttons: {
        running: [...document.querySelectorAll(`#jobs tr[data-job="${running}"] button`)].map(b => b.textContent),
        queued: [...document.querySelectorAll(`#jobs tr[data-job="${queued}"] button`)].map(b => b.textContent),
      },
      users: [...document.querySelectorAll('#users tr[data-user]')].map(r => r.dataset.user),
      audit_rows: document.querySelectorAll('#audit-jobqueue tr[data-id]').length,
    };
  }, { running: FB_RUNNING, queued: FB_QUEUED, workspace: FB_WORKSPACE });
  report('admin', admin);
  await shot(page, 'admin');

  step('set the running job\'s priority');
  await page.fill(`${runRow} .priority-input`, '9');
  await page.click(`${runRow} .set-priority`);
  await page.waitForFunction(() => /^Priority .*priority 9$/.test(document.getElementById('admin-status').textContent));
  report('priority status', await page.textContent('#admin-status'));

  step('cancel the queued job');
  await page.click(`${queuedRow} button.cancel`);
  await page.waitForSelector(`${queuedRow}[data-state="cancelled"]`);
  report('cancel status', await page.textContent('#admin-status'));

  step('requeue the running job');
  await page.click(`${runRow} button.requeue`);
  await page.waitForFunction(() => /^Requeue runner: stopping/.test(document.getElementById('admin-status').textContent));
  report('requeue status', await page.textContent('#admin-status'));
  // it stops, waits in the queue, and runs again (its slot is free again at once): one restart
  await page.waitForSelector(`${runRow}[data-state="running"] .restarts`);
  report('requeued state', await page.getAttribute(runRow, 'data-state'));
  await page.waitForSelector('#audit-jobqueue tr[data-id]:has-text("/jobs/{job_id}/requeue")');
  await shot(page, 'admin-after-actions');
} catch (e) {
  console.log(`failed: ${e.message}`);
  if (page) await page.screenshot({ path: `${ARTIFACTS}/failed.png`, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}

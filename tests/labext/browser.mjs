// The browser half of test_browser.py: Debian's Chromium driven by playwright-core
// (no browser download) through a real hub, proxy and JupyterLab. Every step waits
// for what the page shows; a step that never comes fails the run (exit 1).
import { launch, logIn, step } from '../hub_browser.mjs';

const { BASE, FB_USER, FB_PASSWORD, FB_SERVER, ARTIFACTS, CHROMIUM } = process.env;

const browser = await launch(CHROMIUM);
const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
page.setDefaultTimeout(90000);
const shot = name => page.screenshot({ path: `${ARTIFACTS}/${name}.png` });
const training = (name, state) => `.fb-training[data-training="${name}"]${state ? `[data-state="${state}"]` : ''}`;

async function submit(fields) {
  await page.click('.fb-submit');
  await page.waitForSelector('.jp-Dialog .fb-SubmitForm');
  for (const [name, value] of Object.entries(fields)) {
    await page.fill(`.jp-Dialog [name="${name}"]`, value);
  }
  await page.click('.jp-Dialog button.jp-mod-accept');
}

try {
  await logIn(page, BASE, FB_USER, FB_PASSWORD);

  step('open JupyterLab on the running server');
  await page.goto(`${BASE}/user/${FB_USER}/${FB_SERVER}/lab`);
  await page.waitForSelector('li[data-id="flightbase-sidebar"]');
  await page.click('li[data-id="flightbase-sidebar"]');
  await page.waitForSelector('.fb-gpus:has-text("/ 4")');
  await shot('01-sidebar');

  step('a refused submission shows its error next to the GPUs field');
  await submit({ path: 'sleep.py', name: 'sleeper', gpus: '64' });
  const err = await page.waitForSelector('.jp-Dialog .fb-error[data-error-for="gpus"]');
  console.log(`gpus error: ${await err.textContent()}`);
  await shot('02-validation-error');
  await page.fill('.jp-Dialog [name="gpus"]', '4');
  await page.click('.jp-Dialog button.jp-mod-accept');
  await page.waitForSelector(training('sleeper', 'running'));

  step('submit a 2-GPU training: it waits in the queue behind the sleeper');
  await submit({ path: 'train.py', name: 'train2', gpus: '2' });
  await page.waitForSelector(training('train2', 'queued'));
  await page.waitForSelector('.fb-queue tr[data-job]');
  await shot('03-queued');

  step('cancel the sleeper from the sidebar');
  await page.click(`${training('sleeper')} .fb-cancel`);
  await page.waitForSelector(training('sleeper', 'cancelled'));

  step('the 2-GPU training runs and succeeds; its logs and metric chart are shown');
  await page.waitForSelector(training('train2', 'running'));
  await page.click(`${training('train2')} .fb-job`);
  await page.waitForSelector(training('train2', 'succeeded'));
  await page.waitForSelector('.fb-logs:has-text("epoch 4")');
  await page.waitForSelector('.fb-chart path[d^="M"]');
  await page.waitForSelector(`${training('train2')} .fb-gpu-count:has-text("2 GPUs")`);
  await shot('04-succeeded-logs-metrics');
  console.log('logs: ' + JSON.stringify((await page.textContent('.fb-logs')).slice(0, 400)));
  console.log('OK');
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  await shot('failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}

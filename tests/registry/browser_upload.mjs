// The browser half of test_browser_upload.py: Debian's Chromium driven by playwright-core
// (no browser download) logs in through the hub and uploads a folder from the registry's
// page. Prints every chunk request's method and URL (they carry no secret) and the status
// line; a step that never comes fails the run (exit 1).
import { launch, logIn, step } from '../hub_browser.mjs';

const { BASE, FB_USER, FB_PASSWORD, FB_WORKSPACE, FB_FILES, FB_DATASET, FB_BLOCK_DATA, ARTIFACTS, CHROMIUM } = process.env;

const browser = await launch(CHROMIUM);
const page = await browser.newPage();
page.setDefaultTimeout(90000);
page.on('request', r => { if (r.method() === 'PATCH') console.log(`chunk: ${r.method()} ${r.url()}`); });
if (FB_BLOCK_DATA) {  // a network where only the hub's port is reachable: requests elsewhere fail
  await page.route(url => url.port !== new URL(BASE).port, route => route.abort('connectionrefused'));
}
try {
  await logIn(page, BASE, FB_USER, FB_PASSWORD);

  step('open the registry page');
  await page.goto(`${BASE}/services/registry/`);
  await page.waitForSelector(`#ws option[value="${FB_WORKSPACE}"]`, { state: 'attached' });
  await page.selectOption('#ws', FB_WORKSPACE);

  step('upload the files');
  await page.fill('#dsname', FB_DATASET);
  await page.setInputFiles('#files', FB_FILES.split(':'));
  await page.click('#upload');
  await page.waitForFunction(() => /version \d+ of|: /.test(document.getElementById('status').textContent));
  console.log(`status: ${await page.textContent('#status')}`);
  await page.screenshot({ path: `${ARTIFACTS}/registry-upload-${FB_DATASET}.png` });
} catch (e) {
  console.log(`failed: ${e.message}`);
  await page.screenshot({ path: `${ARTIFACTS}/registry-upload-failed.png` }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}

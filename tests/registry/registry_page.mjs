// The browser half of test_browser_page.py: Debian's Chromium driven by playwright-core logs in
// through the hub, opens the registry's page from the hub's nav bar ("Flightbase" > "Datasets and
// images"), reads what it shows, opens a dataset's versions, registers an image by reference from
// the page and uploads an image archive (cookie-authenticated POSTs: the page's XSRF token), and takes screenshots in the
// hub's light and dark themes. Prints one JSON line, "observed: {...}", for the test to check.
import { launch, logIn, step } from '../hub_browser.mjs';

const { BASE, FB_USER, FB_PASSWORD, FB_WORKSPACE, FB_DATASET, FB_IMAGE, FB_ARCHIVE, ARTIFACTS, CHROMIUM } = process.env;

const browser = await launch(CHROMIUM);
const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
page.setDefaultTimeout(60000);
const errors = [];
page.on('pageerror', e => errors.push(e.message));
page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
const observed = {};
try {
  await logIn(page, BASE, FB_USER, FB_PASSWORD);

  step('open the registry page from the nav bar');
  await page.goto(`${BASE}/hub/home`);
  await page.click('#flightbase-nav > a.dropdown-toggle');
  await page.click('#flightbase-nav a.dropdown-item:has-text("Datasets and images")');
  await page.waitForSelector(`#datasets tbody tr[data-dataset="${FB_DATASET}"]`);
  observed.url = page.url();
  observed.title = await page.title();
  observed.workspaces = await page.$$eval('#ws option', os => os.map(o => o.value));
  observed.nav = await page.$$eval('#flightbase-nav a.dropdown-item', as => as.map(a => a.textContent.trim()));
  observed.links = await page.$$eval('#flightbase-links a', as => as.map(a => [a.textContent.trim(), a.getAttribute('href')]));
  observed.datasets = await page.$$eval('#datasets tbody tr[data-dataset]', rs => rs.map(r => [...r.cells].slice(0, 4).map(c => c.textContent.trim())));
  // Bootstrap's styles apply (the hub's stylesheet): a card has a border radius, the nav bar is a flex box
  observed.bootstrap = await page.evaluate(() => ({
    navbar: getComputedStyle(document.querySelector('nav.navbar')).display,
    card: getComputedStyle(document.querySelector('.card')).borderTopLeftRadius,
  }));
  await page.waitForFunction(() => document.getElementById('usage').textContent !== '–');
  observed.usage = await page.textContent('#usage');

  step('open the versions of a dataset');
  await page.click(`#datasets tr[data-dataset="${FB_DATASET}"] .fb-toggle`);
  await page.waitForSelector(`tr.fb-versions[data-dataset="${FB_DATASET}"] table tbody tr td`);
  observed.versions = await page.$$eval(`tr.fb-versions[data-dataset="${FB_DATASET}"] table tbody tr`,
                                        rs => rs.map(r => [...r.cells].slice(0, 2).map(c => c.textContent.trim())));

  step('register an image by reference');
  await page.fill('#image-name', FB_IMAGE);
  await page.fill('#image-reference', 'docker.io/library/python:3.12-slim');
  await page.fill('#image-frameworks', 'python');
  await page.click('#image-register');
  await page.waitForFunction(() => /registered|: /.test(document.getElementById('image-status').textContent));
  observed.image_status = await page.textContent('#image-status');
  await page.waitForFunction(name => [...document.querySelectorAll('#images tbody tr td:first-child')]
    .some(td => td.textContent === name), FB_IMAGE);
  step('upload an image archive');
  await page.fill('#archive-name', `${FB_IMAGE}-up`);
  await page.fill('#archive-tag', 'v1');
  await page.setInputFiles('#archive', FB_ARCHIVE);
  await page.click('#archive-upload');
  await page.waitForFunction(() => /uploaded |: /.test(document.getElementById('image-status').textContent));
  observed.archive_status = await page.textContent('#image-status');
  await page.waitForFunction(name => [...document.querySelectorAll('#images tbody tr td:first-child')]
    .some(td => td.textContent === name), `${FB_IMAGE}-up`);
  observed.theme_light = await page.evaluate(() => document.documentElement.getAttribute('data-bs-theme'));
  await page.screenshot({ path: `${ARTIFACTS}/registry-page-light.png`, fullPage: true });

  step('dark mode, chosen on the hub, follows to the page');
  await page.goto(`${BASE}/hub/home`);
  await page.click('#dark-theme-toggle');
  observed.hub_theme = await page.evaluate(() => document.documentElement.getAttribute('data-bs-theme'));
  await page.goto(`${BASE}/services/registry/?workspace=${FB_WORKSPACE}`);
  await page.waitForSelector(`#datasets tbody tr[data-dataset="${FB_DATASET}"]`);
  await page.waitForFunction(() => document.getElementById('usage').textContent !== '–');
  observed.usage_end = await page.textContent('#usage');
  observed.theme_dark = await page.evaluate(() => document.documentElement.getAttribute('data-bs-theme'));
  observed.body_background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.screenshot({ path: `${ARTIFACTS}/registry-page-dark.png`, fullPage: true });
  observed.errors = errors;
  console.log(`observed: ${JSON.stringify(observed)}`);
} catch (e) {
  console.log(`failed: ${e.message}`);
  console.log(`observed so far: ${JSON.stringify(observed)} errors: ${JSON.stringify(errors)}`);
  await page.screenshot({ path: `${ARTIFACTS}/registry-page-failed.png`, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}

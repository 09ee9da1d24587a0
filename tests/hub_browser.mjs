// What the Chromium tests share: Debian's Chromium started by playwright-core (never a
// downloaded browser) with the flags this machine needs, and the hub's login form.
import { chromium } from 'playwright-core';

export const step = msg => console.log(`step: ${msg}`);

export function launch(executablePath) {
  return chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update']
  });
}

export async function logIn(page, base, user, password) {
  step('log in to the hub');
  await page.goto(`${base}/hub/login`);
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForNavigation(), page.press('input[name="password"]', 'Enter')]);
}

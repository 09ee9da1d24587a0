// Remove a member from a workspace's group, or add one, in the hub's own admin panel (its
// React app at /hub/admin, "Editing Group"), as an administrator does: Debian's Chromium through
// playwright-core. BASE, FB_PASSWORD (the admin's), FB_WORKSPACE, FB_USER, FB_ACTION
// (remove | add), CHROMIUM. Prints "members: [...]" as the page shows them after Apply.
import { launch, logIn, step } from '../hub_browser.mjs';

const { BASE: base, FB_PASSWORD: password, FB_WORKSPACE: ws, FB_USER: user, FB_ACTION: action } = process.env;
const browser = await launch(process.env.CHROMIUM);
try {
  const page = await browser.newPage();
  await logIn(page, base, 'admin', password);
  step('open the Groups tab of the admin panel');
  await page.goto(`${base}/hub/admin#/groups`);
  await page.getByRole('link', { name: ws, exact: true }).click();
  await page.getByRole('heading', { name: `Editing Group ${ws}` }).waitFor();
  const members = page.locator('.users-container .item.selected');
  await page.locator('#username-input').waitFor();
  if (action === 'remove') {
    step(`deselect ${user}`);
    await members.filter({ hasText: new RegExp(`^${user}$`) }).click();
    await page.locator('.users-container .item.unselected', { hasText: new RegExp(`^${user}$`) }).waitFor();
  } else {
    step(`add ${user} by name`);
    await page.fill('#username-input', user);
    await page.click('#validate-user');
    await members.filter({ hasText: new RegExp(`^${user}$`) }).waitFor();
  }
  const shown = await members.allTextContents();
  step('apply');
  const method = action === 'remove' ? 'DELETE' : 'POST';
  const [answer] = await Promise.all([
    page.waitForResponse(r => r.url().includes(`/hub/api/groups/${ws}/users`) && r.request().method() === method),
    page.click('#submit'),
  ]);
  if (!answer.ok()) throw new Error(`the hub answered ${method} with ${answer.status()}`);
  console.log(`members: ${JSON.stringify(shown)}`);
} finally {
  await browser.close();
}

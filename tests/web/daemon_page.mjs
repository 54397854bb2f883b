// Drives the daemon's web page in headless Chromium as a user would, for tests/daemon_web.rs:
// enter the token, start a run with the page's form, watch its progress grow, stop it, open its
// report, download its CSV. Prints one JSON line of what it saw for the Rust test to check
// against the daemon and the mock target; exits non-zero with the reason on any failure.
//
// Environment: SLUICE_URL (the daemon), SLUICE_TOKEN, SLUICE_TARGET (the mock), SLUICE_LOG (an
// uploaded log's name), SLUICE_OPEN_URL (a daemon without a token, on loopback, with one ended
// run to delete), SCREENSHOT_DIR.

import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const { SLUICE_URL, SLUICE_TOKEN, SLUICE_TARGET, SLUICE_LOG, SLUICE_OPEN_URL, SCREENSHOT_DIR } = process.env;
const WIDTH = 1400;
// Generous: two cores are shared with other builds; nothing here measures speed.
const WAIT_MS = 60_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Without the background-networking flags Chromium reaches for the network at start-up, which
  // this machine does not have, and stalls.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const seen = { requests: [], problems: [] };
let page;
try {
  const context = await browser.newContext({ viewport: { width: WIDTH, height: 1000 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('request', (request) => seen.requests.push(request.url()));
  // A CSP violation or a script error shows up here: the page must have none.
  // Before the token is entered, the page's first look at the API is refused: that is how it
  // learns it needs one, and Chromium logs each 401. Past that, nothing may be.
  let tokenGiven = false;
  page.on('console', (message) => {
    const expected = !tokenGiven && message.text().includes('status of 401');
    if (message.type() === 'error' && !expected) seen.problems.push(message.text());
  });
  page.on('pageerror', (error) => seen.problems.push(String(error)));
  page.on('dialog', (dialog) => dialog.accept());

  // The daemon has a token: the page asks for it first, and keeps it for the tab.
  await page.goto(`${SLUICE_URL}/`);
  await page.locator('#login').waitFor({ state: 'visible' });
  // A wrong token is refused, and the page says so and asks again.
  await page.fill('#token', 'not-the-token-0123456789');
  await page.click('#login button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#status.error')?.textContent.includes('does not match'));
  const wrongTokenAskedAgain = await page.locator('#login').isVisible();
  await page.screenshot({ path: `${SCREENSHOT_DIR}/daemon-token.png` });
  await page.fill('#token', SLUICE_TOKEN);
  tokenGiven = true;
  await page.click('#login button[type=submit]');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.reload();
  await page.locator('#app').waitFor({ state: 'visible' });
  const askedAgain = await page.locator('#login').isVisible();

  // Start a run with the form; the only uploaded log is ticked already.
  await page.locator(`#submit-logs input[value="${SLUICE_LOG}"]`).check();
  await page.fill('#submit-form input[name=target]', SLUICE_TARGET);
  // A ramp, through the box for further options, so the planned rate has a shape to follow.
  await page.fill('#submit-form textarea[name=extra]', '{"stages": "8s:5-40,80s:40"}');
  await page.click('#submit-form button[type=submit]');
  const row = page.locator('#runs tbody tr').first();
  await page.waitForFunction(() => document.querySelector('#runs tbody tr')?.dataset.state === 'running');
  const runId = await row.getAttribute('data-id');

  // Progress: the sent count in the run's row, as the event stream updates it, grows.
  const sentSeen = [];
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    const text = await row.locator('td.sent').textContent();
    const sent = Number(text.replaceAll(',', '')) || 0;
    if (sentSeen[sentSeen.length - 1] !== sent) sentSeen.push(sent);
    const points = await page.locator('#chart-rate polyline.achieved').getAttribute('points').catch(() => null);
    if (sentSeen.filter((n) => n > 0).length >= 8 && points && points.split(' ').length >= 4) break;
    await page.waitForTimeout(500);
  }
  await page.screenshot({ path: `${SCREENSHOT_DIR}/daemon-running.png`, fullPage: true });
  const chart = {
    achieved: await page.locator('#chart-rate polyline.achieved').count(),
    planned: await page.locator('#chart-rate polyline.planned').count(),
    p99: await page.locator('#chart-latency polyline.p99').count(),
  };

  // Stop it from its row, and wait for it to drain.
  await row.locator('button', { hasText: 'Stop' }).click();
  await page.waitForFunction(() => document.querySelector('#runs tbody tr')?.dataset.state === 'stopped');
  const sentShown = Number((await row.locator('td.sent').textContent()).replaceAll(',', ''));

  // Its report, in the page's sandboxed frame.
  await row.locator('button', { hasText: 'Report' }).click();
  await page.locator('#report-section').waitFor({ state: 'visible' });
  const report = page.frameLocator('#report');
  const reportTitle = await report.locator('h1').first().textContent();
  const reportText = await report.locator('body').textContent();
  // The frame paints a moment after its document is ready; the shot is for people, not a check.
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${SCREENSHOT_DIR}/daemon-report.png`, fullPage: false });
  await page.locator('#runs-section').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${SCREENSHOT_DIR}/daemon-stopped.png`, fullPage: true });

  // Its CSV, downloaded through fetch with the token.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.locator('button', { hasText: 'CSV' }).click(),
  ]);
  const csv = await readFile(await download.path(), 'utf8');

  // A daemon without a token (loopback only) opens straight onto its runs; delete its one run.
  const open = await context.newPage();
  open.setDefaultTimeout(WAIT_MS);
  open.on('dialog', (dialog) => dialog.accept());
  open.on('pageerror', (error) => seen.problems.push(String(error)));
  await open.goto(`${SLUICE_OPEN_URL}/`);
  await open.locator('#app').waitFor({ state: 'visible' });
  const openAskedForToken = await open.locator('#login').isVisible();
  const openConnection = await open.locator('#connection').textContent();
  await open.locator('#runs tbody tr button', { hasText: 'Delete' }).click();
  await open.locator('#runs tbody tr').waitFor({ state: 'detached' });
  const openStatus = await open.locator('#status').textContent();

  const storage = await page.evaluate(() => ({ local: localStorage.length, session: Object.keys(sessionStorage) }));
  const cookies = await context.cookies();
  console.log(JSON.stringify({
    runId,
    wrongTokenAskedAgain,
    askedAgain,
    openAskedForToken,
    openConnection,
    openStatus,
    sentSeen,
    sentShown,
    chart,
    reportTitle,
    reportMentionsRun: reportText.includes('requests'),
    csvName: download.suggestedFilename(),
    csvRows: csv.trimEnd().split('\n').length - 1,
    csvHeader: csv.split('\n')[0],
    tokenInUrl: seen.requests.some((url) => url.includes(SLUICE_TOKEN)),
    requests: seen.requests.length,
    problems: seen.problems,
    storage,
    cookies: cookies.length,
  }));
} catch (error) {
  console.error(`daemon_page.mjs: ${error.stack || error}`);
  console.error(`page problems: ${JSON.stringify(seen.problems)}`);
  await page?.screenshot({ path: `${SCREENSHOT_DIR}/daemon-failure.png`, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}

/**
 * The dashboard in a real headless Chromium (Debian `chromium` at
 * /usr/bin/chromium, driven by playwright-core; .ci/run installs it): it
 * loads without console errors, lists every backend, and shows a backend
 * going down within a few seconds of its health check failing.
 *
 * The screenshot it takes is kept at $TMPDIR/switchyard-dashboard.png (the
 * path is printed as a test diagnostic) for a person to look at.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startSwitchyard } from '../../src/testing.js';
import { freePort } from '../helpers/backends.js';
import { adminUrl, closeAll, startCheckedBackends, waitFor } from '../health/support.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

test(
  'dashboard: loads with no console errors, shows every backend, shows one going down within seconds',
  { timeout: 60_000 },
  async (t) => {
    // Not skipped when missing: .ci/run installs it, and a skipped browser test proves nothing.
    assert.ok(existsSync(CHROMIUM), `needs ${CHROMIUM}: apt-get install chromium`);
    // Undone in reverse order: traffic, browser, proxy, backends.
    const cleanups: (() => Promise<unknown>)[] = [];
    t.after(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });
    const backends = await startCheckedBackends(4);
    cleanups.push(() => closeAll(backends));
    const [b1, b2, b3, b4] = backends;
    const deadPort = await freePort();
    const lb = await startSwitchyard({
      toml: `
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[pools.web]
strategy = "round-robin"
backends = [{ url = "${b1!.url}" }, { url = "${b2!.url}", weight = 2 }, { url = "${b3!.url}" }]
[pools.web.health]
checker = "http"
path = "/healthz"
interval = "200ms"
unhealthy_after = 2
[pools.api]
strategy = "least-connections"
backends = [{ url = "${b4!.url}" }, { url = "http://127.0.0.1:${deadPort}" }]
health = { checker = "tcp", interval = "200ms", timeout = "200ms" }
[[routes]]
match = { path_prefix = "/api/" }
pool = "api"
[[routes]]
pool = "web"
`,
    });
    cleanups.push(() => lb.close());
    const admin = adminUrl(lb.lb);

    // Steady traffic, so the page has rates and sparklines to draw.
    let sending = true;
    const send = (path: string) => fetch(`${lb.url}${path}`).then((r) => r.arrayBuffer(), () => undefined);
    const traffic = (async () => {
      while (sending) {
        await Promise.all([send('/page'), send('/api/x')]);
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();
    cleanups.push(async () => {
      sending = false;
      await traffic;
    });

    const profile = await mkdtemp(join(tmpdir(), 'switchyard-chromium-'));
    cleanups.push(() => rm(profile, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
      viewport: { width: 1440, height: 900 },
      timeout: 30_000,
    });
    cleanups.push(() => context.close());
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));

    await page.goto(`${admin}/`, { waitUntil: 'load' });
    assert.equal(await page.title(), 'Switchyard');

    const urls = [b1!.url, b2!.url, b3!.url, b4!.url, `http://127.0.0.1:${deadPort}`];
    for (const url of urls) {
      await page.locator(`tr.backend[data-url="${url}"]`).first().waitFor({ timeout: 5000 });
    }
    assert.equal(await page.locator('section.pool').count(), 2);
    assert.equal(await page.locator('tr.backend').count(), 5);
    // The closed port is shown down by the tcp check, with its reason.
    const dead = page.locator(`tr.backend[data-url="http://127.0.0.1:${deadPort}"]`);
    await page.waitForSelector(`tr.backend[data-url="http://127.0.0.1:${deadPort}"][data-state="down"]`, { timeout: 5000 });
    assert.match(await dead.innerText(), /ECONNREFUSED/);
    assert.match(await page.locator('section.pool[data-pool="web"] .pool-head').innerText(), /round-robin/);

    // Rates are computed from request totals between polls.
    await waitFor('a request rate above 0', async () => Number((await page.locator('#t-rate').innerText()).replace(/,/g, '')) > 0, 5000, 100);

    b2!.healthStatus = 503;
    const failedAt = performance.now();
    const row = `tr.backend[data-url="${b2!.url}"]`;
    await page.waitForSelector(`${row}[data-state="down"]`, { timeout: 5000 });
    const shownAfter = performance.now() - failedAt;
    t.diagnostic(`the dashboard showed b2 down ${Math.round(shownAfter)}ms after its /healthz started failing`);
    assert.ok(shownAfter < 4000, `shown down after ${Math.round(shownAfter)}ms`);
    assert.match(await page.locator(row).innerText(), /status 503/);
    assert.match(await page.locator(`${row} .pill`).innerText(), /down/i);

    // A couple more polls so the sparklines have some history, then the picture.
    await page.waitForTimeout(2500);
    const screenshot = join(tmpdir(), 'switchyard-dashboard.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    t.diagnostic(`screenshot: ${screenshot}`);

    b2!.healthStatus = 200;
    await page.waitForSelector(`${row}[data-state="up"]`, { timeout: 5000 });

    // A refused reload is shown, with its problems at file:line:col.
    await assert.rejects(lb.reload('[pools.web]\nbackends = []\n'));
    await page.waitForSelector('#banner[data-show="yes"]', { timeout: 5000 });
    assert.match(await page.locator('#banner').innerText(), /lb\.toml:2:\d+ pools\.web\.backends/);
    assert.deepEqual(problems, []);
  },
);

// Issue 13, the web page (`loom daemon --ui 127.0.0.1:PORT`) in a real browser: Debian's chromium,
// headless, driven by playwright-core, run inside the sandbox's host namespace (where the daemon and its
// UI port are; nothing is opened on the machine's own network). The page loads without console errors,
// shows the running containers, follows a new container from the events stream, shows a container's
// details and the dropped verdict of a trace between two containers of an enable_icc=false network.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createSandbox, ROOT, type Sandbox } from '../helpers/sandbox.ts';
import { ok, fails } from '../helpers/assert.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables, runc)' : !fs.existsSync(CHROMIUM) ? 'needs Debian\'s chromium (scripts/setup installs it)' : false;
const UI = '127.0.0.1:7777';
let sb: Sandbox;
let ctx: BrowserContext;
let page: Page;
const consoleErrors: string[] = [];

before(async () => {
  if (skip) return;
  sb = await createSandbox({ tag: 'ui', daemonArgs: ['--ui', UI] });
  await sb.startDaemon();
  await sb.image('box');
  await ok(sb.loom('network', 'create', '-o', 'com.docker.network.bridge.enable_icc=false', 'quiet'));
  await ok(sb.loom('run', '-d', '--name', 'web', '-p', '8080:80', 'box', 'sh', '-c', 'httpd -p 80 -h /www; exec sleep 1d'));
  await ok(sb.loom('run', '-d', '--name', 'q1', '--network', 'quiet', 'box', 'sleep', '1d'));
  await ok(sb.loom('run', '-d', '--name', 'q2', '--network', 'quiet', 'box', 'sh', '-c', 'httpd -p 80 -h /www; exec sleep 1d'));
  // the browser runs in the sandbox's host namespace, the only place the UI port exists
  const wrapper = path.join(sb.dir, 'chromium-in-sandbox');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=/run/netns/${sb.hostNs} -- ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  ctx = await chromium.launchPersistentContext(path.join(sb.dir, 'chromium-profile'), {
    executablePath: wrapper, headless: true, viewport: { width: 1400, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = ctx.pages()[0] ?? await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
}, { timeout: 240_000 });

after(async () => {
  await ctx?.close().catch(() => {});
  await sb?.cleanup();
});

describe('web page', { skip }, () => {
  test('loads without console errors and shows the running containers', async () => {
    await page.goto(`http://${UI}/`);
    await page.waitForSelector('g[data-kind="container"][data-name="web"]');
    for (const n of ['web', 'q1', 'q2']) assert.equal(await page.locator(`g[data-kind="container"][data-name="${n}"]`).count(), 1, n);
    assert.equal(await page.locator('g.node.bridge[data-name="quiet"]').count(), 1);
    assert.match(await page.textContent('#summary') ?? '', /3 running containers/);
    assert.deepEqual(consoleErrors, []);
  });

  test('follows the events: a new container appears, a removed one disappears', async () => {
    // an update redraws only what changed: q1's box is the very same element afterwards
    await page.evaluate(() => { (document.querySelector('g[data-kind="container"][data-name="q1"]') as any).keepMe = 1; });
    await ok(sb.loom('run', '-d', '--name', 'newbie', 'box', 'sleep', '1d'));
    await page.waitForSelector('g[data-kind="container"][data-name="newbie"]', { timeout: 15_000 });
    assert.equal(await page.evaluate(() => (document.querySelector('g[data-kind="container"][data-name="q1"]') as any).keepMe), 1);
    await ok(sb.loom('rm', '-f', 'newbie'));
    await page.waitForSelector('g[data-kind="container"][data-name="newbie"]', { state: 'detached', timeout: 15_000 });
    assert.deepEqual(consoleErrors, []);
  });

  test('a container\'s details; a trace between two containers of an icc=false network is dropped', async () => {
    await page.click('g[data-kind="container"][data-name="q1"]');
    await page.waitForSelector('#details h2');
    assert.equal(await page.textContent('#details h2'), 'q1');
    assert.match(await page.textContent('#ifaces') ?? '', /eth0172\.\d+\.0\.\d+\/16\s*02:42:/);
    assert.match(await page.textContent('#dns') ?? '', /q1/);
    assert.match(await page.textContent('#rules') ?? '', /--icc=false on quiet/);
    await page.selectOption('#trace-dst', 'q2');
    await page.selectOption('#trace-proto', 'tcp');
    await page.fill('#trace-port', '80');
    await page.click('#trace-go');
    await page.waitForSelector('#verdict.dropped', { timeout: 15_000 });
    assert.match(await page.textContent('#verdict') ?? '', /^dropped: --icc=false on network quiet/);
    assert.equal(await page.locator('g.trace-dst.dropped[data-name="q2"]').count(), 1);
    fs.mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
    // docs/ui.png (the README's picture) is rewritten only when asked: a test run leaves the tree as it was
    await page.screenshot({ path: process.env.LOOM_UPDATE_DOCS ? path.join(ROOT, 'docs', 'ui.png') : path.join(sb.dir, 'ui.png') });
    assert.deepEqual(consoleErrors, []);
  });

  test('the UI answers only for its own address; bad --ui values are refused', async () => {
    const wrongHost = await sb.hostExec(['busybox', 'wget', '-qO-', '--header', 'Host: evil.example:7777', `http://${UI}/api/topology`]);
    assert.notEqual(wrongHost.code, 0);
    const r = await ok(sb.hostExec(['busybox', 'wget', '-qO-', `http://${UI}/api/topology`]));
    assert.ok(JSON.parse(r).containers.length >= 3);
    // refused before the daemon starts anything (run in the sandbox all the same)
    await fails(sb.hostExec([path.join(ROOT, 'bin/loom'), 'daemon', '--ui', 'localhost', '--data-root', path.join(sb.dir, 'x'), '--exec-root', path.join(sb.dir, 'y'), '--host', `unix://${path.join(sb.dir, 'y.sock')}`]), /invalid --ui address "localhost": use IP:PORT/);
    assert.equal(fs.existsSync(path.join(sb.dir, 'x')), false, 'nothing was started');
  });
});

// The demo app (www-demo/) with its own sync server, driven like a person would: add,
// edit, tick and delete items offline (the browser's own offline switch), watch them go
// out, a failing server, a refused change, two tabs. Screenshots are checked not blank,
// and the queue-depth chart is read back from its pixels.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch, waitFor, ROOT } from './harness.js';
import { startDemoServer, MAX_TEXT } from '../www-demo/server.js';

let srv, browser, context, page;
const SHOTS = path.join(ROOT, 'test-results');

async function openDemo(ctx) {
  const p = await ctx.newPage();
  p.on('pageerror', (e) => console.error('[pageerror]', e.message));
  await p.goto(`${srv.origin}/www-demo/`);
  await p.waitForFunction(() => window.demoReady === true);
  return p;
}

const itemRows = (p) => p.$$eval('#items tr', (rows) => rows.map((r) => ({
  text: r.children[1].textContent, status: r.dataset.status, badge: r.children[2].textContent, done: r.querySelector('input').checked,
})));

const serverItems = async () => [...srv.items.values()].map((i) => i.text).sort();

/**
 * A screenshot, saved under test-results/, and how much of it is drawn: the number of
 * distinct colours and the share of pixels that are not the background, measured by
 * drawing the PNG on a canvas in the page.
 */
async function screenshot(p, name) {
  const png = await p.screenshot({ fullPage: true });
  fs.mkdirSync(SHOTS, { recursive: true });
  fs.writeFileSync(path.join(SHOTS, `demo-${name}.png`), png);
  return p.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = new OffscreenCanvas(img.width, img.height);
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const { data } = g.getImageData(0, 0, img.width, img.height);
    const colours = new Set();
    let ink = 0;
    for (let i = 0; i < data.length; i += 4) {
      const rgb = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
      colours.add(rgb);
      if (rgb !== 0xffffff) ink++;
    }
    return { width: img.width, height: img.height, colours: colours.size, ink: ink / (data.length / 4) };
  }, png.toString('base64'));
}

/**
 * The queue-depth chart read back from its pixels: for each column, the height of its
 * highest blue pixel (line or fill) as a share of the plot's height, which spans the
 * canvas but for a 20 px label strip at the top and 4 px at the bottom.
 */
const chartLevels = (p) => p.evaluate(() => {
  const c = document.getElementById('chart');
  const { data } = c.getContext('2d').getImageData(0, 0, c.width, c.height);
  const bottom = c.height - 4;
  const levels = [];
  for (let x = 0; x < c.width - 1; x++) {
    let y = 0;
    while (y < c.height) {
      const i = (y * c.width + x) * 4;
      if (data[i + 2] - data[i] > 30) break;
      y++;
    }
    levels.push(y === c.height ? 0 : (bottom - y) / (bottom - 20));
  }
  return levels;
});

function assertDrawn(shot, what) {
  assert.ok(shot.width > 300 && shot.height > 300, `${what}: ${shot.width}x${shot.height}`);
  assert.ok(shot.colours > 30, `${what}: only ${shot.colours} colours`);
  assert.ok(shot.ink > 0.02, `${what}: ${(shot.ink * 100).toFixed(1)} % drawn`);
}

before(async () => {
  srv = await startDemoServer(0);
  browser = await launch();
  context = await browser.newContext();
  page = await openDemo(context);
});
after(async () => {
  await browser?.close();
  await srv?.close();
});

test('online: added items reach the server and show as synced', async () => {
  for (const text of ['buy milk', 'call Sam']) {
    await page.fill('#text', text);
    await page.click('#add button');
  }
  await waitFor(async () => (await serverItems()).length === 2, 5000, 'items on the server');
  await waitFor(async () => (await itemRows(page)).every((r) => r.status === 'synced'), 5000, 'synced badges');
  assert.deepEqual((await itemRows(page)).map((r) => r.text).sort(), ['buy milk', 'call Sam']);
  assertDrawn(await screenshot(page, 'online'), 'online');
});

test("offline (the browser's switch): changes wait in the outbox, shown as pending, then go out in order with a progress bar", async () => {
  await context.setOffline(true);
  await waitFor(() => page.evaluate(() => document.getElementById('net').textContent === 'offline'), 3000, 'offline badge');
  await page.fill('#text', 'water plants');
  await page.click('#add button');
  page.once('dialog', (d) => d.accept('buy oat milk'));
  await page.click('#items tr:has-text("buy milk") button:has-text("edit")');
  await page.click('#items tr:has-text("call Sam") input[type=checkbox]');
  await page.click('#items tr:has-text("water plants") button:has-text("delete")');
  await page.fill('#text', 'write report');
  await page.click('#add button');
  await waitFor(async () => (await itemRows(page)).length === 3 && (await page.$$('#outbox tr')).length >= 4, 5000, 'pending changes listed');
  const rows = await itemRows(page);
  assert.deepEqual(rows.map((r) => r.text).sort(), ['buy oat milk', 'call Sam', 'write report'], 'the list shows the changes at once');
  assert.ok(rows.every((r) => r.status !== 'synced'), JSON.stringify(rows));
  assert.ok(rows.find((r) => r.text === 'call Sam').done);
  assert.deepEqual(await serverItems(), ['buy milk', 'call Sam'], 'nothing reached the server');
  // Five changes wait (the chart's scale is at least 4, and its peak): the line at the top.
  await waitFor(async () => (await chartLevels(page)).at(-1) > 0.95, 3000, 'the chart at the top now');
  assertDrawn(await screenshot(page, 'offline'), 'offline');

  await page.evaluate(() => { window.demoProgressSeen = 0; });
  await context.setOffline(false);
  await waitFor(async () => (await page.$$('#outbox tr')).length === 0, 10000, 'the outbox to empty');
  await waitFor(async () => (await serverItems()).join() === 'buy oat milk,call Sam,write report', 5000, 'server state');
  assert.ok([...srv.items.values()].find((i) => i.text === 'call Sam').done);
  await waitFor(async () => (await itemRows(page)).every((r) => r.status === 'synced'), 5000, 'synced');
  assert.ok(await page.evaluate(() => window.demoProgressSeen > 0), 'a progress bar during the drain');
  // The chart plots the last minute with now at its right edge: there it must be back at
  // zero, and to its left still show the five that waited.
  await waitFor(async () => (await chartLevels(page)).at(-1) < 0.05, 3000, 'the chart at zero now');
  const levels = await chartLevels(page);
  assert.ok(Math.max(...levels) > 0.95, `the chart's peak: ${Math.max(...levels)}`);
  assert.ok(levels.findLastIndex((l) => l > 0.95) > levels.length * 0.8, 'the peak is recent');
});

test('a server that is down: retrying in N s with the error; a refused change: failed, with retry and discard', async () => {
  await page.check('#down');
  await page.fill('#text', 'book dentist');
  await page.click('#add button');
  await waitFor(async () => (await itemRows(page)).some((r) => r.text === 'book dentist' && /retrying in \d+ s/.test(r.badge)), 8000, 'retrying badge');
  assert.match((await itemRows(page)).find((r) => r.text === 'book dentist').badge, /503/);
  assertDrawn(await screenshot(page, 'retrying'), 'retrying');
  await page.uncheck('#down');
  await page.click('#drain');
  await waitFor(async () => (await serverItems()).includes('book dentist'), 8000, 'sent after the server is back');

  await page.fill('#text', 'x'.repeat(MAX_TEXT + 10));
  await page.click('#add button');
  await waitFor(async () => (await itemRows(page)).some((r) => r.status === 'failed'), 8000, 'failed badge');
  assert.match((await itemRows(page)).find((r) => r.status === 'failed').badge, /422|longer than/);
  assert.equal((await page.$$('#dead tr')).length, 1);
  // The refused text is one long word: it wraps rather than widening the page.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no horizontal scroll');
  assertDrawn(await screenshot(page, 'failed'), 'failed');
  await page.click('#items tr[data-status=failed] button:has-text("discard")');
  await waitFor(async () => (await page.$$('#dead tr')).length === 0, 5000, 'dead letter discarded');
  assert.ok(!(await itemRows(page)).some((r) => r.status === 'failed'));
});

test('a server slower than the 10 s time limit: the request is aborted and retried, and goes out once it answers in time', async () => {
  await page.fill('#latency', '12000');
  await page.dispatchEvent('#latency', 'change');
  await waitFor(async () => srv.settings.latencyMs === 12000, 5000, 'latency set');
  await page.evaluate(() => {
    window.timedOut = [];
    window.demoOutbox.subscribe((e) => { if (e.type === 'retry') window.timedOut.push(`${e.error.name}: ${e.error.message}`); });
  });
  await page.fill('#text', 'call the plumber');
  await page.click('#add button');
  await waitFor(async () => (await itemRows(page)).some((r) => r.text === 'call the plumber' && r.status === 'sending'), 5000, 'sending badge');
  await waitFor(async () => (await page.evaluate(() => window.timedOut.length)) > 0, 15000, 'the attempt timed out');
  assert.equal(await page.evaluate(() => window.timedOut[0]), 'TimeoutError: no outcome within 10000 ms');
  await page.fill('#latency', '0');
  await page.dispatchEvent('#latency', 'change');
  await waitFor(async () => srv.settings.latencyMs === 0, 5000, 'latency cleared');
  await page.click('#drain');
  await waitFor(async () => (await itemRows(page)).some((r) => r.text === 'call the plumber' && r.status === 'synced'), 15000, 'synced');
  assert.equal((await serverItems()).filter((t) => t === 'call the plumber').length, 1);
});

test('two tabs: one sends (leader badge), the other shows the same outbox and its changes go out', async () => {
  const second = await openDemo(context);
  try {
    const badges = async () => Promise.all([page, second].map((p) => p.textContent('#leader')));
    await waitFor(async () => (await badges()).sort().join() === 'another tab sends,this tab sends', 5000, 'one leader');
    await second.fill('#text', 'from the second tab');
    await second.click('#add button');
    await waitFor(async () => (await serverItems()).includes('from the second tab'), 8000, 'sent by the leader');
    await waitFor(async () => (await itemRows(page)).some((r) => r.text === 'from the second tab' && r.status === 'synced'), 5000, 'seen in the first tab');
    assertDrawn(await screenshot(second, 'second-tab'), 'second tab');
  } finally {
    await second.close();
  }
});

// Browser tests of "The whole picture": the Dataset, Projector, Channels and Runs views,
// each checked against what the API answers, on one page in headless Chromium.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const BASE = arg('base');
const LOCKED = arg('locked');
const TOKEN = arg('token');
const SHOTS = arg('shots', 'build/screenshots');
const CHROMIUM = arg('chromium', '/usr/bin/chromium');
const TMP = arg('tmp', tmpdir());

const cases = [];
const test = (name, fn) => cases.push({ name, fn });
const assert = (cond, msg) => { if (!cond) throw new Error(msg); };
const consoleErrors = [];
let ctx, page;

const api = (method, p, base = BASE, body) => page.evaluate(async ({ method, url, body }) => {
  const r = await fetch(url, { method, body });
  const t = await r.text();
  let data = null;
  try { data = JSON.parse(t); } catch { /* a picture */ }
  return { status: r.status, data };
}, { method, url: `${base}/${p}`, body });

async function waitJobs(base = BASE) {
  for (let i = 0; i < 600; i++) {
    const j = await api('GET', 'v1/jobs', base);
    if (!j.data.jobs.some((x) => x.state === 'running' || x.state === 'queued')) return;
    await page.waitForTimeout(200);
  }
  throw new Error('jobs did not end');
}

const shot = (name, selector) => page.locator(selector).screenshot({ path: path.join(SHOTS, `insight-${name}.png`) });
const tab = (name) => page.click(`#ins-tab-${name}`);

test('the page opens with the four views', async () => {
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => document.documentElement.dataset.ready === 'true');
  for (const v of ['dataset', 'projector', 'channels', 'runs']) assert(await page.locator(`#ins-tab-${v}`).count() === 1, `tab ${v}`);
  assert(await page.locator('.top__nav a[href="#whole"]').count() === 1, 'a link in the navigation');
  // The arrow keys walk the tabs.
  await page.focus('#ins-tab-dataset');
  await page.keyboard.press('ArrowRight');
  assert(await page.getAttribute('#ins-tab-projector', 'aria-selected') === 'true', 'arrow to the projector');
  await tab('dataset');
});

test('dataset: the confusion matrix is the API\'s, a cell lists its images with Grad-CAM', async () => {
  await page.selectOption('#ins-pane-dataset select', '1000');
  await page.click('#ins-eval');
  await page.waitForSelector('#ins-matrix .ins-cm__cell', { timeout: 60000 });
  const ev = (await api('GET', 'v1/models/fmnist/evaluation?limit=1000')).data;
  const shown = await page.$$eval('#ins-matrix tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('.ins-cm__cell')].map((c) => Number(c.textContent))));
  assert(JSON.stringify(shown) === JSON.stringify(ev.confusion), 'the matrix shows the evaluation\'s counts');
  assert(/accuracy/.test(await page.textContent('#ins-eval-summary')), 'summary');
  assert(await page.locator('#ins-perclass tbody tr').count() === 10, 'ten classes in the table');
  const f1 = await page.textContent('#ins-perclass tbody tr:nth-child(7) td:nth-child(4)');
  assert(f1.replace(/\s/g, '').startsWith((ev.per_class[6].f1 * 100).toFixed(1)), `shirt F1 ${f1}`);
  assert(await page.locator('#ins-rel .ins-rel__bar').count() > 0, 'reliability bars');
  // The commonest mistake: shirts taken for T-shirts.
  await page.click('#ins-matrix .ins-cm__cell[data-t="6"][data-p="0"]');
  await page.waitForSelector('#ins-cell .ins-cell__item');
  const cellApi = ev.cells.find((c) => c.true === 6 && c.predicted === 0);
  const items = await page.$$eval('#ins-cell .ins-cell__item', (li) => li.map((x) => Number(x.dataset.index)));
  assert(JSON.stringify(items) === JSON.stringify(cellApi.images.map((i) => i.index)), 'most confident first, as the API lists them');
  await page.waitForFunction(() => [...document.querySelectorAll('#ins-cell img[alt^="Grad-CAM"]')].every((i) => i.complete && i.naturalWidth === 84));
  await shot('dataset', '#whole');
  // Analyse: the image above becomes that test image.
  await page.click('#ins-cell .ins-cell__item:first-child button');
  await page.waitForFunction((i) => document.getElementById('ds-index').value === String(i), items[0]);
});

test('projector: points drawn, coloured by label or prediction, hover and select', async () => {
  await tab('projector');
  await page.selectOption('#ins-proj-count', '1000');
  await page.click('#ins-proj-go');
  await page.waitForFunction(() => document.getElementById('ins-proj-canvas').dataset.drawn === '1000', null, { timeout: 60000 });
  assert(/dense_1/.test(await page.textContent('#ins-proj-info')), 'the last hidden dense layer by default');
  assert(await page.locator('#ins-proj-legend li').count() === 10, 'a legend of ten classes');
  await page.selectOption('#ins-proj-colour', 'predictions');
  assert(await page.getAttribute('#ins-proj-canvas', 'data-colour') === 'predictions', 'coloured by prediction');
  // Find a drawn point in the canvas's own pixels (wherever the layout put them), then
  // hover it: its image shows. The canvas is scrolled into view first: the pointer only
  // reaches what the viewport shows.
  await page.locator('#ins-proj-canvas').scrollIntoViewIfNeeded();
  const box = await page.locator('#ins-proj-canvas').boundingBox();
  const spot = await page.evaluate(() => {
    const c = document.getElementById('ins-proj-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let best = null;
    for (let y = 0; y < c.height; y++)
      for (let x = 0; x < c.width; x++) {
        if (d[(y * c.width + x) * 4 + 3] < 128) continue;
        const dist = Math.hypot(x - c.width / 2, y - c.height / 2);
        if (!best || dist < best.dist) best = { x, y, dist };
      }
    return best && { fx: (best.x + 0.5) / c.width, fy: (best.y + 0.5) / c.height };
  });
  assert(spot, 'no point drawn on the canvas');
  await page.mouse.move(box.x + box.width * spot.fx, box.y + box.height * spot.fy);
  const found = await page.waitForSelector('#ins-proj-tip', { state: 'visible', timeout: 15000 }).then(() => true, () => false);
  assert(found, `hovering a point shows its image (pointer at ${spot.fx.toFixed(3)}, ${spot.fy.toFixed(3)} of the canvas)`);
  const idx = Number(await page.getAttribute('#ins-proj-tip', 'data-index'));
  assert(/Test image \d+/.test(await page.textContent('#ins-proj-tip')), 'and says what it is');
  await page.mouse.down();
  await page.mouse.up();
  await page.waitForSelector('#ins-proj-picked:not([hidden])');
  assert(Number(await page.getAttribute('#ins-proj-picked', 'data-index')) === idx, 'the point is selected');
  // Zoom by the wheel, then pan by dragging: still drawn.
  await page.mouse.wheel(0, -300);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 20, { steps: 4 });
  await page.mouse.up();
  await shot('projector', '#whole');
  await page.click('#ins-proj-analyse');
  await page.waitForFunction((i) => document.getElementById('ds-index').value === String(i), idx);
});

test('channels: feature visualisations of a layer, a channel\'s top images with their patches', async () => {
  await tab('channels');
  assert(await page.inputValue('#ins-ch-layer') === 'leaky_re_lu_2', 'the Grad-CAM layer first');
  await page.selectOption('#ins-ch-count', '8');
  await page.click('#ins-ch-go');
  await page.waitForSelector('#ins-ch-grid .ins-ch__tile', { timeout: 120000 });
  assert(await page.locator('#ins-ch-grid .ins-ch__tile').count() === 8, 'eight channels');
  await page.waitForFunction(() => [...document.querySelectorAll('#ins-ch-grid img')].every((i) => i.complete && i.naturalWidth > 0));
  await page.click('#ins-ch-grid .ins-ch__tile[data-channel="3"]');
  await page.waitForSelector('#ins-ch-detail .ins-ch__hit');
  const atlas = (await api('GET', 'v1/models/fmnist/layers/leaky_re_lu_2/atlas?channels=8')).data;
  const hits = await page.$$eval('#ins-ch-detail .ins-ch__hit', (li) => li.map((x) => Number(x.dataset.index)));
  assert(JSON.stringify(hits) === JSON.stringify(atlas.channels[3].top.map((t) => t.index)), 'the atlas\'s top images');
  const frame = await page.locator('#ins-ch-detail .ins-patch').first().boundingBox();
  assert(frame && frame.width > 4 && frame.width <= 8 * 3 + 1, `the patch outlined: ${frame && frame.width}`);
  await shot('channels', '#whole');
});

test('runs: versions with their curves, serve after confirming, compare', async () => {
  const t = await api('POST', 'v1/models/fmnist/train', BASE, '{"epochs":2,"train_limit":500,"test_limit":100,"snapshots":true}');
  assert(t.status === 202, `train ${t.status}`);
  await waitJobs();
  await tab('runs');
  await page.click('#ins-pane-runs button:has-text("Reload")');
  await page.waitForFunction(() => document.querySelectorAll('#ins-runs-table tbody tr').length === 2, null, { timeout: 20000 });
  assert(await page.locator('#ins-runs-table tr.is-served').getAttribute('data-version') === '2', 'version 2 served');
  assert(await page.locator('#ins-runs-charts .ins-curve').count() >= 2, 'curves overlaid');
  await page.waitForFunction(() => document.querySelectorAll('#ins-snaps li').length === 2);
  await page.waitForFunction(() => [...document.querySelectorAll('#ins-snaps img')].every((i) => i.complete && i.naturalWidth > 0));
  await page.click('[data-serve="1"]');
  await page.waitForSelector('#ins-serve-dialog[open]');
  assert(/Every user/.test(await page.textContent('#ins-serve-dialog')), 'it asks first');
  await shot('runs-confirm', '#ins-serve-dialog');
  await page.click('#ins-serve-yes');
  await page.waitForFunction(() => document.querySelector('#ins-runs-table tr.is-served')?.dataset.version === '1');
  assert((await api('GET', 'v1/models/fmnist')).data.version === 1, 'the service serves version 1');
  await page.selectOption('#ins-cmp-a', '1');
  await page.selectOption('#ins-cmp-b', '2');
  await page.click('#ins-cmp-go');
  await page.waitForSelector('#ins-cmp-summary', { timeout: 60000 });
  const c = (await api('GET', 'v1/models/fmnist/versions/compare?a=1&b=2')).data;
  assert((await page.textContent('#ins-cmp-summary')).includes(`${c.changed_count.toLocaleString('en')} of`), 'the comparison');
  await shot('runs', '#whole');
});

test('runs: the token is asked for when the service wants one', async () => {
  await page.goto(`${LOCKED}/`);
  await page.waitForFunction(() => document.documentElement.dataset.ready === 'true');
  const r = await page.evaluate(async ({ base, token }) => (await fetch(`${base}/v1/models/fmnist/train`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{"epochs":1,"train_limit":300,"test_limit":100}' })).status, { base: LOCKED, token: TOKEN });
  assert(r === 202, `train ${r}`);
  await waitJobs(LOCKED);
  await page.reload();
  await page.waitForFunction(() => document.documentElement.dataset.ready === 'true');
  await tab('runs');
  await page.waitForSelector('[data-serve="1"]');
  await page.click('[data-serve="1"]');
  await page.click('#ins-serve-yes');
  await page.waitForSelector('#ins-serve-token');
  consoleErrors.splice(0); // the 401 is logged by the browser
  await page.fill('#ins-serve-token', TOKEN);
  await page.click('#ins-serve-yes');
  await page.waitForFunction(() => document.querySelector('#ins-runs-table tr.is-served')?.dataset.version === '1');
  consoleErrors.splice(0);
});

async function main() {
  const userDir = mkdtempSync(path.join(TMP, 'chromium-insight-'));
  let ok = 0, failed = 0;
  try {
    ctx = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
        '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(30000);
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    for (const c of cases) {
      const t0 = Date.now();
      try {
        await c.fn();
        if (consoleErrors.length) throw new Error(`console errors: ${consoleErrors.splice(0).join(' | ')}`);
        ok++;
        console.log(`ok   ${c.name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } catch (e) {
        failed++;
        consoleErrors.splice(0);
        console.log(`FAIL ${c.name}: ${e.message.split('\n')[0]}`);
        console.error(e.stack);
        try {
          await page.screenshot({ path: path.join(SHOTS, `insight-failed-${cases.indexOf(c)}.png`), fullPage: true });
          await page.evaluate(() => document.querySelectorAll('dialog[open]').forEach((d) => d.close()));
        } catch { /* page gone */ }
      }
    }
  } catch (e) {
    failed++;
    console.error(e.stack || e);
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    rmSync(userDir, { recursive: true, force: true });
  }
  console.log(`[web-insight] ${ok} ok, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

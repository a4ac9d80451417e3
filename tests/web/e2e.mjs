// End-to-end tests of the convscope front-end in headless Chromium. run.sh starts the
// server and passes its address; this script runs the cases in order on one page (each
// builds on the page state the previous one left, as a person would use it), saves
// screenshots and prints "[web] N ok, M failed".

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const BASE = arg('base');
const LOCKED = arg('locked');
const TOKEN = arg('token');
const ROOT = arg('root', fileURLToPath(new URL('../..', import.meta.url)));
const SHOTS = arg('shots', path.join(ROOT, 'build/screenshots'));
const CHROMIUM = arg('chromium', '/usr/bin/chromium');
const TMP = arg('tmp', tmpdir());
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

const cases = [];
const test = (name, fn) => cases.push({ name, fn });
const assert = (cond, msg) => { if (!cond) throw new Error(msg); };

// Console errors are collected all the time; a case that expects one (a 422 logged by
// the browser as a failed resource) clears them itself.
const consoleErrors = [];

let ctx, page;

const isPost = (part) => (r) => r.url().includes(part) && r.request().method() === 'POST';
const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function imgDigest(selector) {
  const b64 = await page.evaluate(async (sel) => {
    const img = document.querySelector(sel);
    if (!img || !img.src) return '';
    const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let s = '';
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
    return btoa(s);
  }, selector);
  return b64 ? createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex') : '';
}

async function probabilities() {
  return page.$$eval('#pred-bars .bar', (rows) => rows.map((r) => r.querySelector('.bar__value').textContent));
}

async function shot(name, opts = {}) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), ...opts });
}

async function sectionShot(name, selector) {
  await page.locator(selector).screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

async function imageLoaded(selector, timeout = 15000) {
  await page.waitForFunction((sel) => {
    const img = document.querySelector(sel);
    return img && img.complete && img.naturalWidth > 0 && img.closest('.has-image') && !img.closest('.is-busy');
  }, selector, { timeout });
}

// ---------------------------------------------------------------------------------

test('the page loads with no console errors', async () => {
  const res = await page.goto(BASE + '/', { waitUntil: 'load' });
  assert(res.ok(), `GET / answered ${res.status()}`);
  await page.waitForSelector('html[data-ready="true"]', { timeout: 15000 });
  await imageLoaded('#cam-img');
  await imageLoaded('#fm-img');
  await imageLoaded('#flt-img');
  await page.waitForFunction(() => document.querySelectorAll('#ds-grid .thumb img').length === 24 &&
    [...document.querySelectorAll('#ds-grid .thumb img')].every((i) => i.complete && i.naturalWidth > 0));
  assert(await page.locator('#model-meta').textContent().then((t) => /version \d+/.test(t)), 'model meta shows no version');
  await wait(200);
  assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
  await shot('desktop-overview');
  await shot('desktop-full', { fullPage: true });
});

test('a Fashion-MNIST test image shows predictions', async () => {
  // The page starts on test image 18 (the notebook's bag); pick another one from the grid.
  await page.waitForFunction(() => document.querySelectorAll('#pred-bars .bar').length === 10 &&
    document.querySelector('#pred-bars .bar.is-top'));
  const [res] = await Promise.all([
    page.waitForResponse(isPost('/predict')),
    page.click('#ds-grid .thumb[data-index="0"]'),
  ]);
  assert(res.ok(), `predict answered ${res.status()}`);
  assert(res.url().includes('sample=test%3A0') || res.url().includes('sample=test:0'), `not a sample request: ${res.url()}`);
  await page.waitForFunction(() => /Ankle boot/.test(document.querySelector('#pred-truth').textContent));
  const values = await probabilities();
  const sum = values.reduce((s, v) => s + parseFloat(v), 0);
  assert(values.length === 10 && Math.abs(sum - 100) < 1.5, `probabilities do not add up: ${values.join(', ')}`);
  // jump by index, then at random
  await page.fill('#ds-index', '4');
  await Promise.all([page.waitForResponse(isPost('/predict')), page.click('#ds-goto button')]);
  await page.waitForFunction(() => /test image #4\b/.test(document.querySelector('#input-label').textContent));
  await Promise.all([page.waitForResponse(isPost('/predict')), page.click('#ds-random')]);
  await page.selectOption('#ds-split', 'train');
  await page.waitForFunction(() => /^train 0/.test(document.querySelector('#ds-range').textContent));
  await Promise.all([page.waitForResponse(isPost('/predict')), page.click('#ds-grid .thumb[data-index="1"]')]);
  await page.waitForFunction(() => /T-shirt\/top/.test(document.querySelector('#pred-truth').textContent));
});

test('uploading a photo shows predictions', async () => {
  await page.click('#tab-upload');
  const before = await probabilities();
  const [res] = await Promise.all([
    page.waitForResponse(isPost('/predict')),
    page.setInputFiles('#file-input', path.join(ROOT, 'tests/data/photos/chelsea.png')),
  ]);
  assert(res.ok(), `predict answered ${res.status()}`);
  assert(res.request().headers()['content-type'] === 'image/png', 'the upload was not sent as image/png');
  await page.waitForFunction(() => /chelsea\.png/.test(document.querySelector('#input-label').textContent));
  await page.waitForFunction((b) => {
    const now = [...document.querySelectorAll('#pred-bars .bar__value')].map((v) => v.textContent);
    return now.join() !== b.join() && now.every((v) => /%/.test(v));
  }, before);
  assert(await page.locator('#pred-truth').isHidden(), 'an upload has no dataset label');
  await imageLoaded('#cam-img');
  await shot('desktop-upload');
});

test('the Grad-CAM overlay appears and changes with the class', async () => {
  await imageLoaded('#cam-img');
  const first = await imgDigest('#cam-img');
  assert(first, 'no overlay image');
  const [res] = await Promise.all([
    page.waitForResponse(isPost('/gradcam')),
    page.selectOption('#cam-class', '1'),
  ]);
  assert(res.ok(), `gradcam answered ${res.status()}`);
  assert(new URL(res.url()).searchParams.get('class') === '1', 'class was not sent');
  await imageLoaded('#cam-img');
  await page.waitForFunction(() => /Trouser/.test(document.querySelector('#cam-caption').textContent));
  const second = await imgDigest('#cam-img');
  assert(second && second !== first, 'the overlay did not change with the class');
  // the bare heatmap on demand
  await Promise.all([page.waitForResponse((r) => isPost('/gradcam')(r) && r.url().includes('format=heatmap')), page.check('#cam-heatmap')]);
  await imageLoaded('#cam-img');
  const third = await imgDigest('#cam-img');
  assert(third && third !== second, 'the heatmap looks like the overlay');
  await page.uncheck('#cam-heatmap');
  await page.selectOption('#cam-class', '');
  await imageLoaded('#cam-img');
});

test('a layer\'s feature maps and filters appear and enlarge', async () => {
  await page.locator('#inside').scrollIntoViewIfNeeded();
  const fm0 = await imgDigest('#fm-img');
  await Promise.all([
    page.waitForResponse(isPost('/layers/leaky_re_lu_1/feature-maps.png')),
    page.click('.layer[data-name="leaky_re_lu_1"]'),
  ]);
  await imageLoaded('#fm-img');
  assert((await imgDigest('#fm-img')) !== fm0, 'feature maps did not change with the layer');
  assert(await page.locator('#flt-empty').isVisible(), 'an activation layer should say it has no filters');
  await Promise.all([
    page.waitForResponse((r) => r.url().includes('/layers/conv2d_2/filters.png')),
    page.click('.layer[data-name="conv2d_2"]'),
  ]);
  await imageLoaded('#flt-img');
  await imageLoaded('#fm-img');
  const w = await page.$eval('#flt-img', (i) => i.naturalWidth);
  assert(w > 100, `filter grid is only ${w} px wide`);
  assert(await page.locator('#flt-channel-wrap').isVisible(), 'conv2d_2 has 32 input channels to choose from');
  await sectionShot('desktop-inside', '#inside');
  // enlarge one map, step to the next, close
  // Click the middle of the third tile of the first row (the grid has 8 or 16 columns,
  // 2-pixel gaps around every tile).
  const box = await page.locator('#fm-img').boundingBox();
  const nat = await page.$eval('#fm-img', (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
  const cols = nat.w > 1000 ? 16 : 8, tile = (nat.w - 2 * (cols + 1)) / cols;
  const k = box.width / nat.w;
  await page.mouse.click(box.x + (2 + 2 * (tile + 2) + tile / 2) * k, box.y + (2 + tile / 2) * k);
  await page.waitForSelector('#lightbox[open]');
  assert(/channel 2 · 3 of 64/.test(await page.textContent('#lightbox-title')), `lightbox title: ${await page.textContent('#lightbox-title')}`);
  await page.keyboard.press('ArrowRight');
  assert(/channel 3 · 4 of 64/.test(await page.textContent('#lightbox-title')), 'arrow key did not step');
  await shot('desktop-lightbox');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#lightbox[open]', { state: 'detached' });
  // a dense layer has no maps, and says so
  await page.click('.layer[data-name="dense_1"]');
  assert(await page.locator('#fm-empty').isVisible(), 'a dense layer should explain it has no maps');
  await page.click('.layer[data-name="conv2d_1"]');
  await imageLoaded('#fm-img');
});

test('drawing on the canvas changes the prediction', async () => {
  await page.click('#tab-draw');
  await page.locator('.card--input').scrollIntoViewIfNeeded();
  const canvas = await page.locator('#draw-canvas').boundingBox();
  const at = (fx, fy) => [canvas.x + canvas.width * fx, canvas.y + canvas.height * fy];
  const predicts = [];
  const onReq = (r) => { if (r.url().includes('/predict') && r.method() === 'POST') predicts.push(r); };
  page.on('request', onReq);
  // a short vertical stroke ...
  await page.mouse.move(...at(0.5, 0.2));
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) { await page.mouse.move(...at(0.5, 0.2 + i * 0.05)); await wait(25); }
  await page.mouse.up();
  await page.waitForFunction(() => /your drawing/.test(document.querySelector('#input-label').textContent));
  await wait(600);
  const one = await probabilities();
  const during = predicts.length;
  // ... then a wide sole: a shoe
  await page.mouse.move(...at(0.12, 0.75));
  await page.mouse.down();
  for (let i = 1; i <= 16; i++) { await page.mouse.move(...at(0.12 + i * 0.05, 0.75)); await wait(25); }
  for (let i = 1; i <= 6; i++) { await page.mouse.move(...at(0.92, 0.75 - i * 0.05)); await wait(25); }
  await page.mouse.up();
  await page.waitForResponse(isPost('/predict'));
  await wait(600);
  page.off('request', onReq);
  const two = await probabilities();
  assert(during >= 2, `expected predictions while drawing, saw ${during}`);
  assert(one.join() !== two.join(), 'the prediction did not change after drawing more');
  const sent = predicts[predicts.length - 1];
  assert(sent.headers()['content-type'] === 'image/png', 'the drawing was not sent as PNG');
  await imageLoaded('#cam-img');
  await shot('desktop-draw');
  // undo and clear work
  await page.click('#draw-undo');
  await page.click('#draw-clear');
  const blank = await page.$eval('#draw-canvas', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 0) return false;
    return true;
  });
  assert(blank, 'clear left ink on the canvas');
});

test('a truncated JPEG shows the API\'s error next to the input', async () => {
  await page.click('#tab-upload');
  const [res] = await Promise.all([
    page.waitForResponse(isPost('/predict')),
    page.setInputFiles('#file-input', path.join(ROOT, 'tests/data/photos/truncated.jpg')),
  ]);
  assert(res.status() === 422, `expected 422, got ${res.status()}`);
  await page.waitForSelector('#input-error:not([hidden])');
  const msg = await page.textContent('#input-error');
  assert(/decode|JPEG|Premature/i.test(msg) && /422/.test(msg), `error text: ${msg}`);
  assert(await page.locator('#pred-error').isHidden(), 'the image error should not repeat in the prediction panel');
  await sectionShot('desktop-error', '.card--input');
  // The browser logs failed requests (422) as console errors: expected here.
  consoleErrors.splice(0).forEach((e) => assert(/status of 4\d\d|Failed to load resource/.test(e), `unexpected console error: ${e}`));
  // back to a good image clears the error
  await page.click('#tab-dataset');
  await Promise.all([page.waitForResponse(isPost('/predict')), page.click('#ds-grid .thumb[data-index="2"]')]);
  await page.waitForSelector('#input-error[hidden]', { state: 'attached' });
});

test('a missing VGG16 model shows the service\'s reason', async () => {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/models/vgg16')),
    page.click('label[for="model-vgg16"]'),
  ]);
  assert(res.status() === 503, `expected 503, got ${res.status()}`);
  await page.waitForSelector('#model-error:not([hidden])');
  const msg = await page.textContent('#model-error');
  assert(/VGG16/.test(msg) && /not found|weights/i.test(msg) && /503/.test(msg), `error text: ${msg}`);
  assert(await page.isChecked('#model-fmnist'), 'the page should stay on the working model');
  consoleErrors.splice(0);
});

test('a short training job runs to 100 % with charts and the page switches version', async () => {
  const version0 = await page.textContent('#model-meta').then((t) => Number(/version (\d+)/.exec(t)[1]));
  await page.locator('#train').scrollIntoViewIfNeeded();
  await page.click('#train-quick');
  await page.fill('input[name="train_limit"]', '6000');
  await page.fill('input[name="test_limit"]', '1000');
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
    page.click('#train-start'),
  ]);
  assert(res.status() === 202, `train answered ${res.status()}`);
  const body = JSON.parse(res.request().postData());
  assert(body.epochs === 1 && body.train_limit === 6000 && body.batch_size === 128 && body.learning_rate === 0.001, `sent ${JSON.stringify(body)}`);
  assert(await page.locator('#train-cancel').isVisible(), 'no cancel button while running');
  // Progress while it runs; a fast machine may finish the job between two polls of
  // the page, so a job already done with its bar moved counts too.
  await page.waitForFunction(() => /running|succeeded/.test(document.querySelector('#train-state').textContent) &&
    Number(document.querySelector('#train-bar').getAttribute('aria-valuenow')) > 0, null, { timeout: 60000 });
  await sectionShot('desktop-training-running', '#train');
  await page.waitForFunction(() => /succeeded|failed|cancelled/.test(document.querySelector('#train-state').textContent), null, { timeout: 120000 });
  assert((await page.textContent('#train-state')).trim() === 'succeeded', `job ended ${await page.textContent('#train-state')}`);
  assert((await page.getAttribute('#train-bar', 'aria-valuenow')) === '100', 'progress did not reach 100');
  assert((await page.textContent('#train-percent')).trim() === '100 %', 'percent label is not 100 %');
  assert(await page.locator('#chart-loss .chart__dot').count() >= 1, 'no point on the loss chart');
  assert(await page.locator('#chart-acc .chart__dot').count() >= 2, 'no training and test accuracy points');
  await page.waitForSelector('#train-notice:not([hidden])');
  const notice = await page.textContent('#train-notice');
  assert(new RegExp(`version ${version0 + 1}`).test(notice), `notice: ${notice}`);
  await page.waitForFunction((v) => new RegExp(`version ${v}`).test(document.querySelector('#model-meta').textContent), version0 + 1);
  await sectionShot('desktop-training-done', '#train');
});

test('a server with a token asks for it once, then trains and cancels', async () => {
  if (!LOCKED) throw new Error('run.sh passes --locked BASE for this case');
  const main = page;
  page = await ctx.newPage();
  try {
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(LOCKED + '/', { waitUntil: 'load' });
    await page.waitForSelector('html[data-ready="true"]');
    await page.locator('#train').scrollIntoViewIfNeeded();
    // Long enough (3 epochs of 60,000 images) that it is still running when cancelled.
    await page.fill('input[name="epochs"]', '3');
    await page.fill('input[name="train_limit"]', '60000');
    await page.fill('input[name="test_limit"]', '500');
    const [denied] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
      page.click('#train-start'),
    ]);
    assert(denied.status() === 401, `expected 401, got ${denied.status()}`);
    await page.waitForSelector('#token-box:not([hidden])');
    assert(/401/.test(await page.textContent('#train-error')), 'the 401 is not shown');
    await page.fill('#token-input', TOKEN);
    const [started] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
      page.click('#token-save'),
    ]);
    assert(started.status() === 202, `with the token: ${started.status()}`);
    assert(started.request().headers().authorization === `Bearer ${TOKEN}`, 'no bearer header');
    assert(await page.evaluate(() => sessionStorage.getItem('convscope.token')) === TOKEN, 'token not kept in sessionStorage');
    await page.waitForFunction(() => /running/.test(document.querySelector('#train-state').textContent), null, { timeout: 30000 });
    const [cancelled] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/v1/jobs/') && r.request().method() === 'DELETE'),
      page.click('#train-cancel'),
    ]);
    assert(cancelled.status() === 202, `cancel answered ${cancelled.status()}`);
    await page.waitForFunction(() => /cancelled/.test(document.querySelector('#train-state').textContent), null, { timeout: 30000 });
    assert(/cancelled/i.test(await page.textContent('#train-notice')), 'no word about the cancellation');
    consoleErrors.splice(0).forEach((e) => assert(/status of 401|Failed to load resource/.test(e), `unexpected console error: ${e}`));
  } finally {
    await page.close();
    page = main;
  }
});

test('keyboard: tabs, layer strip and controls work without a mouse', async () => {
  await page.focus('#tab-dataset');
  await page.keyboard.press('ArrowRight');
  assert(await page.evaluate(() => document.activeElement.id) === 'tab-draw', 'arrow key did not move to the next tab');
  assert(await page.locator('#pane-draw').isVisible(), 'draw pane not shown');
  await page.focus('.layer[data-name="conv2d_1"]');
  await page.keyboard.press('ArrowRight');
  assert(await page.getAttribute('.layer[data-name="batch_normalization_1"]', 'aria-pressed') === 'true', 'arrow key did not select the next layer');
  const unlabelled = await page.$$eval('input, select, button, canvas', (els) => els.filter((e) => {
    if (!e.getClientRects().length && !e.labels?.length) return false;
    const name = e.getAttribute('aria-label') || e.labels?.[0]?.textContent || e.textContent || e.title;
    return !(name && name.trim());
  }).map((e) => e.outerHTML.slice(0, 80)));
  assert(unlabelled.length === 0, `controls without a name: ${unlabelled.join(' | ')}`);
});

test('phone width: no sideways scrolling, screenshots', async () => {
  await page.setViewportSize(PHONE);
  await page.goto(BASE + '/', { waitUntil: 'load' });
  await page.waitForSelector('html[data-ready="true"]');
  await imageLoaded('#cam-img');
  await imageLoaded('#fm-img');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  await shot('phone-top');
  await sectionShot('phone-cam', '.card--cam');
  await sectionShot('phone-prediction', '.card--pred');
  await sectionShot('phone-inside', '#inside');
  await sectionShot('phone-train', '#train');
  await page.click('#tab-draw');
  await sectionShot('phone-draw', '.card--input');
  await page.setViewportSize(DESKTOP);
});

// ---------------------------------------------------------------------------------

async function main() {
  const userDir = mkdtempSync(path.join(TMP, 'chromium-'));
  let ok = 0, failed = 0;
  try {
    ctx = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      // A container's /dev/shm is 64 MB by default, too small for Chromium's shared
      // memory: --disable-dev-shm-usage keeps it in /tmp instead.
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
        '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: DESKTOP,
    });
    page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(20000);
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
          await shot(`failed-${cases.indexOf(c)}`, { fullPage: true });
          // leave the page usable for the next case
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
  console.log(`[web] ${ok} ok, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

if (!BASE) {
  console.error('usage: node e2e.mjs --base http://127.0.0.1:PORT [--root DIR] [--shots DIR]');
  console.log('[web] 0 ok, 1 failed');
  process.exit(2);
}
main();

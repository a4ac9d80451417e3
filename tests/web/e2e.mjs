// End-to-end tests of the convscope front-end in headless Chromium. run.sh starts the
// server and passes its address; this script runs the cases in order on one page (each
// builds on the page state the previous one left, as a person would use it), saves
// screenshots and prints "[web] N ok, M failed".
//
// The open server serves the Fashion-MNIST network, a missing VGG16, and two ONNX test
// models: resnet (36x36 RGB, 10 numbered classes) and mobilenetv2 (48x48 RGB, layers of
// 96 channels), so the page is also checked on models that are not Fashion-MNIST.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePng, pngInfo } from './png.mjs';
import { explainCases } from './explain.mjs';
import { valuesCases, testLossCases } from './values.mjs';

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
const ONLY = arg('only', '');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const NBSP = '\u00a0';

const cases = [];
const test = (name, fn) => cases.push({ name, fn });
const assert = (cond, msg) => { if (!cond) throw new Error(msg); };

// Console errors are collected all the time; a case that expects one (a 422 logged by
// the browser as a failed resource) clears them itself.
const consoleErrors = [];

let ctx, page;

const isPost = (part) => (r) => r.url().includes(part) && r.request().method() === 'POST';
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
const norm = (s) => String(s).replace(/\u00a0/g, ' ').trim();

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

// RGBA pixels of a PNG (bytes from node) decoded by the browser.
async function decodeInPage(buf) {
  return page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = document.createElement('canvas');
    c.width = bmp.width;
    c.height = bmp.height;
    const x = c.getContext('2d');
    x.drawImage(bmp, 0, 0);
    return { w: bmp.width, h: bmp.height, px: [...x.getImageData(0, 0, bmp.width, bmp.height).data] };
  }, buf.toString('base64'));
}

// The body of the newest POST whose URL contains `part`, as the page sent it (a fetch
// wrapper installed before the page's own scripts keeps the last few Blob bodies).
async function lastPosted(part) {
  const b64 = await page.evaluate(async (p) => {
    const hit = [...(window.__posted || [])].reverse().find((x) => x.url.includes(p));
    if (!hit) return '';
    const buf = new Uint8Array(await hit.body.arrayBuffer());
    let s = '';
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
    return btoa(s);
  }, part);
  return b64 ? Buffer.from(b64, 'base64') : null;
}

function recordPosts() {
  const real = window.fetch;
  window.__posted = [];
  window.fetch = (input, init) => {
    if (init && init.body instanceof Blob) {
      window.__posted.push({ url: String(input), body: init.body });
      if (window.__posted.length > 30) window.__posted.shift();
    }
    return real(input, init);
  };
}

async function probabilities() {
  return page.$$eval('#pred-bars .bar', (rows) => rows.map((r) => r.querySelector('.bar__value').textContent));
}

// "> 99.9 %" -> 99.9, "< 0.01 %" -> 0.01, "12.5 %" -> 12.5
const percentOf = (t) => Number(norm(t).replace(/[<>%\s]/g, ''));

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

// Every panel shows the current input (the numbers they carry agree).
async function panelsShowCurrent(timeout = 15000) {
  await page.waitForFunction(() => {
    const cur = document.documentElement.dataset.input;
    const of = (id) => document.getElementById(id).dataset.input;
    return cur && of('pred-bars') === cur && of('cam-box') === cur && of('fm-box') === cur &&
      !document.querySelector('#cam-box.is-busy, #fm-box.is-busy, #pred-bars.is-busy');
  }, null, { timeout });
}

async function chooseModel(name) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/v1/models/${name}`)),
    page.click(`label[for="model-${name}"]`),
  ]);
  assert(res.ok(), `GET /v1/models/${name}: ${res.status()}`);
  await page.waitForFunction((n) => document.querySelector(`#model-${n}`).checked, name);
}

async function pickThumb(index) {
  await Promise.all([page.waitForResponse(isPost('/predict')), page.click(`#ds-grid .thumb[data-index="${index}"]`)]);
}

async function drawStroke(points, { release = true, pause = 25 } = {}) {
  const box = await page.locator('#draw-canvas').boundingBox();
  const at = ([fx, fy]) => [box.x + box.width * fx, box.y + box.height * fy];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) { await page.mouse.move(...at(p)); await wait(pause); }
  if (release) await page.mouse.up();
}

const line = (x0, y0, x1, y1, n) => Array.from({ length: n + 1 }, (_, i) => [x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n]);

async function api(method, p, body) {
  const res = await fetch(BASE + p, {
    method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, data: await res.json().catch(() => null) };
}

// Confirms the "replace the served model?" question.
async function confirmTraining() {
  await page.waitForSelector('#train-confirm[open]');
  await page.click('#train-confirm-yes');
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
  assert(await page.isVisible('label[for="model-resnet"]'), 'an ONNX model in the models folder is in the picker');
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
  const sum = values.reduce((s, v) => s + percentOf(v), 0);
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
  // back to the test set, which the later cases pick from
  await page.selectOption('#ds-split', 'test');
  await page.waitForFunction(() => /^test 0/.test(document.querySelector('#ds-range').textContent));
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

// The explanations compared (explain.mjs), on the committed model.
for (const [name, fn] of explainCases({ page: () => page, assert, isPost, imageLoaded, sectionShot })) test(name, fn);

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
  // a dense layer has no maps: its values come as bars in their place
  await page.click('.layer[data-name="dense_1"]');
  await page.waitForSelector('#vals-view:not([hidden])');
  assert(await page.locator('#fm-view').isHidden() && /not maps/.test(await page.textContent('#fm-empty')), 'a dense layer should show bars, not an empty map panel');
  await page.click('.layer[data-name="conv2d_1"]');
  await imageLoaded('#fm-img');
});

test('bug 9: the filter channel box is clamped to the layer\'s channels', async () => {
  await page.click('.layer[data-name="conv2d_2"]');
  await imageLoaded('#flt-img');
  await page.fill('#flt-channel', '99');
  await Promise.all([
    page.waitForResponse((r) => r.url().includes('/layers/conv2d_2/filters.png') && r.url().includes('channel=31')),
    page.press('#flt-channel', 'Enter'),
  ]);
  await imageLoaded('#flt-img');
  assert(await page.inputValue('#flt-channel') === '31', `the box shows ${await page.inputValue('#flt-channel')}, the layer has 32 channels`);
  assert(/input channel 31 of 32/.test(await page.textContent('#flt-note')), `note: ${await page.textContent('#flt-note')}`);
  await page.fill('#flt-channel', '-4');
  await page.press('#flt-channel', 'Enter');
  await page.waitForFunction(() => document.querySelector('#flt-channel').value === '0');
  await imageLoaded('#flt-img');
  await page.click('.layer[data-name="conv2d_1"]');
  await imageLoaded('#fm-img');
});

test('drawing on the canvas changes the prediction', async () => {
  await page.click('#tab-draw');
  await page.locator('.card--input').scrollIntoViewIfNeeded();
  const predicts = [];
  const onReq = (r) => { if (r.url().includes('/predict') && r.method() === 'POST') predicts.push(r); };
  page.on('request', onReq);
  // a short vertical stroke ...
  await drawStroke(line(0.5, 0.2, 0.5, 0.8, 12));
  await page.waitForFunction(() => /your drawing/.test(document.querySelector('#input-label').textContent));
  await panelsShowCurrent();
  const one = await probabilities();
  const during = predicts.length;
  // ... then a wide sole: a shoe
  await drawStroke([...line(0.12, 0.75, 0.92, 0.75, 16), ...line(0.92, 0.7, 0.92, 0.45, 5)]);
  await panelsShowCurrent();
  page.off('request', onReq);
  const two = await probabilities();
  assert(during >= 2, `expected predictions while drawing, saw ${during}`);
  assert(one.join() !== two.join(), 'the prediction did not change after drawing more');
  const sent = predicts[predicts.length - 1];
  assert(sent.headers()['content-type'] === 'image/png', 'the drawing was not sent as PNG');
  const info = pngInfo(await lastPosted('/fmnist/predict'));
  assert(info && info.width === 28 && info.height === 28, `the Fashion-MNIST pad sends 28x28, sent ${JSON.stringify(info)}`);
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

test('bug 3: while drawing, Grad-CAM and the feature maps follow the drawing', async () => {
  // Start from a dataset image (a bag), then draw without lifting the pen.
  await page.click('#tab-dataset');
  await pickThumb(18);
  await panelsShowCurrent();
  await page.click('#tab-draw');
  const seen = { gradcam: 0, maps: 0 };
  const onReq = (r) => {
    if (r.method() !== 'POST') return;
    if (r.url().includes('/gradcam')) seen.gradcam++;
    if (r.url().includes('/feature-maps.png')) seen.maps++;
  };
  page.on('request', onReq);
  await drawStroke([...line(0.15, 0.3, 0.85, 0.3, 10), ...line(0.85, 0.3, 0.85, 0.85, 10)], { release: false });
  try {
    // Pen still down: every panel must come to show the drawing, none the bag.
    await panelsShowCurrent();
    assert(seen.gradcam >= 1 && seen.maps >= 1, `no Grad-CAM (${seen.gradcam}) or feature-map (${seen.maps}) request while drawing`);
    const top = norm(await page.textContent('#pred-sub')).split(' · ')[0];
    const named = norm(await page.textContent('#cam-caption strong'));
    assert(top && named === top, `the map explains "${named}", the bars' answer is "${top}"`);
    assert(!/Bag/.test(await page.textContent('#cam-caption')) || top === 'Bag', 'the caption still names the bag');
  } finally {
    await page.mouse.up();
    page.off('request', onReq);
  }
  await panelsShowCurrent();
});

test('bug 4: a blank canvas and a flat map are no evidence', async () => {
  // The empty pad is not sent at all: the panels say there is nothing to analyse.
  await page.click('#draw-clear');
  await page.waitForFunction(() => document.querySelector('#pred-bars').dataset.input === document.documentElement.dataset.input);
  assert(await page.isVisible('#pred-note') && /empty/i.test(await page.textContent('#pred-note')), 'the bars do not say the canvas is empty');
  assert((await probabilities()).every((v) => v === '—'), `a blank canvas shows probabilities: ${(await probabilities()).join(', ')}`);
  assert(/empty/i.test(await page.textContent('#cam-caption')), `caption: ${await page.textContent('#cam-caption')}`);
  // An uploaded blank picture is sent, and its flat map is called what it is.
  await page.click('#tab-upload');
  const black = makePng(28, 28, 1, () => 0);
  const [res] = await Promise.all([
    page.waitForResponse((r) => isPost('/gradcam')(r) && !r.url().includes('format=json')),
    page.setInputFiles('#file-input', { name: 'black.png', mimeType: 'image/png', buffer: black }),
  ]);
  assert(res.headers()['x-flat'] === 'true', `the API did not flag the flat map: X-Flat ${res.headers()['x-flat']}`);
  await imageLoaded('#cam-img');
  await page.waitForSelector('#cam-box.is-flat');
  const cap = await page.textContent('#cam-caption');
  assert(/flat/i.test(cap) && /no evidence/i.test(cap) && !/warm colours count most/.test(cap), `caption: ${cap}`);
  assert(/flat/i.test(await page.textContent('#cam-legend')), 'the legend does not say the map is flat');
  await sectionShot('desktop-flat', '.card--cam');
  // A real picture is not flat.
  await page.click('#tab-dataset');
  await pickThumb(18);
  await imageLoaded('#cam-img');
  await page.waitForFunction(() => !document.querySelector('#cam-box.is-flat') && /Evidence for/.test(document.querySelector('#cam-caption').textContent));
});

test('clearing the pad while the drawing is still being encoded leaves it empty', async () => {
  await page.click('#tab-draw');
  // Hold back the canvas's PNG encoding until the pad has been cleared.
  await page.evaluate(() => {
    const orig = HTMLCanvasElement.prototype.toBlob;
    window.__held = [];
    window.__restoreToBlob = () => { HTMLCanvasElement.prototype.toBlob = orig; };
    window.__delivered = 0;
    HTMLCanvasElement.prototype.toBlob = function (cb, ...rest) {
      window.__held.push(() => orig.call(this, (blob) => { cb(blob); window.__delivered++; }, ...rest));
    };
  });
  try {
    await drawStroke(line(0.2, 0.5, 0.8, 0.5, 8));
    await page.waitForFunction(() => window.__held.length > 0);
    await page.click('#draw-clear');
    const cleared = await page.evaluate(() => document.documentElement.dataset.input);
    // Now let the old drawing's picture arrive; what its continuation does runs before
    // the page can be polled again.
    const n = await page.evaluate(() => {
      const held = window.__held.splice(0);
      window.__restoreToBlob();
      held.forEach((f) => f());
      return held.length;
    });
    await page.waitForFunction((k) => window.__delivered >= k, n);
    assert(await page.evaluate(() => document.documentElement.dataset.input) === cleared, 'the cleared pad was replaced by the drawing before it');
    assert(/empty/i.test(await page.textContent('#pred-note')) && await page.isVisible('#pred-note'), 'the bars do not say the canvas is empty');
  } finally {
    await page.evaluate(() => window.__restoreToBlob && window.__restoreToBlob());
  }
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
});

test('bug 12: after a bad upload no panel keeps the previous image\'s answer', async () => {
  // (the truncated JPEG of the case before is the current input)
  await page.waitForFunction(() => document.querySelector('#cam-class').options[0].textContent === 'predicted class',
    null, { timeout: 5000 }).catch(() => {});
  const first = await page.$eval('#cam-class', (s) => s.options[0].textContent);
  assert(first === 'predicted class', `the class picker still says "${first}"`);
  await page.waitForSelector('#fm-empty:not([hidden])');
  assert(/could not be read/.test(await page.textContent('#fm-empty')), `feature maps: ${await page.textContent('#fm-empty')}`);
  assert(await page.locator('#fm-box').isHidden(), 'an empty feature-map box is still shown');
  assert((await probabilities()).every((v) => v === '—'), 'the bars keep an answer');
  await sectionShot('desktop-bad-upload', '#inside');
  consoleErrors.splice(0).forEach((e) => assert(/status of 4\d\d|Failed to load resource/.test(e), `unexpected console error: ${e}`));
  // back to a good image clears the error
  await page.click('#tab-dataset');
  await pickThumb(2);
  await page.waitForSelector('#input-error[hidden]', { state: 'attached' });
  await panelsShowCurrent();
});

test('bug 10: a file that is not an image gets the 415 message once', async () => {
  await page.click('#tab-upload');
  const [res] = await Promise.all([
    page.waitForResponse(isPost('/predict')),
    page.setInputFiles('#file-input', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('these are notes, not a picture\n') }),
  ]);
  assert(res.status() === 415, `expected 415, got ${res.status()}`);
  await page.waitForSelector('#input-error:not([hidden])');
  const msg = await page.textContent('#input-error');
  const times = (msg.match(/not a PNG or JPEG image/gi) || []).length;
  assert(times === 1 && /415/.test(msg), `said ${times} times: ${msg}`);
  consoleErrors.splice(0).forEach((e) => assert(/status of 4\d\d|Failed to load resource/.test(e), `unexpected console error: ${e}`));
  await page.click('#tab-dataset');
  await pickThumb(18);
  await panelsShowCurrent();
});

test('bug 8: a network error clears the results and is said once', async () => {
  await panelsShowCurrent();
  await page.route('**/v1/**', (route) => route.abort('connectionrefused'));
  try {
    await page.click('#ds-grid .thumb[data-index="3"]');
    await page.waitForSelector('#net-error:not([hidden])');
    await page.waitForFunction(() => [...document.querySelectorAll('#pred-bars .bar__value')].every((v) => v.textContent === '—') &&
      !document.querySelector('#cam-box.has-image') && !document.querySelector('#fm-box.has-image'));
    const shown = await page.$$eval('body *', (els) => els.filter((e) => e.children.length === 0 && e.getClientRects().length &&
      /did not answer/.test(e.textContent)).length);
    assert(shown === 1, `the network error is shown ${shown} times`);
    await sectionShot('desktop-offline', 'body');
  } finally {
    await page.unroute('**/v1/**');
  }
  consoleErrors.splice(0).forEach((e) => assert(/ERR_CONNECTION_REFUSED|ERR_FAILED|Failed to load resource/.test(e), `unexpected console error: ${e}`));
  await pickThumb(3);
  await panelsShowCurrent();
  assert(await page.locator('#net-error').isHidden(), 'the network error stays after an answer');
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

test('bug 1: the drawing pad follows the model\'s input (ONNX resnet, 36x36 colour)', async () => {
  await chooseModel('resnet');
  await page.click('#tab-draw');
  const hint = await page.textContent('#draw-hint');
  assert(!/Fashion-MNIST/.test(hint) && /36×36 colour/.test(hint), `hint: ${hint}`);
  assert(!/Fashion-MNIST/.test(await page.textContent('#upload-hint')), `upload hint: ${await page.textContent('#upload-hint')}`);
  assert(await page.isVisible('#ink-colour'), 'a colour model offers a colour to draw with');
  await page.fill('#ink-colour', '#ff0000');
  const sent = [];
  const onReq = (r) => { if (r.method() === 'POST' && r.url().includes('/resnet/predict')) sent.push(r); };
  page.on('request', onReq);
  await drawStroke(line(0.2, 0.5, 0.8, 0.5, 10));
  await panelsShowCurrent();
  page.off('request', onReq);
  assert(sent.length >= 1, 'the drawing was not sent');
  const buf = await lastPosted('/resnet/predict');
  const info = pngInfo(buf);
  assert(info && info.width === 36 && info.height === 36, `resnet's pad sent ${JSON.stringify(info)}`);
  const px = await decodeInPage(buf);
  const centre = 4 * (18 * 36 + 18);
  assert(px.px[centre] > 150 && px.px[centre + 1] < 90 && px.px[centre + 2] < 90, `the stroke is not red: ${px.px.slice(centre, centre + 3)}`);
  await sectionShot('desktop-draw-resnet', '.card--input');
  await page.setViewportSize(PHONE);
  await sectionShot('phone-draw-resnet', '.card--input');
  const fits = await page.$eval('#draw-canvas', (c) => c.getBoundingClientRect().right <= window.innerWidth && c.getBoundingClientRect().width > 200);
  assert(fits, 'the pad does not fit the phone');
  await page.setViewportSize(DESKTOP);
});

test('bug 2: a model of other classes is not judged by the Fashion-MNIST label', async () => {
  await page.click('#tab-dataset');
  await pickThumb(18);
  await page.waitForSelector('#pred-truth:not([hidden])');
  const truth = await page.textContent('#pred-truth');
  assert(!/agrees|disagrees|✓|✗/.test(truth) && /not compared/.test(truth), `resnet is judged: ${truth}`);
  await page.waitForFunction(() => document.querySelectorAll('#pred-bars .bar').length === 10);
  await sectionShot('desktop-resnet-prediction', '.card--pred');
});

test('views: dense and output layers as bars, Grad-CAM for every class', async () => {
  await panelsShowCurrent();
  await page.locator('#outputs').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector('#outputs').dataset.input === document.documentElement.dataset.input &&
    document.querySelector('#outputs').dataset.exact === 'true');
  const logits = await page.$$eval('#out-logits .obar__value', (v) => v.map((x) => Number(x.textContent)));
  const probs = await page.evaluate(async () => {
    const r = await fetch('v1/models/resnet/predict?sample=test:18', { method: 'POST' });
    return (await r.json()).predictions[0].probabilities;
  });
  const cam = await page.evaluate(async () => {
    const r = await fetch('v1/models/resnet/gradcam?sample=test:18&format=json', { method: 'POST' });
    return (await r.json()).results[0];
  });
  assert(logits.length === 10, `${logits.length} logit bars`);
  // The shown logits are exact: the explained class's matches the API's, and their
  // softmax gives the API's probabilities back.
  assert(Math.abs(logits[cam.class_index] - cam.logit) < 0.006, `logit ${logits[cam.class_index]} vs ${cam.logit}`);
  const z = logits.reduce((s, l) => s + Math.exp(l), 0);
  logits.forEach((l, i) => assert(Math.abs(Math.exp(l) / z - probs[i]) < 0.01, `softmax of logit ${i}: ${Math.exp(l) / z} vs ${probs[i]}`));
  await page.click('#out-maps-btn');
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#out-maps img')];
    return imgs.length === 10 && imgs.every((i) => i.complete && i.naturalWidth === 112);
  }, null, { timeout: 30000 });
  // A layer without height and width says its values are drawn as bars.
  await page.click('.layer[data-name="fc.Gemm"]');
  assert(/bars/.test(await page.textContent('#fm-empty')), 'the dense layer does not point at the bars');
  await sectionShot('desktop-outputs', '#outputs');
  await page.setViewportSize(PHONE);
  await sectionShot('phone-outputs', '#outputs');
  await page.setViewportSize(DESKTOP);
});

test('views: channels page past 64, RGB filters, the norm choice (ONNX mobilenetv2)', async () => {
  // resnet's first convolution reads the RGB picture: its filters come in colour.
  await page.click('.layer[data-name="stem.stem.0.Conv"]');
  await imageLoaded('#flt-img');
  assert(await page.isChecked('#flt-rgb'), 'the colour view is not offered for an RGB first layer');
  const coloured = await page.evaluate(async () => {
    const img = document.querySelector('#flt-img');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const x = c.getContext('2d'); x.drawImage(img, 0, 0);
    const d = x.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - d[i + 1]) > 20 || Math.abs(d[i + 1] - d[i + 2]) > 20) n++;
    return n;
  });
  assert(coloured > 100, `the colour filters are gray (${coloured} coloured pixels)`);
  await chooseModel('mobilenetv2');
  const layer = 'features.features.5.conv.conv.0.conv.0.0.Conv';
  await page.click(`.layer[data-name="${layer}"]`);
  await imageLoaded('#fm-img');
  await imageLoaded('#flt-img');
  assert(await page.isVisible('#fm-pager') && /0–63 of 96/.test(await page.textContent('#fm-range')), `pager: ${await page.textContent('#fm-range')}`);
  const [res] = await Promise.all([
    page.waitForResponse((r) => isPost('/feature-maps.png')(r) && r.url().includes('count=96')),
    page.click('#fm-next'),
  ]);
  assert(res.ok(), `page 2: ${res.status()}`);
  await imageLoaded('#fm-img');
  assert(/64–95 of 96/.test(await page.textContent('#fm-range')), `range: ${await page.textContent('#fm-range')}`);
  // 32 maps in 4 rows of 8: the page's own grid.
  const nat = await page.$eval('#fm-img', (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
  const tile = (nat.w - 2 * 9) / 8;
  assert(Number.isInteger(tile) && nat.h === 4 * (tile + 2) + 2, `page 2 grid ${nat.w}x${nat.h}`);
  await page.focus('#fm-img');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#lightbox[open]');
  assert(/channel 64 · 65 of 96/.test(await page.textContent('#lightbox-title')), `lightbox: ${await page.textContent('#lightbox-title')}`);
  await page.keyboard.press('Escape');
  // the filters too, and per-filter scaling changes the picture
  await page.click('#flt-next');
  await page.waitForFunction(() => /64–95 of 96/.test(document.querySelector('#flt-range').textContent));
  await imageLoaded('#flt-img');
  const byLayer = await imgDigest('#flt-img');
  await Promise.all([page.waitForResponse((r) => r.url().includes('norm=filter')), page.selectOption('#flt-norm', 'filter')]);
  await imageLoaded('#flt-img');
  assert((await imgDigest('#flt-img')) !== byLayer, 'per-filter scaling drew the same picture');
  assert(/filter min/.test(await page.textContent('#flt-legend')), 'the legend does not follow the scale');
  await page.selectOption('#flt-norm', 'layer');
  await sectionShot('desktop-channels-page2', '#inside');
  await chooseModel('fmnist');
  await panelsShowCurrent();
});

test('views: colour scales, the explained score and the value under the pointer', async () => {
  await page.click('#tab-dataset');
  await pickThumb(18);
  await panelsShowCurrent();
  await imageLoaded('#cam-img');
  const legendText = norm(await page.textContent('#cam-legend'));
  assert(/0/.test(legendText) && /1 \(max\)/.test(legendText), `legend: ${legendText}`);
  const score = norm(await page.textContent('#cam-score-line'));
  const cam = await page.evaluate(async () => (await (await fetch('v1/models/fmnist/gradcam?sample=test:18&format=json', { method: 'POST' })).json()).results[0]);
  assert(score.includes(cam.logit.toFixed(3)) && /probability/.test(score), `score line "${score}" for logit ${cam.logit}`);
  // The value under the pointer is the API's heatmap value of that cell.
  const box = await page.locator('#cam-img').boundingBox();
  const fx = 0.5, fy = 0.25;
  // The first move asks for the numbers; the value shows where the pointer rests once they
  // arrive, without another move: the answer is held back until the move is over.
  const numbers = (u) => u.includes('/gradcam') && u.includes('format=json');
  let release;
  const held = new Promise((r) => { release = r; });
  const matcher = (u) => numbers(String(u));
  await page.route(matcher, async (route) => {
    const answer = await route.fetch();
    await held;
    await route.fulfill({ response: answer });
  });
  await Promise.all([
    page.waitForRequest((r) => numbers(r.url()) && r.method() === 'POST'),
    page.mouse.move(box.x + box.width * fx, box.y + box.height * fy),
  ]);
  assert(await page.getAttribute('#cam-value', 'data-value') === null, 'a value before the numbers came');
  release();
  await page.waitForFunction(() => document.querySelector('#cam-value').dataset.value !== undefined);
  const v = Number(await page.getAttribute('#cam-value', 'data-value'));
  const want = cam.heatmap[Math.floor(fy * cam.height)][Math.floor(fx * cam.width)];
  assert(Math.abs(v - want) < 1e-6, `value under the pointer ${v}, the map has ${want}`);
  await page.unroute(matcher);
  assert(await page.isVisible('#fm-legend') && /its own range/.test(await page.textContent('#fm-legend')), 'no feature-map legend');
  await sectionShot('desktop-cam-legend', '.card--cam');
});

test('views: side by side, the exact input the model saw, invert and the far-from-data note', async () => {
  await page.click('#compare > summary');
  await page.waitForFunction(() => document.querySelector('#compare').dataset.input === document.documentElement.dataset.input &&
    [...document.querySelectorAll('#compare img')].every((i) => i.complete && i.naturalWidth > 0));
  // For the gray network, "what the model saw" is its 28x28 input: the dataset image itself.
  const same = await page.evaluate(async () => {
    const read = async (src) => {
      const bmp = await createImageBitmap(await (await fetch(src)).blob());
      const c = document.createElement('canvas');
      c.width = bmp.width; c.height = bmp.height;
      const x = c.getContext('2d'); x.drawImage(bmp, 0, 0);
      return { w: bmp.width, h: bmp.height, d: x.getImageData(0, 0, bmp.width, bmp.height).data };
    };
    const seen = await read(document.querySelector('#cmp-seen').src);
    const ds = await read('v1/datasets/fashion-mnist/test/18.png');
    if (seen.w !== 28 || seen.h !== 28 || ds.w !== 28) return `sizes ${seen.w}x${seen.h}, ${ds.w}x${ds.h}`;
    let worst = 0;
    for (let i = 0; i < seen.d.length; i += 4) worst = Math.max(worst, Math.abs(seen.d[i] - ds.d[i]));
    return worst;
  });
  assert(same === 0, `the model's view differs from the test image: ${same}`);
  await sectionShot('desktop-compare', '#compare');
  // A dark object on a bright background is far from Fashion-MNIST; inverted, it is not.
  await page.click('#tab-upload');
  const bright = makePng(56, 56, 1, (x, y) => (x > 16 && x < 40 && y > 12 && y < 44 ? 30 : 235));
  await Promise.all([page.waitForResponse(isPost('/predict')),
    page.setInputFiles('#file-input', { name: 'bright.png', mimeType: 'image/png', buffer: bright })]);
  await page.waitForSelector('#input-far:not([hidden])');
  assert(/bright background/.test(await page.textContent('#input-far')), `note: ${await page.textContent('#input-far')}`);
  await sectionShot('desktop-far-note', '.card--input');
  await Promise.all([
    page.waitForResponse(isPost('/predict')),
    page.click('#input-far button'),
  ]);
  const px = await decodeInPage(await lastPosted('/predict'));
  assert(px.px[0] < 40 && px.px[4 * (28 * 56 + 28)] > 200, `not inverted: corner ${px.px[0]}, centre ${px.px[4 * (28 * 56 + 28)]}`);
  await page.waitForFunction(() => /inverted/.test(document.querySelector('#input-label').textContent));
  await page.waitForSelector('#input-far', { state: 'hidden' });
  await page.uncheck('#upload-invert');
  await page.click('#compare > summary');
  await page.click('#tab-dataset');
  await pickThumb(18);
  await panelsShowCurrent();
});

test('views: layer details, a searchable class picker, the view in the address', async () => {
  await page.click('.layer[data-name="conv2d_1"]');
  const dl = norm(await page.textContent('#layer-details'));
  assert(/Kernel3×3/.test(dl.replace(/\s/g, '')) && /Stride\s*1/.test(dl) && /valid/.test(dl) && /kernel 3×3×1×32, bias 32/.test(dl), `details: ${dl}`);
  await page.click('.layer[data-name="max_pooling2d_1"]');
  assert(/Stride\s*2/.test(norm(await page.textContent('#layer-details'))), 'the pool\'s stride');
  await page.click('.layer[data-name="dense_1"]');
  assert(/kernel 1600×64, bias 64/.test(norm(await page.textContent('#layer-details'))), `dense: ${await page.textContent('#layer-details')}`);
  await sectionShot('desktop-details', '.layer-detail');
  // 1000 ImageNet classes in the picker: a search narrows them, Enter picks.
  const names = Object.values(JSON.parse(readFileSync(path.join(ROOT, 'data/imagenet_class_index.json'), 'utf8'))).map((v) => v[1]);
  const picked = await page.evaluate(async (list) => {
    const { createClassPicker } = await import('./static/classpick.js');
    const wrap = document.createElement('div');
    wrap.innerHTML = '<span class="classpick__count"></span><input type="search"><select></select>';
    document.body.append(wrap);
    let chosen = null;
    const p = createClassPicker(wrap, { onChange: (v) => { chosen = v; } });
    p.setClasses(list);
    const search = wrap.querySelector('input');
    const all = wrap.querySelector('select').options.length;
    search.value = 'tabby';
    search.dispatchEvent(new Event('input'));
    const shown = [...wrap.querySelector('select').options].map((o) => o.textContent);
    search.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    const out = { all, shown, chosen, count: wrap.querySelector('.classpick__count').textContent, visible: !search.hidden };
    wrap.remove();
    return out;
  }, names);
  const tabby = names.indexOf('tabby');
  assert(picked.visible && picked.all <= 201, `the search box for 1000 classes (${picked.all} options listed at once)`);
  assert(picked.shown.length === 2 && picked.shown[1] === `${tabby} · tabby` && picked.chosen === String(tabby), `search: ${JSON.stringify(picked)}`);
  // The view travels in the address and comes back on reload.
  await page.click('.layer[data-name="conv2d_2"]');
  await Promise.all([page.waitForResponse(isPost('/gradcam')), page.selectOption('#cam-class', '3')]);
  await page.waitForFunction(() => /layer=conv2d_2/.test(location.hash) && /class=3/.test(location.hash) && /sample=test%3A18/.test(location.hash));
  const hash = await page.evaluate(() => location.hash);
  await page.goto('about:blank');
  await page.goto(`${BASE}/${hash}`);
  await page.waitForSelector('html[data-ready="true"]');
  await page.waitForFunction(() => document.querySelector('.layer[data-name="conv2d_2"]')?.getAttribute('aria-pressed') === 'true' &&
    document.querySelector('#cam-class').value === '3');
  await imageLoaded('#cam-img');
  assert(/Dress/.test(await page.textContent('#cam-caption')), `class 3 is Dress: ${await page.textContent('#cam-caption')}`);
  assert(/test image #18/.test(await page.textContent('#input-label')), 'the image did not come back');
  await page.goto('about:blank');
  await page.goto(`${BASE}/`);
  await page.waitForSelector('html[data-ready="true"]');
  await imageLoaded('#cam-img');
});

test('bring your own model: the graph of a branched model, drawn node by node', async () => {
  await chooseModel('resnet');
  await page.waitForFunction(() => document.querySelectorAll('#graph-svg .gnode').length > 20);
  const g = await page.evaluate(() => ({
    nodes: document.querySelectorAll('#graph-svg .gnode').length,
    edges: document.querySelectorAll('#graph-svg .gedge').length,
    skips: document.querySelectorAll('#graph-svg .gedge--skip').length,
    adds: [...document.querySelectorAll('#graph-svg .gnode__type')].filter((t) => t.textContent === 'Add').length,
    sub: document.querySelector('#graph-sub').textContent,
  }));
  const summary = await api('GET', '/v1/models/resnet');
  const layers = summary.data.layers;
  const want = layers.reduce((n, l) => n + l.inputs.length, 0);
  assert(g.nodes === layers.length + 1, `one box per node and the input: ${g.nodes} for ${layers.length}`);
  assert(g.edges === want, `one edge per input read: ${g.edges}, want ${want}`);
  assert(g.adds === 3 && g.skips >= 1 && /3 where branches join/.test(g.sub), `the residual branches show: ${JSON.stringify(g)}`);
  // A node picks its layer for the views above, and the strip follows.
  const target = layers.find((l) => l.type === 'Add');
  await page.click(`#graph-svg .gnode[data-name="${target.name}"]`);
  await page.waitForFunction((n) => document.querySelector(`.layer[data-name="${n}"]`).getAttribute('aria-pressed') === 'true', target.name);
  assert(await page.$eval(`#graph-svg .gnode[data-name="${target.name}"]`, (e) => e.classList.contains('is-selected')), 'the node is marked');
  await imageLoaded('#fm-img');
  await page.locator('#graph').scrollIntoViewIfNeeded();
  await sectionShot('desktop-graph-resnet', '#graph');
});

test('bring your own model: upload a Keras file with labels in the page, see its prediction and Grad-CAM', async () => {
  await page.click('#model-add');
  await page.waitForSelector('#model-upload-dialog[open]');
  // Dropped on the dialog, as a file from the desktop would be.
  const bytes = readFileSync(path.join(ROOT, 'tests/data/keras/k2_functional.h5')).toString('base64');
  await page.evaluate((b64) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([data], 'k2_functional.h5', { type: 'application/x-hdf5' }));
    document.querySelector('#model-upload-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, bytes);
  assert(await page.inputValue('#model-upload-name') === 'k2_functional', 'the name comes from the file');
  await page.fill('#model-upload-name', 'compass');
  await page.fill('#model-upload-labels', 'north\neast\nsouth\nwest\n');
  await page.selectOption('#model-upload-fit', 'crop');
  await page.fill('#model-upload-desc', 'four directions');
  await sectionShot('desktop-upload-dialog', '#model-upload-dialog');
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/models') && r.request().method() === 'POST'),
    page.click('#model-upload-send'),
  ]);
  assert(res.status() === 201, `upload answered ${res.status()}`);
  await page.waitForFunction(() => document.querySelector('#model-compass') && document.querySelector('#model-compass').checked);
  await page.waitForFunction(() => /compass/.test(document.querySelector('#model-meta').textContent) &&
    /four directions/.test(document.querySelector('#model-meta').textContent) && /centre-cropped/.test(document.querySelector('#model-meta').textContent));
  // The pad and the hints follow the new model; no Fashion-MNIST words for it.
  for (const id of ['draw-hint', 'upload-hint', 'upload-invert-text']) {
    const t = await page.textContent(`#${id}`);
    assert(!/Fashion-MNIST/.test(t), `#${id} speaks of Fashion-MNIST: ${t}`);
  }
  assert(/10×10 colour/.test(await page.textContent('#upload-hint')), 'the upload hint names the input');
  // A photo through the new model: its labels in the bars, a Grad-CAM picture.
  await page.click('#tab-upload');
  const [pred] = await Promise.all([
    page.waitForResponse(isPost('/compass/predict')),
    page.setInputFiles('#file-input', path.join(ROOT, 'tests/data/photos/chelsea.png')),
  ]);
  assert(pred.ok(), `predict answered ${pred.status()}`);
  assert(/fit=crop/.test(pred.headers()['x-preprocessing'] || ''), `the answer names its preprocessing: ${pred.headers()['x-preprocessing']}`);
  await panelsShowCurrent();
  const labels = await page.$$eval('#pred-bars .bar', (rows) => rows.map((r) => r.textContent));
  assert(labels.length === 4 && ['north', 'east', 'south', 'west'].every((w) => labels.some((t) => t.includes(w))), `bars: ${labels.join(' | ')}`);
  assert(await page.isHidden('#pred-truth'), 'an upload is not compared with a Fashion-MNIST label');
  await imageLoaded('#cam-img');
  const cam = await page.evaluate(() => ({ w: document.querySelector('#cam-img').naturalWidth, src: document.querySelector('#cam-img').src }));
  assert(cam.w > 0, 'a Grad-CAM picture');
  const classes = await page.$$eval('#cam-class option', (o) => o.map((x) => x.textContent));
  assert(classes.some((c) => /west/.test(c)), `the class picker has the labels: ${classes.join(', ')}`);
  await shot('desktop-byom-model');
  await page.locator('#graph').scrollIntoViewIfNeeded();
  await sectionShot('desktop-graph-compass', '#graph');
});

test('bring your own model: a refused file says why and adds nothing; a model is removed from the page', async () => {
  await page.click('#model-add');
  await page.waitForSelector('#model-upload-dialog[open]');
  await page.setInputFiles('#model-upload-file', { name: 'broken2.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from('not an ONNX file at all') });
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/models') && r.request().method() === 'POST'),
    page.click('#model-upload-send'),
  ]);
  assert(res.status() === 422, `a damaged file: ${res.status()}`);
  await page.waitForSelector('#model-upload-error:not([hidden])');
  assert(/not an ONNX model/.test(await page.textContent('#model-upload-error')), `the reason: ${await page.textContent('#model-upload-error')}`);
  consoleErrors.splice(0); // the browser logs the 422 as a failed resource
  await page.click('#model-upload-cancel');
  const list = await api('GET', '/v1/models');
  assert(!list.data.models.some((m) => m.name === 'broken2'), 'nothing listed');
  // The model the service cannot read is in the picker with its reason.
  const broken = list.data.models.find((m) => m.name === 'broken');
  assert(broken && broken.status === 'unavailable' && /broken\.onnx/.test(broken.reason), 'the damaged file of the folder is listed as unavailable');
  await page.click('label[for="model-broken"]');
  await page.waitForSelector('#model-error:not([hidden])');
  assert(/broken/.test(await page.textContent('#model-error')), 'picking it shows why');
  consoleErrors.splice(0);
  assert(await page.isChecked('#model-compass'), 'the page stays on the model that works');
  assert(/Remove broken/.test(await page.textContent('#model-remove-btn')), 'the file that cannot be served can be removed from here');
  await sectionShot('desktop-unavailable-model', 'header.top');
  // Removing the uploaded model.
  await chooseModel('fmnist');
  await chooseModel('compass');
  await page.waitForFunction(() => /Remove compass/.test(document.querySelector('#model-remove-btn')?.textContent || ''));
  await page.click('#model-remove-btn');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/models/compass') && r.request().method() === 'DELETE'),
    page.click('#model-remove-yes'),
  ]);
  await page.waitForFunction(() => !document.querySelector('#model-compass') && document.querySelector('#model-fmnist').checked);
  assert(!(await api('GET', '/v1/models')).data.models.some((m) => m.name === 'compass'), 'gone from the service');
  assert(await page.isHidden('#model-remove-btn') || !(await page.$('#model-remove-btn')), 'the notebook\'s model offers no removal');
});

// The numbers behind the pictures (values.mjs): shared scales and strongest channels,
// a dense layer's values, every layer's settings and its weights' histograms.
for (const [name, fn] of valuesCases({ page: () => page, assert, isPost, imageLoaded, sectionShot, panelsShowCurrent, chooseModel })) test(name, fn);

test('bug 5: training asks before it replaces the served model', async () => {
  await page.locator('#train').scrollIntoViewIfNeeded();
  const version = Number(/version (\d+)/.exec(await page.textContent('#model-meta'))[1]);
  let posted = 0;
  const onReq = (r) => { if (r.url().endsWith('/train') && r.method() === 'POST') posted++; };
  page.on('request', onReq);
  await page.click('#train-quick');
  await page.click('#train-start');
  await page.waitForSelector('#train-confirm[open]');
  const text = norm(await page.textContent('#train-confirm-text'));
  assert(new RegExp(`fmnist version ${version}`).test(text) && /no way back/.test(text) && /everyone/.test(text), `the question: ${text}`);
  await sectionShot('desktop-train-confirm', '#train-confirm');
  await page.click('#train-confirm-no');
  await page.waitForSelector('#train-confirm', { state: 'hidden' });
  assert(/Not started/.test(await page.textContent('#train-notice')), 'no word that nothing started');
  page.off('request', onReq);
  assert(posted === 0, `a training job was started without a yes (${posted})`);
  assert(Number(/version (\d+)/.exec(await page.textContent('#model-meta'))[1]) === version, 'the version moved');
});

test('a short training job runs to 100 % with charts and the page switches version', async () => {
  const version0 = await page.textContent('#model-meta').then((t) => Number(/version (\d+)/.exec(t)[1]));
  await page.locator('#train').scrollIntoViewIfNeeded();
  await page.click('#train-quick');
  await page.fill('input[name="train_limit"]', '6000');
  await page.fill('input[name="test_limit"]', '1000');
  await page.click('#train-start');
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
    confirmTraining(),
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
  assert(norm(await page.textContent('#train-percent')) === '100 %', 'percent label is not 100 %');
  assert(await page.locator('#chart-loss .chart__dot').count() >= 1, 'no point on the loss chart');
  assert(await page.locator('#chart-acc .chart__dot').count() >= 2, 'no training and test accuracy points');
  await page.waitForSelector('#train-notice:not([hidden])');
  const notice = norm(await page.textContent('#train-notice'));
  // Versions count up across the models of one process: the new one is higher.
  const version1 = Number((/version (\d+)/.exec(notice) || [])[1]);
  assert(version1 > version0, `notice: ${notice} (was version ${version0})`);
  await page.waitForFunction((v) => new RegExp(`version ${v}\\b`).test(document.querySelector('#model-meta').textContent), version1);
  assert(await page.locator('#model-changed').isHidden(), 'the page\'s own training is not news from elsewhere');
  await sectionShot('desktop-training-done', '#train');
});

test('bug 6: a test accuracy measured on a subset says so', async () => {
  // The job above measured on the first 1,000 test images.
  const meta = norm(await page.textContent('#model-meta'));
  assert(/test accuracy [\d.]+ % on 1,000 of 10,000 test images/.test(meta), `header: ${meta}`);
  const s = await api('GET', '/v1/models/fmnist');
  assert(s.data.training && s.data.training.test_images === 1000, `training block: ${JSON.stringify(s.data.training)}`);
  // The job's result is the whole test set's figure, and says so.
  const jobs = (await api('GET', '/v1/jobs')).data.jobs.filter((x) => x.state === 'succeeded' && x.params && x.params.test_limit === 1000);
  const res = jobs.length ? jobs[jobs.length - 1].result : null;
  assert(res && res.test_images === 10000, `the job's result counts the whole test set: ${JSON.stringify(res)}`);
  const notice = norm(await page.textContent('#train-notice'));
  const shown = (res.test_accuracy * 100).toFixed(1);
  assert(notice.includes(`test accuracy ${shown} % on all 10,000 test images (the epochs counted the first 1,000)`), `notice: ${notice}`);
  assert(await page.locator('#chart-acc .chart__legend text', { hasText: 'test (1,000 images)' }).count() === 1, 'the test curve is not labelled as a subset');
});

test('views: charts with axis titles, a y range from the data, smoothing and values under the pointer', async () => {
  // Per-step values from running means: no jump at an epoch's start.
  const steps = await page.evaluate(async () => {
    const { stepsFromRunning, smooth, niceRange } = await import('./static/charts.js');
    const s = stepsFromRunning([
      { x: 0.25, epoch: 1, batch: 10, loss: 1.0 }, { x: 0.5, epoch: 1, batch: 20, loss: 0.8 },
      { x: 1.1, epoch: 2, batch: 5, loss: 0.5 }, { x: 1.3, epoch: 2, batch: 15, loss: 0.45 }], 'loss');
    return { s, sm: smooth([{ x: 0, y: 1 }, { x: 1, y: 0 }], 0.5), r: niceRange(0.82, 0.93) };
  });
  const ys = steps.s.map((p) => Math.round(p.y * 1e6) / 1e6);
  assert(ys.join() === '1,0.6,0.5,0.425', `steps ${ys.join()}`); // (0.8*20-1*10)/10, then 0.5, (0.45*15-0.5*5)/10
  assert(Math.abs(steps.sm[0].y - 1) < 1e-12 && Math.abs(steps.sm[1].y - 1 / 3) < 1e-12, `smoothing ${JSON.stringify(steps.sm)}`);
  assert(steps.r.min === 0.8 && steps.r.max === 0.95, `range ${JSON.stringify(steps.r)}`);
  assert(await page.locator('#chart-loss .chart__axis', { hasText: 'epoch' }).count() === 1 &&
    await page.locator('#chart-loss .chart__axis', { hasText: 'loss' }).count() === 1, 'axis titles');
  // Accuracies between 82 % and 93 %: the axis follows the data and does not start at 0
  // (drawn here from fixed data: the run above may have ended anywhere).
  const lowest = await page.evaluate(async () => {
    const { drawChart } = await import('./static/charts.js');
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.style.width = '320px';
    svg.style.height = '210px';
    document.body.append(svg);
    drawChart(svg, { series: [{ name: 'test', points: [{ x: 1, y: 0.82 }, { x: 2, y: 0.93 }] }], xMax: 2, clamp: [0, 1],
                     format: (v) => `${(v * 100).toFixed(0)} %` });
    const ticks = [...svg.querySelectorAll('.chart__grid > text')].filter((x) => /%/.test(x.textContent));
    svg.remove();
    return Math.min(...ticks.map((x) => parseFloat(x.textContent)));
  });
  assert(lowest === 80, `the accuracy axis starts at ${lowest}, not at 80`);
  const box = await page.locator('#chart-acc .chart__catch').boundingBox();
  await page.mouse.move(box.x + box.width - 3, box.y + box.height / 2);
  await page.waitForFunction(() => document.querySelector('#chart-acc').dataset.hover);
  const hover = norm(await page.getAttribute('#chart-acc', 'data-hover'));
  // The pointer at the right end: the last epoch's values, or the last steps' just before it.
  assert(/^epoch [\d.]+: /.test(hover) && /test \(1,000 images\) \d/.test(hover), `hover: ${hover}`);
  await sectionShot('desktop-charts', '#train');
});

for (const [name, fn] of testLossCases({ page: () => page, assert })) test(name, fn);

test('bug 7: a model changed elsewhere is noticed from the version in the answers', async () => {
  const before = Number(/version (\d+)/.exec(await page.textContent('#model-meta'))[1]);
  // Another client trains the model; this tab is told nothing.
  const started = await api('POST', '/v1/models/fmnist/train', { epochs: 1, train_limit: 256, test_limit: 100, seed: 3 });
  assert(started.status === 202, `train: ${started.status}`);
  let job = started.data;
  for (let i = 0; i < 600 && /queued|running/.test(job.state); i++) {
    await wait(100);
    job = (await api('GET', `/v1/jobs/${job.id}`)).data;
  }
  assert(job.state === 'succeeded', `the job ended ${job.state}`);
  await page.click('#tab-dataset');
  await pickThumb(5);
  await page.waitForFunction((v) => new RegExp(`version ${v}\\b`).test(document.querySelector('#model-meta').textContent), job.result.version);
  await page.waitForSelector('#model-changed:not([hidden])');
  const note = norm(await page.textContent('#model-changed'));
  assert(new RegExp(`version ${before} → ${job.result.version}`).test(note), `notice: ${note}`);
  assert(/on 100 of 10,000 test images/.test(await page.textContent('#model-meta')), 'the new version\'s subset is named');
  await panelsShowCurrent();
  await shot('desktop-model-changed');
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
    await page.click('#train-start');
    const [denied] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
      confirmTraining(),
    ]);
    assert(denied.status() === 401, `expected 401, got ${denied.status()}`);
    await page.waitForSelector('#token-box:not([hidden])');
    assert(/401/.test(await page.textContent('#train-error')), 'the 401 is not shown');
    // bug 11: a wrong token is refused, said so, and not kept as "saved".
    await page.fill('#token-input', 'not-the-token');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
      page.click('#token-save'),
    ]);
    assert(refused.status() === 401, `a wrong token: ${refused.status()}`);
    await page.waitForSelector('#token-box:not([hidden])');
    assert(/refused/.test(await page.textContent('#train-error')) && /refused/.test(await page.textContent('#token-why')), `message: ${await page.textContent('#train-error')} / ${await page.textContent('#token-why')}`);
    assert(await page.locator('#token-state').isHidden(), 'a refused token is shown as saved');
    assert(!(await page.evaluate(() => sessionStorage.getItem('convscope.token'))), 'a refused token is kept');
    await sectionShot('desktop-token-refused', '#train');
    await page.fill('#token-input', TOKEN);
    const [started] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/fmnist/train')),
      page.click('#token-save'),
    ]);
    assert(started.status() === 202, `with the token: ${started.status()}`);
    assert(started.request().headers().authorization === `Bearer ${TOKEN}`, 'no bearer header');
    assert(await page.evaluate(() => sessionStorage.getItem('convscope.token')) === TOKEN, 'token not kept in sessionStorage');
    await page.waitForSelector('#token-state:not([hidden])');
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

test('bring your own model on a server with a token: the dialog asks for it, removal too', async () => {
  if (!LOCKED) throw new Error('run.sh passes --locked BASE for this case');
  const main = page;
  page = await ctx.newPage();
  try {
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(LOCKED + '/', { waitUntil: 'load' });
    await page.waitForSelector('html[data-ready="true"]');
    await page.evaluate(() => sessionStorage.clear());
    await page.click('#model-add');
    await page.setInputFiles('#model-upload-file', path.join(ROOT, 'tests/data/models/resnet.onnx'));
    await page.fill('#model-upload-name', 'locked-resnet');
    const [denied] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models') && r.request().method() === 'POST'),
      page.click('#model-upload-send'),
    ]);
    assert(denied.status() === 401, `no token: ${denied.status()}`);
    await page.waitForSelector('#model-upload-token:not([hidden])');
    await page.fill('#model-upload-token-input', TOKEN);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models') && r.request().method() === 'POST'),
      page.click('#model-upload-send'),
    ]);
    assert(res.status() === 201, `with the token: ${res.status()}`);
    assert(res.request().headers().authorization === `Bearer ${TOKEN}`, 'no bearer header');
    await page.waitForFunction(() => document.querySelector('#model-locked-resnet')?.checked);
    // Removal with the token the tab keeps; then without it, asked for.
    await page.evaluate(() => sessionStorage.clear());
    await page.click('#model-remove-btn');
    const [no] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/locked-resnet') && r.request().method() === 'DELETE'),
      page.click('#model-remove-yes'),
    ]);
    assert(no.status() === 401, `remove without the token: ${no.status()}`);
    await page.waitForSelector('#model-remove-token:not([hidden])');
    await page.fill('#model-remove-token', TOKEN);
    const [yes] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/v1/models/locked-resnet') && r.request().method() === 'DELETE'),
      page.click('#model-remove-yes'),
    ]);
    assert(yes.status() === 200, `remove with the token: ${yes.status()}`);
    await page.waitForFunction(() => !document.querySelector('#model-locked-resnet'));
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
  await page.click('.layer[data-name="conv2d_1"]');
  await page.focus('.layer[data-name="conv2d_1"]');
  await page.keyboard.press('ArrowRight');
  assert(await page.getAttribute('.layer[data-name="batch_normalization_1"]', 'aria-pressed') === 'true', 'arrow key did not select the next layer');
  const unlabelled = await page.$$eval('input, select, button, canvas', (els) => els.filter((e) => {
    if (!e.getClientRects().length && !e.labels?.length) return false;
    const name = e.getAttribute('aria-label') || e.labels?.[0]?.textContent || e.textContent || e.title;
    return !(name && name.trim());
  }).map((e) => e.outerHTML.slice(0, 80)));
  assert(unlabelled.length === 0, `controls without a name: ${unlabelled.join(' | ')}`);
  await page.click('#tab-dataset');
});

test('bug 14: heatmap-only rests the slider, weight 0 is said, focus is not selection, one tab stop per grid, Home and End', async () => {
  await page.locator('.card--cam').scrollIntoViewIfNeeded();
  await Promise.all([page.waitForResponse(isPost('/gradcam')), page.check('#cam-heatmap')]);
  assert(await page.isDisabled('#cam-alpha'), 'the weight slider is live in heatmap-only mode');
  await Promise.all([page.waitForResponse(isPost('/gradcam')), page.uncheck('#cam-heatmap')]);
  assert(!(await page.isDisabled('#cam-alpha')), 'the slider stays off');
  // weight 0: the caption does not promise colours
  const [res] = await Promise.all([
    page.waitForResponse((r) => isPost('/gradcam')(r) && new URL(r.url()).searchParams.get('alpha') === '0'),
    page.$eval('#cam-alpha', (s) => { s.value = '0'; s.dispatchEvent(new Event('input', { bubbles: true })); }),
  ]);
  assert(res.ok(), `alpha 0: ${res.status()}`);
  await imageLoaded('#cam-img');
  await page.waitForFunction(() => /weight 0/.test(document.querySelector('#cam-caption').textContent));
  assert(!/warm colours/.test(await page.textContent('#cam-caption')), `caption: ${await page.textContent('#cam-caption')}`);
  await page.$eval('#cam-alpha', (s) => { s.value = '0.7'; s.dispatchEvent(new Event('input', { bubbles: true })); });
  await page.waitForFunction(() => /warm colours/.test(document.querySelector('#cam-caption').textContent));
  // One tab stop in the image grid; arrows move, Home/End jump.
  await pickThumb(18);
  const stops = await page.$$eval('#ds-grid .thumb', (t) => t.filter((b) => b.tabIndex >= 0).length);
  assert(stops === 1, `${stops} tab stops in the thumbnail grid`);
  await page.focus('#ds-random');
  await page.keyboard.press('Tab');
  assert(await page.evaluate(() => document.activeElement.dataset.index) === '18', 'Tab does not land on the chosen thumbnail');
  await page.keyboard.press('ArrowRight');
  assert(await page.evaluate(() => document.activeElement.dataset.index) === '19', 'the arrow key does not move in the grid');
  await page.keyboard.press('Tab');
  assert(await page.evaluate(() => !document.activeElement.closest('#ds-grid')), 'Tab does not leave the grid');
  await page.keyboard.press('Shift+Tab');
  assert(await page.evaluate(() => document.activeElement.dataset.index) === '19', 'Shift+Tab does not come back to the focused thumbnail');
  // focus looks different from selection
  const look = await page.evaluate(() => {
    const f = document.activeElement, s = document.querySelector('#ds-grid .thumb[aria-pressed="true"]');
    const cf = getComputedStyle(f), cs = getComputedStyle(s);
    return { fOutline: cf.outlineStyle, sOutline: cs.outlineStyle, fBg: cf.backgroundColor, sBg: cs.backgroundColor };
  });
  assert(look.fOutline === 'dashed' && look.sOutline !== 'dashed' && look.fBg !== look.sBg, `focus and selection look alike: ${JSON.stringify(look)}`);
  await sectionShot('desktop-focus', '.card--input');
  await page.keyboard.press('End');
  assert(await page.evaluate(() => document.activeElement.dataset.index) === '23', 'End in the grid');
  // Home and End in the layer strip
  await page.click('.layer[data-name="conv2d_2"]');
  await page.focus('.layer[data-name="conv2d_2"]');
  await page.keyboard.press('End');
  assert(await page.getAttribute('.layer[data-name="dense_2"]', 'aria-pressed') === 'true', 'End did not pick the last layer');
  await page.keyboard.press('Home');
  assert(await page.getAttribute('.layer[data-name="conv2d_1"]', 'aria-pressed') === 'true', 'Home did not pick the first layer');
  const stripStops = await page.$$eval('#layer-strip .layer', (t) => t.filter((b) => b.tabIndex >= 0).length);
  assert(stripStops === 1, `${stripStops} tab stops in the layer strip`);
});

test('bug 13 and phone width: no sideways scrolling, percentages on one line, screenshots', async () => {
  // The formatting itself: a small class keeps a digit, the sign never stands alone.
  const f = await page.evaluate(async () => {
    const { pct } = await import('./static/ui.js');
    return [pct(0.004, 0), pct(0.89), pct(0), pct(0.00004), pct(0.99999)];
  });
  assert(f.join('|') === [`0.4${NBSP}%`, `89.0${NBSP}%`, `0${NBSP}%`, `<${NBSP}0.01${NBSP}%`, `>${NBSP}99.9${NBSP}%`].join('|'), `pct: ${f.map((s) => JSON.stringify(s)).join(' ')}`);
  await page.setViewportSize(PHONE);
  await page.goto('about:blank');
  await page.goto(BASE + '/', { waitUntil: 'load' });
  await page.waitForSelector('html[data-ready="true"]');
  await imageLoaded('#cam-img');
  await imageLoaded('#fm-img');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  const wrapped = await page.$$eval('#pred-bars .bar__value, #out-probs .obar__value, #pred-sub', (els) => els.filter((e) => {
    const lh = parseFloat(getComputedStyle(e).lineHeight) || parseFloat(getComputedStyle(e).fontSize) * 1.5;
    return e.getBoundingClientRect().height > lh * 1.5;
  }).map((e) => e.textContent));
  assert(wrapped.length === 0, `wrapped at phone width: ${wrapped.join(' | ')}`);
  await shot('phone-top');
  await sectionShot('phone-cam', '.card--cam');
  await sectionShot('phone-prediction', '.card--pred');
  await sectionShot('phone-inside', '#inside');
  await page.click('#compare > summary');
  await page.waitForFunction(() => [...document.querySelectorAll('#compare img')].every((i) => i.complete && i.naturalWidth > 0));
  await sectionShot('phone-compare', '#compare');
  await sectionShot('phone-train', '#train');
  await page.click('#tab-draw');
  await sectionShot('phone-draw', '.card--input');
  const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow2 <= 0, `with every panel open the page is ${overflow2}px wider than the phone`);
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
    await ctx.addInitScript(recordPosts);
    page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(20000);
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    for (const c of cases) {
      if (ONLY && !c.name.includes(ONLY) && cases.indexOf(c) !== 0) continue;
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
          await page.mouse.up();
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
  console.error('usage: node e2e.mjs --base http://127.0.0.1:PORT [--root DIR] [--shots DIR] [--only TEXT]');
  console.log('[web] 0 ok, 1 failed');
  process.exit(2);
}
main();

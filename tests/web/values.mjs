// Browser cases for the numbers behind the pictures (values.js, channels.js, layerbars.js,
// weights.js, details.js, train.js), each checked against the API's own answer:
//   - feature maps on one shared scale (the brightest pixel of the strongest map is where
//     the layer's range puts it) and strongest first (the tiles named by the API's order);
//   - a hidden dense layer's values as bars (the largest unit and the value under the
//     pointer are the API's);
//   - layer settings from the summary for every kind (a pool's stride, a slope, a rate, an
//     ONNX convolution's stride and padding) and a histogram of each weight tensor (the
//     bar under the pointer says the API's count);
//   - the test-loss curve in the loss chart after a training job (its value under the
//     pointer is the summary's test_loss).
// e2e.mjs registers the first three after the layer-details case (fmnist, test image 18)
// and the last after the charts case.

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

export function valuesCases({ page, assert, isPost, imageLoaded, sectionShot, panelsShowCurrent, chooseModel }) {
  const p = () => page();
  const norm = (s) => String(s).replace(/\u00a0/g, ' ').replace(/\s+/g, ' ').trim();
  const activations = (layer, query = '') => p().evaluate(async ([l, q]) => {
    const r = await fetch(`v1/models/fmnist/layers/${l}/activations?sample=test:18${q}`, { method: 'POST' });
    return r.json();
  }, [layer, query]);
  const pick = async (name) => {
    await p().click(`.layer[data-name="${name}"]`);
    await p().waitForFunction((n) => document.querySelector('#layer-details').dataset.layer === n, name);
  };
  // The gray level of a PNG at (x, y) of an <img> on the page, decoded by the browser.
  const maxGray = (sel, x0, y0, w, h) => p().evaluate(([s, x, y, ww, hh]) => {
    const img = document.querySelector(s);
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(x, y, ww, hh).data;
    let m = 0;
    for (let i = 0; i < d.length; i += 4) m = Math.max(m, d[i]);
    return m;
  }, [sel, x0, y0, w, h]);

  return [
    ['views: feature maps on one shared scale and strongest first', async () => {
      await p().click('#tab-dataset');
      await p().fill('#ds-index', '18');
      await Promise.all([p().waitForResponse(isPost('/predict')), p().click('#ds-goto button')]);
      await panelsShowCurrent();
      await pick('leaky_re_lu_2');
      await imageLoaded('#fm-img');
      await p().locator('#fm-view').scrollIntoViewIfNeeded();
      const byMean = await activations('leaky_re_lu_2', '&order=mean');
      const [res] = await Promise.all([
        p().waitForResponse((r) => isPost('/feature-maps.png')(r) && r.url().includes('order=mean')),
        p().selectOption('#fm-order', 'mean'),
      ]);
      assert(res.ok(), `ordered maps: ${res.status()}`);
      await imageLoaded('#fm-img');
      await p().waitForFunction(() => document.querySelector('#fm-box').dataset.order === 'mean');
      assert(/strongest first/.test(await p().textContent('#fm-note')), `note: ${await p().textContent('#fm-note')}`);
      // The first tile is the channel the API ranks first, named with its numbers.
      const box = await p().locator('#fm-img').boundingBox();
      await p().mouse.move(box.x + 6, box.y + 6);
      const first = byMean.order[0];
      const hover = await (await p().waitForFunction((c) => {
        const t = document.querySelector('#fm-hover').textContent;
        return new RegExp(`^channel ${c} · mean \\S+`).test(t) && t;
      }, first)).jsonValue();
      const mean = Number(/mean (\S+)/.exec(hover)[1]);
      assert(Math.abs(mean - byMean.channels.mean[first]) <= Math.abs(byMean.channels.mean[first]) * 0.01, `hover ${hover} vs mean ${byMean.channels.mean[first]}`);
      await p().focus('#fm-img');
      await p().keyboard.press('Enter');
      await p().waitForSelector('#lightbox[open]');
      assert(new RegExp(`channel ${first} · 1 of 64`).test(await p().textContent('#lightbox-title')), `lightbox: ${await p().textContent('#lightbox-title')}`);
      await p().keyboard.press('ArrowRight');
      assert(new RegExp(`channel ${byMean.order[1]} · 2 of 64`).test(await p().textContent('#lightbox-title')), 'the next tile is the second strongest');
      await p().keyboard.press('Escape');
      // One scale for the layer: black is its lowest value, white its highest; the
      // strongest map's brightest pixel sits where its own maximum falls on that scale.
      const [shared] = await Promise.all([
        p().waitForResponse((r) => isPost('/feature-maps.png')(r) && r.url().includes('norm=layer')),
        p().selectOption('#fm-norm', 'layer'),
      ]);
      await imageLoaded('#fm-img');
      await p().waitForFunction(() => document.querySelector('#fm-legend').dataset.low !== undefined);
      const low = Number(await p().getAttribute('#fm-legend', 'data-low')), high = Number(await p().getAttribute('#fm-legend', 'data-high'));
      assert(Math.abs(low - byMean.min) < 1e-5 && Math.abs(high - byMean.max) < 1e-5, `legend ${low}..${high}, the layer ${byMean.min}..${byMean.max}`);
      assert(/One scale for every map/.test(await p().textContent('#fm-legend')), 'the legend does not say the scale is shared');
      const geo = await p().$eval('#fm-img', (i) => ({ w: i.naturalWidth, h: i.naturalHeight }));
      const cols = Number(new URL(shared.url()).searchParams.get('cols'));
      const tile = (geo.w - 2 * (cols + 1)) / cols;
      const got = await maxGray('#fm-img', 2, 2, tile, tile);
      const u = (byMean.channels.max[first] - low) / (high - low);
      const want = Math.min(255, Math.floor(256 * u));
      assert(Math.abs(got - want) <= 2, `the strongest map's brightest pixel ${got}, the shared scale puts it at ${want}`);
      const perMap = await p().evaluate(() => document.querySelector('#fm-box').dataset.norm);
      assert(perMap === 'layer', 'the grid is not marked as shared');
      await sectionShot('desktop-fm-shared-strongest', '#fm-view');
      await p().setViewportSize(PHONE);
      await p().locator('#fm-view').scrollIntoViewIfNeeded();
      await sectionShot('phone-fm-shared-strongest', '#fm-view');
      await p().setViewportSize(DESKTOP);
      await Promise.all([p().waitForResponse(isPost('/feature-maps.png')), p().selectOption('#fm-norm', 'map')]);
      await Promise.all([p().waitForResponse(isPost('/feature-maps.png')), p().selectOption('#fm-order', 'index')]);
      await imageLoaded('#fm-img');
    }],

    ['views: a hidden dense layer\'s values as bars', async () => {
      await pick('dense_1');
      const api = await activations('dense_1');
      await p().waitForFunction(() => !document.querySelector('#vals-view').hidden &&
        document.querySelector('#vals-view').dataset.input === document.documentElement.dataset.input &&
        document.querySelector('#vals-view').dataset.layer === 'dense_1');
      assert(await p().isHidden('#fm-view'), 'the empty feature-map panel is still shown for a dense layer');
      const best = api.values.reduce((b, v, i) => (v > api.values[b] ? i : b), 0);
      const top = await p().getAttribute('#vals-top li:first-child', 'data-unit');
      assert(Number(top) === best, `the largest unit: page ${top}, API ${best}`);
      // The unit under the pointer and its value.
      await p().locator('#vals-view').scrollIntoViewIfNeeded();
      const box = await p().locator('#vals-canvas').boundingBox();
      const k = 40;
      await p().mouse.move(box.x + box.width * (k + 0.5) / api.values.length, box.y + box.height / 2);
      await p().waitForFunction(() => document.querySelector('#vals-hover').dataset.unit !== undefined);
      const unit = Number(await p().getAttribute('#vals-hover', 'data-unit'));
      const value = Number(await p().getAttribute('#vals-hover', 'data-value'));
      assert(unit === k && Math.abs(value - api.values[k]) < 1e-6, `under the pointer: unit ${unit} = ${value}, the API has ${api.values[k]}`);
      assert(/above zero/.test(await p().textContent('#vals-note')), 'no summary line');
      await sectionShot('desktop-dense-values', '#vals-view');
      await p().setViewportSize(PHONE);
      await p().locator('#vals-view').scrollIntoViewIfNeeded();
      const overflow = await p().evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `the values panel is ${overflow}px wider than the phone`);
      await sectionShot('phone-dense-values', '#vals-view');
      await p().setViewportSize(DESKTOP);
      // Back to a layer with maps: the bars make way.
      await pick('conv2d_2');
      await imageLoaded('#fm-img');
      assert(await p().isHidden('#vals-view') && await p().isVisible('#fm-view'), 'the bars stay for a layer with maps');
    }],

    ['views: every layer\'s settings from the summary and a histogram of its weights', async () => {
      const summary = await p().evaluate(async () => (await fetch('v1/models/fmnist')).json());
      // "Term value" pairs, one after the other.
      const text = async () => norm(await p().$$eval('#layer-details dt', (dts) => dts.map((dt) => `${dt.textContent} ${dt.nextElementSibling.textContent}`).join(' | ')));
      await pick('leaky_re_lu_1');
      assert(/Slope 0\.3/.test(await text()), `LeakyReLU: ${await text()}`);
      await pick('max_pooling2d_1');
      assert(/Window 2×2/.test(await text()) && /Stride 2×2/.test(await text()) && /valid/.test(await text()), `pool: ${await text()}`);
      await pick('dropout_1');
      assert(/Rate 0\.4/.test(await text()), `dropout: ${await text()}`);
      await pick('batch_normalization_1');
      assert(/Momentum 0\.99/.test(await text()) && /Epsilon 0\.001/.test(await text()) && /moving_mean and moving_variance not trained/.test(await text()), `batch norm: ${await text()}`);
      await pick('conv2d_1');
      assert(/Regulariser l1 0\.00001, l2 0\.0001/.test(await text()) && /Initialiser he_normal/.test(await text()), `conv: ${await text()}`);
      // The weights: one histogram per tensor, the bar under the pointer names the API's count.
      await p().waitForFunction(() => document.querySelector('#wt-view').dataset.layer === 'conv2d_1' &&
        document.querySelectorAll('#wt-list .hist').length === 2);
      const w = await p().evaluate(async () => (await fetch('v1/models/fmnist/layers/conv2d_1/weights?bins=30')).json());
      const bars = await p().$$eval('#wt-list .hist[data-tensor="kernel"] .hist__bar', (b) => b.length);
      assert(bars === 30, `${bars} bars for the kernel`);
      await p().locator('#wt-view').scrollIntoViewIfNeeded();
      const busiest = w.tensors[0].counts.reduce((b, c, i) => (c > w.tensors[0].counts[b] ? i : b), 0);
      await p().hover(`#wt-list .hist[data-tensor="kernel"] .hist__bar[data-bin="${busiest}"]`);
      const said = norm(await p().textContent('#wt-list .hist[data-tensor="kernel"] .hist__hover'));
      assert(said.startsWith(`${w.tensors[0].counts[busiest]} weights in [`), `hover "${said}", the API counts ${w.tensors[0].counts[busiest]}`);
      assert(/mean .* std .* 288 values/.test(norm(await p().textContent('#wt-list .hist[data-tensor="kernel"] .hist__stats'))), 'no mean and std');
      await sectionShot('desktop-weights', '.layer-detail');
      await p().setViewportSize(PHONE);
      await p().locator('#wt-view').scrollIntoViewIfNeeded();
      const overflow = await p().evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `the histograms are ${overflow}px wider than the phone`);
      await sectionShot('phone-weights', '#wt-view');
      await p().setViewportSize(DESKTOP);
      await pick('flatten_1');
      assert(await p().isHidden('#wt-view'), 'a layer without weights shows histograms');
      // Before training from the page, the served file's history has no test loss: the
      // loss chart says so rather than drawing nothing silently.
      if (summary.history.length && summary.history.every((h) => h.test_loss == null)) {
        assert(/no test loss/.test(await p().textContent('#chart-loss-note')), `chart note: ${await p().textContent('#chart-loss-note')}`);
      }
      // An imported graph: the summary's settings, not guesses from the shapes.
      await chooseModel('resnet');
      const rs = await p().evaluate(async () => (await fetch('v1/models/resnet')).json());
      const strided = rs.layers.find((l) => l.type === 'Conv2D' && l.config && JSON.stringify(l.config.strides) !== '1' && JSON.stringify(l.config.strides) !== '[1,1]');
      if (strided) {
        await pick(strided.name);
        const s = Array.isArray(strided.config.strides) ? strided.config.strides : [strided.config.strides, strided.config.strides];
        assert(new RegExp(`Stride ${s[0]}×${s[1]}`).test(await text()), `${strided.name}: ${await text()} (config ${JSON.stringify(strided.config)})`);
        await sectionShot('desktop-details-onnx', '.layer-detail');
      }
      await chooseModel('fmnist');
      await panelsShowCurrent();
    }],
  ];
}

export function testLossCases({ page, assert }) {
  const p = () => page();
  return [
    ['views: the test loss beside the training loss', async () => {
      const s = await p().evaluate(async () => (await fetch('v1/models/fmnist')).json());
      const last = s.history[s.history.length - 1];
      assert(last && Number.isFinite(last.test_loss) && last.test_loss > 0, `the summary's history: ${JSON.stringify(last)}`);
      await p().locator('#train').scrollIntoViewIfNeeded();
      assert(await p().locator('#chart-loss .chart__legend text', { hasText: /^test/ }).count() === 1, 'no test series in the loss chart');
      assert(await p().locator('#chart-loss .chart__series.s2 .chart__dot').count() === s.history.length, 'a test-loss point per epoch');
      assert(/training and test/.test(await p().textContent('#chart-loss-note')), 'the caption still says training set only');
      const box = await p().locator('#chart-loss .chart__catch').boundingBox();
      await p().mouse.move(box.x + box.width - 3, box.y + box.height / 2);
      await p().waitForFunction(() => document.querySelector('#chart-loss').dataset.hover);
      const hover = String(await p().getAttribute('#chart-loss', 'data-hover')).replace(/\u00a0/g, ' ');
      assert(new RegExp(`test[^·]* ${last.test_loss.toFixed(2)}`).test(hover), `hover "${hover}", the test loss ${last.test_loss}`);
    }],
  ];
}

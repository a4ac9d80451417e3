// Browser cases for the explanations (static/explain.js): e2e.mjs registers them after
// the Grad-CAM case, while the page still serves the committed model on test image 18.
//   - the method picker sends the card's picture through /explain for another method;
//   - Compare draws every method's heatmap and overlay, its scores and both curves;
//   - the randomisation check shows the cascade, and its finding: guided backprop keeps
//     its map (rho > 0.5) when every layer is random, Grad-CAM does not (rho < 0.3);
//   - an evaluation job over ten test images fills the table.

export function explainCases({ page, assert, isPost, imageLoaded, sectionShot }) {
  const p = () => page();
  return [
    ['the method picker shows another explanation in the card', async () => {
      await p().click('#tab-dataset');
      if (await p().inputValue('#ds-split') !== 'test') {
        await p().selectOption('#ds-split', 'test');
        await p().waitForFunction(() => /^test 0/.test(document.querySelector('#ds-range').textContent));
      }
      await p().fill('#ds-index', '18');
      await Promise.all([p().waitForResponse(isPost('/predict')), p().click('#ds-goto button')]);
      await imageLoaded('#cam-img');
      const [res] = await Promise.all([
        p().waitForResponse(isPost('/explain')),
        p().selectOption('#cam-method', 'scorecam'),
      ]);
      const q = new URL(res.url()).searchParams;
      assert(res.ok() && q.get('method') === 'scorecam' && q.get('sample') === 'test:18', `explain: ${res.status()} ${res.url()}`);
      await imageLoaded('#cam-img');
      await p().waitForFunction(() => /Score-CAM/.test(document.querySelector('#cam-img').alt) &&
        /Score-CAM/.test(document.querySelector('.card--cam .card__sub').textContent));
      // an input attribution leaves the layer out
      const [res2] = await Promise.all([p().waitForResponse(isPost('/explain')), p().selectOption('#cam-method', 'integrated_gradients')]);
      assert(!new URL(res2.url()).searchParams.has('layer'), 'an input method was sent a layer');
      await imageLoaded('#cam-img');
      await Promise.all([p().waitForResponse(isPost('/gradcam')), p().selectOption('#cam-method', 'gradcam')]);
      await imageLoaded('#cam-img');
    }],
    ['compare draws every method with its scores and curves', async () => {
      await p().locator('#explain').scrollIntoViewIfNeeded();
      const [res] = await Promise.all([p().waitForResponse(isPost('/explain/compare')), p().click('#xp-run')]);
      assert(res.ok(), `compare answered ${res.status()}`);
      await p().waitForFunction(() => document.querySelectorAll('#xp-grid .xp-cell').length === 15 &&
        !document.querySelector('#xp-results').hidden);
      const cells = await p().$$eval('#xp-grid .xp-cell', (cs) => cs.map((c) => ({
        method: c.dataset.method,
        maps: c.querySelectorAll('canvas.xp-map').length,
        del: parseFloat(c.querySelector('.xp-del').textContent),
        ins: parseFloat(c.querySelector('.xp-ins').textContent),
        lines: c.querySelectorAll('polyline').length,
      })));
      for (const c of cells) {
        assert(c.maps === 2 && c.lines === 2, `${c.method}: ${c.maps} pictures, ${c.lines} curves`);
        assert(c.del >= 0 && c.del <= 1 && c.ins >= 0 && c.ins <= 1, `${c.method}: areas ${c.del} ${c.ins}`);
      }
      // The pictures are not blank: the heatmap canvas holds more than one colour.
      const colours = await p().$eval('#xp-grid .xp-cell[data-method="gradcam"] canvas', (c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
        return seen.size;
      });
      assert(colours > 10, `the Grad-CAM heatmap has ${colours} colours`);
      assert(/Bag/.test(await p().textContent('#xp-sub')), 'the class is named');
      await sectionShot('desktop-explain', '#explain');
    }],
    ['the randomisation check shows the cascade and its finding', async () => {
      await p().click('#xp-san-run');
      await p().waitForFunction(() => document.querySelectorAll('#xp-san .xp-cascade').length === 2 &&
        /guided backprop still correlates/.test(document.querySelector('#xp-san-note').textContent), null, { timeout: 30000 });
      const rows = await p().$$eval('#xp-san .xp-cascade', (rs) => rs.map((r) => ({
        method: r.dataset.method,
        rho: [...r.querySelectorAll('.xp-cascade__rho')].map((s) => parseFloat(s.textContent.replace('ρ', ''))),
        first: r.querySelector('.xp-cascade__layer').textContent,
      })));
      const gb = rows.find((r) => r.method === 'guided_backprop'), gc = rows.find((r) => r.method === 'gradcam');
      assert(gb && gc && gb.rho.length === 8 && gc.rho.length === 8, 'eight maps each: the trained network and seven layers');
      assert(gb.rho[0] === 1 && gb.first === 'trained', 'the cascade starts at the trained network');
      assert(gb.rho[7] > 0.5 && gc.rho[7] < 0.3, `guided backprop rho ${gb.rho[7]}, Grad-CAM rho ${gc.rho[7]}`);
      await sectionShot('desktop-sanity', '#xp-san');
    }],
    ['an evaluation job over ten test images fills the table', async () => {
      await p().fill('#xp-ev-count', '10');
      const [res] = await Promise.all([p().waitForResponse(isPost('/explain/evaluate')), p().click('#xp-ev-run')]);
      assert(res.status() === 202, `evaluate answered ${res.status()}`);
      await p().waitForSelector('#xp-ev-table:not([hidden])', { timeout: 60000 });
      const rows = await p().$$eval('#xp-ev-table tbody tr', (rs) => rs.length);
      assert(rows === 15, `${rows} rows`);
      assert(/succeeded/.test(await p().textContent('#xp-ev-state')), 'the job is reported done');
      assert(await p().locator('#xp-ev-cancel').isHidden(), 'no cancel button after the end');
    }],
  ];
}

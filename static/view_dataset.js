// view_dataset.js - the Dataset view: the model over the test set. The confusion matrix
// (click a cell for its images, most confident first, each with its Grad-CAM), the
// per-class precision, recall and F1, and the reliability diagram with its expected
// calibration error. From POST/GET v1/models/{m}/evaluation (a job, cached per version).

import { request } from './api.js';
import { el, showError, pct, setImageBlob } from './ui.js';
import { runJob, progressBar, sampleSrc, className } from './insight.js';

const SVG = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs = {}) => {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
};

// matplotlib's Blues between its ends, as the confusion PNG draws it.
export function blues(u) {
  const t = Math.max(0, Math.min(1, u || 0));
  const lo = [247, 251, 255], hi = [8, 48, 107];
  return `rgb(${lo.map((a, i) => Math.round(a + (hi[i] - a) * t)).join(',')})`;
}

function reliability(cal) {
  const W = 260, H = 220, P = 34;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'ins-reliability', role: 'img', 'aria-label': `Reliability diagram, expected calibration error ${(cal.ece * 100).toFixed(2)} %` });
  const X = (v) => P + v * (W - P - 8), Y = (v) => H - P + -v * (H - P - 8);
  s.append(svg('rect', { x: X(0), y: Y(1), width: X(1) - X(0), height: Y(0) - Y(1), class: 'ins-rel__frame' }));
  for (const b of cal.bins) {
    if (!b.count) continue;
    const x = X(b.lower) + 1, w = X(b.upper) - X(b.lower) - 2;
    s.append(svg('rect', { x, y: Y(b.accuracy), width: w, height: Y(0) - Y(b.accuracy), class: 'ins-rel__bar' }));
    // The gap to the mean confidence: what the model over- or under-claims.
    const top = Math.min(b.accuracy, b.confidence), bot = Math.max(b.accuracy, b.confidence);
    s.append(svg('rect', { x, y: Y(bot), width: w, height: Y(top) - Y(bot), class: 'ins-rel__gap' }));
  }
  s.append(svg('line', { x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), class: 'ins-rel__diag' }));
  for (const v of [0, 0.5, 1]) {
    const tx = svg('text', { x: X(v), y: H - P + 14, 'text-anchor': 'middle', class: 'ins-axis' });
    tx.textContent = v;
    const ty = svg('text', { x: P - 6, y: Y(v) + 4, 'text-anchor': 'end', class: 'ins-axis' });
    ty.textContent = v;
    s.append(tx, ty);
  }
  const xt = svg('text', { x: (X(0) + X(1)) / 2, y: H - 4, 'text-anchor': 'middle', class: 'ins-axis' });
  xt.textContent = 'confidence';
  const yt = svg('text', { x: 10, y: (Y(0) + Y(1)) / 2, 'text-anchor': 'middle', class: 'ins-axis', transform: `rotate(-90 10 ${(Y(0) + Y(1)) / 2})` });
  yt.textContent = 'accuracy';
  s.append(xt, yt);
  return s;
}

export function initDatasetView(pane, { analyse }) {
  let model = null, ev = null, ctl = null;
  const limit = el('select', { 'aria-label': 'Test images' },
    el('option', { value: '1000', text: 'first 1,000 test images' }),
    el('option', { value: '0', text: 'all 10,000 test images', selected: true }));
  const go = el('button', { type: 'button', class: 'btn btn--primary', id: 'ins-eval', text: 'Evaluate' });
  const bar = progressBar();
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const head = el('p', { class: 'ins-summary', id: 'ins-eval-summary', 'aria-live': 'polite' });
  const matrix = el('div', { class: 'ins-matrix', id: 'ins-matrix' });
  const cell = el('div', { class: 'ins-cell', id: 'ins-cell', hidden: true });
  const table = el('div', { class: 'ins-perclass', id: 'ins-perclass' });
  const rel = el('figure', { class: 'ins-rel', id: 'ins-rel' });
  pane.append(
    el('div', { class: 'ins-controls' }, el('label', { class: 'field field--inline' }, el('span', { text: 'On' }), limit), go, bar.box),
    err, head,
    el('div', { class: 'ins-grid' },
      el('div', {}, el('h3', { text: 'Confusion matrix' }), el('p', { class: 'small muted', text: 'Rows: true class; columns: predicted. Click a cell to see its images.' }), matrix),
      el('div', {}, el('h3', { text: 'Calibration' }), rel)),
    cell,
    el('h3', { text: 'Per class' }), table);

  async function evaluate() {
    if (!model) return;
    if (ctl) ctl.abort();
    ctl = new AbortController();
    showError(err, null);
    go.disabled = true;
    try {
      ev = await runJob(`v1/models/${model.name}/evaluation`, { limit: limit.value }, {
        signal: ctl.signal, progress: (p, j) => bar.set(p, j.total ? `${j.done.toLocaleString()} of ${j.total.toLocaleString()} images` : 'queued'),
      });
      render();
    } catch (e) {
      showError(err, e);
    } finally {
      go.disabled = false;
      bar.hide();
    }
  }

  function render() {
    const k = ev.classes.length;
    head.textContent = `Version ${ev.version} on ${ev.subset ? `the first ${ev.images.toLocaleString()} test images (a subset)` : `all ${ev.images.toLocaleString()} test images`}: accuracy ${pct(ev.accuracy)}, top-2 ${pct(ev.top_k[1] ? ev.top_k[1].accuracy : NaN)}, expected calibration error ${pct(ev.calibration.ece, 2)}.`;
    const t = el('table', { class: 'ins-cm', 'aria-label': 'Confusion matrix' });
    const hr = el('tr', {}, el('th', { scope: 'col', class: 'ins-cm__corner', text: 'true \\ predicted' }));
    for (let p = 0; p < k; p++) hr.append(el('th', { scope: 'col', title: ev.classes[p], text: ev.classes[p] }));
    t.append(el('thead', {}, hr));
    const tb = el('tbody');
    for (let r = 0; r < k; r++) {
      const row = ev.confusion[r], sum = row.reduce((a, b) => a + b, 0);
      const tr = el('tr', {}, el('th', { scope: 'row', text: ev.classes[r] }));
      for (let p = 0; p < k; p++) {
        const u = sum ? row[p] / sum : 0;
        const b = el('button', {
          type: 'button', class: 'ins-cm__cell', text: String(row[p]), disabled: row[p] === 0,
          dataset: { t: String(r), p: String(p) },
          'aria-label': `${row[p]} ${ev.classes[r]} taken for ${ev.classes[p]}`,
          onclick: () => showCell(r, p),
        });
        b.style.background = blues(u);
        b.style.color = u > 0.5 ? '#fff' : '#1b1f2a';
        tr.append(el('td', {}, b));
      }
      tb.append(tr);
    }
    t.append(tb);
    matrix.replaceChildren(t);
    const pt = el('table', { class: 'ins-table' },
      el('thead', {}, el('tr', {}, ...['class', 'precision', 'recall', 'F1', 'images'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...ev.per_class.map((c) => el('tr', {},
        el('th', { scope: 'row', text: c.label || String(c.class) }),
        el('td', { text: pct(c.precision) }), el('td', { text: pct(c.recall) }), el('td', { text: pct(c.f1) }),
        el('td', { text: c.support.toLocaleString() })))),
      el('tfoot', {}, el('tr', {}, el('th', { scope: 'row', text: 'mean' }),
        el('td', { text: pct(ev.macro.precision) }), el('td', { text: pct(ev.macro.recall) }), el('td', { text: pct(ev.macro.f1) }), el('td'))));
    table.replaceChildren(pt);
    rel.replaceChildren(reliability(ev.calibration),
      el('figcaption', { class: 'small muted', text: `Bars: accuracy of the images in each confidence bin; the diagonal is perfect calibration, the shaded gap what the model over- or under-claims. ECE ${pct(ev.calibration.ece, 2)}.` }));
    cell.hidden = true;
  }

  async function showCell(t, p) {
    const c = ev.cells.find((x) => x.true === t && x.predicted === p);
    if (!c) return;
    const title = t === p ? `${className(t)} recognised` : `${className(t)} taken for ${className(p)}`;
    const list = el('ol', { class: 'ins-cell__list' });
    cell.replaceChildren(el('h3', { id: 'ins-cell-h', text: `${title}: ${c.count.toLocaleString()} image${c.count === 1 ? '' : 's'}, most confident first` }), list);
    cell.hidden = false;
    for (const im of c.images) {
      const cam = el('img', { class: 'ins-thumb', alt: `Grad-CAM of test image ${im.index}`, width: '84', height: '84' });
      list.append(el('li', { class: 'ins-cell__item', dataset: { index: String(im.index) } },
        el('img', { class: 'ins-thumb', src: sampleSrc(im.index, 3), alt: `test image ${im.index}`, width: '84', height: '84' }),
        cam,
        el('span', { class: 'small', text: `#${im.index} · ${pct(im.confidence)} ${className(p)}` }),
        el('button', { type: 'button', class: 'btn btn--link small', text: 'Analyse', onclick: () => analyse(im.index) })));
      request('POST', `v1/models/${model.name}/gradcam`, { query: { sample: `test:${im.index}`, size: 84 } })
        .then((r) => r.blob()).then((b) => setImageBlob(cam, b)).catch(() => { cam.alt = 'Grad-CAM unavailable'; });
    }
    cell.scrollIntoView({ block: 'nearest' });
  }

  go.addEventListener('click', evaluate);
  return {
    model(m) {
      model = m;
      ev = null;
      matrix.replaceChildren();
      table.replaceChildren();
      rel.replaceChildren();
      cell.hidden = true;
      head.textContent = m ? `Evaluate ${m.name} on the Fashion-MNIST test set.` : '';
      showError(err, null);
    },
  };
}

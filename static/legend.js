// legend.js - colour scales and values: the colour bar under the Grad-CAM picture (jet,
// 0 to the map's own maximum), the score Grad-CAM explained (its logit and probability,
// from the answer's X-Logit and X-Probability), and the heatmap value under the pointer.
// The numbers under the pointer come from the same call with format=json, asked for once
// per picture and only when the pointer first moves over it. Also the gray scales the
// feature-map and filter grids are drawn on (grayLegend, used by channels.js).

import { postImage } from './api.js';
import { state, on } from './store.js';
import { $, el, pct } from './ui.js';

// OpenCV's COLORMAP_JET, which the API draws with, at its knots.
export const JET = 'linear-gradient(90deg, #00007f 0%, #0000ff 12.5%, #00ffff 37.5%, #ffff00 62.5%, #ff0000 87.5%, #7f0000 100%)';

// A small horizontal colour bar with its two ends named and a line of explanation.
export function legend(box, { gradient, low, high, note }) {
  box.replaceChildren(
    el('div', { class: 'legend__row' },
      el('span', { class: 'legend__end', text: low }),
      el('span', { class: 'legend__bar', style: `background:${gradient}`, 'aria-hidden': 'true' }),
      el('span', { class: 'legend__end', text: high })),
    note ? el('p', { class: 'legend__note', text: note }) : null);
  box.hidden = false;
}

export const GRAY = 'linear-gradient(90deg, #000, #fff)';

export function initLegend() {
  const img = $('cam-img'), box = $('cam-box'), legendBox = $('cam-legend'), scoreBox = $('cam-score-line');
  const valueBox = $('cam-value');
  let info = null, values = null, asked = null;
  // Where the pointer rests over the picture, so the value shows once the numbers arrive
  // without waiting for the pointer to move again.
  let pointer = null;

  function renderLegend() {
    if (!info) {
      legendBox.hidden = true;
      scoreBox.hidden = true;
      valueBox.hidden = true;
      return;
    }
    const note = info.flat
      ? 'Flat map: one value everywhere, drawn in one colour. It singles out no place.'
      : 'Each map is divided by its own maximum: 1 marks the place that counts most for this class, 0 places that do not count for it.';
    legend(legendBox, { gradient: JET, low: '0', high: '1 (max)', note });
    const parts = [el('span', {}, 'Explains ', el('strong', { text: info.label }))];
    if (info.logit !== null && Number.isFinite(info.logit)) parts.push(el('span', {}, ' · logit ', el('strong', { class: 'num', text: info.logit.toFixed(3) })));
    if (info.probability !== null && Number.isFinite(info.probability)) parts.push(el('span', {}, ' · probability ', el('strong', { class: 'num', text: pct(info.probability) })));
    parts.push(el('span', { class: 'muted', text: ` · differentiated: the ${info.score === 'probability' ? 'probability' : 'logit'}` }));
    scoreBox.replaceChildren(...parts);
    scoreBox.hidden = false;
    valueBox.textContent = 'Point at the picture to read the map’s value there.';
    valueBox.hidden = false;
  }

  async function fetchValues(forInfo) {
    if (asked === forInfo) return;
    asked = forInfo;
    try {
      const query = { format: 'json', layer: forInfo.layer || undefined, class: forInfo.classIndex, score: forInfo.score };
      const res = await postImage(`v1/models/${encodeURIComponent(state.model.name)}/gradcam`, forInfo.input, query);
      const data = await res.json();
      if (info !== forInfo) return;
      const r = data.results && data.results[0];
      if (r) values = { heat: r.heatmap, h: r.height, w: r.width, layer: r.layer };
      if (values && pointer) readout(pointer);
    } catch {
      // Only the readout is missing; the picture and its legend stand.
      if (info === forInfo) valueBox.textContent = 'The values could not be fetched.';
    }
  }

  function readout(e) {
    pointer = { clientX: e.clientX, clientY: e.clientY };
    if (!info || !img.naturalWidth) return;
    if (!values) { fetchValues(info); return; }
    const r = img.getBoundingClientRect();
    // The picture keeps its aspect inside the box (object-fit: contain).
    const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const dw = img.naturalWidth * s, dh = img.naturalHeight * s;
    const fx = (e.clientX - r.left - (r.width - dw) / 2) / dw, fy = (e.clientY - r.top - (r.height - dh) / 2) / dh;
    if (fx < 0 || fy < 0 || fx >= 1 || fy >= 1) return;
    const row = Math.min(values.h - 1, Math.floor(fy * values.h)), col = Math.min(values.w - 1, Math.floor(fx * values.w));
    const v = values.heat[row][col];
    valueBox.replaceChildren('Value here ', el('strong', { class: 'num', text: v.toFixed(3) }),
      ` (row ${row}, column ${col} of the ${values.h}×${values.w} map at `, el('code', { text: values.layer }), ')');
    valueBox.dataset.value = String(v);
  }

  img.addEventListener('pointermove', readout);
  img.addEventListener('pointerenter', readout);
  box.addEventListener('pointerleave', () => {
    pointer = null;
    if (info && values) valueBox.textContent = 'Point at the picture to read the map’s value there.';
  });

  on('gradcam', (next) => {
    info = next;
    values = null;
    asked = null;
    delete valueBox.dataset.value;
    renderLegend();
  });
}

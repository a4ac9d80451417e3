// weights.js - the chosen layer's weights as histograms, as TensorBoard's histogram
// panel shows a tensor: one small chart per tensor (a kernel, a bias, batch
// normalisation's gamma, beta and moving statistics) with its shape, range, mean and
// deviation, where zero lies, and the count of the bin under the pointer. The counts
// are the API's (GET .../weights, 30 bins from the tensor's min to its max).

import { state, on } from './store.js';
import { $, el, int, showError } from './ui.js';
import { weights, num } from './values.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 240, H = 96, PAD = 4, AXIS = 16;

function svgNode(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

// One tensor's histogram: columns of counts over [min, max], zero marked when inside.
function histogram(t, out) {
  const svg = svgNode('svg', { viewBox: `0 0 ${W} ${H}`, class: 'hist__chart', role: 'img' });
  const counts = t.counts || [], edges = t.edges || [];
  const most = Math.max(1, ...counts);
  const bw = (W - 2 * PAD) / Math.max(1, counts.length);
  const X = (v) => PAD + ((v - edges[0]) / ((edges[edges.length - 1] - edges[0]) || 1)) * (W - 2 * PAD);
  counts.forEach((c, i) => {
    const hgt = (c / most) * (H - AXIS - PAD);
    const r = svgNode('rect', { x: PAD + i * bw + 0.5, y: H - AXIS - hgt, width: Math.max(1, bw - 1), height: Math.max(c ? 1 : 0, hgt), class: 'hist__bar' });
    const last = i === counts.length - 1;
    const text = `${int(c)} weight${c === 1 ? '' : 's'} in [${num(edges[i])}, ${num(edges[i + 1])}${last ? ']' : ')'}`;
    r.append(svgNode('title', {}, text));
    r.dataset.bin = String(i);
    r.addEventListener('pointerenter', () => { out.textContent = text; out.dataset.bin = String(i); });
    svg.append(r);
  });
  svg.addEventListener('pointerleave', () => { out.textContent = ''; delete out.dataset.bin; });
  if (edges.length && edges[0] < 0 && edges[edges.length - 1] > 0) {
    svg.append(svgNode('line', { x1: X(0), x2: X(0), y1: PAD, y2: H - AXIS + 3, class: 'hist__zero' }));
    svg.append(svgNode('text', { x: X(0), y: H - 3, 'text-anchor': 'middle', class: 'hist__tick' }, '0'));
  }
  svg.append(svgNode('line', { x1: PAD, x2: W - PAD, y1: H - AXIS + 0.5, y2: H - AXIS + 0.5, class: 'hist__axis' }));
  if (edges.length) {
    svg.append(svgNode('text', { x: PAD, y: H - 3, 'text-anchor': 'start', class: 'hist__tick' }, num(edges[0])));
    svg.append(svgNode('text', { x: W - PAD, y: H - 3, 'text-anchor': 'end', class: 'hist__tick' }, num(edges[edges.length - 1])));
  }
  svg.setAttribute('aria-label', `Histogram of ${t.name}: ${int(t.size)} values from ${num(t.min)} to ${num(t.max)}, mean ${num(t.mean)}`);
  return svg;
}

export function initWeights() {
  const view = $('wt-view'), list = $('wt-list'), err = $('wt-error');
  let layer = null;

  async function load(l) {
    layer = l;
    const model = state.model, version = state.summary && state.summary.version;
    if (!l || !model || !(l.params > 0)) {
      view.hidden = true;
      list.replaceChildren();
      return;
    }
    view.hidden = false;
    list.classList.add('is-loading');
    try {
      const data = await weights(model, version, l.name);
      if (l !== layer || model !== state.model) return;
      list.replaceChildren(...(data.tensors || []).map((t) => {
        const out = el('span', { class: 'hist__hover muted small', 'aria-live': 'polite' });
        return el('figure', { class: 'hist', dataset: { tensor: t.name } },
          el('figcaption', {},
            el('code', { text: t.name }), ` ${(t.shape || []).join('×')}`,
            t.trainable ? '' : el('span', { class: 'muted', text: ' (not trained: running statistics)' })),
          histogram(t, out),
          el('p', { class: 'hist__stats small muted', text: `mean ${num(t.mean)} · std ${num(t.std)} · ${int(t.size)} values${t.nonfinite ? ` · ${int(t.nonfinite)} not finite` : ''}` }),
          out);
      }));
      view.dataset.layer = l.name;
      showError(err, null);
    } catch (e) {
      if (l !== layer) return;
      list.replaceChildren();
      showError(err, e);
    } finally {
      if (l === layer) list.classList.remove('is-loading');
    }
  }

  on('layer', load);
  on('model', () => { layer = null; });
}

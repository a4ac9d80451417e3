// explain.js - "which explanation to trust": the method picker of the "where it looks"
// card (gradcam.js asks camRequest() which route to call), several methods side by side
// on the current image with their faithfulness numbers and deletion/insertion curves,
// the randomisation check as a cascade of maps, and the same numbers over many test
// images as a background job.
//
// Maps come as JSON (each method's heatmap, 0..1) and are drawn here through the JET
// colour map, so one answer gives the pictures, the scores and the curves.

import { postImage, request, getJSON } from './api.js';
import { state, on } from './store.js';
import { $, el, showError, setBusy, latest, isImageError, pct } from './ui.js';
import { inputShape } from './modelinfo.js';

// The service's methods (openapi.yaml), CAMs first; `cheap` ones make the default
// selection for large models, where Score-CAM or occlusion take minutes.
export const METHODS = [
  { name: 'gradcam', title: 'Grad-CAM', cam: true, cheap: true },
  { name: 'gradcampp', title: 'Grad-CAM++', cam: true, cheap: true },
  { name: 'xgradcam', title: 'XGrad-CAM', cam: true, cheap: true },
  { name: 'hirescam', title: 'HiResCAM', cam: true, cheap: true },
  { name: 'layercam', title: 'Layer-CAM', cam: true, cheap: true },
  { name: 'scorecam', title: 'Score-CAM', cam: true },
  { name: 'eigencam', title: 'Eigen-CAM', cam: true, cheap: true },
  { name: 'ablationcam', title: 'Ablation-CAM', cam: true },
  { name: 'gradient', title: 'Gradient saliency', cheap: true },
  { name: 'gradient_x_input', title: 'Gradient × input', cheap: true },
  { name: 'smoothgrad', title: 'SmoothGrad' },
  { name: 'integrated_gradients', title: 'Integrated Gradients' },
  { name: 'guided_backprop', title: 'Guided backprop', cheap: true },
  { name: 'guided_gradcam', title: 'Guided Grad-CAM', cam: true, cheap: true },
  { name: 'occlusion', title: 'Occlusion' },
];
const byName = new Map(METHODS.map((m) => [m.name, m]));

// The route and query the "where it looks" card sends for the chosen method: Grad-CAM
// keeps its own route; any other method goes to /explain with the same picture options.
export function camRequest(model, query) {
  const method = ($('cam-method') && $('cam-method').value) || 'gradcam';
  const name = encodeURIComponent(model);
  if (method === 'gradcam') return { path: `v1/models/${name}/gradcam`, query, title: 'Grad-CAM' };
  const m = byName.get(method);
  return {
    path: `v1/models/${name}/explain`,
    query: { ...query, method, layer: m && m.cam ? query.layer : undefined },
    title: m ? m.title : method,
  };
}

// ---- drawing ------------------------------------------------------------------------

// The JET colour map (blue, cyan, yellow, red) for v in 0..1, as RGB bytes.
function jet(v) {
  const c = (x) => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

// A heatmap (rows of 0..1) as a small canvas, one pixel per value.
function heatCanvas(rows) {
  const h = rows.length, w = h ? rows[0].length : 0;
  const c = document.createElement('canvas');
  c.width = Math.max(1, w);
  c.height = Math.max(1, h);
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(c.width, c.height);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, b] = jet(rows[y][x]);
      const i = 4 * (y * w + x);
      img.data[i] = r; img.data[i + 1] = g; img.data[i + 2] = b; img.data[i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return c;
}

// A picture of `size` pixels: the heatmap alone, or laid over the image.
function drawMap(rows, base, size, overlay, label) {
  const c = el('canvas', { width: size, height: size, class: 'xp-map', role: 'img', 'aria-label': label });
  const ctx = c.getContext('2d');
  const heat = heatCanvas(rows);
  if (overlay && base) {
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(base, 0, 0, size, size);
    ctx.globalAlpha = 0.5;
  }
  ctx.imageSmoothingEnabled = true; /* a bilinear resize of the map, as the service draws it */
  ctx.drawImage(heat, 0, 0, size, size);
  ctx.globalAlpha = 1;
  return c;
}

function colourScale(canvas) {
  const ctx = canvas.getContext('2d');
  for (let x = 0; x < canvas.width; x++) {
    const [r, g, b] = jet(x / (canvas.width - 1));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(x, 0, 1, canvas.height);
  }
}

// The current image as drawable pixels: the dataset PNG, or the uploaded blob.
async function baseImage(input) {
  try {
    let blob = input.blob;
    if (input.sample) {
      const res = await request('GET', `v1/datasets/fashion-mnist/${input.sample.split}/${input.sample.index}.png`);
      blob = await res.blob();
    }
    return blob ? await createImageBitmap(blob) : null;
  } catch {
    return null; /* the maps are drawn without it */
  }
}

// Deletion and insertion curves over the fraction of pixels changed, in one small SVG.
const NS = 'http://www.w3.org/2000/svg';
function svgNode(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}
function drawCurves(scores) {
  const W = 180, H = 110, P = { l: 24, r: 6, t: 8, b: 16 };
  const svg = svgNode('svg', { viewBox: `0 0 ${W} ${H}`, class: 'xp-curves', role: 'img' });
  const X = (x) => P.l + x * (W - P.l - P.r), Y = (y) => P.t + (1 - y) * (H - P.t - P.b);
  for (const v of [0, 0.5, 1]) {
    svg.append(svgNode('line', { x1: P.l, x2: W - P.r, y1: Y(v), y2: Y(v), class: 'xp-curves__grid' }));
    svg.append(svgNode('text', { x: P.l - 3, y: Y(v) + 3, 'text-anchor': 'end' }, String(v)));
  }
  svg.append(svgNode('text', { x: W - P.r, y: H - 3, 'text-anchor': 'end' }, 'pixels changed →'));
  for (const [key, cls] of [['deletion', 'is-del'], ['insertion', 'is-ins']]) {
    const c = scores[key] || [];
    const pts = c.map((y, i) => `${X(i / Math.max(1, c.length - 1)).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    if (c.length > 1) svg.append(svgNode('polyline', { points: pts, class: `xp-curves__line ${cls}` }));
  }
  svg.setAttribute('aria-label', `deletion area ${scores.deletion_auc?.toFixed(3)}, insertion area ${scores.insertion_auc?.toFixed(3)}`);
  return svg;
}

const fmt = (v, d = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—');

// ---- the panel ------------------------------------------------------------------------

export function initExplain() {
  const camMethod = $('cam-method');
  const boxes = $('xp-methods'), runBtn = $('xp-run'), grid = $('xp-grid'), sub = $('xp-sub'), errBox = $('xp-error');
  const wrap = $('xp-results');
  const sanBtn = $('xp-san-run'), sanRows = $('xp-san'), sanErr = $('xp-san-error'), sanNote = $('xp-san-note');
  const evBtn = $('xp-ev-run'), evCancel = $('xp-ev-cancel'), evCount = $('xp-ev-count'), evState = $('xp-ev-state');
  const evTable = $('xp-ev-table'), evErr = $('xp-ev-error'), evFill = $('xp-ev-fill'), evBar = $('xp-ev-bar');
  const nextCompare = latest(), nextSanity = latest();
  let job = null, pollTimer = 0;

  camMethod.replaceChildren(...METHODS.map((m) => el('option', { value: m.name, text: m.title })));
  boxes.replaceChildren(...METHODS.map((m) => el('label', { class: 'check xp-check' },
    el('input', { type: 'checkbox', value: m.name, checked: true }), el('span', { text: m.title }))));
  colourScale($('xp-scale'));

  const chosen = () => [...boxes.querySelectorAll('input:checked')].map((i) => i.value);
  /* Large inputs (VGG16's 224x224) make every pass costly. */
  const large = () => { const s = inputShape(); return !!s && s.h * s.w > 64 * 64; };
  const model = () => encodeURIComponent(state.model.name);
  const ready = () => state.input && !state.input.empty && state.model;

  function reset() {
    grid.replaceChildren();
    sanRows.replaceChildren();
    sanNote.textContent = '';
    wrap.hidden = true;
    sub.textContent = '';
    showError(errBox, null);
    showError(sanErr, null);
  }

  async function compare() {
    if (!ready()) return;
    const methods = chosen();
    if (!methods.length) {
      showError(errBox, { message: 'pick at least one method' });
      return;
    }
    const signal = nextCompare();
    setBusy(wrap, true);
    runBtn.disabled = true;
    const t0 = performance.now();
    try {
      const [res, base] = await Promise.all([
        postImage(`v1/models/${model()}/explain/compare`, state.input,
          { methods: methods.join(','), format: 'json', score: $('cam-score').value, class: $('cam-class').value,
            layer: $('cam-layer').value || undefined }, { signal }),
        baseImage(state.input),
      ]);
      const doc = await res.json();
      if (signal.aborted) return;
      grid.replaceChildren(...doc.methods.map((m) => {
        const s = m.scores || {};
        const title = m.method.title;
        return el('li', { class: 'xp-cell', dataset: { method: m.method.name } },
          el('h4', { title: m.method.paper }, title),
          el('div', { class: 'xp-pics' },
            drawMap(m.heatmap, base, 112, false, `${title} heatmap`),
            drawMap(m.heatmap, base, 112, true, `${title} over the image`)),
          el('dl', { class: 'xp-scores' },
            el('dt', { title: 'area under the deletion curve: lower means removing the top pixels first kills the class faster' }, 'deletion'),
            el('dd', { class: 'xp-del', text: fmt(s.deletion_auc) }),
            el('dt', { title: 'area under the insertion curve: higher is better' }, 'insertion'),
            el('dd', { class: 'xp-ins', text: fmt(s.insertion_auc) }),
            el('dt', { title: 'average drop in confidence when the image is seen through the map (lower is better)' }, 'drop'),
            el('dd', { text: typeof s.drop === 'number' ? pct(s.drop) : '—' }),
            el('dt', { title: 'ROAD: (LeRF − MoRF) / 2 over 10–90 % of pixels removed with linear imputation (higher is better)' }, 'ROAD'),
            el('dd', { text: fmt(s.road) })),
          drawCurves(s),
          el('p', { class: 'muted small', text: `${m.passes.forwards + m.passes.backwards} passes, ${(1000 * m.seconds).toFixed(1)} ms${m.all_zero ? ' · all zero' : ''}` }));
      }));
      sub.textContent = `${doc.label} (${pct(doc.probability)}) · ${doc.methods.length} methods in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
      wrap.hidden = false;
      showError(errBox, null);
    } catch (e) {
      if (signal.aborted) return;
      showError(errBox, isImageError(e) ? { message: 'the image could not be read (see the message by the input)' } : e);
    } finally {
      if (!signal.aborted) {
        setBusy(wrap, false);
        runBtn.disabled = false;
      }
    }
  }

  // The same class of the same image, as the nodes with weights are re-drawn from the
  // top down: guided backprop and Grad-CAM side by side show Adebayo et al.'s finding.
  async function sanity() {
    if (!ready()) return;
    const signal = nextSanity();
    sanBtn.disabled = true;
    setBusy(sanRows, true);
    const methods = ['guided_backprop', 'gradcam'];
    try {
      const docs = await Promise.all(methods.map(async (method) => {
        const res = await postImage(`v1/models/${model()}/explain`, state.input,
          { method, format: 'json', sanity: 'true', class: $('cam-class').value }, { signal });
        return res.json();
      }));
      if (signal.aborted) return;
      sanRows.replaceChildren(...docs.map((doc) => el('li', { class: 'xp-cascade', dataset: { method: doc.method.name } },
        el('h4', { text: doc.method.title }),
        el('ol', { class: 'xp-cascade__steps' }, ...doc.sanity.steps.map((s) => el('li', {},
          drawMap(s.heatmap, null, 64, false, `${doc.method.title} after ${s.randomised || 'training'}`),
          el('span', { class: 'xp-cascade__layer', text: s.randomised ? `+ ${s.randomised}` : 'trained' }),
          el('span', { class: 'xp-cascade__rho', text: `ρ ${fmt(s.rank_correlation, 2)}` })))))));
      const last = (d) => d.sanity.steps[d.sanity.steps.length - 1].rank_correlation;
      sanNote.textContent = `With every layer re-initialised, guided backprop still correlates ρ = ${fmt(last(docs[0]), 2)} with ` +
        `its map of the trained network, Grad-CAM ρ = ${fmt(last(docs[1]), 2)}: a map that survives the randomisation ` +
        'shows the image (its edges), not what the network learned.';
      showError(sanErr, null);
    } catch (e) {
      if (!signal.aborted) showError(sanErr, e);
    } finally {
      if (!signal.aborted) {
        sanBtn.disabled = false;
        setBusy(sanRows, false);
      }
    }
  }

  // ---- the evaluation job ----
  function showJob(j) {
    const p = Math.round(100 * (j.progress || 0));
    evFill.style.width = `${p}%`;
    evBar.setAttribute('aria-valuenow', String(p));
    evState.textContent = `${j.state} · ${j.done || 0} of ${j.total || '…'} maps scored`;
    evCancel.hidden = !(j.state === 'queued' || j.state === 'running');
    evBtn.disabled = !evCancel.hidden;
    if (j.state === 'succeeded' && j.result) {
      const rows = j.result.table;
      evTable.replaceChildren(
        el('caption', { text: `${j.result.images} ${j.result.split} images from ${j.result.offset}; model accuracy on them ${pct(j.result.accuracy)}` }),
        el('thead', {}, el('tr', {}, ...['method', 'deletion ↓', 'insertion ↑', 'avg drop ↓', 'increase ↑', 'ROAD ↑', 'ms / image']
          .map((t) => el('th', { scope: 'col', text: t })))),
        el('tbody', {}, ...rows.map((r) => el('tr', {},
          el('th', { scope: 'row', text: r.title }), el('td', { text: fmt(r.deletion_auc) }), el('td', { text: fmt(r.insertion_auc) }),
          el('td', { text: `${fmt(r.average_drop_pct, 1)} %` }), el('td', { text: `${fmt(r.increase_pct, 1)} %` }),
          el('td', { text: fmt(r.road) }), el('td', { text: fmt(1000 * r.seconds_per_image, 2) })))));
      evTable.hidden = false;
    }
    if (j.state === 'failed') showError(evErr, { message: j.error || 'the job failed' });
  }

  async function poll() {
    clearTimeout(pollTimer);
    if (!job) return;
    try {
      const j = await getJSON(`v1/jobs/${job}`);
      showJob(j);
      if (j.state === 'queued' || j.state === 'running') pollTimer = setTimeout(poll, 400);
      else job = null;
    } catch (e) {
      showError(evErr, e);
      job = null;
    }
  }

  async function evaluate() {
    if (!state.model) return;
    showError(evErr, null);
    evTable.hidden = true;
    try {
      const res = await request('POST', `v1/models/${model()}/explain/evaluate`,
        { query: { methods: chosen().join(','), count: evCount.value, score: $('cam-score').value } });
      const j = await res.json();
      job = j.id;
      showJob(j);
      poll();
    } catch (e) {
      showError(evErr, e);
    }
  }

  async function cancel() {
    if (!job) return;
    try {
      await request('DELETE', `v1/jobs/${job}`);
      poll();
    } catch (e) {
      showError(evErr, e);
    }
  }

  camMethod.addEventListener('change', () => {
    const sub = document.querySelector('.card--cam .card__sub');
    if (sub) sub.textContent = camMethod.selectedOptions[0]?.text || 'Grad-CAM';
  });
  runBtn.addEventListener('click', compare);
  sanBtn.addEventListener('click', sanity);
  evBtn.addEventListener('click', evaluate);
  evCancel.addEventListener('click', cancel);

  on('model', () => {
    reset();
    for (const box of boxes.querySelectorAll('input')) box.checked = !large() || byName.get(box.value).cheap;
    $('xp-hint').textContent = large()
      ? 'A large input: Score-CAM, Ablation-CAM, occlusion and the sampling methods run hundreds of forward passes; they are left out by default.'
      : '';
  });
  // A new image: the comparison was of the old one. It is asked for again by hand: it
  // runs every method, and the other panels' requests wait behind it on the service.
  on('input', () => {
    nextCompare();
    nextSanity();
    reset();
  });
}

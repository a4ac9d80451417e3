// layerbars.js - a flat layer's values as bars, as CNN Explainer draws its dense layers:
// one bar per unit from a zero line (up for positive, down for negative), its value under
// the pointer, and the strongest units named. It shows for any node without height and
// width (a Dense layer, a Flatten, a pooled vector), in the place of the feature maps;
// the values are the API's activations answer for the current image.
//
// A thousand units and more (VGG16's fc1 has 4096) are drawn side by side at less than a
// pixel each, so the canvas shows their envelope; the pointer still reads single units.

import { state, on } from './store.js';
import { $, int, showError, setBusy, serial, isImageError, isNetworkError } from './ui.js';
import { activations, num } from './values.js';

const TOP = 5;

export function initLayerBars() {
  const view = $('vals-view'), box = $('vals-box'), canvas = $('vals-canvas'), note = $('vals-note');
  const hoverOut = $('vals-hover'), topBox = $('vals-top'), err = $('vals-error'), empty = $('vals-empty');
  let layer = null, shown = null; // shown: {layer, input, values, lo, hi}

  const flat = (l) => !!l && (!l.spatial || (l.output_shape || []).length !== 4);

  function clear(text, input) {
    shown = null;
    box.hidden = true;
    topBox.replaceChildren();
    note.textContent = '';
    hoverOut.textContent = '';
    empty.textContent = text;
    empty.hidden = !text;
    view.dataset.input = input ? String(input.id) : '';
  }

  // The bars, drawn at the canvas's size on screen (sharp on high-density screens).
  function draw() {
    if (!shown) return;
    const { values, lo, hi } = shown;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(160, Math.round(canvas.getBoundingClientRect().width || 480));
    const h = Math.max(90, Math.round(canvas.getBoundingClientRect().height || 140));
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(canvas);
    const pos = css.getPropertyValue('--pos').trim() || '#3f5bd8', neg = css.getPropertyValue('--neg').trim() || '#e8590c';
    const axis = css.getPropertyValue('--axis').trim() || '#888';
    // Zero inside the range: values below it hang from the zero line.
    const top = Math.max(hi, 0), bottom = Math.min(lo, 0);
    const span = top - bottom || 1;
    const Y = (v) => 4 + ((top - v) / span) * (h - 8);
    const y0 = Y(0), n = values.length, bw = w / n;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || !Number.isFinite(v)) continue;
      ctx.fillStyle = v >= 0 ? pos : neg;
      const y = Y(v);
      ctx.fillRect(i * bw, Math.min(y, y0), Math.max(bw - (bw > 3 ? 1 : 0), 0.75), Math.max(1, Math.abs(y - y0)));
    }
    ctx.fillStyle = axis;
    ctx.fillRect(0, Math.round(y0), w, 1);
    if (shown.mark !== undefined) {
      ctx.strokeStyle = axis;
      ctx.strokeRect(shown.mark * bw - 0.5, 1, Math.max(bw, 2), h - 2);
    }
  }

  const load = serial(async () => {
    const l = layer, input = state.input, model = state.model;
    if (!l || !model || !flat(l)) { view.hidden = true; return; }
    view.hidden = false;
    $('vals-title').textContent = `${l.name} · ${int((l.output_shape || []).slice(-1)[0] || 0)} values`;
    if (!input) { clear('Pick an image to see this layer\'s values.', null); return; }
    if (input.empty) { clear('The canvas is empty: draw something to see the values.', input); return; }
    setBusy(box, true);
    try {
      const data = await activations(model, state.summary && state.summary.version, l.name, input);
      if (l !== layer || model !== state.model || input !== state.input) return;
      const values = data.values || [];
      shown = { layer: l.name, input, values, lo: data.min ?? 0, hi: data.max ?? 0 };
      box.hidden = false;
      empty.hidden = true;
      draw();
      const pos = values.filter((v) => v > 0).length;
      note.textContent = `min ${num(data.min)} · max ${num(data.max)} · mean ${num(data.mean)} · ${int(pos)} of ${int(values.length)} above zero`;
      const order = values.map((v, i) => i).filter((i) => Number.isFinite(values[i])).sort((a, b) => values[b] - values[a] || a - b);
      topBox.replaceChildren(...order.slice(0, TOP).map((i) => {
        const li = document.createElement('li');
        li.textContent = `unit ${i}: ${num(values[i])}`;
        li.dataset.unit = String(i);
        return li;
      }));
      canvas.setAttribute('aria-label', `${values.length} values of ${l.name}; the largest: ${order.slice(0, TOP).map((i) => `unit ${i} ${num(values[i])}`).join(', ')}`);
      view.dataset.input = String(input.id);
      view.dataset.layer = l.name;
      showError(err, null);
    } catch (e) {
      if (l !== layer || input !== state.input) return;
      if (isImageError(e)) clear('No values: the image could not be read (see the message by the input).', input);
      else if (isNetworkError(e)) clear('No values: no answer from the service.', input);
      else showError(err, e);
    } finally {
      setBusy(box, false);
    }
  });

  // The unit under the pointer and its value.
  canvas.addEventListener('pointermove', (e) => {
    if (!shown || !shown.values.length) return;
    const r = canvas.getBoundingClientRect();
    const i = Math.min(shown.values.length - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * shown.values.length)));
    hoverOut.textContent = `unit ${i}: ${num(shown.values[i], 4)}`;
    hoverOut.dataset.unit = String(i);
    hoverOut.dataset.value = String(shown.values[i]);
    shown.mark = i;
    draw();
  });
  canvas.addEventListener('pointerleave', () => {
    hoverOut.textContent = '';
    delete hoverOut.dataset.unit;
    delete hoverOut.dataset.value;
    if (shown) { delete shown.mark; draw(); }
  });

  on('layer', (l) => { layer = l; shown = null; load(); });
  on('input', load);
  on('stroke', load);
  on('model', () => { shown = null; });
  on('input-empty', (input) => { if (flat(layer)) clear('The canvas is empty: draw something to see the values.', input); });
  on('input-rejected', (input) => { if (flat(layer) && input === state.input) clear('No values: the image could not be read (see the message by the input).', input); });
  new ResizeObserver(draw).observe(canvas);
}

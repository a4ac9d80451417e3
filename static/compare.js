// compare.js - side by side: the picture as given, the picture as the model took it in
// (after resizing and conversion), the bare Grad-CAM heatmap and the overlay, at the same
// size, for the class and layer the Grad-CAM card explains. Asked for only while the
// panel is open. Also a note by the input when an upload looks far from what the
// Fashion-MNIST network was trained on (a bright background, where the data set has
// light clothes on black), pointing at the invert option.
//
// For a gray model the API's overlay at weight 0 and the input's own size is exactly
// the network's input (its 0..1 values times 255); a colour model's overlay is drawn on
// the photo itself, so that view is the photo resized, and is labelled as such.

import { postImage, url } from './api.js';
import { state, on } from './store.js';
import { $, el, setImageBlob, isNetworkError, isImageError, serial } from './ui.js';
import { inputShape, isFashionModel, describeInput } from './modelinfo.js';

// Fashion-MNIST images have black borders: a picture whose border is brighter than this
// (0..1) is unlike anything the network saw in training.
const BRIGHT_BORDER = 0.35;

export function initCompare() {
  const panel = $('compare'), note = $('compare-note'), farNote = $('input-far');
  const figs = {
    orig: { img: $('cmp-orig'), cap: $('cmp-orig-cap') },
    seen: { img: $('cmp-seen'), cap: $('cmp-seen-cap') },
    heat: { img: $('cmp-heat'), cap: $('cmp-heat-cap') },
    over: { img: $('cmp-over'), cap: $('cmp-over-cap') },
  };
  let cam = { layer: '', requestedClass: '', score: 'logit' };

  function clear(text) {
    for (const f of Object.values(figs)) { f.img.removeAttribute('src'); f.img.closest('.cmp__box').classList.remove('has-image'); }
    note.textContent = text;
    note.hidden = !text;
    panel.dataset.input = '';
  }

  const load = serial(async () => {
    const input = state.input, model = state.model;
    if (!panel.open || !input || !model) return;
    if (input.empty) { clear('The canvas is empty: draw something to compare.'); return; }
    const shape = inputShape();
    const base = `v1/models/${encodeURIComponent(model.name)}/gradcam`;
    const q = { layer: cam.layer || undefined, class: cam.requestedClass, score: cam.score };
    const side = 280;
    try {
      const origBlob = input.sample
        ? await (await fetch(url(`v1/datasets/fashion-mnist/${input.sample.split}/${input.sample.index}.png`))).blob()
        : input.blob;
      const [seen, heat, over] = await Promise.all([
        postImage(base, input, { ...q, alpha: 0, size: shape.c === 1 ? shape.w : side, format: 'overlay' }),
        postImage(base, input, { ...q, size: side, format: 'heatmap' }),
        postImage(base, input, { ...q, size: side, format: 'overlay', alpha: shape.c === 1 ? 0.7 : 0.4 }),
      ]);
      const blobs = await Promise.all([seen.blob(), heat.blob(), over.blob()]);
      if (input !== state.input || model !== state.model) return;
      await Promise.all([
        setImageBlob(figs.orig.img, origBlob), setImageBlob(figs.seen.img, blobs[0]),
        setImageBlob(figs.heat.img, blobs[1]), setImageBlob(figs.over.img, blobs[2]),
      ]);
      for (const f of Object.values(figs)) f.img.closest('.cmp__box').classList.add('has-image');
      const label = over.headers.get('X-Class-Label') || '';
      figs.orig.cap.textContent = input.sample ? `as stored: ${input.sample.split} #${input.sample.index}` : `as given: ${input.name}`;
      figs.seen.cap.textContent = shape.c === 1
        ? `what the model saw: exactly its ${describeInput(shape)} input`
        : `the photo the model read, resized for display (the model takes ${describeInput(shape)})`;
      figs.heat.cap.textContent = `Grad-CAM heatmap for ${label}${over.headers.get('X-Flat') === 'true' ? ' (flat: no evidence)' : ''}`;
      figs.over.cap.textContent = `the heatmap over the ${shape.c === 1 ? 'input' : 'photo'}`;
      note.hidden = true;
      panel.dataset.input = String(input.id);
    } catch (e) {
      if (input !== state.input) return;
      if (isNetworkError(e)) clear('No answer from the service.');
      else if (isImageError(e)) clear('The image could not be read (see the message by the input).');
      else clear(e.message);
    }
  });

  // How far an upload is from Fashion-MNIST: the brightness of its border once it is
  // shrunk to 28x28 gray, as the model takes it.
  async function judge(input) {
    farNote.hidden = true;
    if (!input || !input.blob || input.fromPad || !isFashionModel()) return;
    let bmp;
    try { bmp = await createImageBitmap(input.blob); } catch { return; }
    const { w, h } = inputShape();
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0, w, h);
    const d = ctx.getImageData(0, 0, w, h).data;
    let sum = 0, n = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (x > 1 && y > 1 && x < w - 2 && y < h - 2) continue;
        const i = 4 * (y * w + x);
        sum += (0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]) / 255;
        n++;
      }
    }
    if (input !== state.input) return;
    const border = sum / n;
    if (border > BRIGHT_BORDER && !input.inverted) {
      farNote.replaceChildren(
        el('strong', { text: 'Far from the training data: ' }),
        `this picture has a bright background (${Math.round(border * 100)} % at the border), while Fashion-MNIST has light clothes on black. The network has never seen anything like it, so its answer means little. Try `,
        el('button', { type: 'button', class: 'btn btn--link', text: 'inverting it', onclick: () => { const inv = $('upload-invert'); inv.checked = true; inv.dispatchEvent(new Event('change')); } }),
        '.');
      farNote.hidden = false;
    }
    farNote.dataset.border = border.toFixed(3);
  }

  panel.addEventListener('toggle', () => { if (panel.open) load(); });
  on('input', (input) => { judge(input); load(); });
  on('model', () => { judge(state.input); load(); });
  on('input-empty', () => { farNote.hidden = true; if (panel.open) clear('The canvas is empty: draw something to compare.'); });
  on('gradcam', (info) => {
    if (!info) return;
    const next = { layer: info.layer, requestedClass: info.requestedClass, score: info.score };
    const changed = next.layer !== cam.layer || next.requestedClass !== cam.requestedClass || next.score !== cam.score;
    cam = next;
    if (changed) load();
  });
}

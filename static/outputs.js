// outputs.js - the output layer as bars, as CNN Explainer draws it: the logits (scores
// before the softmax, signed, from a zero line) beside the softmax probabilities they
// become, for every class (the ten most likely when there are more); and on demand the
// Grad-CAM maps of all classes at once, small, side by side.
//
// The predict answer has every probability; Grad-CAM's answer adds the logit of the class
// it explained (X-Logit). Softmax only shifts logits by one constant, so from one logit
// all follow: logit_i = logit_c + ln p_i - ln p_c. Until a logit is known the bars show
// log-probabilities (ln p_i), which differ from the logits by that constant, and say so.

import { postImage } from './api.js';
import { state, on } from './store.js';
import { $, el, pct, setImageBlob, isNetworkError, showError } from './ui.js';
import { classesOf, isColour } from './modelinfo.js';

const SHOWN = 10;
const ALL_MAPS_MAX = 10;

export function initOutputs() {
  const panel = $('outputs'), logitsBox = $('out-logits'), probsBox = $('out-probs'), note = $('out-note');
  const mapsBtn = $('out-maps-btn'), mapsBox = $('out-maps'), mapsErr = $('out-maps-error');
  let pred = null, anchor = null;

  function rows(values, { signed, format }) {
    const max = Math.max(1e-9, ...values.map((v) => Math.abs(v.value)));
    return values.map((v) => {
      const w = (Math.abs(v.value) / max) * (signed ? 50 : 100);
      const style = signed
        ? `left:${v.value < 0 ? 50 - w : 50}%;width:${w}%`
        : `left:0;width:${w}%`;
      return el('li', { class: `obar${v.top ? ' is-top' : ''}${v.value < 0 ? ' is-neg' : ''}`, 'aria-label': `${v.label}: ${format(v.value)}` },
        el('span', { class: 'obar__label', text: v.label, title: v.label }),
        el('span', { class: `obar__track${signed ? ' obar__track--signed' : ''}`, 'aria-hidden': 'true' }, el('span', { class: 'obar__fill', style })),
        el('span', { class: 'obar__value', text: format(v.value) }));
    });
  }

  function render() {
    if (!pred) {
      logitsBox.replaceChildren();
      probsBox.replaceChildren();
      note.textContent = 'Pick an image to see the output layer.';
      panel.dataset.input = '';
      return;
    }
    const { p, input } = pred;
    const classes = classesOf();
    const probs = p.probabilities || [];
    const top = p.top && p.top[0] ? p.top[0].index : -1;
    let idx = probs.map((_, i) => i);
    if (idx.length > SHOWN) idx = idx.sort((a, b) => probs[b] - probs[a]).slice(0, SHOWN);
    const exact = anchor && anchor.input === input && probs[anchor.classIndex] > 0;
    const logit = (i) => (exact
      ? anchor.logit + Math.log(probs[i]) - Math.log(probs[anchor.classIndex])
      : Math.log(Math.max(probs[i], 1e-45)));
    const label = (i) => classes[i] ?? String(i);
    logitsBox.replaceChildren(...rows(idx.map((i) => ({ label: label(i), value: logit(i), top: i === top })), { signed: true, format: (v) => v.toFixed(2) }));
    probsBox.replaceChildren(...rows(idx.map((i) => ({ label: label(i), value: probs[i], top: i === top })), { signed: false, format: (v) => pct(v) }));
    $('out-logits-title').textContent = exact ? 'Logits (before the softmax)' : 'Log-probabilities (the logits up to one constant)';
    note.textContent = `${probs.length > SHOWN ? `The ${SHOWN} most likely of ${probs.length} classes. ` : ''}` +
      (exact
        ? `The softmax turns the logits into probabilities: p = e^logit / Σ e^logit. The logits are exact, from the logit of ${label(anchor.classIndex)} that Grad-CAM reported.`
        : 'The softmax only shifts logits by one constant, so these bars have the logits\' shape; the exact values follow once Grad-CAM reports one logit.');
    panel.dataset.input = String(input.id);
    panel.dataset.exact = exact ? 'true' : 'false';
  }

  // Small Grad-CAM maps for every class (the most likely when there are many).
  async function allMaps() {
    if (!pred || !state.model) return;
    const input = pred.input, model = state.model;
    const probs = pred.p.probabilities || [];
    let idx = probs.map((_, i) => i);
    if (idx.length > ALL_MAPS_MAX) idx = idx.sort((a, b) => probs[b] - probs[a]).slice(0, ALL_MAPS_MAX);
    const classes = classesOf();
    const layer = $('cam-layer').value || undefined;
    mapsBtn.disabled = true;
    showError(mapsErr, null);
    try {
      const figs = idx.map((i) => {
        const img = el('img', { alt: `Grad-CAM for ${classes[i]}`, width: 112, height: 112 });
        const cap = el('figcaption', {}, el('strong', { text: classes[i] ?? String(i) }), ` ${pct(probs[i])}`);
        return { i, img, fig: el('figure', { class: 'allmaps__fig', dataset: { class: String(i) } }, el('div', { class: 'allmaps__box' }, img), cap) };
      });
      mapsBox.replaceChildren(...figs.map((f) => f.fig));
      mapsBox.hidden = false;
      // One at a time: a thousand-class model's maps are each a full backward pass.
      for (const f of figs) {
        const res = await postImage(`v1/models/${encodeURIComponent(model.name)}/gradcam`, input, {
          class: f.i, layer, format: 'overlay', size: 112, alpha: isColour() ? 0.4 : 0.7,
        });
        const blob = await res.blob();
        if (input !== state.input || model !== state.model) return;
        await setImageBlob(f.img, blob);
        if (input !== state.input || model !== state.model) return; /* moved on while it loaded */
        if (res.headers.get('X-Flat') === 'true') f.fig.classList.add('is-flat');
      }
      mapsBox.dataset.input = String(input.id);
    } catch (e) {
      if (isNetworkError(e)) mapsBox.replaceChildren();
      else showError(mapsErr, e);
    } finally {
      mapsBtn.disabled = false;
    }
  }
  mapsBtn.addEventListener('click', allMaps);

  function reset() {
    mapsBox.replaceChildren();
    mapsBox.hidden = true;
  }

  on('prediction', ({ prediction, input }) => {
    pred = { p: prediction, input };
    if (anchor && anchor.input !== input) anchor = null;
    render();
  });
  on('gradcam', (info) => {
    if (!info || info.logit === null || !Number.isFinite(info.logit) || !Number.isInteger(info.classIndex)) return;
    anchor = { input: info.input, classIndex: info.classIndex, logit: info.logit };
    if (pred) render();
  });
  on('model', () => { pred = null; anchor = null; reset(); render(); });
  on('input', reset);
  on('input-empty', () => { pred = null; reset(); render(); });
  on('input-rejected', () => { pred = null; reset(); render(); });
  on('offline', () => { pred = null; render(); note.textContent = 'No answer from the service.'; });
}

// gradcam.js - "where it looks": the Grad-CAM overlay (or the bare heatmap) for the
// current image, for any class, at any layer with height and width, with the heatmap's
// weight on a slider. The class the map explains comes back in the X-Class-Label header,
// so the caption always names what is shown, even when the picker says "predicted".

import { postImage } from './api.js';
import { state, on } from './store.js';
import { $, el, showError, setBusy, setImageBlob, debounce, latest, isImageError } from './ui.js';

export function initGradcam() {
  const img = $('cam-img'), box = $('cam-box'), caption = $('cam-caption'), errBox = $('cam-error');
  const classSel = $('cam-class'), layerSel = $('cam-layer'), alpha = $('cam-alpha'), alphaOut = $('cam-alpha-out');
  const scoreSel = $('cam-score'), heatOnly = $('cam-heatmap');
  const nextSignal = latest();

  function fillPickers() {
    const m = state.model, s = state.summary;
    const classes = s.classes || m.classes || [];
    classSel.replaceChildren(el('option', { value: '', text: 'predicted class' }),
      ...classes.map((c, i) => el('option', { value: String(i), text: `${i} · ${c}` })));
    const spatial = (s.layers || []).filter((l) => l.spatial && (l.output_shape || []).length === 4);
    const def = s.gradcam_layer || m.gradcam_layer;
    layerSel.replaceChildren(...spatial.map((l) => el('option', {
      value: l.name, selected: l.name === def,
      text: l.name, title: `${l.output_shape[1]}×${l.output_shape[2]}×${l.output_shape[3]}`,
    })));
    alpha.value = m.name === 'vgg16' ? '0.4' : '0.7';
    alphaOut.textContent = Number(alpha.value).toFixed(2);
  }

  async function run() {
    if (!state.input || !state.model) return;
    const signal = nextSignal();
    const model = state.model;
    const query = {
      layer: layerSel.value || undefined,
      class: classSel.value,
      alpha: alpha.value,
      score: scoreSel.value,
      format: heatOnly.checked ? 'heatmap' : 'overlay',
      size: model.name === 'vgg16' ? 448 : 540,
    };
    setBusy(box, true);
    try {
      const res = await postImage(`v1/models/${model.name}/gradcam`, state.input, query, { signal });
      const blob = await res.blob();
      if (signal.aborted) return;
      await setImageBlob(img, blob);
      const label = res.headers.get('X-Class-Label') || classSel.selectedOptions[0]?.text;
      const allZero = res.headers.get('X-All-Zero') === 'true';
      const layer = layerSel.value;
      img.alt = `Grad-CAM ${query.format} for class ${label} at layer ${layer}`;
      caption.replaceChildren(
        allZero
          ? el('span', {}, 'Nothing at ', el('code', { text: layer }), ' speaks for ', el('strong', { text: label }), ': the map is all zero.')
          : el('span', {}, 'Evidence for ', el('strong', { text: label }), ' at ', el('code', { text: layer }), ' — warm colours count most.'));
      box.classList.add('has-image');
      showError(errBox, null);
    } catch (e) {
      if (signal.aborted) return;
      if (isImageError(e)) {
        showError(errBox, null);
        img.removeAttribute('src');
        box.classList.remove('has-image');
        caption.textContent = 'No map: the image could not be read (see the message by the input).';
      } else showError(errBox, e);
    } finally {
      if (!signal.aborted) setBusy(box, false);
    }
  }

  const soon = debounce(run, 180);
  classSel.addEventListener('change', run);
  layerSel.addEventListener('change', run);
  scoreSel.addEventListener('change', run);
  heatOnly.addEventListener('change', run);
  alpha.addEventListener('input', () => { alphaOut.textContent = Number(alpha.value).toFixed(2); soon(); });

  on('model', () => { fillPickers(); run(); });
  on('input', run);
  on('prediction', ({ prediction }) => {
    const top = prediction.top && prediction.top[0];
    if (top && classSel.options[0]) classSel.options[0].textContent = `predicted: ${top.label}`;
  });
}

// gradcam.js - "where it looks": the Grad-CAM overlay (or the bare heatmap) for the
// current image, for any class, at any layer with height and width, with the heatmap's
// weight on a slider. The class the map explains comes back in the X-Class-Label header,
// so the caption always names what is shown, even when the picker says "predicted"; its
// score comes back in X-Logit and X-Probability. A flat map (X-Flat: one value all over,
// as for a blank picture) points at no place, and the caption says so instead of calling
// a solid colour evidence.
//
// The map follows the drawing while the pen is down, like the bars: one request at a
// time, the newest drawing next. The box carries the number of the input it shows.

import { postImage } from './api.js';
import { camRequest } from './explain.js';
import { state, on, emit } from './store.js';
import { $, el, showError, setBusy, setImageBlob, debounce, serial, isImageError, isNetworkError } from './ui.js';
import { classesOf, isColour } from './modelinfo.js';
import { createClassPicker } from './classpick.js';

export function initGradcam() {
  const img = $('cam-img'), box = $('cam-box'), caption = $('cam-caption'), errBox = $('cam-error');
  const layerSel = $('cam-layer'), alpha = $('cam-alpha'), alphaOut = $('cam-alpha-out');
  const scoreSel = $('cam-score'), heatOnly = $('cam-heatmap');
  const classPick = createClassPicker($('cam-class-wrap'), { onChange: () => { run(); emit('view'); } });

  function fillPickers() {
    const s = state.summary;
    classPick.setClasses(classesOf());
    const spatial = (s.layers || []).filter((l) => l.spatial && (l.output_shape || []).length === 4 &&
      l.output_shape[1] >= 2 && l.output_shape[2] >= 2);
    const def = s.gradcam_layer || state.model.gradcam_layer;
    layerSel.replaceChildren(...spatial.map((l) => el('option', {
      value: l.name, selected: l.name === def,
      text: l.name, title: `${l.output_shape[1]}×${l.output_shape[2]}×${l.output_shape[3]}`,
    })));
    alpha.value = isColour() ? '0.4' : '0.7';
    alphaOut.textContent = Number(alpha.value).toFixed(2);
  }

  function clear(text, input) {
    img.removeAttribute('src');
    box.classList.remove('has-image', 'is-flat');
    box.dataset.input = input ? String(input.id) : '';
    caption.textContent = text;
    classPick.setPredicted(null);
    emit('gradcam', null);
  }

  function describe({ label, layer, flat, allZero, format, weight }) {
    const code = el('code', { text: layer }), who = el('strong', { text: label });
    if (allZero) return el('span', {}, 'Nothing at ', code, ' speaks for ', who, ': the map is all zero — no evidence.');
    if (flat) {
      return el('span', {}, 'The map is flat: every place at ', code, ' counts the same for ', who,
        ', so it points nowhere — no evidence of where the network looks.');
    }
    if (format === 'overlay' && weight === 0) {
      return el('span', {}, 'Heatmap weight 0: only the picture is shown. Raise the weight to see the evidence for ', who, '.');
    }
    return el('span', {}, 'Evidence for ', who, ' at ', code, ' — warm colours count most.');
  }

  const stillCurrent = (input) => input === state.input ||
    (input.fromPad && state.input && state.input.fromPad && !state.input.empty);

  const run = serial(async () => {
    const input = state.input, model = state.model;
    if (!input || !model || input.empty) return;
    const query = {
      layer: layerSel.value || undefined,
      class: classPick.value,
      alpha: alpha.value,
      score: scoreSel.value,
      format: heatOnly.checked ? 'heatmap' : 'overlay',
      size: isColour() ? 448 : 540,
    };
    setBusy(box, true);
    try {
      const req = camRequest(model.name, query); /* the method picker's route */
      const res = await postImage(req.path, input, req.query);
      const blob = await res.blob();
      if (model !== state.model || !stillCurrent(input)) return;
      await setImageBlob(img, blob);
      if (model !== state.model || !stillCurrent(input)) return; /* cleared or moved on while it loaded */
      const h = (k) => res.headers.get(k);
      const label = h('X-Class-Label') || classPick.text;
      const info = {
        input, layer: query.layer || '', label, classIndex: Number(h('X-Class-Index')),
        flat: h('X-Flat') === 'true', allZero: h('X-All-Zero') === 'true',
        logit: h('X-Logit') !== null ? Number(h('X-Logit')) : null,
        probability: h('X-Probability') !== null ? Number(h('X-Probability')) : null,
        format: query.format, weight: Number(query.alpha), score: query.score, requestedClass: query.class,
      };
      img.alt = `${req.title} ${query.format} for class ${label} at layer ${info.layer}${info.flat ? ' (flat: no evidence)' : ''}`;
      caption.replaceChildren(describe(info));
      box.classList.add('has-image');
      box.classList.toggle('is-flat', info.flat);
      box.dataset.input = String(input.id);
      showError(errBox, null);
      emit('gradcam', info);
    } catch (e) {
      if (model !== state.model || !stillCurrent(input)) return;
      if (isImageError(e)) {
        showError(errBox, null);
        clear('No map: the image could not be read (see the message by the input).', input);
      } else if (isNetworkError(e)) {
        showError(errBox, null);
        clear('No map: no answer from the service.', input);
      } else showError(errBox, e);
    } finally {
      setBusy(box, false);
    }
  });

  // In heatmap-only mode the weight means nothing: the slider rests and sends nothing.
  function syncAlpha() {
    alpha.disabled = heatOnly.checked;
    alpha.closest('label').classList.toggle('is-disabled', heatOnly.checked);
    alpha.title = heatOnly.checked ? 'The bare heatmap has no weight: untick "Heatmap only" to blend it over the image' : '';
  }

  const soon = debounce(run, 180);
  layerSel.addEventListener('change', () => { run(); emit('view'); });
  $('cam-method').addEventListener('change', run);
  scoreSel.addEventListener('change', run);
  heatOnly.addEventListener('change', () => { syncAlpha(); run(); });
  alpha.addEventListener('input', () => {
    alphaOut.textContent = Number(alpha.value).toFixed(2);
    if (!heatOnly.checked) soon();
  });
  syncAlpha();

  on('model', () => { fillPickers(); run(); });
  on('input', run);
  on('stroke', run);
  on('input-empty', (input) => clear('The canvas is empty: draw something to see where the network looks.', input));
  on('input-rejected', (input) => { if (input === state.input) clear('No map: the image could not be read (see the message by the input).', input); });
  on('prediction', ({ prediction, input }) => {
    if (input !== state.input && !stillCurrent(input)) return;
    const top = prediction.top && prediction.top[0];
    classPick.setPredicted(top ? top.label : null);
  });

  return {
    get layer() { return layerSel.value; },
    setLayer(name) {
      if ([...layerSel.options].some((o) => o.value === name)) { layerSel.value = name; run(); }
    },
    get classValue() { return classPick.value; },
    setClass(v) { classPick.set(v); run(); },
    run,
  };
}

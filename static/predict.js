// predict.js - the probability bars. A model with up to ten classes shows all of them in
// a fixed order, so while one draws the bars grow and shrink in place instead of jumping
// around; a model with more (VGG16's thousand) shows its top five, sorted.
//
// Only one request is in flight at a time: strokes that arrive meanwhile collapse into
// one follow-up request for the newest drawing. The list carries the number of the input
// its bars belong to (data-input).

import { postImage, noteVersion } from './api.js';
import { state, on, emit } from './store.js';
import { $, el, pct, showError, isImageError, isNetworkError, serial } from './ui.js';
import { classesOf, isFashionModel, modelTitle } from './modelinfo.js';

const FIXED_MAX = 10;

export function initPredict() {
  const list = $('pred-bars'), sub = $('pred-sub'), truth = $('pred-truth');
  const errBox = $('pred-error'), inputErr = $('input-error'), note = $('pred-note');
  let rows = [];

  const fixedOrder = () => classesOf().length <= FIXED_MAX;

  function build() {
    const n = fixedOrder() ? classesOf().length : 5;
    rows = Array.from({ length: n }, () => {
      const fill = el('div', { class: 'bar__fill' });
      const li = el('li', { class: 'bar' },
        el('span', { class: 'bar__label' }),
        el('div', { class: 'bar__track', 'aria-hidden': 'true' }, fill),
        el('span', { class: 'bar__value' }));
      return { li, fill, label: li.children[0], value: li.children[2] };
    });
    list.replaceChildren(...rows.map((r) => r.li));
    truth.hidden = true;
    sub.textContent = '';
  }

  // Empties the bars (no answer for this input), saying why in the note.
  function blank(why, input) {
    const classes = classesOf();
    rows.forEach((r, i) => {
      r.fill.style.width = '0%';
      r.value.textContent = '—';
      r.label.textContent = fixedOrder() ? classes[i] : '';
      r.li.classList.remove('is-top');
      r.li.removeAttribute('aria-label');
    });
    sub.textContent = '';
    truth.hidden = true;
    note.textContent = why || '';
    note.hidden = !why;
    list.dataset.input = input ? String(input.id) : '';
    state.prediction = null;
  }

  function render(p, answer, input) {
    const classes = classesOf();
    const entries = fixedOrder()
      ? p.probabilities.map((prob, index) => ({ index, label: classes[index], probability: prob }))
      : p.top.slice(0, rows.length);
    const best = p.top[0] ? p.top[0].index : -1;
    entries.forEach((e, i) => {
      const r = rows[i];
      if (!r) return;
      r.label.textContent = e.label;
      r.label.title = e.label;
      r.value.textContent = pct(e.probability);
      r.fill.style.width = `${Math.max(0, Math.min(1, e.probability)) * 100}%`;
      r.li.classList.toggle('is-top', e.index === best);
      r.li.setAttribute('aria-label', `${e.label}: ${pct(e.probability)}`);
    });
    const top = p.top[0];
    sub.textContent = top ? `${top.label} · ${pct(top.probability, 0)}` : '';
    note.hidden = true;
    list.dataset.input = String(input.id);
    if (answer.truth && isFashionModel()) {
      const ok = top && answer.truth.index === top.index;
      truth.replaceChildren(
        'Label in the dataset: ', el('strong', { text: answer.truth.label }),
        el('span', { class: ok ? 'ok' : 'bad', text: ok ? ' ✓ the network agrees' : ' ✗ the network disagrees' }));
      truth.hidden = false;
    } else if (answer.truth) {
      // Another model's classes are not Fashion-MNIST's: the label is context, not a verdict.
      truth.replaceChildren(
        'Fashion-MNIST label: ', el('strong', { text: answer.truth.label }),
        el('span', { class: 'muted', text: ` — not compared: ${modelTitle(state.model.name)} answers in its own classes.` }));
      truth.hidden = false;
    } else truth.hidden = true;
  }

  // While one draws, an answer for a drawing a moment ago still belongs on screen; an
  // answer for any other picture does not.
  const stillCurrent = (input) => input === state.input ||
    (input.fromPad && state.input && state.input.fromPad && !state.input.empty);

  const run = serial(async () => {
    const input = state.input, model = state.model;
    if (!input || !model || input.empty) return;
    list.classList.add('is-busy');
    const started = performance.now();
    try {
      const res = await postImage(`v1/models/${encodeURIComponent(model.name)}/predict`, input, { top_k: rows.length });
      const answer = await res.json();
      noteVersion(`v1/models/${model.name}`, answer.version, started);
      if (model !== state.model || !stillCurrent(input)) return;
      const p = answer.predictions && answer.predictions[0];
      if (p) {
        render(p, answer, input);
        state.prediction = p;
        emit('prediction', { prediction: p, input, version: answer.version });
      }
      showError(errBox, null);
    } catch (e) {
      if (model !== state.model || !stillCurrent(input)) return;
      if (isImageError(e)) {
        // The picture itself is at fault: say so by the input, and empty the bars
        // rather than leave the previous image's answer standing.
        showError(inputErr, e);
        showError(errBox, null);
        emit('input-rejected', input);
        blank('No prediction: the image could not be read.', input);
      } else if (isNetworkError(e)) {
        // Said once, at the top of the page; here only the stale bars go.
        showError(errBox, null);
        blank('No answer from the service.', input);
      } else showError(errBox, e);
    } finally {
      list.classList.remove('is-busy');
    }
  });

  on('model', () => {
    build();
    if (state.input && state.input.empty) blank('Nothing drawn yet: the canvas is empty.', state.input);
    else run();
  });
  on('input', run);
  on('stroke', run);
  on('input-empty', (input) => { showError(errBox, null); blank('Nothing drawn yet: the canvas is empty.', input); });
}

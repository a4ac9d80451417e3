// predict.js - the probability bars. The Fashion-MNIST model shows all ten classes in a
// fixed order, so while one draws the bars grow and shrink in place instead of jumping
// around; VGG16 shows its top five of a thousand, sorted.
//
// Only one request is in flight at a time: strokes that arrive meanwhile collapse into
// one follow-up request for the newest drawing.

import { postImage } from './api.js';
import { state, on, emit } from './store.js';
import { $, el, pct, showError, isImageError } from './ui.js';

export function initPredict() {
  const list = $('pred-bars'), sub = $('pred-sub'), truth = $('pred-truth');
  const errBox = $('pred-error'), inputErr = $('input-error');
  let rows = [], inFlight = false, pending = false;

  function build() {
    const m = state.model;
    const n = m && m.name === 'fmnist' ? (m.classes || []).length : 5;
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

  function render(p, answer) {
    const fixed = state.model.name === 'fmnist';
    const entries = fixed
      ? p.probabilities.map((prob, index) => ({ index, label: state.model.classes[index], probability: prob }))
      : p.top.slice(0, rows.length);
    const best = p.top[0] ? p.top[0].index : -1;
    entries.forEach((e, i) => {
      const r = rows[i];
      if (!r) return;
      r.label.textContent = e.label;
      r.value.textContent = pct(e.probability);
      r.fill.style.width = `${Math.max(0, Math.min(1, e.probability)) * 100}%`;
      r.li.classList.toggle('is-top', e.index === best);
      r.li.setAttribute('aria-label', `${e.label}: ${pct(e.probability)}`);
    });
    const top = p.top[0];
    sub.textContent = top ? `${top.label} · ${pct(top.probability, 0)}` : '';
    if (answer.truth) {
      const ok = top && answer.truth.index === top.index;
      truth.replaceChildren(
        'Label in the dataset: ', el('strong', { text: answer.truth.label }),
        el('span', { class: ok ? 'ok' : 'bad', text: ok ? ' ✓ the network agrees' : ' ✗ the network disagrees' }));
      truth.hidden = false;
    } else truth.hidden = true;
  }

  async function run() {
    if (!state.input || !state.model) return;
    if (inFlight) { pending = true; return; }
    inFlight = true;
    pending = false;
    const input = state.input, model = state.model;
    list.classList.add('is-busy');
    try {
      const res = await postImage(`v1/models/${model.name}/predict`, input, { top_k: rows.length });
      const answer = await res.json();
      if (model !== state.model) return;
      const p = answer.predictions && answer.predictions[0];
      if (p) {
        render(p, answer);
        state.prediction = p;
        emit('prediction', { prediction: p, input, version: answer.version });
      }
      showError(errBox, null);
    } catch (e) {
      if (isImageError(e)) {
        // The picture itself is at fault: say so by the input, and empty the bars
        // rather than leave the previous image's answer standing.
        showError(inputErr, e);
        showError(errBox, null);
        emit('input-rejected', input);
        for (const r of rows) {
          r.fill.style.width = '0%';
          r.value.textContent = '—';
          r.li.classList.remove('is-top');
        }
        sub.textContent = '';
        truth.hidden = true;
      } else showError(errBox, e);
    } finally {
      inFlight = false;
      list.classList.remove('is-busy');
      if (pending) run();
    }
  }

  on('model', () => { build(); run(); });
  on('input', run);
  on('stroke', run);
}

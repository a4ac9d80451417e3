// models.js - which model the page talks to: the picker in the header (from
// GET /v1/models), the one-line description of the served version, and reloading both
// when training has produced a new version. A model that cannot be served (VGG16
// without its weights file) stays in the picker, marked, and picking it shows why.

import { getJSON } from './api.js';
import { state, emit } from './store.js';
import { $, el, pct, int, showError } from './ui.js';

const TITLES = { fmnist: 'Fashion-MNIST', vgg16: 'VGG16' };
// The longer names, for the line under the header.
const NAMES = { fmnist: 'Fashion-MNIST CNN', vgg16: 'VGG16 (ImageNet)' };

export function initModels() {
  const picker = $('model-picker'), meta = $('model-meta'), errBox = $('model-error');

  function render() {
    const radios = state.models.map((m) => {
      const unavailable = m.status === 'unavailable';
      const id = `model-${m.name}`;
      return el('span', { class: 'models__opt' },
        el('input', {
          type: 'radio', name: 'model', id, value: m.name, class: 'sr-only',
          checked: state.model && state.model.name === m.name,
          onchange: () => choose(m.name),
        }),
        el('label', { for: id, class: unavailable ? 'is-unavailable' : '', title: unavailable ? m.reason || 'unavailable' : '' },
          TITLES[m.name] || m.name,
          m.status !== 'ready' ? el('span', { class: `pill pill--${m.status}`, text: m.status }) : null));
    });
    picker.replaceChildren(el('legend', { class: 'sr-only', text: 'Model' }), ...radios);
  }

  function renderMeta() {
    const m = state.model, s = state.summary;
    if (!m || !s) { meta.textContent = ''; return; }
    const parts = [];
    if (s.version != null) parts.push(`version ${s.version}`);
    if (s.test_accuracy != null) parts.push(`test accuracy ${pct(s.test_accuracy)}`);
    parts.push(`${int(s.total_params ?? m.params ?? 0)} parameters`);
    if (s.trained_at) parts.push(`trained ${new Date(s.trained_at).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' })}`);
    meta.replaceChildren(el('strong', { text: NAMES[m.name] || m.name }), ` · ${parts.join(' · ')}`);
  }

  async function loadList() {
    const data = await getJSON('v1/models');
    state.models = data.models || [];
  }

  // Loads the summary first and only then switches, so a failure leaves the page on
  // the model that works, with the reason shown under the picker.
  async function choose(name) {
    try {
      const summary = await getJSON(`v1/models/${encodeURIComponent(name)}`);
      state.model = state.models.find((m) => m.name === name) || { name };
      state.summary = summary;
      showError(errBox, null);
      render();
      renderMeta();
      emit('model', state.model);
      return true;
    } catch (e) {
      showError(errBox, { status: e.status, code: e.code, message: `${NAMES[name] || name}: ${e.message}` });
      render();
      return false;
    }
  }

  // After training: a new version is served; reload the list and the summary.
  async function refresh() {
    await loadList();
    const name = state.model ? state.model.name : 'fmnist';
    return choose(name);
  }

  async function start() {
    try {
      await loadList();
    } catch (e) {
      showError(errBox, e);
      return false;
    }
    render();
    const first = state.models.find((m) => m.name === 'fmnist' && m.status === 'ready') ||
      state.models.find((m) => m.status === 'ready');
    if (!first) {
      const why = state.models.map((m) => `${m.name}: ${m.reason || m.status}`).join('; ');
      showError(errBox, { message: `No model is ready yet. ${why}` });
      return false;
    }
    return choose(first.name);
  }

  return { start, refresh, choose };
}

// models.js - which model the page talks to: the picker in the header (from
// GET /v1/models), the one-line description of the served version, and reloading both
// when the model changes. A model that cannot be served (VGG16 without its weights file)
// stays in the picker, marked, and picking it shows why.
//
// The model can change under the page: training from another tab or curl, a new ONNX
// file in the models folder. Every answer names the version that computed it; when that
// is not the version the page shows, the page reloads the model and says so, rather than
// go on describing weights the service no longer serves.

import { getJSON } from './api.js';
import { state, emit, on } from './store.js';
import { $, el, pct, int, showError } from './ui.js';
import { modelTitle, modelName, testSetSize } from './modelinfo.js';

// How the service turns an image into this model's input, in a few words and in full.
const MODES = { unit: 'scaled to 0…1', raw: 'as 0…255', tf: 'scaled to −1…1', torch: 'normalised with ImageNet\'s mean and std', caffe: 'as BGR minus ImageNet\'s mean', custom: 'normalised' };
function preShort(p) {
  const size = (p.size || []).join('×');
  return `${p.fit === 'crop' ? 'centre-cropped and ' : ''}resized to ${size} (${p.resize}), ${p.color === 'gray' ? 'gray' : p.color.toUpperCase()}, ${MODES[p.mode] || p.mode}`;
}
function preText(p) {
  const list = (a) => (a || []).map((v) => Number(v.toPrecision(4))).join(', ');
  return `preprocessing (${p.source}${p.why ? `: ${p.why}` : ''}): mode ${p.mode}, colour ${p.color}, fit ${p.fit}${p.fit === 'crop' && p.crop < 1 ? ` ${p.crop}` : ''}, resize ${p.resize}, x = (pixel × ${Number(p.scale.toPrecision(4))} − mean) / std, mean ${list(p.mean)}, std ${list(p.std)}`;
}

export function initModels() {
  const picker = $('model-picker'), meta = $('model-meta'), errBox = $('model-error'), changed = $('model-changed');
  let refreshing = null, loadedAt = -Infinity;

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
          modelTitle(m.name),
          m.status !== 'ready' ? el('span', { class: `pill pill--${m.status}`, text: m.status }) : null));
    });
    picker.replaceChildren(el('legend', { class: 'sr-only', text: 'Model' }), ...radios);
  }

  // "test accuracy 87.1 % on 1,000 of 10,000 test images": a subset's figure says so.
  function accuracyText(s) {
    if (s.test_accuracy == null) return null;
    const n = s.training && s.training.test_images, full = testSetSize();
    if (n && n < full) return `test accuracy ${pct(s.test_accuracy)} on ${int(n)} of ${int(full)} test images (a subset)`;
    return `test accuracy ${pct(s.test_accuracy)}`;
  }

  function renderMeta() {
    const m = state.model, s = state.summary;
    if (!m || !s) { meta.textContent = ''; return; }
    const parts = [];
    if (s.version != null) parts.push(`version ${s.version}`);
    const acc = accuracyText(s);
    if (acc) parts.push(acc);
    parts.push(`${int(s.total_params ?? m.params ?? 0)} parameters`);
    if (s.trained_at) parts.push(`trained ${new Date(s.trained_at).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' })}`);
    if (s.format && s.format !== 'csm') parts.push(`${s.format === 'onnx' ? 'ONNX' : 'Keras'} file ${s.file}`);
    const pre = s.preprocessing;
    const how = pre ? el('span', { class: 'meta__pre', title: preText(pre), text: ` · images ${preShort(pre)}` }) : '';
    meta.replaceChildren(el('strong', { text: modelName(m.name) }), ` · ${parts.join(' · ')}`, how,
      s.description ? el('span', { class: 'muted', text: ` · ${s.description}` }) : '');
  }

  async function loadList() {
    const data = await getJSON('v1/models');
    state.models = data.models || [];
  }

  // Loads the summary first and only then switches, so a failure leaves the page on
  // the model that works, with the reason shown under the picker.
  async function choose(name) {
    try {
      const asked = performance.now();
      const summary = await getJSON(`v1/models/${encodeURIComponent(name)}`);
      loadedAt = asked;
      state.model = state.models.find((m) => m.name === name) || { name };
      state.summary = summary;
      showError(errBox, null);
      if (changed.dataset.model && changed.dataset.model !== name) changed.hidden = true;
      render();
      renderMeta();
      emit('model', state.model);
      emit('view');
      return true;
    } catch (e) {
      showError(errBox, { status: e.status, code: e.code, message: `${modelName(name)}: ${e.message}` });
      render();
      const entry = state.models.find((m) => m.name === name);
      if (entry) emit('model-unavailable', entry);
      return false;
    }
  }

  // The served version changed: reload the list and the summary. quiet: the page itself
  // caused it (its own training job), and says so elsewhere.
  async function refresh({ quiet = false } = {}) {
    if (refreshing) return refreshing;
    const was = state.summary ? state.summary.version : null;
    refreshing = (async () => {
      try {
        await loadList();
        const name = state.model ? state.model.name : 'fmnist';
        const ok = await choose(name);
        if (ok && quiet) changed.hidden = true;
        else if (ok && was != null && state.summary.version !== was) {
          changed.replaceChildren(
            el('strong', { text: `${modelTitle(name)} changed on the service` }),
            ` (version ${was} → ${state.summary.version}, by training elsewhere or a new file). The page now shows version ${state.summary.version}. `,
            el('button', { type: 'button', class: 'btn btn--link', text: 'OK', onclick: () => { changed.hidden = true; } }));
          changed.dataset.model = name;
          changed.hidden = false;
        }
        return ok;
      } catch (e) {
        showError(errBox, e);
        return false;
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  // An answer from another version than the one shown: the model changed elsewhere.
  // Answers to requests sent before the summary was loaded may still name the old one.
  on('version', ({ model, version, started }) => {
    if (!state.model || !state.summary || model !== state.model.name) return;
    if (started !== undefined && started < loadedAt) return;
    if (version !== state.summary.version) refresh();
  });

  // A tab that was in the background checks when it is looked at again.
  document.addEventListener('visibilitychange', async () => {
    if (document.visibilityState !== 'visible' || !state.model || !state.summary) return;
    try {
      const data = await getJSON('v1/models');
      const now = (data.models || []).find((m) => m.name === state.model.name);
      if (now && now.version != null && now.version !== state.summary.version) refresh();
    } catch { /* the next answer will tell */ }
  });

  async function start(preferred) {
    try {
      await loadList();
    } catch (e) {
      showError(errBox, e);
      return false;
    }
    render();
    const first = state.models.find((m) => m.name === preferred && m.status === 'ready') ||
      state.models.find((m) => m.name === 'fmnist' && m.status === 'ready') ||
      state.models.find((m) => m.status === 'ready');
    if (!first) {
      const why = state.models.map((m) => `${m.name}: ${m.reason || m.status}`).join('; ');
      showError(errBox, { message: `No model is ready yet. ${why}` });
      return false;
    }
    return choose(first.name);
  }

  // The list again, then that model (one just added) or the first ready one (after the
  // chosen one was removed).
  async function reload(name) {
    try {
      await loadList();
    } catch (e) {
      showError(errBox, e);
      return false;
    }
    render();
    const next = state.models.find((m) => m.name === name) ||
      state.models.find((m) => m.name === 'fmnist' && m.status === 'ready') ||
      state.models.find((m) => m.status === 'ready');
    return next ? choose(next.name) : false;
  }

  return { start, refresh, choose, reload, renderMeta };
}

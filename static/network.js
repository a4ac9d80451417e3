// network.js - "inside the network": the model summary as a strip of layers to click
// through, and for the chosen layer its feature maps for the current image and, for a
// convolution, the filters it learned. Either grid opens tile by tile in the lightbox.

import { postImage, request } from './api.js';
import { state, on } from './store.js';
import { $, el, int, showError, setBusy, setImageBlob, latest, isImageError } from './ui.js';
import { initLightbox, tileGeometry, tileAt } from './lightbox.js';

const MAX_TILES = 64;

const KIND = {
  Conv2D: ['conv', 'Conv'], BatchNormalization: ['norm', 'Norm'], LeakyReLU: ['act', 'Act'],
  ReLU: ['act', 'Act'], Activation: ['act', 'Act'], MaxPooling2D: ['pool', 'Pool'],
  Flatten: ['flat', 'Flat'], Dense: ['dense', 'Dense'], Dropout: ['drop', 'Drop'],
  InputLayer: ['input', 'In'],
};

// One sentence per layer type, in the words one would use in front of a class.
function describe(l) {
  const f = l.filters;
  switch (l.type) {
    case 'Conv2D': return `Slides ${f ? f.count : ''} learned ${f ? `${f.size}×${f.size}` : ''} filters over its input; each output map lights up where its filter matches.`;
    case 'BatchNormalization': return 'Re-centres and re-scales every channel with statistics learned in training, which keeps training stable.';
    case 'LeakyReLU': return 'Keeps positive values and shrinks negative ones to 30 % — the non-linearity that lets the network learn shapes, not just sums.';
    case 'ReLU': case 'Activation': return 'Keeps positive values and sets negative ones to zero.';
    case 'MaxPooling2D': return 'Keeps the strongest value of each 2×2 square: half the width and height, the same channels.';
    case 'Flatten': return 'Lays the maps out as one long list of numbers for the dense layers.';
    case 'Dense': return 'Every output is a weighted sum of all inputs.';
    case 'Dropout': return 'While training, switches off values at random so no single one is relied on; it does nothing when predicting.';
    default: return '';
  }
}

const shape = (s) => (s || []).filter((d) => d !== null).join('×');

export function initNetwork() {
  const strip = $('layer-strip'), table = $('summary-table');
  const fmImg = $('fm-img'), fmBox = $('fm-box'), fmErr = $('fm-error'), fmEmpty = $('fm-empty'), fmNote = $('fm-note');
  const fltImg = $('flt-img'), fltBox = $('flt-box'), fltErr = $('flt-error'), fltEmpty = $('flt-empty'), fltNote = $('flt-note');
  const chanWrap = $('flt-channel-wrap'), chanIn = $('flt-channel');
  const lightbox = initLightbox();
  const fmSignal = latest(), fltSignal = latest();
  let layer = null, fmGeo = null, fltGeo = null;

  function renderStrip() {
    const layers = state.summary.layers || [];
    const maxHW = Math.max(1, ...layers.filter((l) => (l.output_shape || []).length === 4).map((l) => l.output_shape[1]));
    const input = state.summary.input_shape || [];
    const items = [el('li', { class: 'strip__io' }, el('span', { class: 'strip__io-name', text: 'Input' }), el('span', { class: 'strip__shape', text: input.join('×') }))];
    for (const l of layers) {
      const [kind, abbr] = KIND[l.type] || ['other', l.type.slice(0, 5)];
      const s = l.output_shape || [];
      // The glyph's size follows the layer's height and width, so the strip shows the
      // image shrinking while the channels grow.
      const side = s.length === 4 ? 14 + Math.round(30 * Math.sqrt(s[1] / maxHW)) : 8;
      const tall = s.length === 4 ? side : 14 + Math.min(30, Math.round(Math.log2((s[1] || 1) + 1) * 3));
      items.push(el('li', {},
        el('button', {
          type: 'button', class: `layer layer--${kind}`, 'aria-pressed': 'false', dataset: { name: l.name },
          'aria-label': `${l.name}, ${l.type}, output ${shape(s)}, ${int(l.params)} parameters`,
          onclick: () => select(l.name),
        },
        el('span', { class: 'layer__glyph', 'aria-hidden': 'true', style: `width:${side}px;height:${tall}px` }),
        el('span', { class: 'layer__kind', text: abbr }),
        el('span', { class: 'layer__name', text: l.name }),
        el('span', { class: 'strip__shape', text: shape(s) }),
        el('span', { class: 'layer__params', text: l.params ? `${int(l.params)} p` : '—' }))));
    }
    const n = state.summary.n_classes || (state.model.classes || []).length;
    items.push(el('li', { class: 'strip__io' }, el('span', { class: 'strip__io-name', text: 'Classes' }), el('span', { class: 'strip__shape', text: String(n) })));
    strip.replaceChildren(...items);
    $('summary-sub').textContent = `${layers.length} layers · ${int(state.summary.total_params)} parameters`;
  }

  function renderTable() {
    const s = state.summary;
    table.replaceChildren(
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: '#' }), el('th', { scope: 'col', text: 'Layer' }), el('th', { scope: 'col', text: 'Type' }), el('th', { scope: 'col', text: 'Output shape' }), el('th', { scope: 'col', class: 'num', text: 'Parameters' }))),
      el('tbody', {}, ...(s.layers || []).map((l) => el('tr', {},
        el('td', { text: String(l.index) }), el('td', {}, el('code', { text: l.name })), el('td', { text: l.type }),
        el('td', { text: `(${(l.output_shape || []).map((d) => (d === null ? 'None' : d)).join(', ')})` }),
        el('td', { class: 'num', text: int(l.params) })))),
      el('tfoot', {}, el('tr', {}, el('td', { colspan: 4, text: `Total ${int(s.total_params)} · trainable ${int(s.trainable_params ?? 0)} · non-trainable ${int(s.non_trainable_params ?? 0)}` }), el('td', {}))));
  }

  function select(name) {
    const l = (state.summary.layers || []).find((x) => x.name === name);
    if (!l) return;
    layer = l;
    for (const b of strip.querySelectorAll('.layer')) b.setAttribute('aria-pressed', b.dataset.name === name ? 'true' : 'false');
    const btn = strip.querySelector(`.layer[data-name="${CSS.escape(name)}"]`);
    // Scroll the strip, never the page: selecting a layer must not move the reader.
    const wrap = strip.parentElement;
    if (btn && wrap) {
      const b = btn.getBoundingClientRect(), w = wrap.getBoundingClientRect();
      if (b.left < w.left) wrap.scrollLeft -= w.left - b.left + 16;
      else if (b.right > w.right) wrap.scrollLeft += b.right - w.right + 16;
    }
    $('layer-title').replaceChildren(el('code', { text: l.name }), el('span', { class: 'muted', text: ` ${l.type} · ${shape(l.output_shape)} · ${int(l.params)} parameters` }));
    $('layer-desc').textContent = describe(l);
    const f = l.filters;
    chanWrap.hidden = !(f && f.channels > 1);
    if (f) { chanIn.max = String(f.channels - 1); if (Number(chanIn.value) >= f.channels) chanIn.value = '0'; }
    loadFilters();
    loadMaps();
  }

  async function loadMaps() {
    const l = layer;
    if (!l || !state.input) return;
    const s = l.output_shape || [];
    if (!l.spatial || s.length !== 4) {
      fmSignal();
      fmBox.hidden = true;
      fmNote.textContent = '';
      fmEmpty.textContent = `${l.name} gives ${int(s[s.length - 1] || 0)} numbers, not maps: feature maps exist only before the flatten.`;
      fmEmpty.hidden = false;
      showError(fmErr, null);
      return;
    }
    fmBox.hidden = false;
    fmEmpty.hidden = true;
    const channels = s[3], count = Math.min(channels, MAX_TILES);
    // Sixteen columns keep 64 small maps to a readable height on a wide screen.
    const cols = count > 32 && fmBox.clientWidth >= 560 ? 16 : 8;
    const signal = fmSignal();
    setBusy(fmBox, true);
    try {
      const res = await postImage(`v1/models/${state.model.name}/layers/${encodeURIComponent(l.name)}/feature-maps.png`, state.input, { count, cols }, { signal });
      const blob = await res.blob();
      if (signal.aborted) return;
      await setImageBlob(fmImg, blob);
      fmGeo = tileGeometry(fmImg, cols, count);
      fmImg.alt = `${count} feature maps of ${l.name} for the current image`;
      fmNote.textContent = `${count === channels ? 'all' : `first ${count} of`} ${channels} channels, ${s[1]}×${s[2]} each · bright = strong`;
      fmBox.classList.add('has-image');
      showError(fmErr, null);
    } catch (e) {
      if (signal.aborted) return;
      if (isImageError(e)) { fmBox.classList.remove('has-image'); fmImg.removeAttribute('src'); showError(fmErr, null); } else showError(fmErr, e);
    } finally {
      if (!signal.aborted) setBusy(fmBox, false);
    }
  }

  async function loadFilters() {
    const l = layer;
    const f = l && l.filters;
    if (!f) {
      fltSignal();
      fltBox.hidden = true;
      fltNote.textContent = '';
      fltEmpty.textContent = 'Only convolution layers have filters. Pick a Conv block in the strip.';
      fltEmpty.hidden = false;
      showError(fltErr, null);
      return;
    }
    fltBox.hidden = false;
    fltEmpty.hidden = true;
    const count = Math.min(f.count, MAX_TILES), cols = 8;
    const channel = Math.max(0, Math.min(f.channels - 1, Number(chanIn.value) || 0));
    const signal = fltSignal();
    setBusy(fltBox, true);
    try {
      // The version in the query keeps the browser from reusing the picture of weights
      // that training has since replaced.
      const res = await request('GET', `v1/models/${state.model.name}/layers/${encodeURIComponent(l.name)}/filters.png`, {
        query: { count, cols, channel, v: state.summary.version }, signal,
      });
      const blob = await res.blob();
      if (signal.aborted) return;
      await setImageBlob(fltImg, blob);
      fltGeo = tileGeometry(fltImg, cols, count);
      fltImg.alt = `${count} filters of ${l.name}, input channel ${channel}`;
      fltNote.textContent = `${count === f.count ? 'all' : `first ${count} of`} ${f.count} filters, ${f.size}×${f.size}, input channel ${channel}${f.channels > 1 ? ` of ${f.channels}` : ''} · light = positive weight`;
      fltBox.classList.add('has-image');
      showError(fltErr, null);
    } catch (e) {
      if (!signal.aborted) showError(fltErr, e);
    } finally {
      if (!signal.aborted) setBusy(fltBox, false);
    }
  }

  function enlarge(img, geo, kind, e) {
    if (!img.naturalWidth) return;
    const index = geo && e && e.clientX !== undefined && e.detail !== 0 ? tileAt(img, geo, e.clientX, e.clientY) : 0;
    const l = layer;
    lightbox.open({
      img, geo, index,
      name: `${l.name} · ${kind === 'map' ? 'channel' : 'filter'}`,
      describe: (i) => (kind === 'filter'
        ? `Filter ${i} of ${l.name} (input channel ${chanIn.value}). Light weights add, dark ones subtract.`
        : `Channel ${i} of ${l.name}: where in the image this channel responds. Use ← and → to step through.`),
    });
  }
  fmImg.addEventListener('click', (e) => enlarge(fmImg, fmGeo, 'map', e));
  fltImg.addEventListener('click', (e) => enlarge(fltImg, fltGeo, 'filter', e));
  for (const [img, kind] of [[fmImg, 'map'], [fltImg, 'filter']]) {
    img.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); enlarge(img, kind === 'map' ? fmGeo : fltGeo, kind, null); }
    });
  }
  chanIn.addEventListener('change', loadFilters);

  // Arrow keys walk along the strip.
  strip.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const btns = [...strip.querySelectorAll('.layer')];
    const i = btns.indexOf(document.activeElement);
    if (i < 0) return;
    e.preventDefault();
    const next = btns[Math.max(0, Math.min(btns.length - 1, i + (e.key === 'ArrowRight' ? 1 : -1)))];
    next.focus();
    next.click();
  });

  on('model', () => {
    renderStrip();
    renderTable();
    const layers = state.summary.layers || [];
    const keep = layer && layers.find((l) => l.name === layer.name);
    const first = keep || layers.find((l) => l.type === 'Conv2D') || layers[0];
    if (first) select(first.name);
  });
  on('input', loadMaps);
}

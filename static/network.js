// network.js - "inside the network": the model summary as a strip of layers to click
// through (the arrow keys, Home and End walk it), and the folded summary table. Picking a
// layer tells the views below it (channels.js: feature maps and filters; details.js: the
// layer's settings; outputs.js: bars for layers without height and width) through the
// 'layer' event.

import { state, on, emit } from './store.js';
import { $, el, int } from './ui.js';

const KIND = {
  Conv2D: ['conv', 'Conv'], DepthwiseConv2D: ['conv', 'DwConv'], SeparableConv2D: ['conv', 'SepConv'],
  BatchNormalization: ['norm', 'Norm'], Normalization: ['norm', 'Norm'], Rescaling: ['norm', 'Scale'],
  LeakyReLU: ['act', 'Act'], ReLU: ['act', 'Act'], Activation: ['act', 'Act'],
  MaxPooling2D: ['pool', 'Pool'], AveragePooling2D: ['pool', 'Pool'],
  GlobalAveragePooling2D: ['pool', 'GPool'], GlobalMaxPooling2D: ['pool', 'GPool'],
  Flatten: ['flat', 'Flat'], Dense: ['dense', 'Dense'], Dropout: ['drop', 'Drop'],
  Softmax: ['dense', 'Softmax'], Add: ['merge', 'Add'], Subtract: ['merge', 'Sub'], Multiply: ['merge', 'Mul'],
  Concatenate: ['merge', 'Concat'], ZeroPadding2D: ['other', 'Pad'], InputLayer: ['input', 'In'],
};

export const shapeText = (s) => (s || []).filter((d) => d !== null).join('×');

// A layer type's colour family and short name, as the strip and the graph draw it.
export const kindOf = (type) => KIND[type] || ['other', String(type || '').slice(0, 6)];

export function initNetwork() {
  const strip = $('layer-strip'), table = $('summary-table');
  let layer = null;

  function renderStrip() {
    const layers = state.summary.layers || [];
    const maxHW = Math.max(1, ...layers.filter((l) => (l.output_shape || []).length === 4).map((l) => l.output_shape[1]));
    const input = state.summary.input_shape || [];
    const items = [el('li', { class: 'strip__io' }, el('span', { class: 'strip__io-name', text: 'Input' }), el('span', { class: 'strip__shape', text: input.join('×') }))];
    for (const l of layers) {
      const [kind, abbr] = kindOf(l.type);
      const s = l.output_shape || [];
      // The glyph's size follows the layer's height and width, so the strip shows the
      // image shrinking while the channels grow.
      const spatial = s.length === 4 && s[1] > 1;
      const side = spatial ? 14 + Math.round(30 * Math.sqrt(s[1] / maxHW)) : 8;
      const tall = spatial ? side : 14 + Math.min(30, Math.round(Math.log2((s[s.length - 1] || 1) + 1) * 3));
      // A node that reads more than one other (a residual sum, a concatenation) or not
      // the one just before it is where a graph branches: the strip marks it.
      const prev = layers[layers.indexOf(l) - 1];
      const ins = l.inputs || [];
      const branch = ins.length > 1 || (ins.length === 1 && ins[0] !== (prev ? prev.name : 'input'));
      items.push(el('li', {},
        el('button', {
          type: 'button', class: `layer layer--${kind}${branch ? ' layer--branch' : ''}`, 'aria-pressed': 'false', dataset: { name: l.name },
          'aria-label': `${l.name}, ${l.type}, output ${shapeText(s)}, ${int(l.params)} parameters${branch ? `, reads ${ins.join(' and ')}` : ''}`,
          title: branch ? `${l.name}: reads ${ins.join(' + ')}` : l.name,
          tabindex: '-1',
          onclick: () => select(l.name),
        },
        el('span', { class: 'layer__glyph', 'aria-hidden': 'true', style: `width:${side}px;height:${tall}px` }),
        el('span', { class: 'layer__kind', text: abbr }),
        el('span', { class: 'layer__name', text: l.name }),
        el('span', { class: 'strip__shape', text: shapeText(s) }),
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
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: '#' }), el('th', { scope: 'col', text: 'Layer' }), el('th', { scope: 'col', text: 'Type' }), el('th', { scope: 'col', text: 'Reads' }), el('th', { scope: 'col', text: 'Output shape' }), el('th', { scope: 'col', class: 'num', text: 'Parameters' }))),
      el('tbody', {}, ...(s.layers || []).map((l) => el('tr', {},
        el('td', { text: String(l.index) }), el('td', {}, el('code', { text: l.name })), el('td', { text: l.type }),
        el('td', { class: 'muted', text: (l.inputs || []).join(', ') }),
        el('td', { text: `(${(l.output_shape || []).map((d) => (d === null ? 'None' : d)).join(', ')})` }),
        el('td', { class: 'num', text: int(l.params) })))),
      el('tfoot', {}, el('tr', {}, el('td', { colspan: 5, text: `Total ${int(s.total_params)} · trainable ${int(s.trainable_params ?? 0)} · non-trainable ${int(s.non_trainable_params ?? 0)}` }), el('td', {}))));
  }

  function select(name, { quiet = false } = {}) {
    const l = (state.summary.layers || []).find((x) => x.name === name);
    if (!l) return false;
    layer = l;
    // One tab stop for the whole strip (the chosen layer); the arrow keys do the rest.
    for (const b of strip.querySelectorAll('.layer')) {
      const on = b.dataset.name === name;
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
    }
    const btn = strip.querySelector(`.layer[data-name="${CSS.escape(name)}"]`);
    // Scroll the strip, never the page: selecting a layer must not move the reader.
    const wrap = strip.parentElement;
    if (btn && wrap) {
      const b = btn.getBoundingClientRect(), w = wrap.getBoundingClientRect();
      if (b.left < w.left) wrap.scrollLeft -= w.left - b.left + 16;
      else if (b.right > w.right) wrap.scrollLeft += b.right - w.right + 16;
    }
    emit('layer', l);
    if (!quiet) emit('view');
    return true;
  }

  // Arrow keys walk along the strip; Home and End jump to its ends.
  strip.addEventListener('keydown', (e) => {
    const btns = [...strip.querySelectorAll('.layer')];
    const i = btns.indexOf(document.activeElement);
    if (i < 0) return;
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: btns.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const next = btns[Math.max(0, Math.min(btns.length - 1, to))];
    next.focus();
    next.click();
  });

  on('model', () => {
    renderStrip();
    renderTable();
    const layers = state.summary.layers || [];
    const keep = layer && layers.find((l) => l.name === layer.name);
    const first = keep || layers.find((l) => l.type === 'Conv2D') || layers[0];
    if (first) select(first.name, { quiet: true });
  });

  return {
    get layer() { return layer; },
    select,
  };
}

// details.js - the chosen layer's details, as Netron lists a node's: its kind and what it
// does, the nodes it reads (a graph with branches reads more than one), its input and
// output shapes, its settings (kernel, stride, padding, dilation, a slope, a rate, ...)
// as the summary's `config` gives them for every kind, its weight tensors' shapes from
// the summary's `weights`, and its parameter count. Settings the page has no words for
// are listed under their own names, so nothing the model file keeps is hidden.

import { state, on } from './store.js';
import { $, el, int } from './ui.js';
import { shapeText } from './network.js';

// One sentence per layer type, in the words one would use in front of a class.
function describe(l) {
  const f = l.filters;
  switch (l.type) {
    case 'Conv2D': return `Slides ${f ? f.count : ''} learned ${f ? `${f.size}×${f.size}` : ''} filters over its input; each output map lights up where its filter matches.`;
    case 'DepthwiseConv2D': return 'Slides one small filter over each input channel on its own: shapes within a channel, no mixing between channels.';
    case 'SeparableConv2D': return 'A depthwise convolution (each channel on its own) followed by a 1×1 convolution that mixes the channels.';
    case 'BatchNormalization': return 'Re-centres and re-scales every channel with statistics learned in training, which keeps training stable.';
    case 'Normalization': return 'Subtracts a mean and divides by a deviation per channel, fixed before training.';
    case 'Rescaling': return 'Multiplies its input by a constant and adds another, to bring pixel values into the range the network expects.';
    case 'LeakyReLU': return 'Keeps positive values and multiplies negative ones by a small slope, so they still pass a little gradient.';
    case 'ReLU': case 'Activation': return 'Keeps positive values and sets negative ones to zero.';
    case 'MaxPooling2D': return 'Keeps the strongest value of each window: smaller height and width, the same channels.';
    case 'AveragePooling2D': return 'Averages each window: smaller height and width, the same channels.';
    case 'GlobalAveragePooling2D': return 'Averages each channel over the whole map: one number per channel.';
    case 'GlobalMaxPooling2D': return 'Keeps each channel\'s strongest value over the whole map: one number per channel.';
    case 'Flatten': return 'Lays the maps out as one long list of numbers for the dense layers.';
    case 'Dense': return 'Every output is a weighted sum of all inputs plus a bias.';
    case 'Dropout': return 'While training, switches off values at random so no single one is relied on; it does nothing when predicting.';
    case 'Softmax': return 'Turns the scores (logits) into probabilities that add up to 1.';
    case 'Add': return 'Adds its inputs element by element: a residual connection joins a shortcut to a branch here.';
    case 'Subtract': return 'Subtracts its second input from its first, element by element.';
    case 'Multiply': return 'Multiplies its inputs element by element (a gate or attention weights).';
    case 'Concatenate': return 'Stacks its inputs\' channels one after the other.';
    case 'ZeroPadding2D': return 'Adds a border of zeros (or crops) around each map.';
    default: return '';
  }
}

// The shape a node reads: the model's input, or another node's output.
function shapeOf(name) {
  if (name === 'input') return [null, ...(state.summary.input_shape || [])];
  const n = (state.summary.layers || []).find((x) => x.name === name);
  return n ? n.output_shape : null;
}

// "3×3" from Keras' n or [h, w].
const hw = (v) => (Array.isArray(v) ? (v.length === 2 ? `${v[0]}×${v[1]}` : v.join('×')) : `${v}×${v}`);
const isOne = (v) => (Array.isArray(v) ? v.every((x) => x === 1) : v === 1);

function paddingText(c, window) {
  if (Array.isArray(c.pads)) {
    const [t, l, b, r] = c.pads;
    return `explicit: top ${t}, left ${l}, bottom ${b}, right ${r}`;
  }
  if (c.padding === 'same') return 'same (zeros around the border: the output is the input divided by the stride, rounded up)';
  if (c.padding === 'valid' || (window && c.padding === undefined)) return 'valid (no border: the window stays inside the input)';
  return c.padding === undefined ? null : String(c.padding);
}

// The rows for a node's settings; `used` collects the config keys they cover.
function settingRows(l, row, used) {
  const c = l.config || {};
  const items = [];
  const take = (...keys) => keys.forEach((k) => used.add(k));
  const f = l.filters;
  if (c.kernel_size !== undefined) {
    take('kernel_size');
    const chans = f ? f.channels : null;
    items.push(...row('Kernel', hw(c.kernel_size), chans ? `over ${chans} input channel${chans > 1 ? 's' : ''}` : ''));
  }
  if (c.filters !== undefined) { take('filters'); items.push(...row('Filters', int(c.filters))); }
  if (c.units !== undefined) { take('units'); items.push(...row('Units', int(c.units))); }
  if (c.depth_multiplier !== undefined) { take('depth_multiplier'); items.push(...row('Depth multiplier', String(c.depth_multiplier))); }
  if (c.pool_size !== undefined) { take('pool_size'); items.push(...row('Window', hw(c.pool_size))); }
  const windowed = c.kernel_size !== undefined || c.pool_size !== undefined;
  if (windowed) {
    take('strides', 'padding', 'pads');
    // A pool's stride is its window unless the file says otherwise (Keras' default).
    const stride = c.strides !== undefined ? c.strides : c.pool_size !== undefined ? c.pool_size : 1;
    items.push(...row('Stride', hw(stride), c.strides === undefined && c.pool_size !== undefined ? '(the window: Keras\' default)' : ''));
    const pad = paddingText(c, true);
    if (pad) items.push(...row('Padding', pad));
  }
  for (const k of ['dilation_rate', 'dilation']) {
    if (c[k] !== undefined) { take(k); items.push(...row('Dilation', hw(c[k]), isOne(c[k]) ? '' : '(gaps between the window\'s taps)')); }
  }
  if (c.groups !== undefined) { take('groups'); items.push(...row('Groups', String(c.groups))); }
  if (c.ceil_mode !== undefined) { take('ceil_mode'); items.push(...row('Ceil mode', c.ceil_mode ? 'a last partial window counts' : 'off')); }
  if (c.count_include_pad !== undefined) { take('count_include_pad'); items.push(...row('Padding in the mean', c.count_include_pad ? 'counted' : 'left out')); }
  if (l.type === 'LeakyReLU' && c.alpha !== undefined) {
    take('alpha');
    items.push(...row('Slope', String(c.alpha), 'for negative values'));
  }
  if (c.activation !== undefined) {
    take('activation');
    if (l.type === 'Activation') {
      const consts = Object.entries(c).filter(([k]) => !['activation'].includes(k));
      consts.forEach(([k]) => used.add(k));
      items.push(...row('Function', String(c.activation), consts.map(([k, v]) => `${k} ${v}`).join(', ')));
    } else {
      items.push(...row('Activation', String(c.activation), c.activation === 'linear' ? '(none: the scores go on as they are)' : '(applied inside the layer)'));
    }
  }
  if (c.rate !== undefined) { take('rate'); items.push(...row('Rate', `${c.rate}`, `(${Math.round(c.rate * 1000) / 10} % of the values dropped while training)`)); }
  if (c.momentum !== undefined) { take('momentum'); items.push(...row('Momentum', String(c.momentum), '(of the moving averages)')); }
  if (c.epsilon !== undefined) { take('epsilon'); items.push(...row('Epsilon', String(c.epsilon))); }
  if (c.scale !== undefined || c.offset !== undefined) {
    take('scale', 'offset');
    items.push(...row('Rescaling', `x × ${c.scale ?? 1} + ${c.offset ?? 0}`));
  }
  if (l.type === 'ZeroPadding2D' && c.padding !== undefined) {
    take('padding', 'value');
    const p = c.padding;
    const text = Array.isArray(p) && Array.isArray(p[0]) ? `top ${p[0][0]}, bottom ${p[0][1]}, left ${p[1][0]}, right ${p[1][1]}` : JSON.stringify(p);
    items.push(...row('Padding', text, c.value ? `(filled with ${c.value})` : ''));
  }
  if (c.axis !== undefined) { take('axis'); items.push(...row('Axis', 'the channels')); }
  if (c.l1 || c.l2) {
    items.push(...row('Regulariser', `l1 ${c.l1}, l2 ${c.l2}`, 'on the kernel'));
  }
  take('l1', 'l2');
  take('kernel_initializer');
  // How fresh weights are drawn matters only to a model the service can train.
  if (c.kernel_initializer !== undefined && state.model && state.model.trainable) {
    items.push(...row('Initialiser', String(c.kernel_initializer), 'when trained from scratch'));
  }
  return items;
}

export function initDetails() {
  const box = $('layer-details'), title = $('layer-title'), desc = $('layer-desc');

  function row(k, v, hint) {
    return [el('dt', { text: k }), el('dd', {}, v, hint ? el('span', { class: 'muted small', text: ` ${hint}` }) : null)];
  }

  function render(l) {
    title.replaceChildren(el('code', { text: l.name }), el('span', { class: 'muted', text: ` ${l.type} · ${shapeText(l.output_shape)} · ${int(l.params)} parameters` }));
    desc.textContent = describe(l);
    const ins = l.inputs || [];
    const inShape = ins.length ? shapeOf(ins[0]) : null;
    const out = l.output_shape || [];
    const items = [];
    items.push(...row('Reads', el('span', {}, ...ins.flatMap((n, i) => [i ? ' + ' : '', el('code', { text: n })])),
      ins.length > 1 ? '(branches join here)' : ''));
    if (inShape) items.push(...row('Input shape', shapeText(inShape)));
    items.push(...row('Output shape', shapeText(out)));
    const used = new Set();
    items.push(...settingRows(l, row, used));
    // Whatever else the model file keeps for this kind, under its own name.
    for (const [k, v] of Object.entries(l.config || {})) {
      if (!used.has(k)) items.push(...row(k, typeof v === 'object' ? JSON.stringify(v) : String(v)));
    }
    const ws = l.weights || [];
    if (ws.length) {
      items.push(...row('Weights', el('span', {}, ...ws.flatMap((w, i) => [i ? ', ' : '', el('code', { text: w.name }), ` ${(w.shape || []).join('×')}`])),
        ws.some((w) => !w.trainable) ? `(${ws.filter((w) => !w.trainable).map((w) => w.name).join(' and ')} not trained)` : ''));
    }
    items.push(...row('Parameters', int(l.params)));
    box.replaceChildren(...items);
    box.dataset.layer = l.name;
  }

  on('layer', render);
}

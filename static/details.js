// details.js - the chosen layer's details, as Netron lists a node's: its kind and what it
// does, the nodes it reads (a graph with branches reads more than one), its input and
// output shapes, kernel, stride and padding, its weight tensors' shapes and its
// parameter count. The summary the API gives has the shapes and, for a convolution, the
// kernel size and filter count; stride and padding follow from the shapes (and are
// marked as inferred), the weight shapes from the parameter count.

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

// Stride and padding of a window over (h, w) from the input and output sizes: the
// combination of Keras' "valid" or "same" that gives exactly this output.
function windowOf(inH, outH, k) {
  for (let s = 1; s <= Math.max(1, inH); s++) {
    if (Math.ceil(inH / s) === outH) return { stride: s, padding: outH === Math.floor((inH - k) / s) + 1 ? 'valid (no border needed)' : 'same (zeros around the border)' };
    if (Math.floor((inH - k) / s) + 1 === outH) return { stride: s, padding: 'valid (no border)' };
  }
  return null;
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
    const f = l.filters;
    const spatialIO = inShape && inShape.length === 4 && out.length === 4;
    if (f) {
      items.push(...row('Kernel', `${f.size}×${f.size}`, `over ${f.channels} input channel${f.channels > 1 ? 's' : ''}`));
      const w = f.size * f.size * f.channels * f.count;
      const dw = l.type === 'DepthwiseConv2D';
      const weights = dw ? f.size * f.size * f.channels * (f.count / Math.max(1, f.channels)) : w;
      const bias = l.params - weights;
      items.push(...row('Weights', dw
        ? `kernel ${f.size}×${f.size}×${f.channels}×${Math.max(1, f.count / Math.max(1, f.channels))}`
        : `kernel ${f.size}×${f.size}×${f.channels}×${f.count}${bias === f.count ? `, bias ${f.count}` : bias > 0 ? `, ${int(bias)} more` : ''}`));
    }
    if (spatialIO && (f || /Pool/.test(l.type)) && !/Global/.test(l.type)) {
      const k = f ? f.size : Math.max(1, Math.round(inShape[1] / Math.max(1, out[1])));
      const win = windowOf(inShape[1], out[1], k);
      if (win) {
        items.push(...row('Stride', String(win.stride), '(inferred from the shapes)'));
        items.push(...row('Padding', win.padding, '(inferred from the shapes)'));
      }
      if (!f) items.push(...row('Window', `${k}×${k}`, '(inferred from the shapes)'));
    }
    if (l.type === 'Dense' && inShape) {
      const units = out[out.length - 1];
      const n = inShape.slice(1).filter((d) => d !== null).reduce((a, b) => a * b, 1);
      const bias = l.params - n * units;
      items.push(...row('Weights', `kernel ${n}×${units}${bias === units ? `, bias ${units}` : ''}`));
    }
    if (l.type === 'LeakyReLU') items.push(...row('Slope', state.model && state.model.name === 'fmnist' ? '0.3 (Keras\' default)' : 'not reported by the API'));
    if (l.type === 'BatchNormalization') {
      const c = out[out.length - 1];
      items.push(...row('Weights', `gamma ${c}, beta ${c}, moving mean ${c}, moving variance ${c}`));
    }
    items.push(...row('Parameters', int(l.params)));
    box.replaceChildren(...items);
    box.dataset.layer = l.name;
  }

  on('layer', render);
}

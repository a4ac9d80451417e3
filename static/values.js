// values.js - the numbers behind the pictures, as the API reports them: a node's output
// for an image (POST .../activations: each channel's min, max, mean and deviation, the
// channels' order by strength, a flat node's values) and a layer's weights (GET
// .../weights: a histogram of each tensor). The panels that show them (channels.js,
// layerbars.js, weights.js) share one request per model version, layer, image and order:
// the last few answers are kept.

import { postImage, getJSON } from './api.js';

const KEEP = 12;
const cache = new Map();

function remember(key, make) {
  if (cache.has(key)) {
    const p = cache.get(key);
    cache.delete(key);
    cache.set(key, p); // the newest last
    return p;
  }
  const p = make();
  cache.set(key, p);
  // A failed request is not kept: the next panel asks again.
  p.catch(() => { if (cache.get(key) === p) cache.delete(key); });
  while (cache.size > KEEP) cache.delete(cache.keys().next().value);
  return p;
}

const modelPath = (model, layer) => `v1/models/${encodeURIComponent(model.name)}/layers/${encodeURIComponent(layer)}`;

// The activations answer for `input` (an input of the store, which has an id) at `layer`;
// order: 'index' | 'mean' | 'max'.
export function activations(model, version, layer, input, order = 'index') {
  const key = `a|${model.name}|${version}|${layer}|${input.id}|${order}`;
  return remember(key, async () => {
    const res = await postImage(`${modelPath(model, layer)}/activations`, input, order === 'index' ? {} : { order });
    return res.json();
  });
}

// The weights answer (bins equal bins per tensor) for the model's version.
export function weights(model, version, layer, bins = 30) {
  const key = `w|${model.name}|${version}|${layer}|${bins}`;
  // The version in the query keeps the browser from reusing an older version's answer.
  return remember(key, () => getJSON(`${modelPath(model, layer)}/weights`, { bins, v: version }));
}

// A number in a few significant digits: 0.0123, -4.49, 1.2e-5.
export function num(v, digits = 3) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1).replace('e+', 'e');
  return String(Number(v.toPrecision(digits)));
}

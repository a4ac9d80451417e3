// url.js - the view in the address, so it can be shared and reloaded: the model, the
// data-set image, the layer picked in the strip, and Grad-CAM's layer and class, as
// #model=fmnist&sample=test:18&layer=conv2d_2&cam=leaky_re_lu_2&class=3. A drawing or an
// upload cannot travel in a link; the address then keeps the rest.

import { state, on } from './store.js';

export function readView() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const sample = /^(train|test):(\d+)$/.exec(p.get('sample') || '');
  return {
    model: p.get('model') || null,
    sample: sample ? { split: sample[1], index: Number(sample[2]) } : null,
    layer: p.get('layer') || null,
    cam: p.get('cam') || null,
    cls: p.get('class') ?? null,
  };
}

export function initUrl({ network, gradcam }) {
  let ready = false;

  function write() {
    if (!ready || !state.model) return;
    const p = new URLSearchParams();
    p.set('model', state.model.name);
    const inp = state.input;
    if (inp && inp.sample) p.set('sample', `${inp.sample.split}:${inp.sample.index}`);
    if (network.layer) p.set('layer', network.layer.name);
    if (gradcam.layer) p.set('cam', gradcam.layer);
    if (gradcam.classValue !== '') p.set('class', gradcam.classValue);
    const next = `#${p.toString()}`;
    if (next !== location.hash) history.replaceState(null, '', next);
  }

  // Applies what the address asks for once the model is loaded (the model and the image
  // are applied by app.js at start).
  function apply(view) {
    if (view.layer) network.select(view.layer, { quiet: true });
    if (view.cam) gradcam.setLayer(view.cam);
    if (view.cls !== null && view.cls !== '') gradcam.setClass(view.cls);
  }

  on('view', write);
  on('input', write);
  on('model', write);

  return {
    start(view) {
      apply(view);
      ready = true;
      write();
    },
  };
}

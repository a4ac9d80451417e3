// view_projector.js - the Projector view: each test image as a point where a node's
// activations put it (PCA or t-SNE, from POST/GET v1/models/{m}/projector), coloured by
// its label or by the model's prediction. Wheel or the buttons zoom, dragging pans,
// hovering shows the image, clicking selects a point to analyse it above.

import { el, showError } from './ui.js';
import { runJob, progressBar, sampleSrc, className } from './insight.js';

// Ten colours told apart by most eyes (Tableau 10), then grays for more classes.
const COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
export const colourOf = (c) => COLOURS[c] || '#888';

// The point nearest to (x, y) in screen pixels within r, or -1.
export function nearest(points, toScreen, x, y, r = 8) {
  let best = -1, bd = r * r;
  points.forEach((p, i) => {
    const [sx, sy] = toScreen(p);
    const d = (sx - x) ** 2 + (sy - y) ** 2;
    if (d <= bd) { bd = d; best = i; }
  });
  return best;
}

export function initProjectorView(pane, { analyse }) {
  let model = null, data = null, view = { s: 1, x: 0, y: 0 }, hover = -1, chosen = -1, ctl = null;
  const method = el('select', { id: 'ins-proj-method', 'aria-label': 'Method' },
    el('option', { value: 'pca', text: 'PCA' }), el('option', { value: 'tsne', text: 't-SNE' }));
  const count = el('select', { id: 'ins-proj-count', 'aria-label': 'Images' },
    ...[1000, 2000, 5000, 10000].map((n) => el('option', { value: String(n), text: `${n.toLocaleString()} test images`, selected: n === 2000 })));
  const node = el('select', { id: 'ins-proj-node', 'aria-label': 'Layer' });
  const colour = el('select', { id: 'ins-proj-colour', 'aria-label': 'Colour by' },
    el('option', { value: 'labels', text: 'colour by label' }), el('option', { value: 'predictions', text: 'colour by prediction' }));
  const go = el('button', { type: 'button', class: 'btn btn--primary', id: 'ins-proj-go', text: 'Project' });
  const bar = progressBar();
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const canvas = el('canvas', { class: 'ins-proj__canvas', id: 'ins-proj-canvas', width: '640', height: '480', tabindex: '0', 'aria-label': 'The projection: hover a point to see its image, click to select it' });
  const tip = el('div', { class: 'ins-proj__tip', id: 'ins-proj-tip', hidden: true });
  const legend = el('ul', { class: 'ins-legend', id: 'ins-proj-legend' });
  const info = el('p', { class: 'small muted', id: 'ins-proj-info', 'aria-live': 'polite' });
  const picked = el('div', { class: 'ins-proj__picked', id: 'ins-proj-picked', hidden: true });
  const zoom = (f) => { view.s *= f; draw(); };
  pane.append(
    el('div', { class: 'ins-controls' }, node, method, count, colour, go, bar.box,
      el('button', { type: 'button', class: 'btn btn--ghost', text: '+', 'aria-label': 'Zoom in', onclick: () => zoom(1.5) }),
      el('button', { type: 'button', class: 'btn btn--ghost', text: '−', 'aria-label': 'Zoom out', onclick: () => zoom(1 / 1.5) }),
      el('button', { type: 'button', class: 'btn btn--ghost', text: 'Reset view', onclick: () => { view = { s: 1, x: 0, y: 0 }; draw(); } })),
    err, info,
    el('div', { class: 'ins-proj' }, el('div', { class: 'ins-proj__stage' }, canvas, tip), el('div', {}, legend, picked)));

  // Data coordinates to canvas pixels: the layout's box fitted to the canvas, then the view.
  let box = null;
  function toScreen(p) {
    const W = canvas.width, H = canvas.height, m = 16;
    const sx = (W - 2 * m) / (box.x1 - box.x0 || 1), sy = (H - 2 * m) / (box.y1 - box.y0 || 1), s = Math.min(sx, sy);
    const cx = (p[0] - (box.x0 + box.x1) / 2) * s, cy = (p[1] - (box.y0 + box.y1) / 2) * s;
    return [W / 2 + (cx + view.x) * view.s, H / 2 - (cy - view.y) * view.s];
  }

  function draw() {
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (!data) return;
    const by = data[colour.value];
    data.points.forEach((p, i) => {
      const [x, y] = toScreen(p);
      if (x < -4 || y < -4 || x > canvas.width + 4 || y > canvas.height + 4) return;
      g.fillStyle = colourOf(by[i]);
      g.globalAlpha = 0.8;
      g.fillRect(x - 1.5, y - 1.5, 3, 3);
    });
    g.globalAlpha = 1;
    for (const [i, r] of [[hover, 5], [chosen, 7]]) {
      if (i < 0) continue;
      const [x, y] = toScreen(data.points[i]);
      g.strokeStyle = '#111';
      g.lineWidth = 2;
      g.beginPath();
      g.arc(x, y, r, 0, 2 * Math.PI);
      g.stroke();
    }
    canvas.dataset.drawn = String(data.points.length);
    canvas.dataset.colour = colour.value;
  }

  function describe(i) {
    const l = data.labels[i], p = data.predictions[i];
    return `Test image ${i}: ${className(l)}${p === l ? ', predicted right' : `, predicted ${className(p)}`}`;
  }

  async function project() {
    if (!model) return;
    if (ctl) ctl.abort();
    ctl = new AbortController();
    showError(err, null);
    go.disabled = true;
    try {
      data = await runJob(`v1/models/${model.name}/projector`, { method: method.value, limit: count.value, node: node.value || undefined }, {
        signal: ctl.signal, progress: (p, j) => bar.set(p, j.state === 'queued' ? 'queued' : p < 0.5 ? 'activations' : `layout ${Math.round((p - 0.5) * 200)} %`),
      });
      const xs = data.points.map((p) => p[0]), ys = data.points.map((p) => p[1]);
      box = { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
      view = { s: 1, x: 0, y: 0 };
      hover = chosen = -1;
      picked.hidden = true;
      info.textContent = `${data.images.toLocaleString()} test images, ${data.node} (${data.values} values) by ${data.method === 'tsne' ? 't-SNE' : 'PCA'}, version ${data.version}, in ${data.seconds.toFixed(1)} s.`;
      legend.replaceChildren(...data.classes.map((c, i) => el('li', {}, el('span', { class: 'ins-legend__dot', style: `background:${colourOf(i)}` }), c)));
      draw();
    } catch (e) {
      showError(err, e);
    } finally {
      go.disabled = false;
      bar.hide();
    }
  }

  let drag = null;
  canvas.addEventListener('wheel', (e) => { if (!data) return; e.preventDefault(); zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2); }, { passive: false });
  canvas.addEventListener('pointerdown', (e) => { drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false }; });
  canvas.addEventListener('pointerup', (e) => {
    if (drag && !drag.moved && data) {
      const r = canvas.getBoundingClientRect();
      const i = nearest(data.points, toScreen, (e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height);
      if (i >= 0) select(i);
    }
    drag = null;
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!data) return;
    const r = canvas.getBoundingClientRect();
    if (drag && (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3)) {
      drag.moved = true;
      view.x = drag.vx + (e.clientX - drag.x) / view.s * canvas.width / r.width;
      view.y = drag.vy + (e.clientY - drag.y) / view.s * canvas.height / r.height;
      draw();
      return;
    }
    const x = (e.clientX - r.left) * canvas.width / r.width, y = (e.clientY - r.top) * canvas.height / r.height;
    const i = nearest(data.points, toScreen, x, y);
    if (i !== hover) {
      hover = i;
      draw();
      tip.hidden = i < 0;
      if (i >= 0) {
        tip.replaceChildren(el('img', { src: sampleSrc(i, 3), alt: '', width: '84', height: '84' }), el('span', { class: 'small', text: describe(i) }));
        tip.style.left = `${(e.clientX - r.left) + 14}px`;
        tip.style.top = `${(e.clientY - r.top) + 14}px`;
        tip.dataset.index = String(i);
      }
    }
  });
  canvas.addEventListener('pointerleave', () => { hover = -1; tip.hidden = true; draw(); });

  function select(i) {
    chosen = i;
    draw();
    picked.replaceChildren(
      el('img', { src: sampleSrc(i, 4), alt: `test image ${i}`, width: '112', height: '112' }),
      el('p', { class: 'small', text: describe(i) }),
      el('button', { type: 'button', class: 'btn', id: 'ins-proj-analyse', text: 'Analyse this image', onclick: () => analyse(i) }));
    picked.hidden = false;
    picked.dataset.index = String(i);
  }

  colour.addEventListener('change', draw);
  go.addEventListener('click', project);
  return {
    model(m, summary) {
      model = m;
      data = null;
      draw();
      legend.replaceChildren();
      picked.hidden = true;
      info.textContent = '';
      // Nodes worth projecting: flat ones (dense layers and what follows them) and the
      // last spatial ones; the default is the last hidden dense layer.
      const layers = summary ? summary.layers : [];
      node.replaceChildren(el('option', { value: '', text: 'last hidden dense layer' }),
        ...layers.slice(0, -1).filter((l) => l.type !== 'Dropout').map((l) => el('option', { value: l.name, text: l.name })));
    },
  };
}

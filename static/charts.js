// charts.js - small SVG line charts for training curves, drawn by hand (a chart library
// would outweigh the whole page), with what one expects from TensorBoard: axis titles,
// a y range that follows the data, per-step values with exponential smoothing (the raw
// values faint behind the smoothed line), and the values under the pointer.
//
// The x axis spans the planned epochs from the start, so the lines visibly grow towards
// the right edge while a job runs.

const NS = 'http://www.w3.org/2000/svg';
const PAD = { l: 52, r: 14, t: 30, b: 40 };

function node(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

// Round tick steps (1, 2, 2.5, 5 times a power of ten) and a range that covers [lo, hi].
export function niceRange(lo, hi, ticks = 4) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { min: 0, max: 1, step: 0.25 };
  if (hi - lo < 1e-9) { const d = Math.abs(hi) * 0.05 || 0.05; lo -= d; hi += d; }
  const raw = (hi - lo) / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) || 10 * p;
  const round = (v) => Number(v.toPrecision(12));
  return { min: round(Math.floor(lo / step + 1e-9) * step), max: round(Math.ceil(hi / step - 1e-9) * step), step };
}

// TensorBoard's smoothing: an exponential moving average, debiased at the start.
export function smooth(points, weight) {
  if (!(weight > 0)) return points.slice();
  let last = 0, n = 0;
  return points.map((p) => {
    last = last * weight + (1 - weight) * p.y;
    n++;
    return { x: p.x, y: last / (1 - weight ** n) };
  });
}

// series: [{name, cls, points: [{x, y}] (bold line with dots: per epoch),
//           steps: [{x, y}] (per-step values: faint raw line, smoothed line on top),
//           live: {x, y} | null (the newest running value)}]
// clamp: [lo, hi] the y range may never leave (0..1 for accuracies).
export function drawChart(svg, { series, xMax, clamp = [-Infinity, Infinity], format = (v) => v.toFixed(2), xTitle = 'epoch', yTitle = '', smoothing = 0, empty = 'No data yet' }) {
  const w = Math.max(220, Math.round(svg.getBoundingClientRect().width || 320));
  const h = Math.max(170, Math.round(svg.getBoundingClientRect().height || 210));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const shown = series.map((s) => ({ ...s, smoothed: smooth(s.steps || [], smoothing) }));
  const all = shown.flatMap((s) => [...s.points, ...(s.steps || []), ...(s.live ? [s.live] : [])]);
  const ys = all.map((p) => p.y).filter(Number.isFinite);
  // The y range follows the data (with a little room), within what the values can be.
  const lo = ys.length ? Math.min(...ys) : clamp[0] > -Infinity ? clamp[0] : 0;
  const hi = ys.length ? Math.max(...ys) : clamp[1] < Infinity ? clamp[1] : 1;
  const room = (hi - lo) * 0.08;
  const yr = niceRange(Math.max(clamp[0], lo - room), Math.min(clamp[1], hi + room));
  const xm = Math.max(1, xMax || Math.max(1, ...all.map((p) => p.x)));
  const X = (x) => PAD.l + (x / xm) * (w - PAD.l - PAD.r);
  const Y = (y) => PAD.t + (1 - (y - yr.min) / (yr.max - yr.min)) * (h - PAD.t - PAD.b);

  const grid = node('g', { class: 'chart__grid' });
  for (let v = yr.min; v <= yr.max + yr.step / 2; v += yr.step) {
    grid.append(node('line', { x1: PAD.l, x2: w - PAD.r, y1: Y(v), y2: Y(v) }));
    grid.append(node('text', { x: PAD.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  const stepX = Math.max(1, Math.ceil(xm / Math.max(2, Math.floor((w - PAD.l - PAD.r) / 40))));
  for (let e = 0; e <= xm; e += stepX) grid.append(node('text', { x: X(e), y: h - PAD.b + 16, 'text-anchor': 'middle' }, String(e)));
  grid.append(node('text', { class: 'chart__axis', x: PAD.l + (w - PAD.l - PAD.r) / 2, y: h - 6, 'text-anchor': 'middle' }, xTitle));
  if (yTitle) {
    grid.append(node('text', { class: 'chart__axis', x: 12, y: PAD.t + (h - PAD.t - PAD.b) / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${PAD.t + (h - PAD.t - PAD.b) / 2})` }, yTitle));
  }
  svg.append(grid);

  if (!all.length) {
    svg.append(node('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'chart__empty' }, empty));
  }

  const path = (pts) => pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ');
  let lx = PAD.l;
  shown.forEach((s) => {
    const g = node('g', { class: `chart__series ${s.cls}` });
    if ((s.steps || []).length > 1) {
      g.append(node('polyline', { points: path(s.steps), class: smoothing > 0 ? 'chart__raw' : 'chart__trace' }));
      if (smoothing > 0) g.append(node('polyline', { points: path(s.smoothed), class: 'chart__trace chart__smoothed' }));
    }
    if (s.points.length > 1) g.append(node('polyline', { points: path(s.points), class: 'chart__line' }));
    if (s.live) g.append(node('circle', { cx: X(s.live.x), cy: Y(s.live.y), r: 3.5, class: 'chart__livedot' }));
    for (const p of s.points) {
      const c = node('circle', { cx: X(p.x), cy: Y(p.y), r: 3.5, class: 'chart__dot' });
      c.append(node('title', {}, `${s.name}, epoch ${p.x}: ${format(p.y)}`));
      g.append(c);
    }
    svg.append(g);
    const lg = node('g', { class: `chart__legend ${s.cls}` });
    lg.append(node('rect', { x: lx, y: 8, width: 12, height: 4, rx: 2 }));
    const t = node('text', { x: lx + 17, y: 14 }, s.name);
    lg.append(t);
    svg.append(lg);
    lx += 26 + s.name.length * 6.2;
  });

  // The values under the pointer: a vertical rule at the nearest x with every series'
  // value there (the smoothed one for per-step series).
  const hover = node('g', { class: 'chart__hover', visibility: 'hidden' });
  const rule = node('line', { y1: PAD.t, y2: h - PAD.b });
  const box = node('rect', { rx: 6, height: 16 });
  const label = node('text', {});
  hover.append(rule, box, label);
  svg.append(hover);
  const catcher = node('rect', { x: PAD.l, y: PAD.t, width: w - PAD.l - PAD.r, height: h - PAD.t - PAD.b, class: 'chart__catch' });
  svg.append(catcher);
  const nearest = (pts, x) => pts.reduce((b, p) => (!b || Math.abs(p.x - x) < Math.abs(b.x - x) ? p : b), null);
  const show = (e) => {
    const r = svg.getBoundingClientRect();
    const sx = ((e.clientX - r.left) / r.width) * w;
    const x = ((sx - PAD.l) / (w - PAD.l - PAD.r)) * xm;
    // The x of the point nearest the pointer, then each series' value nearest that x.
    const seriesPts = shown.map((s) => [...s.points, ...s.smoothed]);
    const near = nearest(seriesPts.flat(), x);
    if (!near || Math.abs(near.x - x) > xm / 8) { hover.setAttribute('visibility', 'hidden'); svg.removeAttribute('data-hover'); return; }
    const at = near.x;
    const lines = [];
    shown.forEach((s, k) => {
      const p = nearest(seriesPts[k], at);
      if (p && Math.abs(p.x - at) <= xm / 8) lines.push(`${s.name} ${format(p.y)}`);
    });
    const text = `${xTitle} ${at.toFixed(at % 1 ? 2 : 0)}: ${lines.join(' · ')}`;
    label.textContent = text;
    hover.setAttribute('visibility', 'visible');
    const tw = Math.min(w - PAD.l - PAD.r, (label.getComputedTextLength() || text.length * 6.1) + 12);
    const bx = Math.max(PAD.l, Math.min(w - PAD.r - tw, X(at) - tw / 2));
    rule.setAttribute('x1', X(at));
    rule.setAttribute('x2', X(at));
    box.setAttribute('x', bx);
    box.setAttribute('y', PAD.t - 2);
    box.setAttribute('width', tw);
    label.setAttribute('x', bx + 6);
    label.setAttribute('y', PAD.t + 10);
    hover.setAttribute('visibility', 'visible');
    svg.dataset.hover = text;
  };
  catcher.addEventListener('pointermove', show);
  catcher.addEventListener('pointerenter', show);
  catcher.addEventListener('pointerleave', () => { hover.setAttribute('visibility', 'hidden'); svg.removeAttribute('data-hover'); });

  const lastOf = (s) => s.live || s.points[s.points.length - 1];
  svg.setAttribute('aria-label', `${svg.dataset.title || 'chart'}: ${shown.some(lastOf) ? shown.map((s) => {
    const p = lastOf(s);
    return p ? `${s.name} ${format(p.y)}` : '';
  }).filter(Boolean).join(', ') : 'no data'}`);
}

// Per-step values from a job's running means. The API reports, for the current epoch,
// the mean loss (and accuracy) over the batches so far; between two samples of the same
// epoch the mean over just the batches in between is (m2*b2 - m1*b1) / (b2 - b1). That
// is what happened during those steps, and it does not jump at each epoch's start the
// way the running mean does (the old sawtooth).
export function stepsFromRunning(samples, key) {
  const out = [];
  let prev = null;
  for (const s of samples) {
    const v = s[key];
    if (v == null || !s.batch) { prev = null; continue; }
    if (prev && prev.epoch === s.epoch && s.batch > prev.batch) {
      out.push({ x: s.x, y: (v * s.batch - prev[key] * prev.batch) / (s.batch - prev.batch) });
    } else if (!prev || prev.epoch !== s.epoch) {
      out.push({ x: s.x, y: v });
    }
    prev = s;
  }
  return out;
}

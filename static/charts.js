// charts.js - small SVG line charts for loss and accuracy per epoch, drawn by hand: a
// chart library would outweigh the whole page. The x axis spans the planned epochs from
// the start, so the lines visibly grow towards the right edge while a job runs; a dashed
// tail reaches the running value inside the current epoch.

const NS = 'http://www.w3.org/2000/svg';
const PAD = { l: 44, r: 12, t: 28, b: 26 };

function node(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// series: [{name, cls, points: [{x, y}] per finished epoch, trace: [{x, y}] running
// values sampled inside epochs, live: {x, y} | null the newest running value}]
export function drawChart(svg, { series, xMax, yMin = 0, yMax, format = (v) => v.toFixed(2), empty = 'No data yet' }) {
  const w = Math.max(200, Math.round(svg.getBoundingClientRect().width || 320));
  const h = Math.max(150, Math.round(svg.getBoundingClientRect().height || 190));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const all = series.flatMap((s) => [...s.points, ...(s.trace || []), ...(s.live ? [s.live] : [])]);
  const top = yMax ?? niceMax(Math.max(0, ...all.map((p) => p.y)) * 1.05);
  const xm = Math.max(1, xMax || Math.max(1, ...all.map((p) => p.x)));
  const X = (x) => PAD.l + (x / xm) * (w - PAD.l - PAD.r);
  const Y = (y) => PAD.t + (1 - (y - yMin) / (top - yMin)) * (h - PAD.t - PAD.b);

  const grid = node('g', { class: 'chart__grid' });
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((top - yMin) * i) / 4;
    grid.append(node('line', { x1: PAD.l, x2: w - PAD.r, y1: Y(v), y2: Y(v) }));
    grid.append(node('text', { x: PAD.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  const stepX = Math.max(1, Math.ceil(xm / Math.max(2, Math.floor((w - PAD.l - PAD.r) / 40))));
  for (let e = 0; e <= xm; e += stepX) grid.append(node('text', { x: X(e), y: h - 8, 'text-anchor': 'middle' }, String(e)));
  svg.append(grid);

  if (!all.length) {
    svg.append(node('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', class: 'chart__empty' }, empty));
  }

  series.forEach((s, k) => {
    const g = node('g', { class: `chart__series ${s.cls}` });
    const line = (pts, cls) => {
      if (pts.length > 1) g.append(node('polyline', { points: pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' '), class: cls }));
    };
    // The running values inside each epoch, thin; the finished epochs, bold with dots.
    line(s.trace || [], 'chart__trace');
    line(s.points, 'chart__line');
    if (s.live) g.append(node('circle', { cx: X(s.live.x), cy: Y(s.live.y), r: 3.5, class: 'chart__livedot' }));
    for (const p of s.points) {
      const c = node('circle', { cx: X(p.x), cy: Y(p.y), r: 3.5, class: 'chart__dot' });
      c.append(node('title', {}, `${s.name}, epoch ${p.x}: ${format(p.y)}`));
      g.append(c);
    }
    svg.append(g);
    // legend
    const lx = PAD.l + k * 118;
    const lg = node('g', { class: `chart__legend ${s.cls}` });
    lg.append(node('rect', { x: lx, y: 8, width: 12, height: 4, rx: 2 }));
    lg.append(node('text', { x: lx + 17, y: 14 }, s.name));
    svg.append(lg);
  });
  const last = series.map((s) => s.live || s.points[s.points.length - 1]).filter(Boolean);
  svg.setAttribute('aria-label', `${svg.dataset.title || 'chart'}: ${last.length ? series.map((s) => {
    const p = s.live || s.points[s.points.length - 1];
    return p ? `${s.name} ${format(p.y)}` : '';
  }).filter(Boolean).join(', ') : 'no data'}`);
}

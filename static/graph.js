// graph.js - the model as a graph, the way Netron draws one: every node in the order the
// model runs them, top to bottom, as a box with its kind, name, output shape and
// parameters, and an edge from every node it reads (the summary's "inputs"). Nodes that
// can run side by side (a shortcut's projection beside a block's convolutions) share a
// row; an edge that skips rows (an identity shortcut) runs as a dashed arc beside the
// chain, so a branch is never hidden behind the nodes it passes. Clicking a node (or
// Enter on it) picks that layer for the views above; the chosen layer is marked here.

import { state, on } from './store.js';
import { $, int } from './ui.js';
import { kindOf, shapeText } from './network.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 196, H = 50, GAP_X = 26, GAP_Y = 26, PAD = 24, ARC = 46;

function svg(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

// Rows by the longest path from the input; in a row, each node at the mean place of
// what it reads, pushed apart where boxes would overlap.
function layout(layers) {
  const byName = new Map([['input', { name: 'input', row: 0, x: 0, inputs: [] }]]);
  const nodes = [byName.get('input')];
  for (const l of layers) {
    const ins = (l.inputs || []).filter((n) => byName.has(n));
    const row = 1 + Math.max(0, ...ins.map((n) => byName.get(n).row));
    const node = { name: l.name, layer: l, row, inputs: ins, x: 0 };
    byName.set(l.name, node);
    nodes.push(node);
  }
  const rows = [];
  for (const n of nodes) (rows[n.row] ||= []).push(n);
  for (const row of rows) {
    if (!row) continue;
    for (const n of row) {
      const xs = n.inputs.map((i) => byName.get(i).x);
      n.x = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
    }
    row.sort((a, b) => a.x - b.x);
    const mean = row.reduce((a, n) => a + n.x, 0) / row.length;
    for (let i = 1; i < row.length; i++) row[i].x = Math.max(row[i].x, row[i - 1].x + W + GAP_X);
    const shift = mean - row.reduce((a, n) => a + n.x, 0) / row.length;
    for (const n of row) n.x += shift;
  }
  return { nodes, byName, rows: rows.length };
}

export function initGraph({ network }) {
  const box = $('graph-svg'), wrap = $('graph-wrap'), sub = $('graph-sub');
  let groups = new Map();

  function select(name) {
    for (const [n, g] of groups) {
      const on = n === name;
      g.classList.toggle('is-selected', on);
      g.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    const g = groups.get(name);
    if (!g || !wrap.clientHeight) return;
    // Bring the node into the graph's own view, never scroll the page.
    const y = Number(g.dataset.y), x = Number(g.dataset.x);
    if (y < wrap.scrollTop || y + H > wrap.scrollTop + wrap.clientHeight) wrap.scrollTop = y - wrap.clientHeight / 3;
    if (x < wrap.scrollLeft || x + W > wrap.scrollLeft + wrap.clientWidth) wrap.scrollLeft = x - wrap.clientWidth / 3;
  }

  function render() {
    const layers = (state.summary && state.summary.layers) || [];
    const { nodes, byName, rows } = layout(layers);
    const minX = Math.min(...nodes.map((n) => n.x)), maxX = Math.max(...nodes.map((n) => n.x));
    const width = maxX - minX + W + 2 * PAD + 2 * ARC, height = rows * (H + GAP_Y) - GAP_Y + 2 * PAD;
    const left = (n) => n.x - minX + PAD + ARC, top = (n) => n.row * (H + GAP_Y) + PAD;
    box.replaceChildren();
    box.setAttribute('width', width);
    box.setAttribute('height', height);
    box.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const defs = svg('defs');
    const marker = svg('marker', { id: 'graph-arrow', viewBox: '0 0 8 8', refX: '7', refY: '4', markerWidth: '7', markerHeight: '7', orient: 'auto' });
    marker.append(svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'gedge-head' }));
    defs.append(marker);
    box.append(defs);
    const edges = svg('g'), boxes = svg('g');
    box.append(edges, boxes);
    // The horizontal extent of each row, for routing edges past the rows they skip.
    const extent = [];
    for (const n of nodes) {
      const e = extent[n.row] || (extent[n.row] = { lo: Infinity, hi: -Infinity });
      e.lo = Math.min(e.lo, left(n));
      e.hi = Math.max(e.hi, left(n) + W);
    }
    const lanes = { left: 0, right: 0 };
    for (const n of nodes) {
      n.inputs.forEach((from, k) => {
        const a = byName.get(from);
        const x1 = left(a) + W / 2, y1 = top(a) + H, x2 = left(n) + W / 2 + (n.inputs.length > 1 ? (k - (n.inputs.length - 1) / 2) * 14 : 0), y2 = top(n);
        let d, skip = false;
        if (n.row - a.row > 1) {
          // Past the rows between: out to the side of them within the gap below the
          // source, down, and back in within the gap above the target, so the edge never
          // crosses a node. The nearer side, each edge in a lane of its own.
          skip = true;
          let lo = Infinity, hi = -Infinity;
          for (let r = a.row + 1; r < n.row; r++) lo = Math.min(lo, extent[r].lo), hi = Math.max(hi, extent[r].hi);
          const right = hi - Math.max(x1, x2) <= Math.min(x1, x2) - lo;
          const xs = right ? hi + 16 + 10 * (lanes.right++ % 3) : lo - 16 - 10 * (lanes.left++ % 3);
          const h = GAP_Y / 2;
          d = `M${x1},${y1} Q${x1},${y1 + h} ${(x1 + xs) / 2},${y1 + h} T${xs},${y1 + h + 8} L${xs},${y2 - h - 8} Q${xs},${y2 - h} ${(xs + x2) / 2},${y2 - h} T${x2},${y2}`;
        } else {
          const my = (y1 + y2) / 2;
          d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`;
        }
        edges.append(svg('path', { d, class: `gedge${skip ? ' gedge--skip' : ''}`, 'marker-end': 'url(#graph-arrow)', 'data-from': from, 'data-to': n.name }));
      });
    }
    groups = new Map();
    for (const n of nodes) {
      const l = n.layer;
      const [kind] = l ? kindOf(l.type) : ['input'];
      const x = left(n), y = top(n);
      const g = svg('g', { class: `gnode gnode--${kind}`, transform: `translate(${x},${y})`, 'data-name': n.name, 'data-x': x, 'data-y': y });
      const shape = l ? shapeText(l.output_shape) : (state.summary.input_shape || []).join('×');
      const meta = l ? `${shape}${l.params ? ` · ${int(l.params)} p` : ''}` : shape;
      g.append(
        svg('rect', { class: 'gnode__box', width: W, height: H, rx: 8 }),
        svg('rect', { class: 'gnode__kind', width: 5, height: H - 10, x: 5, y: 5, rx: 2 }),
        svg('text', { class: 'gnode__type', x: 16, y: 17 }, l ? l.type : 'Input'),
        svg('text', { class: 'gnode__name', x: 16, y: 31 }, clip(l ? l.name : 'the image', 26)),
        svg('text', { class: 'gnode__meta', x: 16, y: 44 }, clip(meta, 30)),
        svg('title', {}, l ? `${l.name} (${l.type}) reads ${(l.inputs || []).join(', ')}; output ${shape}, ${int(l.params)} parameters` : `the model's input, ${shape}`));
      if (l) {
        g.setAttribute('tabindex', '0');
        g.setAttribute('role', 'button');
        g.setAttribute('aria-pressed', 'false');
        g.setAttribute('aria-label', `${l.name}, ${l.type}, output ${shape}, ${int(l.params)} parameters, reads ${(l.inputs || []).join(' and ')}`);
        g.addEventListener('click', () => network.select(l.name));
        g.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); network.select(l.name); }
        });
        groups.set(n.name, g);
      }
      boxes.append(g);
    }
    const joins = layers.filter((l) => (l.inputs || []).length > 1).length;
    sub.textContent = `${int(layers.length)} nodes${joins ? ` · ${joins} where branches join` : ' · one chain'}`;
    if (network.layer) select(network.layer.name);
  }

  on('model', render);
  on('layer', (l) => select(l.name));
}

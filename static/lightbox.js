// lightbox.js - enlarges one tile of a filter or feature-map grid. The API draws its
// grids as cols x rows tiles with a 2-pixel gap around every tile, so the tile under the
// pointer is found from the image's size alone and copied, pixel for pixel, into a big
// canvas (no smoothing: a 3x3 filter should look like nine squares).

import { $ } from './ui.js';

const GAP = 2;

export function tileGeometry(img, cols, count) {
  const w = img.naturalWidth, h = img.naturalHeight;
  const tile = (w - GAP * (cols + 1)) / cols;
  const rows = Math.ceil(count / cols);
  const tileH = (h - GAP * (rows + 1)) / rows;
  if (!Number.isInteger(tile) || tile < 1 || !Number.isInteger(tileH) || tileH < 1) return null;
  return { cols, rows, count, tile, tileH };
}

export function tileAt(img, geo, clientX, clientY) {
  const r = img.getBoundingClientRect();
  const x = ((clientX - r.left) / r.width) * img.naturalWidth;
  const y = ((clientY - r.top) / r.height) * img.naturalHeight;
  const c = Math.min(geo.cols - 1, Math.max(0, Math.floor((x - GAP / 2) / (geo.tile + GAP))));
  const row = Math.min(geo.rows - 1, Math.max(0, Math.floor((y - GAP / 2) / (geo.tileH + GAP))));
  const i = row * geo.cols + c;
  return i < geo.count ? i : geo.count - 1;
}

export function initLightbox() {
  const dlg = $('lightbox'), canvas = $('lightbox-canvas'), title = $('lightbox-title'), note = $('lightbox-note');
  let cur = null;

  function draw() {
    const { img, geo, index, name, describe } = cur;
    const ctx = canvas.getContext('2d');
    if (geo) {
      const sx = GAP + (index % geo.cols) * (geo.tile + GAP);
      const sy = GAP + Math.floor(index / geo.cols) * (geo.tileH + GAP);
      canvas.width = geo.tile;
      canvas.height = geo.tileH;
      ctx.drawImage(img, sx, sy, geo.tile, geo.tileH, 0, 0, geo.tile, geo.tileH);
      // A page of a longer grid numbers its tiles from its first one.
      // A grid in another order (strongest channel first) names its tiles by label().
      const first = cur.first || 0, total = cur.total || geo.count;
      const label = cur.label ? cur.label(first + index) : first + index;
      title.textContent = `${name} ${label} · ${first + index + 1} of ${total}`;
    } else {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      ctx.drawImage(img, 0, 0);
      title.textContent = name;
    }
    note.textContent = describe ? describe((cur.first || 0) + index) : '';
    $('lightbox-prev').disabled = !geo || index === 0;
    $('lightbox-next').disabled = !geo || index >= geo.count - 1;
  }

  function step(d) {
    if (!cur || !cur.geo) return;
    const i = cur.index + d;
    if (i < 0 || i >= cur.geo.count) return;
    cur.index = i;
    draw();
  }

  $('lightbox-prev').addEventListener('click', () => step(-1));
  $('lightbox-next').addEventListener('click', () => step(1));
  dlg.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowLeft') { e.preventDefault(); step(-1); }
    if (e.key === 'ArrowRight') { e.preventDefault(); step(1); }
  });
  // A click on the backdrop (outside the inner box) closes, as people expect.
  dlg.addEventListener('click', (e) => { if (e.target === dlg) dlg.close(); });

  return {
    open(opts) {
      cur = { index: 0, ...opts };
      draw();
      if (!dlg.open) dlg.showModal();
    },
  };
}

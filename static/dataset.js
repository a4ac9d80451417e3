// dataset.js - the browsable, labelled grid of Fashion-MNIST images (training and test
// sets), a page at a time, with jump-to-index and a random pick. Picking an image makes
// it the input as ?sample=split:index, so nothing is uploaded.
//
// The grid is one tab stop (a roving tabindex, as in the WAI-ARIA grid pattern): the
// arrow keys move between thumbnails, Home and End go to the first and last, Page Up and
// Page Down turn pages; Enter or Space picks.

import { getJSON, url } from './api.js';
import { $, el, showError } from './ui.js';

const PAGE = 24;

export function initDataset({ onPick }) {
  const grid = $('ds-grid'), splitSel = $('ds-split'), indexIn = $('ds-index');
  const range = $('ds-range'), errBox = $('ds-error');
  let split = 'test', offset = 0, total = 10000, selected = null, loading = 0;

  async function load() {
    const ticket = ++loading;
    try {
      const data = await getJSON('v1/datasets/fashion-mnist', { split, offset, limit: PAGE });
      if (ticket !== loading) return;
      total = data.total ?? total;
      indexIn.max = String(total - 1);
      render(data.items || []);
      showError(errBox, null);
    } catch (e) {
      if (ticket === loading) showError(errBox, e);
    }
  }

  function render(items) {
    grid.replaceChildren(...items.map((it) => {
      const isSel = selected && selected.split === split && selected.index === it.index;
      const name = it.class ?? String(it.label);
      return el('li', {},
        el('button', {
          type: 'button', class: 'thumb', 'aria-pressed': isSel ? 'true' : 'false', tabindex: '-1',
          'aria-label': `${split} image ${it.index}: ${name}`, title: `${split} #${it.index} · ${name}`,
          dataset: { index: it.index },
          onclick: () => pick(it.index, name),
        },
        el('img', { src: url(`v1/datasets/fashion-mnist/${split}/${it.index}.png`, { scale: 2 }).href, alt: '', width: 56, height: 56, loading: 'lazy' }),
        el('span', { class: 'thumb__label', text: name }),
        el('span', { class: 'thumb__index', text: `#${it.index}` })));
    }));
    rove();
    const last = Math.min(offset + PAGE, total) - 1;
    range.textContent = `${split} ${offset.toLocaleString('en-US')}–${last.toLocaleString('en-US')} of ${total.toLocaleString('en-US')}`;
    $('ds-prev').disabled = offset === 0;
    $('ds-next').disabled = offset + PAGE >= total;
  }

  function markSelected() {
    for (const b of grid.querySelectorAll('.thumb')) {
      const on = selected && selected.split === split && Number(b.dataset.index) === selected.index;
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    }
    rove();
  }

  // The grid's one tab stop: the focused thumbnail, else the chosen one, else the first.
  function rove(target) {
    const thumbs = [...grid.querySelectorAll('.thumb')];
    if (!thumbs.length) return;
    const stop = target || thumbs.find((b) => b === document.activeElement) ||
      thumbs.find((b) => b.getAttribute('aria-pressed') === 'true') || thumbs[0];
    for (const b of thumbs) b.tabIndex = b === stop ? 0 : -1;
  }

  // Columns as laid out now (the grid reflows with the width).
  function columns(thumbs) {
    const top = thumbs[0].getBoundingClientRect().top;
    const n = thumbs.findIndex((b) => b.getBoundingClientRect().top > top + 2);
    return n > 0 ? n : thumbs.length;
  }

  grid.addEventListener('keydown', async (e) => {
    const thumbs = [...grid.querySelectorAll('.thumb')];
    const i = thumbs.indexOf(document.activeElement);
    if (i < 0) return;
    const cols = columns(thumbs);
    let to = { ArrowRight: i + 1, ArrowLeft: i - 1, ArrowDown: i + cols, ArrowUp: i - cols, Home: 0, End: thumbs.length - 1 }[e.key];
    if (e.key === 'PageDown' || e.key === 'PageUp') {
      e.preventDefault();
      const down = e.key === 'PageDown';
      if (down ? offset + PAGE >= total : offset === 0) return;
      offset = down ? offset + PAGE : Math.max(0, offset - PAGE);
      await load();
      const first = grid.querySelector('.thumb');
      if (first) { rove(first); first.focus(); }
      return;
    }
    if (to === undefined) return;
    e.preventDefault();
    to = Math.max(0, Math.min(thumbs.length - 1, to));
    rove(thumbs[to]);
    thumbs[to].focus();
  });

  function pick(index, label) {
    selected = { split, index };
    indexIn.value = String(index);
    markSelected();
    onPick({ split, index, label });
  }

  async function goto(index) {
    if (!Number.isInteger(index) || index < 0 || index >= total) {
      showError(errBox, { message: `Pick an index from 0 to ${total - 1}.` });
      return;
    }
    const page = Math.floor(index / PAGE) * PAGE;
    if (page !== offset || !grid.children.length) {
      offset = page;
      await load();
    }
    const item = grid.querySelector(`.thumb[data-index="${index}"] .thumb__label`);
    pick(index, item ? item.textContent : undefined);
  }

  splitSel.addEventListener('change', () => {
    split = splitSel.value;
    total = split === 'train' ? 60000 : 10000;
    offset = 0;
    load();
  });
  $('ds-prev').addEventListener('click', () => { offset = Math.max(0, offset - PAGE); load(); });
  $('ds-next').addEventListener('click', () => { if (offset + PAGE < total) { offset += PAGE; load(); } });
  $('ds-goto').addEventListener('submit', (e) => { e.preventDefault(); goto(Number(indexIn.value)); });
  $('ds-random').addEventListener('click', () => goto(Math.floor(Math.random() * total)));

  async function setSplit(next) {
    if (next !== 'train' && next !== 'test') return;
    split = next;
    splitSel.value = next;
    total = split === 'train' ? 60000 : 10000;
    offset = 0;
    await load();
  }

  return { goto, setSplit, reload: load, get selected() { return selected; } };
}

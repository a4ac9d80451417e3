// input.js - the image source card: the tabs (Fashion-MNIST grid, drawing pad,
// upload), drag-and-drop and paste anywhere on the page, and the line that says which
// image is being analysed. It turns each of them into one "current input" and tells the
// other panels through the store.

import { state, emit, on, nextInputId } from './store.js';
import { createPad } from './draw.js';
import { initDataset } from './dataset.js';
import { url } from './api.js';
import { $, showError } from './ui.js';
import { inputShape, describeInput, isFashionModel, modelTitle } from './modelinfo.js';

const SENDABLE = new Set(['image/png', 'image/jpeg']);
const STROKE_EVERY_MS = 140;

export function initInput() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const label = $('input-label'), editBtn = $('edit-on-canvas'), errBox = $('input-error');

  // --- tabs (arrow keys move between them, as in the WAI-ARIA tabs pattern) ---
  function selectTab(tab, focus) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !on;
    }
    if (focus) tab.focus();
  }
  for (const t of tabs) {
    t.addEventListener('click', () => selectTab(t));
    t.addEventListener('keydown', (e) => {
      const i = tabs.indexOf(t);
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (next === undefined) return;
      e.preventDefault();
      selectTab(tabs[(next + tabs.length) % tabs.length], true);
    });
  }

  function setInput(input, text, { live = false } = {}) {
    input.id = nextInputId();
    state.input = input;
    label.textContent = text;
    editBtn.hidden = !!input.fromPad;
    showError(errBox, null);
    emit(live ? 'stroke' : 'input', input);
  }

  // --- Fashion-MNIST grid ---
  const dataset = initDataset({
    onPick: ({ split, index, label: cls }) =>
      setInput({ sample: { split, index }, name: `${split} #${index}` },
        `Analysing Fashion-MNIST ${split} image #${index}${cls ? ` (labelled ${cls})` : ''}`),
  });

  // --- drawing pad ---
  const canvas = $('draw-canvas');
  let strokeTimer = 0, padSeq = 0;
  async function padInput(live) {
    // Each call reads the pad as it is now; one still encoding its picture when a newer
    // one starts (a clear, more strokes) must not replace the newer state with the old.
    const seq = ++padSeq;
    // A blank pad is no picture: asking the network about it would only show a guess
    // and a flat map, so the panels say there is nothing to analyse instead.
    if (pad.isEmpty()) {
      if (live) return;
      const input = { empty: true, name: 'the empty canvas', fromPad: true, id: nextInputId() };
      state.input = input;
      label.textContent = 'The canvas is empty: draw something to analyse';
      editBtn.hidden = true;
      showError(errBox, null);
      emit('input-empty', input);
      return;
    }
    const blob = await pad.toBlob();
    if (seq !== padSeq) return;
    setInput({ blob, name: 'your drawing', fromPad: true }, 'Analysing your drawing', { live });
  }
  const pad = createPad(canvas, {
    onStroke() {
      $('draw-hint').classList.add('is-faded');
      if (strokeTimer) return;
      strokeTimer = setTimeout(() => { strokeTimer = 0; padInput(true); }, STROKE_EVERY_MS);
    },
    onEnd() {
      clearTimeout(strokeTimer);
      strokeTimer = 0;
      padInput(false);
    },
  });
  const size = $('brush-size'), sizeOut = $('brush-size-out');
  size.addEventListener('input', () => { pad.setRadius(Number(size.value)); sizeOut.textContent = size.value; });
  const toolBtns = { brush: $('tool-brush'), eraser: $('tool-eraser') };
  for (const [name, btn] of Object.entries(toolBtns)) {
    btn.addEventListener('click', () => {
      pad.setTool(name);
      for (const [n, b] of Object.entries(toolBtns)) b.setAttribute('aria-pressed', n === name ? 'true' : 'false');
    });
  }
  const inkIn = $('ink-colour'), inkWrap = $('ink-wrap');
  inkIn.addEventListener('input', () => {
    pad.setInk(inkIn.value);
    toolBtns.brush.click();
  });
  $('draw-clear').addEventListener('click', () => { pad.clear(); $('draw-hint').classList.remove('is-faded'); });
  $('draw-undo').addEventListener('click', () => pad.undo());
  $('pane-draw').addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') { e.preventDefault(); pad.undo(); }
  });

  // "Edit on the canvas": take the image being analysed and scribble over it.
  editBtn.addEventListener('click', async () => {
    const img = new Image();
    const inp = state.input;
    if (!inp) return;
    img.src = inp.sample
      ? url(`v1/datasets/fashion-mnist/${inp.sample.split}/${inp.sample.index}.png`).href
      : URL.createObjectURL(inp.blob);
    try {
      await img.decode();
    } catch {
      showError(errBox, { message: 'This image cannot be put on the canvas: the browser cannot decode it.' });
      return;
    }
    pad.load(img);
    $('draw-hint').classList.add('is-faded');
    selectTab($('tab-draw'), true);
    padInput(false);
  });

  // --- upload, drop, paste ---
  // "Invert": a dark object on a bright background becomes a light one on black, as in
  // Fashion-MNIST. The picture is inverted in the browser before it is sent.
  const invertIn = $('upload-invert');
  let lastFile = null;
  invertIn.addEventListener('change', () => { if (lastFile && state.input && !state.input.fromPad && !state.input.sample) useFile(lastFile); });

  async function useFile(file) {
    if (!file) return;
    lastFile = file;
    selectTab($('tab-upload'));
    const preview = $('upload-preview'), img = $('upload-img');
    preview.hidden = false;
    $('upload-name').textContent = `${file.name || 'pasted image'} · ${(file.size / 1024).toFixed(1)} KiB`;
    const objUrl = URL.createObjectURL(file);
    img.hidden = false;
    img.onerror = () => { img.hidden = true; };
    img.alt = file.name || 'the uploaded image';
    img.src = objUrl;
    const inverted = invertIn.checked;
    const blob = inverted ? await invert(file) : await sendable(file);
    setInput({ blob, name: file.name || 'pasted image', inverted },
      `Analysing ${file.name || 'the pasted image'}${inverted ? ', inverted' : ''}`);
  }

  const fileIn = $('file-input');
  fileIn.addEventListener('change', () => { useFile(fileIn.files[0]); fileIn.value = ''; });

  const drop = $('drop');
  const card = document.querySelector('.card--input');
  for (const target of [drop, card]) {
    target.addEventListener('dragover', (e) => {
      if (![...e.dataTransfer.types].includes('Files')) return;
      e.preventDefault();
      drop.classList.add('is-over');
    });
    target.addEventListener('dragleave', (e) => { if (!target.contains(e.relatedTarget)) drop.classList.remove('is-over'); });
    target.addEventListener('drop', (e) => {
      const f = [...(e.dataTransfer.files || [])][0];
      drop.classList.remove('is-over');
      if (!f) return;
      e.preventDefault();
      e.stopPropagation();
      useFile(f);
    });
  }
  document.addEventListener('paste', (e) => {
    if (e.target.closest && e.target.closest('input, textarea')) return;
    const item = [...(e.clipboardData?.items || [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (!item) return;
    e.preventDefault();
    useFile(item.getAsFile());
  });

  // The pad and the words around the image follow the model's input: its size, gray or
  // colour, and Fashion-MNIST's wording only for a model of Fashion-MNIST's classes.
  function followModel() {
    const shape = inputShape();
    const fashion = isFashionModel();
    const what = describeInput(shape);
    const wasDrawn = state.input && state.input.fromPad;
    const changed = pad.setShape(shape);
    if (shape.c === 3) {
      inkWrap.hidden = false;
      pad.setInk(inkIn.value);
    } else inkWrap.hidden = true;
    const hint = $('draw-hint');
    hint.textContent = fashion
      ? `Draw a shoe, a shirt or a bag — white on black, like Fashion-MNIST. The model sees ${what}.`
      : shape.c === 1
        ? `Draw in white on black. ${modelTitle(state.model.name)} sees ${what} pixels.`
        : `Draw in colour. ${modelTitle(state.model.name)} sees ${what} pixels.`;
    if (changed) hint.classList.remove('is-faded');
    canvas.setAttribute('aria-label', `Drawing canvas for ${modelTitle(state.model.name)} (${what}): draw with the mouse, a finger or a pen`);
    $('upload-hint').textContent = `PNG or JPEG. ${modelTitle(state.model.name)} sees it as ${what}.`;
    $('upload-invert-text').textContent = fashion
      ? 'Invert the picture (a dark object on a bright background becomes light on black, like Fashion-MNIST)'
      : 'Invert the picture (dark becomes light and light dark)';
    // A drawing made for another input shape is gone with the old pad.
    if (changed && wasDrawn) padInput(false);
  }
  on('model', followModel);

  // The prediction panel reports a picture the service could not read; say so here.
  on('input-rejected', (input) => {
    if (input !== state.input) return;
    label.textContent = `Could not analyse ${input.name}`;
    editBtn.hidden = true;
  });

  return { dataset, pad, setInput, selectTab };
}

// The API takes PNG and JPEG; other pictures the browser can read (WebP, GIF, BMP, a
// screenshot pasted from the clipboard) are re-encoded as PNG here. Anything that cannot
// be decoded is sent as it is, so the API's own message explains what is wrong with it.
async function sendable(file) {
  if (SENDABLE.has(file.type)) return file;
  try {
    const bmp = await createImageBitmap(file);
    const c = document.createElement('canvas');
    c.width = bmp.width;
    c.height = bmp.height;
    c.getContext('2d').drawImage(bmp, 0, 0);
    return await new Promise((r) => c.toBlob(r, 'image/png'));
  } catch {
    return file;
  }
}

// The picture with its colours inverted, as PNG; the file itself if the browser cannot
// read it (the API's message then says what is wrong with it).
async function invert(file) {
  try {
    const bmp = await createImageBitmap(file);
    const c = document.createElement('canvas');
    c.width = bmp.width;
    c.height = bmp.height;
    const ctx = c.getContext('2d');
    ctx.filter = 'invert(1)';
    ctx.drawImage(bmp, 0, 0);
    return await new Promise((r) => c.toBlob(r, 'image/png'));
  } catch {
    return file;
  }
}

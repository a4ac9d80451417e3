// ui.js - small DOM helpers shared by the panels: showing an error where it happened,
// busy states, debouncing and number formatting.

import { isAbortError } from './api.js';

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// Shows an API error (or clears it with null) in the given element. Aborted requests
// were replaced by newer ones and are not errors.
export function showError(box, err) {
  if (!box) return;
  if (!err || isAbortError(err)) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  const status = err.status ? ` (${err.status}${err.code ? ` ${err.code}` : ''})` : '';
  const msg = String(err.message || 'unknown error');
  box.textContent = `${msg.charAt(0).toUpperCase()}${msg.slice(1)}${status}`;
  box.hidden = false;
}

export function setBusy(box, busy) {
  if (box) box.classList.toggle('is-busy', !!busy);
}

export function debounce(fn, ms) {
  let t = 0;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

// A percentage with a no-break space, so "89.0 %" never wraps before its sign. Small
// values keep one significant digit (0.4 %, not 0 %); a value that rounds to 0 or 100
// without being it says so (< 0.01 %, > 99.9 %).
const NBSP = '\u00a0';
export function pct(p, digits = 1) {
  if (p === null || p === undefined || !Number.isFinite(Number(p))) return `—`;
  const v = Number(p) * 100;
  if (v <= 0) return `0${NBSP}%`;
  let d = digits;
  while (d < 2 && Number(v.toFixed(d)) === 0) d++;
  if (Number(v.toFixed(d)) === 0) return `<${NBSP}0.01${NBSP}%`;
  if (v < 100 && Number(v.toFixed(d)) >= 100) return `>${NBSP}${(100 - 10 ** -Math.max(1, d)).toFixed(Math.max(1, d))}${NBSP}%`;
  return `${v.toFixed(d)}${NBSP}%`;
}
export const int = (n) => Number(n).toLocaleString('en-US');

export function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), r = s % 60;
  if (m < 60) return `${m} min ${String(r).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

// Replaces an <img>'s object URL with one for the new blob, freeing the old one.
export function setImageBlob(img, blob) {
  const old = img.dataset.objectUrl;
  const next = URL.createObjectURL(blob);
  img.dataset.objectUrl = next;
  img.src = next;
  if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
  // Settles however the picture ends: shown, broken, or replaced or removed before it
  // loaded (a panel cleared meanwhile removes its src: then neither load nor error
  // fires, nor does decode() settle, and a panel waiting on them waited forever).
  return new Promise((resolve) => {
    const watch = new MutationObserver(() => { if (img.getAttribute('src') !== next) done(); });
    function done() {
      watch.disconnect();
      img.removeEventListener('load', done);
      img.removeEventListener('error', done);
      resolve();
    }
    watch.observe(img, { attributes: true, attributeFilter: ['src'] });
    img.addEventListener('load', done);
    img.addEventListener('error', done);
    if (img.complete && img.naturalWidth && img.src === next) done();
  });
}

// At most one run at a time; calls that arrive meanwhile collapse into one more run
// when it ends. Unlike latest(), a stream of calls (strokes while drawing) never starves
// the panel: every run finishes and is shown.
export function serial(fn) {
  let running = false, pending = false;
  const go = async () => {
    if (running) { pending = true; return; }
    running = true;
    pending = false;
    try { await fn(); } finally {
      running = false;
      if (pending) go();
    }
  };
  return go;
}

// Keeps the newest of overlapping requests: starting a new one aborts the previous.
export function latest() {
  let ctrl = null;
  return () => {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    return ctrl.signal;
  };
}

// Errors about the uploaded picture itself belong next to the input, not in each of
// the panels that happened to send it.
const IMAGE_ERRORS = new Set(['corrupt_image', 'unsupported_media_type', 'payload_too_large', 'image_too_large', 'no_image', 'too_many_images']);
export function isNetworkError(e) {
  return !!e && e.code === 'network';
}

export function isImageError(e) {
  return !!e && (IMAGE_ERRORS.has(e.code) || e.status === 413 || e.status === 415 || e.status === 422);
}

// channels.js - the chosen layer's channels: its feature maps for the current image and,
// for a convolution, the filters it learned, a page of 64 at a time (VGG16 has 512), with
// the scale each grid is drawn on. The maps come each on its own scale or all on the
// layer's one scale (the API's norm=layer, with the range in the legend), in channel
// order or strongest first (order=mean|max; the activations answer names the channels
// in that order), and the pointer reads a map's channel, mean and maximum. Filters of a first layer that reads an RGB picture
// can be shown in colour (the three input channels' grids, drawn on one shared scale,
// laid over each other as red, green and blue); the weights' scale is over the whole
// layer or per filter (the API's norm). Either grid opens tile by tile in the lightbox.
//
// The API draws a grid of the first N channels; a later page asks for the first
// (page + 1) x 64 and keeps the last rows, so the tiles' layout is the API's own.

import { postImage, request } from './api.js';
import { state, on } from './store.js';
import { $, int, showError, setBusy, setImageBlob, serial, latest, isImageError, isNetworkError } from './ui.js';
import { initLightbox, tileGeometry, tileAt } from './lightbox.js';
import { legend, GRAY } from './legend.js';
import { inputShape } from './modelinfo.js';
import { shapeText } from './network.js';
import { activations, num } from './values.js';

const PAGE = 64;
const GAP = 2;

// Keeps rows [firstRow, firstRow + rows) of a tile grid; the result is laid out like a
// grid of its own (a gap above the first row and below the last).
async function cropRows(blob, geo, firstRow, rows) {
  const bmp = await createImageBitmap(blob);
  const y0 = firstRow * (geo.tileH + GAP), h = rows * (geo.tileH + GAP) + GAP;
  const c = document.createElement('canvas');
  c.width = bmp.width;
  c.height = h;
  c.getContext('2d').drawImage(bmp, 0, y0, bmp.width, h, 0, 0, bmp.width, h);
  return new Promise((r) => c.toBlob(r, 'image/png'));
}

// Three gray grids (input channels 0, 1, 2 on one scale) as one colour grid.
async function mergeRGB(blobs) {
  const bmps = await Promise.all(blobs.map((b) => createImageBitmap(b)));
  const { width: w, height: h } = bmps[0];
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  const planes = bmps.map((b) => {
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(b, 0, 0);
    return ctx.getImageData(0, 0, w, h).data;
  });
  const out = ctx.createImageData(w, h);
  for (let i = 0; i < out.data.length; i += 4) {
    out.data[i] = planes[0][i];
    out.data[i + 1] = planes[1][i];
    out.data[i + 2] = planes[2][i];
    out.data[i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return new Promise((r) => c.toBlob(r, 'image/png'));
}

function pager(prefix, onPage) {
  const wrap = $(`${prefix}-pager`), prev = $(`${prefix}-prev`), next = $(`${prefix}-next`), range = $(`${prefix}-range`);
  let page = 0, total = 0;
  prev.addEventListener('click', () => { if (page > 0) { page--; onPage(); } });
  next.addEventListener('click', () => { if ((page + 1) * PAGE < total) { page++; onPage(); } });
  return {
    get page() { return page; },
    reset(n) { total = n; page = 0; },
    show() {
      wrap.hidden = total <= PAGE;
      const first = page * PAGE, last = Math.min(total, first + PAGE) - 1;
      range.textContent = `${first}–${last} of ${int(total)}`;
      prev.disabled = page === 0;
      next.disabled = (page + 1) * PAGE >= total;
    },
    set(n, p) { total = n; page = Math.max(0, Math.min(Math.ceil(n / PAGE) - 1, p)); },
  };
}

// Fetches the grid of the first `upto` tiles and keeps the page's rows.
async function pageOf(res, cols, count, page) {
  const blob = await res.blob();
  if (page === 0) return { blob, count };
  const bmp = await createImageBitmap(blob);
  const full = { naturalWidth: bmp.width, naturalHeight: bmp.height };
  const geo = tileGeometry(full, cols, count);
  const rowsPerPage = PAGE / cols, firstRow = page * rowsPerPage;
  const shown = count - page * PAGE;
  return { blob: geo ? await cropRows(blob, geo, firstRow, Math.ceil(shown / cols)) : blob, count: shown };
}

export function initChannels() {
  const fmImg = $('fm-img'), fmBox = $('fm-box'), fmErr = $('fm-error'), fmEmpty = $('fm-empty'), fmNote = $('fm-note');
  const fltImg = $('flt-img'), fltBox = $('flt-box'), fltErr = $('flt-error'), fltEmpty = $('flt-empty'), fltNote = $('flt-note');
  const chanWrap = $('flt-channel-wrap'), chanIn = $('flt-channel'), rgbWrap = $('flt-rgb-wrap'), rgbIn = $('flt-rgb');
  const normSel = $('flt-norm'), fmLegend = $('fm-legend'), fltLegend = $('flt-legend');
  const fmNormSel = $('fm-norm'), fmOrderSel = $('fm-order'), fmView = $('fm-view');
  const lightbox = initLightbox();
  const fltSignal = latest();
  const fmPager = pager('fm', () => loadMaps()), fltPager = pager('flt', () => loadFilters());
  let layer = null, fmGeo = null, fltGeo = null;
  // What the shown maps were computed for, and the numbers behind them once known:
  // fmShown = {model, version, layer, input, order, data (activations answer) | null}.
  let fmShown = null;
  // The channel of the i-th map of the grid (0-based over all pages).
  const channelAt = (i) => (fmShown && fmShown.data && fmShown.data.order ? fmShown.data.order[i] : i);

  // The filter grid can be coloured when the layer reads the RGB picture itself.
  const rgbAble = (l) => !!(l && l.filters && l.filters.channels === 3 && inputShape().c === 3 &&
    (l.inputs || []).includes('input'));

  function clearMaps(text, input) {
    fmImg.removeAttribute('src');
    fmBox.classList.remove('has-image');
    fmBox.hidden = true;
    fmBox.dataset.input = input ? String(input.id) : '';
    fmEmpty.textContent = text;
    fmEmpty.hidden = false;
    fmNote.textContent = '';
    fmLegend.hidden = true;
    $('fm-pager').hidden = true;
    fmShown = null;
  }

  function onLayer(l) {
    layer = l;
    const f = l.filters;
    const s = l.output_shape || [];
    fmPager.reset(s.length === 4 ? s[3] : 0);
    fltPager.reset(f ? f.count : 0);
    const rgb = rgbAble(l);
    rgbWrap.hidden = !rgb;
    if (rgb) rgbIn.checked = true;
    chanWrap.hidden = !(f && f.channels > 1) || (rgb && rgbIn.checked);
    if (f) {
      chanIn.max = String(f.channels - 1);
      clampChannel();
    }
    $('flt-norm-wrap').hidden = !f;
    loadFilters();
    loadMaps();
  }

  // The box shows what is asked for: a channel past the last becomes the last.
  function clampChannel() {
    const f = layer && layer.filters;
    if (!f) return 0;
    let v = Math.round(Number(chanIn.value));
    if (!Number.isFinite(v) || v < 0) v = 0;
    if (v > f.channels - 1) v = f.channels - 1;
    if (chanIn.value !== String(v)) chanIn.value = String(v);
    return v;
  }

  const stillCurrent = (input) => input === state.input ||
    (input.fromPad && state.input && state.input.fromPad && !state.input.empty);

  const loadMaps = serial(async () => {
    const l = layer, input = state.input, model = state.model;
    if (!l || !input || !model) return;
    const s = l.output_shape || [];
    if (!l.spatial || s.length !== 4 || s[1] < 2 || s[2] < 2) {
      clearMaps(`${l.name} gives ${int(s[s.length - 1] || 0)} numbers, not maps: feature maps exist only before the flatten or pooling to 1×1. Its values are drawn as bars instead.`, input);
      // Its values as bars take this place (layerbars.js).
      fmView.hidden = true;
      showError(fmErr, null);
      return;
    }
    fmView.hidden = false;
    if (input.empty) { clearMaps('The canvas is empty: draw something to see the maps.', input); return; }
    fmBox.hidden = false;
    fmEmpty.hidden = true;
    const channels = s[3];
    fmPager.set(channels, fmPager.page);
    const page = fmPager.page;
    const upto = Math.min(channels, (page + 1) * PAGE);
    const onPage = upto - page * PAGE;
    // Sixteen columns keep 64 small maps to a readable height on a wide screen.
    const cols = onPage > 32 && fmBox.clientWidth >= 560 ? 16 : 8;
    const norm = fmNormSel.value, order = fmOrderSel.value, version = state.summary && state.summary.version;
    setBusy(fmBox, true);
    try {
      const query = { count: upto, cols };
      if (norm !== 'map') query.norm = norm;
      if (order !== 'index') query.order = order;
      // In another order the tiles are named from the activations answer's `order`.
      const [res, data] = await Promise.all([
        postImage(`v1/models/${encodeURIComponent(model.name)}/layers/${encodeURIComponent(l.name)}/feature-maps.png`, input, query),
        order !== 'index' ? activations(model, version, l.name, input, order) : null,
      ]);
      const lo = Number(res.headers.get('X-Scale-Min')), hi = Number(res.headers.get('X-Scale-Max'));
      const { blob, count } = await pageOf(res, cols, upto, page);
      if (l !== layer || model !== state.model || !stillCurrent(input)) return;
      await setImageBlob(fmImg, blob);
      if (l !== layer || model !== state.model || !stillCurrent(input)) return; /* moved on while it loaded */
      fmShown = { model, version, layer: l.name, input, order, data };
      fmGeo = tileGeometry(fmImg, cols, count);
      fmGeo && (fmGeo.first = page * PAGE);
      const first = page * PAGE, lastI = first + count - 1;
      const by = order === 'mean' ? 'mean activation' : 'strongest peak';
      fmImg.alt = order === 'index'
        ? `${count} feature maps of ${l.name} (channels ${first} to ${lastI}) for the current image`
        : `${count} feature maps of ${l.name} by ${by}, ranks ${first + 1} to ${lastI + 1}, for the current image`;
      fmNote.textContent = order === 'index'
        ? (channels <= PAGE ? `all ${channels} channels, ${s[1]}×${s[2]} each` : `channels ${first}–${lastI} of ${channels}, ${s[1]}×${s[2]} each`)
        : `${channels <= PAGE ? `all ${channels} channels` : `ranks ${first + 1}–${lastI + 1} of ${channels} channels`} by ${by}, strongest first, ${s[1]}×${s[2]} each`;
      fmBox.dataset.order = order;
      fmBox.dataset.norm = norm;
      if (norm === 'layer' && Number.isFinite(lo) && Number.isFinite(hi)) {
        legend(fmLegend, { gradient: GRAY, low: num(lo), high: num(hi), note: `One scale for every map of the layer: black is its lowest value for this image, white its highest, so a brighter map responds more strongly than a darker one.` });
        fmLegend.dataset.low = String(lo);
        fmLegend.dataset.high = String(hi);
      } else {
        legend(fmLegend, { gradient: GRAY, low: 'its min', high: 'its max', note: 'Each map is scaled to its own range, as imshow does: brightness compares places within one map, not one map with another.' });
        delete fmLegend.dataset.low;
        delete fmLegend.dataset.high;
      }
      fmPager.show();
      fmBox.classList.add('has-image');
      fmBox.dataset.input = String(input.id);
      showError(fmErr, null);
    } catch (e) {
      if (l !== layer || model !== state.model || !stillCurrent(input)) return;
      if (isImageError(e)) { clearMaps('No feature maps: the image could not be read (see the message by the input).', input); showError(fmErr, null); }
      else if (isNetworkError(e)) { clearMaps('No feature maps: no answer from the service.', input); showError(fmErr, null); }
      else showError(fmErr, e);
    } finally {
      setBusy(fmBox, false);
    }
  });

  async function loadFilters() {
    const l = layer;
    const f = l && l.filters;
    if (!f) {
      fltSignal();
      fltBox.hidden = true;
      fltNote.textContent = '';
      fltEmpty.textContent = 'Only convolution layers have filters. Pick a Conv block in the strip.';
      fltEmpty.hidden = false;
      fltLegend.hidden = true;
      $('flt-pager').hidden = true;
      showError(fltErr, null);
      return;
    }
    fltBox.hidden = false;
    fltEmpty.hidden = true;
    const model = state.model;
    fltPager.set(f.count, fltPager.page);
    const page = fltPager.page, cols = 8;
    const upto = Math.min(f.count, (page + 1) * PAGE);
    const channel = clampChannel();
    const rgb = rgbAble(l) && rgbIn.checked;
    const norm = rgb ? 'layer' : normSel.value;
    const signal = fltSignal();
    setBusy(fltBox, true);
    try {
      // The version in the query keeps the browser from reusing the picture of weights
      // that training has since replaced.
      const get = (ch) => request('GET', `v1/models/${encodeURIComponent(model.name)}/layers/${encodeURIComponent(l.name)}/filters.png`, {
        query: { count: upto, cols, channel: ch, norm, v: state.summary.version }, signal,
      });
      let blob, count;
      if (rgb) {
        const pages = await Promise.all([0, 1, 2].map(async (ch) => pageOf(await get(ch), cols, upto, page)));
        blob = await mergeRGB(pages.map((p) => p.blob));
        count = pages[0].count;
      } else ({ blob, count } = await pageOf(await get(channel), cols, upto, page));
      if (signal.aborted || l !== layer) return;
      await setImageBlob(fltImg, blob);
      if (signal.aborted || l !== layer) return; /* moved on while it loaded */
      fltGeo = tileGeometry(fltImg, cols, count);
      fltGeo && (fltGeo.first = page * PAGE);
      const which = f.count <= PAGE ? `all ${f.count} filters` : `filters ${page * PAGE}–${page * PAGE + count - 1} of ${f.count}`;
      fltImg.alt = `${count} filters of ${l.name}, ${rgb ? 'in colour' : `input channel ${channel}`}`;
      fltNote.textContent = `${which}, ${f.size}×${f.size}, ${rgb ? 'in colour (input channels as red, green, blue)' : `input channel ${channel}${f.channels > 1 ? ` of ${f.channels}` : ''}`}`;
      legend(fltLegend, rgb
        ? { gradient: 'linear-gradient(90deg, #000, #f00, #ff0, #fff)', low: 'negative', high: 'positive', note: 'Each colour channel is one input channel\'s weights, all on the layer\'s one scale: a red filter responds to red in the picture.' }
        : { gradient: GRAY, low: norm === 'filter' ? 'filter min' : 'layer min', high: norm === 'filter' ? 'filter max' : 'layer max', note: norm === 'filter' ? 'Each filter is scaled to its own range: shapes show, strengths do not compare.' : 'One scale for the whole layer (every filter, every channel): light weights add, dark ones subtract.' });
      fltPager.show();
      fltBox.classList.add('has-image');
      showError(fltErr, null);
    } catch (e) {
      if (signal.aborted) return;
      if (isNetworkError(e)) { fltImg.removeAttribute('src'); fltBox.classList.remove('has-image'); showError(fltErr, null); }
      else showError(fltErr, e);
    } finally {
      if (!signal.aborted) setBusy(fltBox, false);
    }
  }

  function enlarge(img, geo, kind, e) {
    if (!img.naturalWidth) return;
    const index = geo && e && e.clientX !== undefined && e.detail !== 0 ? tileAt(img, geo, e.clientX, e.clientY) : 0;
    const l = layer;
    const s = l.output_shape || [];
    lightbox.open({
      img, geo, index, first: geo ? geo.first || 0 : 0,
      total: kind === 'map' ? s[3] : l.filters ? l.filters.count : undefined,
      name: `${l.name} · ${kind === 'map' ? 'channel' : 'filter'}`,
      label: kind === 'map' ? channelAt : undefined,
      describe: (i) => (kind === 'filter'
        ? `Filter ${i} of ${l.name} (${rgbAble(l) && rgbIn.checked ? 'in colour' : `input channel ${chanIn.value}`}). Light weights add, dark ones subtract.`
        : `Channel ${channelAt(i)} of ${l.name} (${shapeText(s.slice(1, 3))}): where in the image this channel responds.${statsText(channelAt(i))} Use ← and → to step through.`),
    });
  }

  // A channel's numbers for the current image, once the activations answer is here.
  function statsText(ch) {
    const d = fmShown && fmShown.data;
    if (!d || !d.channels) return '';
    return ` Mean ${num(d.channels.mean[ch])}, max ${num(d.channels.max[ch])}, min ${num(d.channels.min[ch])}.`;
  }

  // The numbers behind the shown maps, asked for once, when the pointer first comes.
  async function ensureStats() {
    const shown = fmShown;
    if (!shown || shown.data || shown.asked) return;
    shown.asked = true;
    try {
      const data = await activations(shown.model, shown.version, shown.layer, shown.input, shown.order);
      if (fmShown === shown) shown.data = data;
    } catch { /* the names alone still help */ }
  }

  // The tile under the pointer is named, so a map can be found again in the lightbox; a
  // map also says its channel's mean and maximum.
  function hover(img, geoOf, out, name) {
    img.addEventListener('pointermove', (e) => {
      const geo = geoOf();
      if (!geo) return;
      const i = (geo.first || 0) + tileAt(img, geo, e.clientX, e.clientY);
      out.textContent = name(i);
      out.dataset.index = String(i);
    });
    img.addEventListener('pointerleave', () => { out.textContent = ''; delete out.dataset.index; });
  }
  hover(fmImg, () => fmGeo, $('fm-hover'), (i) => {
    const ch = channelAt(i), d = fmShown && fmShown.data;
    if (!d) ensureStats().then(() => {
      const out = $('fm-hover');
      if (out.dataset.index === String(i) && fmShown && fmShown.data) out.textContent = `channel ${ch} · mean ${num(fmShown.data.channels.mean[ch])} · max ${num(fmShown.data.channels.max[ch])}`;
    });
    return d ? `channel ${ch} · mean ${num(d.channels.mean[ch])} · max ${num(d.channels.max[ch])}` : `channel ${ch}`;
  });
  hover(fltImg, () => fltGeo, $('flt-hover'), (i) => `filter ${i}`);

  fmImg.addEventListener('click', (e) => enlarge(fmImg, fmGeo, 'map', e));
  fltImg.addEventListener('click', (e) => enlarge(fltImg, fltGeo, 'filter', e));
  for (const [img, kind] of [[fmImg, 'map'], [fltImg, 'filter']]) {
    img.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); enlarge(img, kind === 'map' ? fmGeo : fltGeo, kind, null); }
    });
  }
  chanIn.addEventListener('change', () => { clampChannel(); loadFilters(); });
  chanIn.addEventListener('blur', clampChannel);
  rgbIn.addEventListener('change', () => { chanWrap.hidden = rgbIn.checked || !(layer && layer.filters && layer.filters.channels > 1); loadFilters(); });
  normSel.addEventListener('change', loadFilters);
  fmNormSel.addEventListener('change', () => loadMaps());
  fmOrderSel.addEventListener('change', () => loadMaps());

  on('layer', onLayer);
  on('input', loadMaps);
  on('stroke', loadMaps);
  on('input-empty', (input) => { if (layer) clearMaps('The canvas is empty: draw something to see the maps.', input); });
  on('input-rejected', (input) => { if (input === state.input) clearMaps('No feature maps: the image could not be read (see the message by the input).', input); });
}

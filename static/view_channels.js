// view_channels.js - the Channel view (as OpenAI Microscope): for a layer, each channel's
// feature visualisation (the input that excites it most, found by gradient ascent), in a
// grid; click one for the test images that excite it most, each with the patch behind
// its strongest value outlined. From POST/GET v1/models/{m}/layers/{layer}/atlas.

import { el, showError } from './ui.js';
import { runJob, progressBar, sampleSrc } from './insight.js';

const THUMB = 84;

export function initChannelsView(pane, { analyse }) {
  let model = null, atlas = null, ctl = null, inputSize = 28;
  const layer = el('select', { id: 'ins-ch-layer', 'aria-label': 'Layer' });
  const count = el('select', { id: 'ins-ch-count', 'aria-label': 'Channels' },
    ...[8, 16, 32, 64].map((n) => el('option', { value: String(n), text: `first ${n} channels`, selected: n === 16 })));
  const go = el('button', { type: 'button', class: 'btn btn--primary', id: 'ins-ch-go', text: 'Draw the channels' });
  const bar = progressBar();
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const info = el('p', { class: 'small muted', id: 'ins-ch-info', 'aria-live': 'polite' });
  const grid = el('ol', { class: 'ins-ch__grid', id: 'ins-ch-grid', 'aria-label': 'Feature visualisations' });
  const detail = el('div', { class: 'ins-ch__detail', id: 'ins-ch-detail', hidden: true });
  pane.append(el('div', { class: 'ins-controls' }, layer, count, go, bar.box), err, info, grid, detail);

  async function make() {
    if (!model || !layer.value) return;
    if (ctl) ctl.abort();
    ctl = new AbortController();
    showError(err, null);
    go.disabled = true;
    const total = Number(layer.selectedOptions[0].dataset.channels || 0);
    try {
      atlas = await runJob(`v1/models/${model.name}/layers/${encodeURIComponent(layer.value)}/atlas`,
        { channels: Math.min(Number(count.value), total || Number(count.value)) }, {
          signal: ctl.signal, progress: (p, j) => bar.set(p, j.state === 'queued' ? 'queued' : `${Math.round(p * 100)} %`),
        });
      render();
    } catch (e) {
      showError(err, e);
    } finally {
      go.disabled = false;
      bar.hide();
    }
  }

  function render() {
    info.textContent = `${atlas.layer}: ${atlas.channels.length} of ${atlas.channels_total} channels, version ${atlas.version}` +
      (atlas.top_unavailable ? `. No test images for this model: ${atlas.top_unavailable}.` : `, over ${atlas.images.toLocaleString()} test images.`);
    grid.replaceChildren(...atlas.channels.map((c) => el('li', {},
      el('button', { type: 'button', class: 'ins-ch__tile', dataset: { channel: String(c.channel) }, 'aria-label': `Channel ${c.channel}`, onclick: () => show(c) },
        el('img', { src: `${c.image.replace(/^\//, '')}&scale=${Math.max(1, Math.round(THUMB / inputSize))}`, alt: `feature visualisation of channel ${c.channel}`, width: String(THUMB), height: String(THUMB) }),
        el('span', { class: 'small', text: `#${c.channel}` })))));
    detail.hidden = true;
  }

  function show(c) {
    grid.querySelectorAll('.ins-ch__tile').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.channel === String(c.channel))));
    const items = (c.top || []).map((h) => {
      const s = THUMB / inputSize, [y0, x0, y1, x1] = h.patch;
      const frame = el('span', { class: 'ins-patch' });
      Object.assign(frame.style, { left: `${x0 * s}px`, top: `${y0 * s}px`, width: `${(x1 - x0) * s}px`, height: `${(y1 - y0) * s}px` });
      return el('li', { class: 'ins-ch__hit', dataset: { index: String(h.index) } },
        el('span', { class: 'ins-ch__pic' }, el('img', { src: sampleSrc(h.index, 3), alt: `test image ${h.index}`, width: String(THUMB), height: String(THUMB) }), frame),
        el('span', { class: 'small', text: `#${h.index} · ${h.value.toFixed(2)}` }),
        el('button', { type: 'button', class: 'btn btn--link small', text: 'Analyse', onclick: () => analyse(h.index) }));
    });
    detail.replaceChildren(
      el('h3', { text: `Channel ${c.channel}` }),
      el('div', { class: 'ins-ch__pair' },
        el('figure', {}, el('img', { src: `${c.image.replace(/^\//, '')}&scale=${Math.max(1, Math.round(160 / inputSize))}`, alt: `feature visualisation of channel ${c.channel}`, width: '160', height: '160' }),
          el('figcaption', { class: 'small muted', text: `Its mean on this input: ${c.excitation.toFixed(3)}` })),
        items.length ? el('div', {}, el('p', { class: 'small muted', text: 'The test images that excite it most; the outline is the input behind its strongest value.' }), el('ol', { class: 'ins-ch__hits' }, ...items))
          : el('p', { class: 'small muted', text: 'No test images for this model.' })));
    detail.hidden = false;
  }

  go.addEventListener('click', make);
  return {
    model(m, summary) {
      model = m;
      atlas = null;
      grid.replaceChildren();
      detail.hidden = true;
      info.textContent = '';
      inputSize = m && m.input_shape ? m.input_shape[0] : 28;
      const layers = summary ? summary.layers.filter((l) => l.spatial) : [];
      layer.replaceChildren(...layers.map((l) => el('option', { value: l.name, text: `${l.name} (${l.output_shape[3]} channels)`, dataset: { channels: String(l.output_shape[3]) } })));
      const grad = summary && summary.gradcam_layer;
      if (grad) layer.value = grad;
    },
  };
}

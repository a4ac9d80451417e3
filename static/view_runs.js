// view_runs.js - the Runs view: the model's kept versions (GET v1/models/{m}/versions),
// each run's parameters and accuracy, their curves overlaid, serving a kept version
// again after a confirmation (POST .../versions/{v}/serve, with the token when the
// service wants one), and two versions compared on the test set.

import { getJSON, request, setToken } from './api.js';
import { el, showError, pct } from './ui.js';
import { sampleSrc, className } from './insight.js';

const SVG = 'http://www.w3.org/2000/svg';
const LINE = ['#3f5bd8', '#e8590c', '#1f9d6b', '#c2255c', '#9c36b5', '#e67700', '#495057'];

// Curves of `key` per epoch for each run, overlaid.
function curves(runs, key, title) {
  const W = 320, H = 190, P = { l: 44, r: 10, t: 10, b: 30 };
  const s = document.createElementNS(SVG, 'svg');
  s.setAttribute('viewBox', `0 0 ${W} ${H}`);
  s.setAttribute('class', 'ins-curves');
  s.setAttribute('role', 'img');
  s.setAttribute('aria-label', `${title} per epoch of each version`);
  const pts = runs.flatMap((r) => (r.history || []).filter((h) => Number.isFinite(h[key])).map((h) => [h.epoch, h[key]]));
  if (!pts.length) return s;
  const xm = Math.max(1, ...pts.map((p) => p[0])), lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
  const pad = (hi - lo) * 0.1 || 0.05;
  const X = (x) => P.l + ((x - (xm > 1 ? 1 : 0)) / Math.max(1, xm - 1)) * (W - P.l - P.r);
  const Y = (y) => P.t + (1 - (y - (lo - pad)) / (hi - lo + 2 * pad)) * (H - P.t - P.b);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    s.append(n);
    return n;
  };
  for (const v of [lo, (lo + hi) / 2, hi]) add('text', { x: P.l - 4, y: Y(v) + 4, 'text-anchor': 'end', class: 'ins-axis' }, key.includes('acc') ? pct(v) : v.toFixed(3));
  add('text', { x: (P.l + W - P.r) / 2, y: H - 6, 'text-anchor': 'middle', class: 'ins-axis' }, `epoch (1–${xm}) · ${title}`);
  runs.forEach((r, i) => {
    const h = (r.history || []).filter((e) => Number.isFinite(e[key]));
    if (!h.length) return;
    const colour = LINE[i % LINE.length];
    add('polyline', { points: h.map((e) => `${X(e.epoch)},${Y(e[key])}`).join(' '), fill: 'none', stroke: colour, 'stroke-width': '2', class: 'ins-curve', 'data-version': String(r.version) });
    for (const e of h) add('circle', { cx: X(e.epoch), cy: Y(e[key]), r: '2.5', fill: colour });
  });
  return s;
}

export function initRunsView(pane, { onNewVersion }) {
  let model = null, list = null;
  const err = el('p', { class: 'error', role: 'alert', hidden: true });
  const info = el('p', { class: 'small muted', id: 'ins-runs-info', 'aria-live': 'polite' });
  const table = el('div', { id: 'ins-runs-table' });
  const charts = el('div', { class: 'ins-runs__charts', id: 'ins-runs-charts' });
  const a = el('select', { id: 'ins-cmp-a', 'aria-label': 'Version A' }), b = el('select', { id: 'ins-cmp-b', 'aria-label': 'Version B' });
  const cmpGo = el('button', { type: 'button', class: 'btn', id: 'ins-cmp-go', text: 'Compare on the test set' });
  const cmpOut = el('div', { id: 'ins-cmp-out' });
  const dlg = el('dialog', { class: 'ins-dialog', id: 'ins-serve-dialog' });
  const snaps = el('div', { class: 'ins-snaps', id: 'ins-snaps', hidden: true });
  let snapTimer = 0;
  const reload = el('button', { type: 'button', class: 'btn btn--ghost', text: 'Reload', onclick: () => load() });
  pane.append(el('div', { class: 'ins-controls' }, reload), err, info, table, charts, snaps,
    el('h3', { text: 'Compare two versions' }), el('div', { class: 'ins-controls' }, a, el('span', { text: 'with' }), b, cmpGo), cmpOut, dlg);

  async function load() {
    if (!model) return;
    showError(err, null);
    try {
      list = await getJSON(`v1/models/${model.name}/versions`);
    } catch (e) {
      list = null;
      table.replaceChildren();
      charts.replaceChildren();
      if (e.code === 'no_versions') info.textContent = `${model.name} keeps no versions: only a model this service trains does.`;
      else showError(err, e);
      return;
    }
    const runs = list.versions;
    info.textContent = `${runs.length} kept version${runs.length === 1 ? '' : 's'} (the last ${list.keep} are kept); version ${list.served} is served.`;
    const rows = runs.map((r, i) => {
      const p = r.params || r.training || {};
      const what = r.source === 'training job'
        ? `${p.epochs} epoch${p.epochs === 1 ? '' : 's'}, batch ${p.batch_size}, lr ${p.learning_rate}, seed ${p.seed}${p.train_limit ? `, ${p.train_limit.toLocaleString()} training images` : ''}${p.from === 'current' ? `, from version ${r.from_version}` : ''}`
        : 'read from a model file';
      const acc = r.test_accuracy === null || r.test_accuracy === undefined ? '—'
        : `${pct(r.test_accuracy)}${r.test_images ? (r.test_subset ? ` on ${r.test_images.toLocaleString()} images (a subset)` : '') : ' (images not recorded)'}`;
      return el('tr', { dataset: { version: String(r.version) }, class: r.served ? 'is-served' : '' },
        el('th', { scope: 'row' }, el('span', { class: 'ins-swatch', style: `background:${LINE[i % LINE.length]}` }), ` ${r.version}`),
        el('td', { text: r.served ? 'served' : '' }),
        el('td', { text: acc }),
        el('td', { class: 'small', text: what }),
        el('td', { class: 'small muted', text: (r.kept_at || r.trained_at || '').replace('T', ' ').replace('Z', ' UTC') }),
        el('td', {}, r.served ? '' : el('button', { type: 'button', class: 'btn btn--ghost', text: `Serve ${r.version}`, dataset: { serve: String(r.version) }, onclick: () => confirmServe(r) })));
    });
    table.replaceChildren(el('table', { class: 'ins-table' },
      el('thead', {}, el('tr', {}, ...['version', '', 'test accuracy', 'run', 'kept', ''].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...rows)));
    charts.replaceChildren(curves(runs, 'test_accuracy', 'test accuracy'), curves(runs, 'loss', 'training loss'));
    loadSnapshots();
    const opts = (sel, pick) => sel.replaceChildren(...runs.map((r) => el('option', { value: String(r.version), text: `version ${r.version}`, selected: r.version === pick })));
    opts(a, runs[1] ? runs[1].version : runs[0] && runs[0].version);
    opts(b, runs[0] && runs[0].version);
  }

  // The filters of the newest job that kept them, epoch by epoch; followed while it runs.
  async function loadSnapshots() {
    clearTimeout(snapTimer);
    if (!model || pane.hidden) return;
    let jobs;
    try { jobs = (await getJSON('v1/jobs')).jobs; } catch { return; }
    const job = jobs.find((j) => j.model === model.name && j.snapshots);
    if (!job) { snaps.hidden = true; return; }
    let s;
    try { s = await getJSON(job.snapshots); } catch { snaps.hidden = true; return; }
    snaps.replaceChildren(
      el('h3', { text: `How the filters of ${s.layer} took shape in job ${s.job}${job.state === 'running' ? ' (training)' : ''}` }),
      el('ol', { class: 'ins-snaps__list' }, ...s.epochs.map((e) => el('li', { dataset: { epoch: String(e.epoch) } },
        el('img', { src: `${e.filters.replace(/^\//, '')}?count=${Math.min(15, s.filters.count)}&cols=5&scale=10`, alt: `filters after epoch ${e.epoch}` }),
        el('span', { class: 'small', text: `epoch ${e.epoch}${e.test_accuracy !== null ? ` · test ${pct(e.test_accuracy)}` : ''}` })))));
    snaps.hidden = false;
    if (job.state === 'running' || job.state === 'queued') snapTimer = setTimeout(loadSnapshots, 2000);
  }

  function confirmServe(r) {
    const token = el('input', { type: 'password', id: 'ins-serve-token', autocomplete: 'off', 'aria-label': 'Access token' });
    const tokenRow = el('label', { class: 'field', hidden: true }, el('span', { text: 'The service wants its access token' }), token);
    const say = el('p', { class: 'error', role: 'alert', hidden: true });
    const yes = el('button', { type: 'button', class: 'btn btn--danger', id: 'ins-serve-yes', text: `Serve version ${r.version}` });
    const no = el('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: () => dlg.close() });
    dlg.replaceChildren(
      el('h3', { text: `Serve version ${r.version}?` }),
      el('p', { text: `Every user of the service gets version ${r.version}'s answers from now on, instead of version ${list.served}'s. Version ${list.served} stays kept: you can serve it again here.` }),
      tokenRow, say, el('div', { class: 'ins-controls' }, yes, no));
    yes.addEventListener('click', async () => {
      if (!tokenRow.hidden && token.value.trim()) setToken(token.value.trim());
      yes.disabled = true;
      try {
        await request('POST', `v1/models/${model.name}/versions/${r.version}/serve`);
        dlg.close();
        await onNewVersion();
        await load();
      } catch (e) {
        if (e.status === 401) {
          tokenRow.hidden = false;
          if (e.sentToken) setToken('');
          token.focus();
        }
        showError(say, e);
      } finally {
        yes.disabled = false;
      }
    });
    dlg.showModal();
  }

  cmpGo.addEventListener('click', async () => {
    showError(err, null);
    cmpGo.disabled = true;
    cmpOut.replaceChildren(el('p', { class: 'small muted', text: 'Evaluating both versions on the test set…' }));
    try {
      const c = await getJSON(`v1/models/${model.name}/versions/compare`, { a: a.value, b: b.value });
      const sign = (v) => `${v > 0 ? '+' : v < 0 ? '−' : '±'}${Math.abs(v * 100).toFixed(1)}`;
      cmpOut.replaceChildren(
        el('p', { id: 'ins-cmp-summary', text: `Version ${c.a.version}: ${pct(c.a.accuracy)}; version ${c.b.version}: ${pct(c.b.accuracy)} (${sign(c.accuracy_delta)} points). ${c.changed_count.toLocaleString()} of ${c.images.toLocaleString()} predictions changed: ${c.fixed.toLocaleString()} now right, ${c.broken.toLocaleString()} now wrong.` }),
        el('table', { class: 'ins-table' },
          el('thead', {}, el('tr', {}, ...['class', `F1 v${c.a.version}`, `F1 v${c.b.version}`, 'Δ F1', 'Δ recall', 'Δ precision'].map((h) => el('th', { scope: 'col', text: h })))),
          el('tbody', {}, ...c.per_class.map((k) => el('tr', {},
            el('th', { scope: 'row', text: k.label }), el('td', { text: pct(k.a.f1) }), el('td', { text: pct(k.b.f1) }),
            el('td', { class: k.delta.f1 < 0 ? 'is-worse' : 'is-better', text: sign(k.delta.f1) }),
            el('td', { text: sign(k.delta.recall) }), el('td', { text: sign(k.delta.precision) }))))),
        el('ol', { class: 'ins-cell__list' }, ...c.changed.slice(0, 24).map((x) => el('li', { class: 'ins-cell__item' },
          el('img', { class: 'ins-thumb', src: sampleSrc(x.index, 2), alt: `test image ${x.index}`, width: '56', height: '56' }),
          el('span', { class: 'small', text: `#${x.index} ${className(x.label)}: ${className(x.a)} → ${className(x.b)}` })))));
    } catch (e) {
      cmpOut.replaceChildren();
      showError(err, e);
    } finally {
      cmpGo.disabled = false;
    }
  });

  // Read when the view is open, and only for a model that keeps versions (one this
  // service trains): other models have none to ask for.
  const open = () => !pane.hidden;
  return {
    model(m) {
      model = m && m.trainable ? m : null;
      list = null;
      cmpOut.replaceChildren();
      table.replaceChildren();
      charts.replaceChildren();
      info.textContent = m && !m.trainable ? `${m.name} keeps no versions: only a model this service trains does.` : '';
      if (open()) load();
    },
    shown: () => load(),
  };
}

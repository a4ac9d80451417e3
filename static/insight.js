// insight.js - "The whole picture": four views of a model over all of its data, each a
// module of its own (view_dataset.js, view_projector.js, view_channels.js,
// view_runs.js), under one set of tabs. Long work (an evaluation, a projection, an
// atlas) runs as a job of the service; runJob follows it and shows its progress.

import { getJSON, request, ApiError } from './api.js';
import { el, $ } from './ui.js';
import { on, state } from './store.js';
import { initDatasetView } from './view_dataset.js';
import { initProjectorView } from './view_projector.js';
import { initChannelsView } from './view_channels.js';
import { initRunsView } from './view_runs.js';

const POLL_MS = 400;

// POSTs path with query; a 200 is the result itself (made before), a 202 a job that is
// followed until it ends (progress(p, job) along the way), then its result's url is read.
// signal aborts the following (the job goes on: DELETE cancels it).
export async function runJob(path, query, { progress = () => {}, signal } = {}) {
  const res = await request('POST', path, { query, signal });
  const body = await res.json();
  if (res.status === 200) return body;
  const id = body.id;
  let job = body;
  for (;;) {
    progress(job.progress || 0, job);
    if (!['queued', 'running'].includes(job.state)) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (signal && signal.aborted) throw new DOMException('aborted', 'AbortError');
    job = await getJSON(`v1/jobs/${id}`);
  }
  if (job.state !== 'succeeded') {
    throw new ApiError(0, `job_${job.state}`, job.error ? `The job ${job.state}: ${job.error}` : `The job was ${job.state}`);
  }
  progress(1, job);
  return getJSON(job.result.url);
}

// A progress bar with its label, for a view's job.
export function progressBar() {
  const bar = el('progress', { max: '1', value: '0', class: 'ins-progress' });
  const label = el('span', { class: 'small muted ins-progress__label' });
  const box = el('div', { class: 'ins-progress__box', hidden: true }, bar, label);
  return {
    box,
    set(p, text) { box.hidden = false; bar.value = p; label.textContent = text || `${Math.round(p * 100)} %`; },
    hide() { box.hidden = true; },
  };
}

// A test image's picture, as the dataset route draws it.
export function sampleSrc(index, scale = 3, split = 'test') {
  return `v1/datasets/fashion-mnist/${split}/${index}.png?scale=${scale}`;
}

export function className(i) {
  const names = (state.summary && state.summary.classes) || (state.dataset && state.dataset.classes) || [];
  return names[i] !== undefined ? names[i] : String(i);
}

export function initInsight({ analyse, onNewVersion }) {
  const root = $('whole');
  const views = [
    { id: 'dataset', name: 'Dataset', init: initDatasetView },
    { id: 'projector', name: 'Projector', init: initProjectorView },
    { id: 'channels', name: 'Channels', init: initChannelsView },
    { id: 'runs', name: 'Runs', init: initRunsView },
  ];
  const tabs = el('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Views of the whole model' });
  root.append(
    el('header', { class: 'card__head' },
      el('h2', { id: 'whole-h', text: 'The whole picture' }),
      el('span', { class: 'card__sub', text: 'the test set, the inside of the network, the model\'s versions' })),
    tabs);
  const made = views.map((v, i) => {
    const pane = el('div', { class: 'pane ins-pane', role: 'tabpanel', id: `ins-pane-${v.id}`, 'aria-labelledby': `ins-tab-${v.id}`, hidden: i > 0 });
    const tab = el('button', { role: 'tab', id: `ins-tab-${v.id}`, 'aria-controls': pane.id, 'aria-selected': String(i === 0), tabindex: i ? '-1' : '0', text: v.name });
    tabs.append(tab);
    root.append(pane);
    return { ...v, tab, pane, view: v.init(pane, { analyse, onNewVersion }) };
  });
  const select = (k) => {
    made.forEach((m, i) => {
      m.tab.setAttribute('aria-selected', String(i === k));
      m.tab.tabIndex = i === k ? 0 : -1;
      m.pane.hidden = i !== k;
    });
    made[k].tab.focus();
    if (made[k].view && made[k].view.shown) made[k].view.shown();
  };
  made.forEach((m, i) => {
    m.tab.addEventListener('click', () => select(i));
    m.tab.addEventListener('keydown', (e) => {
      const k = e.key === 'ArrowRight' ? (i + 1) % made.length : e.key === 'ArrowLeft' ? (i + made.length - 1) % made.length : -1;
      if (k >= 0) { e.preventDefault(); select(k); }
    });
  });
  on('model', () => made.forEach((m) => m.view && m.view.model && m.view.model(state.model, state.summary)));
}

// train.js - the training panel: the notebook's hyper-parameters, start and cancel, a
// live progress bar with epoch, batch and time left (polling GET /v1/jobs/{id}), and the
// loss and accuracy charts. When a job succeeds the service already serves the new
// version; the page reloads the model and says so. A job started elsewhere (another
// tab, curl) is picked up on load, so the panel always tells the truth about the server.

import { getJSON, sendJSON, getToken, setToken } from './api.js';
import { state, on } from './store.js';
import { $, showError, pct, duration } from './ui.js';
import { drawChart } from './charts.js';

const POLL_MS = 500;
const ACTIVE = new Set(['queued', 'running']);

export function initTrain({ onNewVersion }) {
  const form = $('train-form'), startBtn = $('train-start'), cancelBtn = $('train-cancel');
  const errBox = $('train-error'), notice = $('train-notice');
  const stateEl = $('train-state'), pctEl = $('train-percent'), bar = $('train-bar'), fill = $('train-fill'), text = $('train-text');
  const lossSvg = $('chart-loss'), accSvg = $('chart-acc');
  lossSvg.dataset.title = 'Loss';
  accSvg.dataset.title = 'Accuracy';
  let job = null, timer = 0, retry = null;
  // Running loss and accuracy sampled at every poll, so the curves grow inside an epoch
  // too (a one-epoch run would otherwise be a single point).
  let trace = [];

  // --- token (only asked for when the server answers 401) ---
  const tokenBox = $('token-box'), tokenIn = $('token-input'), tokenState = $('token-state');
  function showTokenState() { tokenState.hidden = !getToken(); }
  function askToken(action) {
    retry = action;
    tokenBox.hidden = false;
    tokenIn.focus();
  }
  $('token-save').addEventListener('click', () => {
    const t = tokenIn.value.trim();
    if (!t) { tokenIn.focus(); return; }
    setToken(t);
    tokenIn.value = '';
    tokenBox.hidden = true;
    showTokenState();
    const again = retry;
    retry = null;
    if (again) again();
  });
  tokenIn.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); $('token-save').click(); } });
  $('token-forget').addEventListener('click', () => { setToken(''); showTokenState(); });
  showTokenState();

  // --- form ---
  $('train-quick').addEventListener('click', () => {
    form.epochs.value = 1;
    form.train_limit.value = 2000;
    form.test_limit.value = 1000;
    form.epochs.focus();
  });

  function params() {
    const num = (n) => Number(form[n].value);
    return {
      epochs: num('epochs'), batch_size: num('batch_size'), learning_rate: num('learning_rate'),
      seed: num('seed'), train_limit: num('train_limit'), test_limit: num('test_limit'), from: form.from.value,
    };
  }

  async function start() {
    showError(errBox, null);
    notice.hidden = true;
    if (!form.checkValidity()) {
      const bad = form.querySelector(':invalid');
      showError(errBox, { message: `${bad.closest('label').querySelector('span').firstChild.textContent.trim()}: ${bad.validationMessage}` });
      bad.focus();
      return;
    }
    startBtn.disabled = true;
    try {
      const { data } = await sendJSON('POST', 'v1/models/fmnist/train', params());
      follow(data);
    } catch (e) {
      startBtn.disabled = false;
      if (e.status === 401) { showError(errBox, e); askToken(start); return; }
      if (e.code === 'job_running') {
        showError(errBox, { message: `${e.message}. Showing that job instead.` });
        attachRunning();
        return;
      }
      showError(errBox, e);
    }
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); start(); });

  async function cancel() {
    if (!job) return;
    cancelBtn.disabled = true;
    try {
      const { data } = await sendJSON('DELETE', `v1/jobs/${encodeURIComponent(job.id)}`);
      if (data) render(data);
    } catch (e) {
      if (e.status === 401) { showError(errBox, e); askToken(cancel); } else showError(errBox, e);
    } finally {
      cancelBtn.disabled = false;
    }
  }
  cancelBtn.addEventListener('click', cancel);

  // --- following a job ---
  function follow(j) {
    if (!job || job.id !== j.id) trace = [];
    job = j;
    render(j);
    clearTimeout(timer);
    if (ACTIVE.has(j.state)) timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    if (!job) return;
    try {
      const j = await getJSON(`v1/jobs/${encodeURIComponent(job.id)}`);
      const was = job.state;
      job = j;
      render(j);
      if (ACTIVE.has(j.state)) timer = setTimeout(poll, POLL_MS);
      else finished(j, was);
    } catch (e) {
      showError(errBox, e);
      timer = setTimeout(poll, POLL_MS * 4);
    }
  }

  async function finished(j) {
    startBtn.disabled = false;
    cancelBtn.hidden = true;
    if (j.state === 'succeeded') {
      const acc = j.result && j.result.test_accuracy != null ? ` — test accuracy ${pct(j.result.test_accuracy)}` : '';
      notice.className = 'notice notice--ok';
      notice.textContent = `Training finished. The page now uses fmnist version ${j.result ? j.result.version : '?'}${acc}.`;
      notice.hidden = false;
      await onNewVersion();
    } else if (j.state === 'cancelled') {
      notice.className = 'notice';
      notice.textContent = 'Training cancelled. The served model is unchanged.';
      notice.hidden = false;
    } else if (j.state === 'failed') {
      showError(errBox, { message: `Training failed: ${j.error || 'no reason given'}` });
    }
  }

  function render(j) {
    const running = ACTIVE.has(j.state);
    startBtn.disabled = running;
    cancelBtn.hidden = !running;
    stateEl.textContent = j.state;
    stateEl.className = `state state--${j.state}`;
    const p = Math.max(0, Math.min(1, j.progress || 0));
    const shown = Math.round(p * 100);
    fill.style.width = `${p * 100}%`;
    bar.setAttribute('aria-valuenow', String(shown));
    bar.setAttribute('aria-valuetext', `${shown} %`);
    pctEl.textContent = `${shown} %`;
    const parts = [];
    if (j.state === 'queued') parts.push('Waiting to start…');
    if (j.epochs) parts.push(`Epoch ${j.epoch || 0} of ${j.epochs}`);
    if (j.batches) parts.push(`batch ${j.batch} of ${j.batches}`);
    parts.push(`${duration(j.elapsed_s)} elapsed`);
    if (j.state === 'running') {
      if (p >= 1) parts.push('measuring test accuracy…');
      else parts.push(j.eta_s != null ? `about ${duration(j.eta_s)} left` : 'estimating time left…');
    }
    if (j.state === 'running' && j.loss != null) parts.push(`running loss ${j.loss.toFixed(3)}, accuracy ${pct(j.accuracy)}`);
    text.textContent = parts.join(' · ');
    if (running && j.batches && j.loss != null && j.epoch > 0) {
      const x = (j.epoch - 1) + j.batch / j.batches;
      if (!trace.length || x > trace[trace.length - 1].x) trace.push({ x, loss: j.loss, accuracy: j.accuracy });
    }
    charts(j.history || [], j.epochs, trace, running);
  }

  function charts(history, epochs, samples = [], running = false) {
    const pts = (k) => history.filter((h) => h[k] != null).map((h) => ({ x: h.epoch, y: h[k] }));
    const tr = (k) => samples.filter((p) => p[k] != null).map((p) => ({ x: p.x, y: p[k] }));
    const last = running && samples.length ? samples[samples.length - 1] : null;
    const xMax = Math.max(epochs || 0, history.length, 1);
    drawChart(lossSvg, {
      series: [{ name: 'training loss', cls: 's1', points: pts('loss'), trace: tr('loss'), live: last ? { x: last.x, y: last.loss } : null }],
      xMax, format: (v) => v.toFixed(2), empty: 'Start training to see the loss fall',
    });
    drawChart(accSvg, {
      series: [
        { name: 'training', cls: 's1', points: pts('accuracy'), trace: tr('accuracy'), live: last && last.accuracy != null ? { x: last.x, y: last.accuracy } : null },
        { name: 'test', cls: 's2', points: pts('test_accuracy') },
      ],
      xMax, yMin: 0, yMax: 1, format: (v) => `${Math.round(v * 100)} %`, empty: 'Start training to see the accuracy rise',
    });
  }

  // With no job to follow, the charts show how the served model itself was trained.
  function idle() {
    if (job && ACTIVE.has(job.state)) return;
    if (job) { render(job); return; }
    const s = state.summary;
    const hist = (s && state.model && state.model.name === 'fmnist' && s.history) || [];
    charts(hist, hist.length);
    text.textContent = hist.length
      ? `No training running. The charts show how version ${s.version} was trained (${hist.length} epoch${hist.length > 1 ? 's' : ''}).`
      : 'No training running.';
  }

  async function attachRunning() {
    try {
      const { jobs } = await getJSON('v1/jobs');
      const j = (jobs || []).find((x) => x.model === 'fmnist' && ACTIVE.has(x.state));
      if (j) follow(j);
    } catch { /* the list is a convenience; the panel works without it */ }
  }

  on('model', idle);
  new ResizeObserver(() => { if (job) render(job); else idle(); }).observe(lossSvg);
  attachRunning();
  return { follow };
}

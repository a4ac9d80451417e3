// train.js - the training panel: the notebook's hyper-parameters, start and cancel, a
// live progress bar with epoch, batch and time left (polling GET /v1/jobs/{id}), and the
// loss and accuracy charts. When a job succeeds the service already serves the new
// version; the page reloads the model and says so. A job started elsewhere (another
// tab, curl) is picked up on load, so the panel always tells the truth about the server.
//
// The panel trains the chosen model when the service can train it on Fashion-MNIST (the
// notebook's network, or a model of the models folder that takes 28x28 gray images and
// ends in a softmax over ten classes or more), and the notebook's network otherwise.
//
// A finished job replaces the served model for everyone, with no way back from the page,
// so starting one asks first and names what will be replaced. A test accuracy measured on
// a subset (test_limit) is labelled as such wherever it is shown.

import { getJSON, sendJSON, getToken, setToken } from './api.js';
import { state, on } from './store.js';
import { $, el, showError, pct, int, duration } from './ui.js';
import { drawChart, stepsFromRunning } from './charts.js';
import { testSetSize } from './modelinfo.js';

const POLL_MS = 500;
const ACTIVE = new Set(['queued', 'running']);
const NOTEBOOK = 'fmnist';

// The model a job started now would train.
function trained() {
  const m = state.model;
  return m && m.name !== NOTEBOOK && m.trainable && m.status !== 'unavailable' ? m.name : NOTEBOOK;
}

export function initTrain({ onNewVersion }) {
  const form = $('train-form'), startBtn = $('train-start'), cancelBtn = $('train-cancel');
  const errBox = $('train-error'), notice = $('train-notice');
  const stateEl = $('train-state'), pctEl = $('train-percent'), bar = $('train-bar'), fill = $('train-fill'), text = $('train-text');
  const lossSvg = $('chart-loss'), accSvg = $('chart-acc'), smoothIn = $('chart-smooth'), smoothOut = $('chart-smooth-out');
  const lossNote = $('chart-loss-note');
  lossSvg.dataset.title = 'Loss';
  accSvg.dataset.title = 'Accuracy';
  let job = null, timer = 0, retry = null;
  // Running loss and accuracy sampled at every poll, so the curves grow inside an epoch
  // too (a one-epoch run would otherwise be a single point).
  let trace = [];

  // --- token (only asked for when the server answers 401) ---
  const tokenBox = $('token-box'), tokenIn = $('token-input'), tokenState = $('token-state'), tokenWhy = $('token-why');
  const WHY = tokenWhy.textContent;
  let tokenChecked = false;
  function showTokenState() {
    tokenState.hidden = !getToken() || !tokenChecked;
  }
  function askToken(action, refused) {
    retry = action;
    tokenWhy.textContent = refused
      ? 'The service refused the token you entered (401): it is not the one it was started with. Check it and enter it again.'
      : WHY;
    tokenBox.classList.toggle('is-refused', !!refused);
    tokenBox.hidden = false;
    tokenIn.focus();
  }
  // A 401: no token yet, or the one sent was refused (then it is forgotten, not kept as
  // if it were good).
  function unauthorized(e, action) {
    const refused = !!e.sentToken;
    if (refused) {
      setToken('');
      tokenChecked = false;
      showTokenState();
      showError(errBox, { status: e.status, code: e.code, message: 'The access token was refused' });
    } else showError(errBox, e);
    askToken(action, refused);
  }
  function tokenWorked() {
    if (getToken() && !tokenChecked) {
      tokenChecked = true;
      showTokenState();
    }
  }
  $('token-save').addEventListener('click', () => {
    const t = tokenIn.value.trim();
    if (!t) { tokenIn.focus(); return; }
    setToken(t);
    tokenChecked = false;
    tokenIn.value = '';
    tokenBox.hidden = true;
    showTokenState();
    const again = retry;
    retry = null;
    if (again) again({ confirmed: true });
  });
  tokenIn.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); $('token-save').click(); } });
  $('token-forget').addEventListener('click', () => { setToken(''); tokenChecked = false; showTokenState(); });
  // A token kept from earlier in this tab was accepted then.
  tokenChecked = !!getToken();
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
      // The filters after every epoch, for the Runs view (view_runs.js).
      snapshots: true,
    };
  }

  // --- asking first: what will be replaced ---
  const dlg = $('train-confirm'), dlgText = $('train-confirm-text');
  function confirmReplace() {
    return new Promise((resolve) => {
      (async () => {
        let s = null;
        try { s = await getJSON(`v1/models/${trained()}`); } catch { /* said without the details */ }
        const p = params();
        const what = s
          ? [`${trained()} version ${s.version}`,
            s.test_accuracy != null ? `, ${testAccuracyText(s.test_accuracy, s.training && s.training.test_images)}` : '',
            s.trained_at ? `, trained ${new Date(s.trained_at).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' })}` : ''].join('')
          : `the served ${trained()} model`;
        dlgText.replaceChildren(
          el('p', {}, 'When this job finishes, its model replaces ', el('strong', { text: what }),
            ' for everyone who uses this service, this page and scripts alike.'),
          el('p', {}, p.from === 'current' ? 'It starts from the served weights and keeps training them.' : 'It starts from fresh random weights.',
            ` ${int(p.epochs)} epoch${p.epochs === 1 ? '' : 's'} on ${p.train_limit ? int(p.train_limit) : 'all 60,000'} training images; test accuracy measured on ${p.test_limit && p.test_limit < testSetSize() ? `only ${int(p.test_limit)}` : `all ${int(testSetSize())}`} test images.`),
          el('p', { class: 'confirm__warn' }, 'There is no way back from this page: the replaced version is not kept. Cancelling the job before it ends leaves the served model as it is.'));
        dlg.returnValue = '';
        dlg.showModal();
        $('train-confirm-no').focus();
      })();
      dlg.addEventListener('close', () => resolve(dlg.returnValue === 'replace'), { once: true });
    });
  }

  async function start({ confirmed = false } = {}) {
    showError(errBox, null);
    notice.hidden = true;
    if (!form.checkValidity()) {
      const bad = form.querySelector(':invalid');
      showError(errBox, { message: `${bad.closest('label').querySelector('span').firstChild.textContent.trim()}: ${bad.validationMessage}` });
      bad.focus();
      return;
    }
    if (!confirmed && !(await confirmReplace())) {
      notice.className = 'notice';
      notice.textContent = 'Not started: the served model stays as it is.';
      notice.hidden = false;
      return;
    }
    startBtn.disabled = true;
    try {
      const { data } = await sendJSON('POST', `v1/models/${trained()}/train`, params());
      tokenWorked();
      follow(data);
    } catch (e) {
      startBtn.disabled = false;
      if (e.status === 401) { unauthorized(e, start); return; }
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
      tokenWorked();
      if (data) render(data);
    } catch (e) {
      if (e.status === 401) unauthorized(e, cancel); else showError(errBox, e);
    } finally {
      cancelBtn.disabled = false;
    }
  }
  cancelBtn.addEventListener('click', () => cancel());

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
      job = j;
      render(j);
      if (ACTIVE.has(j.state)) timer = setTimeout(poll, POLL_MS);
      else finished(j);
    } catch (e) {
      showError(errBox, e);
      timer = setTimeout(poll, POLL_MS * 4);
    }
  }

  const limitOf = (j) => (j && j.params ? j.params.test_limit : 0);

  async function finished(j) {
    startBtn.disabled = false;
    cancelBtn.hidden = true;
    if (j.state === 'succeeded') {
      // The result counts the whole test set even when the epochs counted a subset.
      const acc = j.result && j.result.test_accuracy != null ? ` — ${resultAccuracyText(j.result, limitOf(j))}` : '';
      notice.className = 'notice notice--ok';
      notice.textContent = `Training finished. The page now uses ${j.model || trained()} version ${j.result ? j.result.version : '?'}${acc}.`;
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
    pctEl.textContent = `${shown}\u00a0%`;
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
      if (!trace.length || x > trace[trace.length - 1].x) trace.push({ x, epoch: j.epoch, batch: j.batch, loss: j.loss, accuracy: j.accuracy });
    }
    charts(j.history || [], j.epochs, trace, running, limitOf(j));
  }

  function charts(history, epochs, samples = [], running = false, testImages = 0) {
    const pts = (k) => history.filter((h) => h[k] != null).map((h) => ({ x: h.epoch, y: h[k] }));
    const last = running && samples.length ? samples[samples.length - 1] : null;
    const xMax = Math.max(epochs || 0, history.length, 1);
    const smoothing = Number(smoothIn.value);
    const testName = testImages && testImages < testSetSize() ? `test (${int(testImages)} images)` : 'test';
    // The test loss of each finished epoch (history written before it was recorded has
    // none, and the chart then says so).
    const testLoss = pts('test_loss');
    drawChart(lossSvg, {
      series: [
        { name: 'training', cls: 's1', points: pts('loss'), steps: stepsFromRunning(samples, 'loss'), live: last ? { x: last.x, y: last.loss } : null },
        ...(testLoss.length || !history.length ? [{ name: testName, cls: 's2', points: testLoss }] : []),
      ],
      xMax, format: (v) => v.toFixed(2), yTitle: 'loss', smoothing, clamp: [0, Infinity],
      empty: 'Start training to see the loss fall',
    });
    lossNote.textContent = history.length && !testLoss.length ? 'on the training set (this model\'s history has no test loss)' : 'on the training and test sets';
    drawChart(accSvg, {
      series: [
        { name: 'training', cls: 's1', points: pts('accuracy'), steps: stepsFromRunning(samples, 'accuracy'), live: last && last.accuracy != null ? { x: last.x, y: last.accuracy } : null },
        { name: testName, cls: 's2', points: pts('test_accuracy') },
      ],
      xMax, clamp: [0, 1], format: (v) => `${Math.round(v * 1000) / 10}\u00a0%`, yTitle: 'accuracy', smoothing,
      empty: 'Start training to see the accuracy rise',
    });
  }

  // With no job to follow, the charts show how the served model itself was trained.
  function idle() {
    if (job && ACTIVE.has(job.state)) return;
    if (job) { render(job); return; }
    const s = state.summary;
    const hist = (s && state.model && state.model.name === trained() && s.history) || [];
    charts(hist, hist.length, [], false, s && s.training ? s.training.test_images : 0);
    text.textContent = hist.length
      ? `No training running. The charts show how version ${s.version} was trained (${hist.length} epoch${hist.length > 1 ? 's' : ''}).`
      : 'No training running.';
  }

  async function attachRunning() {
    try {
      const { jobs } = await getJSON('v1/jobs');
      const j = (jobs || []).find((x) => x.model === trained() && ACTIVE.has(x.state));
      if (j) follow(j);
    } catch { /* the list is a convenience; the panel works without it */ }
  }

  smoothIn.addEventListener('input', () => {
    smoothOut.textContent = Number(smoothIn.value).toFixed(2);
    if (job) render(job); else idle();
  });
  // The card says which model it trains, and why not the chosen one when it cannot.
  function title() {
    const sub = $('train-sub'), m = state.model;
    const name = trained();
    if (name === NOTEBOOK) {
      const other = m && m.name !== NOTEBOOK;
      sub.textContent = other
        ? `the Fashion-MNIST network (fmnist), Adam — ${m.name} cannot be trained here${m.not_trainable_reason ? `: ${m.not_trainable_reason}` : ''}`
        : 'Fashion-MNIST network, Adam';
    } else sub.textContent = `${name} on Fashion-MNIST, Adam`;
  }
  on('model', () => { title(); idle(); });
  new ResizeObserver(() => { if (job) render(job); else idle(); }).observe(lossSvg);
  attachRunning();
  return { follow };
}

function resultAccuracyText(result, epochsLimit) {
  const n = result.test_images;
  if (n && n < testSetSize()) return testAccuracyText(result.test_accuracy, n);
  const all = n ? `on all ${int(n)} test images` : 'on the test set';
  const sub = epochsLimit && epochsLimit < testSetSize() ? ` (the epochs counted the first ${int(epochsLimit)})` : '';
  return `test accuracy ${pct(result.test_accuracy)} ${all}${sub}`;
}

function testAccuracyText(acc, n) {
  return n && n < testSetSize()
    ? `test accuracy ${pct(acc)} on ${int(n)} of ${int(testSetSize())} test images (a subset)`
    : `test accuracy ${pct(acc)}`;
}

// addmodel.js - bringing a model to the service from the page and taking it away: the
// "Add a model" dialog (choose or drop an ONNX, Keras or convscope file, name it, give its
// labels and how its images are prepared) posts it to POST /v1/models, which checks the
// file before it serves it; the new model is then chosen. A model of the models folder
// can be removed (DELETE /v1/models/{name}) after a question; the notebook's cannot.
// A server started with a token answers 401: the dialog asks for the token and sends
// again, and keeps it for the tab as the training panel does.

import { request, setToken } from './api.js';
import { state, on } from './store.js';
import { $, el, showError } from './ui.js';

const EXTS = ['.onnx', '.h5', '.hdf5', '.keras', '.csm'];

// A file name as a served name: its extension dropped, other characters as '_'.
export function nameFromFile(file) {
  const base = file.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '');
  return base.slice(0, 31) || 'model';
}

export function initAddModel({ models }) {
  const dlg = $('model-upload-dialog'), form = $('model-upload-form'), fileIn = $('model-upload-file'), drop = $('model-upload-drop');
  const nameIn = $('model-upload-name'), labelsIn = $('model-upload-labels'), labelsFile = $('model-upload-labels-file');
  const errBox = $('model-upload-error'), send = $('model-upload-send'), fileText = $('model-upload-file-text');
  const tokenBox = $('model-upload-token'), tokenIn = $('model-upload-token-input'), tokenWhy = $('model-upload-token-why');
  const WHY = tokenWhy.textContent;
  let file = null, nameTouched = false;

  function reset() {
    file = null;
    nameTouched = false;
    form.reset();
    drop.classList.remove('has-file');
    fileText.replaceChildren(el('strong', { text: 'Choose a model file' }), ' or drop it here');
    tokenBox.hidden = true;
    showError(errBox, null);
  }

  function useFile(f) {
    if (!f) return;
    const ext = (/\.[^.]+$/.exec(f.name) || [''])[0].toLowerCase();
    if (!EXTS.includes(ext)) {
      showError(errBox, { message: `${f.name} is not a model file the service reads (${EXTS.join(', ')})` });
      return;
    }
    showError(errBox, null);
    file = f;
    drop.classList.add('has-file');
    fileText.replaceChildren(el('strong', { text: f.name }), ` · ${(f.size / 1024).toFixed(f.size < 10240 ? 1 : 0)} KiB`);
    if (!nameTouched || !nameIn.value) nameIn.value = nameFromFile(f.name);
  }

  $('model-add').addEventListener('click', () => {
    reset();
    dlg.showModal();
    fileIn.focus();
  });
  $('model-upload-cancel').addEventListener('click', () => dlg.close());
  fileIn.addEventListener('change', () => useFile(fileIn.files[0]));
  nameIn.addEventListener('input', () => { nameTouched = true; });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('is-over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('is-over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('is-over');
    useFile(e.dataTransfer.files[0]);
  });
  labelsFile.addEventListener('change', async () => {
    const f = labelsFile.files[0];
    if (f) labelsIn.value = await f.text();
  });

  function preprocessing() {
    const p = {};
    for (const [id, key] of [['model-upload-mode', 'mode'], ['model-upload-resize', 'resize'], ['model-upload-fit', 'fit']]) {
      const v = $(id).value;
      if (v) p[key] = v;
    }
    return Object.keys(p).length ? JSON.stringify(p) : '';
  }

  async function upload() {
    showError(errBox, null);
    if (!file) {
      showError(errBox, { message: 'Choose a model file first' });
      fileIn.focus();
      return;
    }
    if (!nameIn.checkValidity()) {
      showError(errBox, { message: `Name: ${nameIn.validationMessage || 'letters, digits, _ - and .'}` });
      nameIn.focus();
      return;
    }
    if (!tokenBox.hidden && tokenIn.value.trim()) setToken(tokenIn.value.trim());
    const body = new FormData();
    body.append('file', file, file.name);
    body.append('name', nameIn.value);
    if (labelsIn.value.trim()) body.append('labels', labelsIn.value);
    const pre = preprocessing();
    if (pre) body.append('preprocessing', pre);
    if ($('model-upload-desc').value.trim()) body.append('description', $('model-upload-desc').value.trim());
    send.disabled = true;
    send.textContent = 'Checking…';
    try {
      const res = await request('POST', 'v1/models', { body });
      const entry = await res.json();
      dlg.close();
      await models.reload(entry.name);
    } catch (e) {
      if (e.status === 401) {
        if (e.sentToken) setToken('');
        tokenWhy.textContent = e.sentToken ? 'The service refused that token (401). Check it and enter it again.' : WHY;
        tokenBox.hidden = false;
        tokenIn.value = '';
        tokenIn.focus();
      }
      showError(errBox, e);
    } finally {
      send.disabled = false;
      send.textContent = 'Upload';
    }
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); upload(); });

  // --- removing the chosen model ---
  // The chosen model, or one that could not be served (picked, it stays unchosen: its
  // list entry says what it was read from).
  const removeBox = $('model-remove');
  let target = null;
  function renderRemove(asking = false) {
    const m = target || state.model;
    const s = target || state.summary;
    if (!m || !s || !s.deletable) { removeBox.hidden = true; return; }
    removeBox.hidden = false;
    if (!asking) {
      removeBox.replaceChildren(el('button', { type: 'button', class: 'btn btn--link', id: 'model-remove-btn', text: `Remove ${m.name}…`, onclick: () => renderRemove(true) }));
      return;
    }
    const err = el('span', { class: 'error', role: 'alert', hidden: true });
    // Asked for only when the service answers 401, as everywhere on the page.
    const token = el('input', { type: 'password', id: 'model-remove-token', 'aria-label': 'Access token', placeholder: 'access token', autocomplete: 'off', hidden: true });
    removeBox.replaceChildren(
      el('span', {}, 'Remove ', el('strong', { text: m.name }), ` and its files (${s.file || 'its file'}${s.labels === 'sidecar' ? ' and its labels' : ''}) for everyone who uses this service?`),
      el('button', {
        type: 'button', class: 'btn btn--danger btn--solid', id: 'model-remove-yes', text: 'Remove',
        onclick: async () => {
          if (!token.hidden && token.value.trim()) setToken(token.value.trim());
          try {
            await request('DELETE', `v1/models/${encodeURIComponent(m.name)}`);
            target = null;
            await models.reload(state.model && state.model.name !== m.name ? state.model.name : null);
          } catch (e) {
            if (e.status === 401) {
              if (e.sentToken) setToken('');
              e.message = e.sentToken ? 'The service refused that access token' : 'The service wants an access token to remove a model';
              token.hidden = false;
              token.value = '';
              token.focus();
            }
            showError(err, e);
          }
        },
      }),
      el('button', { type: 'button', class: 'btn btn--ghost', text: 'Keep it', onclick: () => renderRemove(false) }),
      token, err);
    removeBox.querySelector('#model-remove-yes').focus();
  }
  on('model', () => { target = null; renderRemove(false); });
  on('model-unavailable', (entry) => { target = entry; renderRemove(false); });
}

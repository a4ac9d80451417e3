// store.js - the little shared state of the page and a publish/subscribe bus, so each
// module owns one panel and only learns about the others through events:
//   'model'  the chosen model or its version changed (summary loaded)
//   'input'  a new image to analyse (all panels refresh)
//   'stroke' the drawing changed while the pen is still down (panels refresh, throttled)
//   'prediction' a prediction arrived (Grad-CAM names the predicted class)
//   'input-rejected' the service could not read the picture (the panels say so)
//   'input-empty' the drawing pad is blank: nothing to analyse (the panels say so)
//   'offline' a request got no answer at all; 'online' one did again
//   'version' an answer named the version of the model that computed it
//   'view' a view setting that belongs in the address changed (url.js keeps it)
//   'model-unavailable' a model picked in the list could not be loaded (its list entry)

export const state = {
  models: [],        // GET /v1/models entries
  model: null,       // the chosen entry
  summary: null,     // GET /v1/models/{model}
  input: null,       // {id, sample:{split,index}} or {id, blob, name, source}
  prediction: null,  // the first entry of the last predict answer
  dataset: null,     // GET /v1/datasets/fashion-mnist (classes, split sizes), when known
};

let inputSeq = 0;
// Every input gets a number; each panel marks what it shows with the number of the input
// it was computed for (data-input), so nothing can pass an old image's result off as the
// current one.
export function nextInputId() {
  inputSeq += 1;
  document.documentElement.dataset.input = String(inputSeq);
  return inputSeq;
}

const listeners = new Map();

export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
}

export function emit(event, detail) {
  for (const fn of listeners.get(event) || []) {
    try { fn(detail); } catch (e) { reportBug(e); }
  }
}

// A bug in one panel must not take the others down silently: it is shown on the page.
export function reportBug(e) {
  const box = document.getElementById('model-error');
  if (box) {
    box.textContent = `Something went wrong on this page: ${e && e.message ? e.message : e}`;
    box.hidden = false;
  }
}

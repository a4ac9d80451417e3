// store.js - the little shared state of the page and a publish/subscribe bus, so each
// module owns one panel and only learns about the others through events:
//   'model'  the chosen model or its version changed (summary loaded)
//   'input'  a new image to analyse (all panels refresh)
//   'stroke' the drawing changed while the pen is still down (prediction only)
//   'prediction' a prediction arrived (Grad-CAM names the predicted class)
//   'input-rejected' the service could not read the picture (the input card says so)

export const state = {
  models: [],        // GET /v1/models entries
  model: null,       // the chosen entry
  summary: null,     // GET /v1/models/{model}
  input: null,       // {sample:{split,index}} or {blob, name, source}
  prediction: null,  // the first entry of the last predict answer
};

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

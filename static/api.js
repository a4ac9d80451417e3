// api.js - every call to the convscope HTTP API goes through here, so errors look the
// same everywhere: a rejected promise carrying an ApiError with the status, the API's
// error code and its message, ready to be shown next to the control that asked.
//
// URLs are relative to the page, so the front-end keeps working behind a reverse proxy
// that mounts the service under a prefix.
//
// Two things every answer tells the page, said here once rather than in each panel: that
// the service answered at all ('offline' / 'online'), and which version of a model
// computed it ('version', from X-Model-Version or the JSON's version), so a tab notices a
// model that changed elsewhere.

import { emit } from './store.js';

const TOKEN_KEY = 'convscope.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives only as long as this call */ }
}

export function url(path, query) {
  const u = new URL(path.replace(/^\//, ''), document.baseURI);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u;
}

function isAbort(e) {
  return e && (e.name === 'AbortError' || e.code === 20);
}

// Turns a non-2xx answer into an ApiError; the API always sends {"error":{code,message}},
// but a proxy in front of it may not, so fall back to the status text.
async function toError(res) {
  let code = `http_${res.status}`, message = `${res.status} ${res.statusText || 'error'}`;
  try {
    const body = await res.clone().json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    try {
      const text = (await res.text()).trim();
      if (text) message = `${message}: ${text.slice(0, 200)}`;
    } catch { /* keep the status line */ }
  }
  return new ApiError(res.status, code, message);
}

export async function request(method, path, { query, body, type, signal, auth } = {}) {
  const headers = {};
  if (type) headers['Content-Type'] = type;
  const token = getToken();
  if (token && auth !== false) headers.Authorization = `Bearer ${token}`;
  let res;
  const started = performance.now();
  try {
    res = await fetch(url(path, query), { method, headers, body, signal });
  } catch (e) {
    if (isAbort(e)) throw e;
    const err = new ApiError(0, 'network', 'The service did not answer. Is convscope still running?');
    emit('offline', err);
    throw err;
  }
  emit('online');
  const v = res.headers.get('X-Model-Version');
  if (v !== null) noteVersion(path, Number(v), started);
  if (!res.ok) {
    const err = await toError(res);
    err.sentToken = !!headers.Authorization;
    throw err;
  }
  return res;
}

// The model a path speaks of: v1/models/{name}/...
function modelOf(path) {
  const m = /(?:^|\/)v1\/models\/([^/?]+)/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

// Tells the page which version of the model at this path answered, for a request sent
// at `started` (performance.now()).
export function noteVersion(path, version, started) {
  const model = modelOf(path);
  if (model && Number.isInteger(version)) emit('version', { model, version, started });
}

export async function getJSON(path, query, opts = {}) {
  const res = await request('GET', path, { ...opts, query });
  return res.json();
}

export async function sendJSON(method, path, data, opts = {}) {
  const res = await request(method, path, {
    ...opts, body: data === undefined ? undefined : JSON.stringify(data),
    type: data === undefined ? undefined : 'application/json',
  });
  const text = await res.text();
  return { res, data: text ? JSON.parse(text) : null };
}

// Posts the current image: a Fashion-MNIST sample goes as ?sample=split:index (no
// upload at all), anything else as the raw body, the way curl --data-binary sends it.
export async function postImage(path, input, query = {}, opts = {}) {
  const q = { ...query };
  let body, type;
  if (input.sample) q.sample = `${input.sample.split}:${input.sample.index}`;
  else {
    body = input.blob;
    type = input.blob.type || 'application/octet-stream';
  }
  return request('POST', path, { ...opts, query: q, body, type });
}

export function isAbortError(e) {
  return isAbort(e);
}

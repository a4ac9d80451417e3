// Checks the committed test models against ONNX Runtime, an engine independent of the
// PyTorch that wrote their reference outputs (tests/models/make_models.py).
// For every NAME.json in the models folder it runs NAME.onnx on NAME.input.npy and checks:
//   - the logits agree with NAME.logits.npy within the JSON's tolerance, with ONNX
//     Runtime's graph optimisations off and on;
//   - each image run alone (batch 1) gives its row of the batch's logits (dynamic batch);
//   - the predicted classes are the JSON's Grad-CAM classes;
//   - the Grad-CAM tensor named in the JSON exists and holds NAME.activation.npy, so a
//     test that looks the tensor up by that name finds the right one.
// Prints one line "[ort-parity] N ok, M failed"; exits 1 when anything failed.
// Usage: node ort_reference.mjs [--models DIR] [--save DIR] [--quiet]
//   --save writes ONNX Runtime's logits as .npy; --quiet prints only failures and the summary.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const modelsDir = opt('--models', path.join(here, '..', 'data', 'models'));
const saveDir = opt('--save', null);
const quiet = args.includes('--quiet');

let ok = 0;
let failed = 0;
function check(cond, what, detail = '') {
  if (cond) ok++;
  else failed++;
  if (!cond || !quiet) console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
  return cond;
}

// --- .npy: version 1.0-3.0 headers, little-endian float32, C order -------------------

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > buf.length) throw new Error(`${file}: truncated header`);
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeText) throw new Error(`${file}: unreadable header ${header.trim()}`);
  if (descr[1] !== '<f4') throw new Error(`${file}: dtype ${descr[1]}, expected <f4`);
  if (fortran[1] !== 'False') throw new Error(`${file}: Fortran order is not supported`);
  const shape = shapeText[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (buf.length - offset !== count * 4) throw new Error(`${file}: ${buf.length - offset} data bytes for shape (${shape})`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(offset + 4 * i);
  return { shape, data };
}

function writeNpy(file, shape, data) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // Magic, version and length take 10 bytes; the header ends in a newline and pads the
  // whole preamble to a multiple of 64 bytes.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = Buffer.alloc(10 + header.length + data.length * 4);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], 10 + header.length + 4 * i);
  fs.writeFileSync(file, out);
}

// --- ONNX protobuf: add a graph output so an inner tensor can be read ----------------

function varint(n) {
  const bytes = [];
  while (n > 127) {
    bytes.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

function readVarint(buf, pos) {
  let n = 0;
  let scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    n += (b & 127) * scale;
    if (b < 128) return [n, pos];
    scale *= 128;
  }
}

const field = (number, bytes) => Buffer.concat([varint(number * 8 + 2), varint(bytes.length), bytes]);

// ModelProto.graph is field 7, GraphProto.output field 12; a ValueInfoProto holds the
// name (1) and a TypeProto (2) whose tensor_type (1) has elem_type (1) FLOAT = 1.
function withOutput(model, tensorName) {
  const valueInfo = field(1, Buffer.from(tensorName, 'utf8'));
  const type = field(2, field(1, Buffer.from([8, 1])));
  const output = field(12, Buffer.concat([valueInfo, type]));
  const parts = [];
  let pos = 0;
  let found = false;
  while (pos < model.length) {
    const start = pos;
    let key;
    [key, pos] = readVarint(model, pos);
    const wire = key & 7;
    if (wire === 0) [, pos] = readVarint(model, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let len;
      [len, pos] = readVarint(model, pos);
      if (key >>> 3 === 7) {
        parts.push(field(7, Buffer.concat([model.subarray(pos, pos + len), output])));
        found = true;
        pos += len;
        continue;
      }
      pos += len;
    } else throw new Error(`unexpected wire type ${wire}`);
    parts.push(model.subarray(start, pos));
  }
  if (!found) throw new Error('no graph in the model');
  return Buffer.concat(parts);
}

// --- checks ------------------------------------------------------------------------

function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates
  }
  return m;
}

function argmaxRows(data, rows, cols) {
  const out = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (data[r * cols + c] > data[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

const sameShape = (a, b) => a.length === b.length && a.every((v, i) => v === Number(b[i]));
const fmt = (x) => x.toExponential(1);

async function run(session, input, shape, outputs) {
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, shape) };
  return session.run(feeds, outputs);
}

async function checkModel(meta) {
  const name = meta.name;
  const file = (f) => path.join(modelsDir, f);
  const model = fs.readFileSync(file(`${name}.onnx`));
  const x = readNpy(file(meta.input.file));
  const want = readNpy(file(meta.output.file));
  const tol = meta.tolerance.logits;
  const [batch, classes] = want.shape;

  for (const level of ['disabled', 'all']) {
    const session = await ort.InferenceSession.create(model, {
      graphOptimizationLevel: level,
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
    check(session.inputNames[0] === meta.input.name && session.outputNames[0] === meta.output.name,
      `${name}: input and output names (optimisation ${level})`, `${session.inputNames} -> ${session.outputNames}`);
    const out = (await run(session, x.data, x.shape))[meta.output.name];
    const diff = maxAbsDiff(out.data, want.data);
    check(sameShape(want.shape, out.dims) && diff <= tol,
      `${name}: logits agree with PyTorch (optimisation ${level})`, `max |diff| ${fmt(diff)}, tolerance ${fmt(tol)}`);
    if (level !== 'all') continue;

    if (saveDir) {
      fs.mkdirSync(saveDir, { recursive: true });
      writeNpy(path.join(saveDir, `${name}.ort_logits.npy`), out.dims.map(Number), out.data);
    }
    const argmax = argmaxRows(out.data, batch, classes);
    check(argmax.join() === meta.gradcam.classes.join(), `${name}: predicted classes`,
      `${argmax} vs ${meta.gradcam.classes}`);

    const per = x.data.length / batch;
    let worst = 0;
    for (let b = 0; b < batch; b++) {
      const one = (await run(session, x.data.slice(b * per, (b + 1) * per), [1, ...x.shape.slice(1)]))[meta.output.name];
      worst = Math.max(worst, maxAbsDiff(one.data, out.data.slice(b * classes, (b + 1) * classes)));
    }
    check(worst <= tol, `${name}: each image run alone gives its row of the batch`, `max |diff| ${fmt(worst)}`);
  }

  const tensor = meta.gradcam.tensor;
  const act = readNpy(file(meta.gradcam.activation_file));
  const probe = await ort.InferenceSession.create(withOutput(model, tensor), {
    graphOptimizationLevel: 'disabled',
    intraOpNumThreads: 1,
  });
  const got = (await run(probe, x.data, x.shape, [tensor]))[tensor];
  const diff = maxAbsDiff(got.data, act.data);
  check(sameShape(act.shape, got.dims) && diff <= tol, `${name}: Grad-CAM tensor ${tensor} holds PyTorch's activation`,
    `shape ${got.dims}, max |diff| ${fmt(diff)}`);
}

function checkNpyRoundTrip(dir) {
  const file = path.join(dir, 'roundtrip.npy');
  const data = Float32Array.from([1.5, -2.25, 3e-8, 65504, -0]);
  writeNpy(file, [5], data);
  const back = readNpy(file);
  fs.rmSync(file);
  check(sameShape([5], back.shape) && maxAbsDiff(back.data, data) === 0, '.npy writer and reader round trip');
}

async function main() {
  const metas = fs.readdirSync(modelsDir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(modelsDir, f), 'utf8')));
  check(metas.length > 0, `models found in ${path.relative(process.cwd(), modelsDir) || '.'}`, `${metas.length}`);
  for (const meta of metas) {
    try {
      await checkModel(meta);
    } catch (e) {
      check(false, `${meta.name}: runs in ONNX Runtime`, e.message);
    }
  }
  const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR || '/tmp', 'ort-parity-'));
  try {
    checkNpyRoundTrip(tmp);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`[ort-parity] ${ok} ok, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

await main();

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
import { readNpy, writeNpy, withOutput, maxAbsDiff, argmaxRows } from './onnx_util.mjs';

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

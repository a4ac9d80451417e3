// Checks models convscope exported as ONNX (`convscope export --out m.onnx`) against
// ONNX Runtime. The folder holds, for every NAME.json (written by
// build/tests/test_onnx_export --write DIR), NAME.onnx, the images NAME.input.npy
// (NCHW) and convscope's own outputs for them: NAME.output.npy (the probabilities) and
// NAME.logits.npy (the scores under the softmax, an inner value of the graph named in
// the JSON). ONNX Runtime must give the probabilities within 1e-5 and the logits within
// 1e-5 of the largest logit's size (at least 1e-5), with its graph optimisations off and
// on, and each image run alone must give its row of the batch.
// Prints one line "[onnx-export] N ok, M failed"; exits 1 when anything failed.
// Usage: node export_check.mjs DIR
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { readNpy, withOutput, maxAbsDiff } from './onnx_util.mjs';

const TOL = 1e-5;
const dir = process.argv[2];
let ok = 0;
let failed = 0;
function check(cond, what, detail = '') {
  if (cond) ok++;
  else failed++;
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
  return cond;
}
const fmt = (x) => x.toExponential(1);
const sameShape = (a, b) => a.length === b.length && a.every((v, i) => v === Number(b[i]));

async function checkModel(meta) {
  const name = meta.name;
  const file = (suffix) => path.join(dir, `${name}.${suffix}`);
  let model = fs.readFileSync(file('onnx'));
  const x = readNpy(file('input.npy'));
  const want = readNpy(file('output.npy'));
  const logits = meta.logits_value ? readNpy(file('logits.npy')) : null;
  if (logits) model = withOutput(model, meta.logits_value);
  for (const level of ['disabled', 'all']) {
    const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: level, intraOpNumThreads: 1 });
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
    const got = await session.run(feeds);
    const out = got[session.outputNames[0]];
    const diff = maxAbsDiff(out.data, want.data);
    check(sameShape(want.shape, out.dims) && diff <= TOL, `${name}: probabilities agree with convscope's (optimisation ${level})`,
      `max |diff| ${fmt(diff)}`);
    if (logits) {
      const z = got[meta.logits_value];
      const dz = z ? maxAbsDiff(z.data, logits.data) : Infinity;
      const scale = Math.max(1, ...Array.from(logits.data, Math.abs));
      check(dz <= TOL * scale, `${name}: logits (${meta.logits_value}) agree with convscope's (optimisation ${level})`,
        `max |diff| ${fmt(dz)}`);
    }
    if (level !== 'all') continue;
    const [batch, classes] = want.shape;
    const per = x.data.length / batch;
    let worst = 0;
    for (let b = 0; b < batch; b++) {
      const one = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data.slice(b * per, (b + 1) * per), [1, ...x.shape.slice(1)]) });
      worst = Math.max(worst, maxAbsDiff(one[session.outputNames[0]].data, out.data.slice(b * classes, (b + 1) * classes)));
    }
    check(worst <= TOL, `${name}: each image run alone gives its row`, `max |diff| ${fmt(worst)}`);
  }
}

async function main() {
  const metas = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  check(metas.length >= 10, `exported models found`, `${metas.length}`);
  for (const meta of metas) {
    try {
      await checkModel(meta);
    } catch (e) {
      check(false, `${meta.name}: runs in ONNX Runtime`, e.message);
    }
  }
  console.log(`[onnx-export] ${ok} ok, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

await main();

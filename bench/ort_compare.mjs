// convscope against ONNX Runtime on the same models with the same weights, in one run:
// the two engines take turns (a round of ONNX Runtime, then a round of convscope, and
// again), so that both see the same share of a machine other work may be using, and the
// ratio of their medians is the figure (the range of the rounds' own ratios follows it).
// Each result is also given as GFLOP/s (2 per multiply-add of the conv and dense layers,
// counted by convscope from the model) and as a fraction of the machine's FMA peak,
// measured before and after (bench/fma_peak.h; the higher counts, since other work can
// only lower it).
//
// A case is an ONNX file for ONNX Runtime and the model convscope runs (the same ONNX
// file, or convscope's own model file of the same network), a batch and a thread count:
//   --case FILE.onnx[,model=FILE][,batch=N][,threads=N][,precision=bf16]
// precision=bf16 runs convscope's inference in bf16 (core/bf16_plan.h; ONNX Runtime stays
// fp32): its row also gives the time of the fp32 case of the same model, batch and threads.
// Before timing, ONNX Runtime's output on NAME.input.npy is checked against PyTorch's
// (NAME.logits.npy, or NAME.probabilities.npy for a model that ends in a softmax), and
// convscope checks its own (bench/onnx_models.c).
// Usage: node bench/ort_compare.mjs --convscope build/bench/onnx_models [--rounds 3]
//        [--runs 20] --case ... [--case ...]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/models/package.json', import.meta.url));
let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.error('ort_compare: onnxruntime-node is missing; run: cd tests/models && npm ci --ignore-scripts');
  process.exit(1);
}

const args = process.argv.slice(2);
const opts = { convscope: 'build/bench/onnx_models', rounds: '3', runs: '20' };
const cases = [];
for (let i = 0; i < args.length; i++) {
  const key = args[i].startsWith('--') ? args[i].slice(2) : null;
  if (key === 'case' && i + 1 < args.length) {
    const [file, ...rest] = args[++i].split(',');
    const c = { file, model: file, batch: 1, threads: 1, precision: 'fp32' };
    for (const kv of rest) {
      const [k, v] = kv.split('=');
      if (k === 'model') c.model = v;
      else if (k === 'batch' || k === 'threads') c[k] = Number(v);
      else if (k === 'precision' && (v === 'fp32' || v === 'bf16')) c.precision = v;
      else usage(`unknown case field ${k}`);
    }
    if (!Number.isInteger(c.batch) || c.batch < 1 || !Number.isInteger(c.threads) || c.threads < 1) usage('bad case');
    cases.push(c);
  } else if (key in opts && i + 1 < args.length) opts[key] = args[++i];
  else usage(`unknown or incomplete option ${args[i]}`);
}
const rounds = Number(opts.rounds);
const runs = Number(opts.runs);
if (!cases.length || !(rounds >= 1) || !(runs >= 1)) usage('');

function usage(why) {
  if (why) console.error(`ort_compare: ${why}`);
  console.error('usage: node bench/ort_compare.mjs --convscope BIN [--rounds N] [--runs N] --case FILE.onnx[,model=FILE][,batch=N][,threads=N]...');
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  const headerLen = buf[6] === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = buf[6] === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${file}: not little-endian float32`);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(start + headerLen + 4 * i);
  return { shape, data };
}

function convscope(extra) {
  const out = execFileSync(opts.convscope, ['--json', ...extra], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

function peak() {
  return convscope(['--peak'])[0];
}

// A fixed pseudo-random input (the same values bench/onnx_models.c makes, in NCHW).
function input(shape) {
  const x = new Float32Array(shape.reduce((a, b) => a * b, 1));
  let state = 12345;
  for (let i = 0; i < x.length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    x[i] = (state / 4294967296 - 0.5) * 3.46;
  }
  return x;
}

async function parity(session, file) {
  const base = file.replace(/\.onnx$/, '');
  const out = session.outputNames[0];
  const refFile = fs.existsSync(`${base}.${out}.npy`) ? `${base}.${out}.npy` : `${base}.logits.npy`;
  if (!fs.existsSync(`${base}.input.npy`) || !fs.existsSync(refFile)) return true;
  const x = readNpy(`${base}.input.npy`);
  const want = readNpy(refFile);
  const got = (await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) }))[out].data;
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got[i] - want.data[i]));
  console.log(`ort ${path.basename(base)}: ${out} within ${worst.toExponential(1)} of PyTorch's`);
  return worst <= 1e-3;
}

const peaks = [peak()];
console.log(`fma peak (${peaks[0].isa}): ${peaks[0].gflops.toFixed(1)} GFLOP/s on ${peaks[0].threads} threads, ` +
  `${peaks[0].gflops_1.toFixed(1)} on 1 (before)`);
let bad = 0;
const results = [];
for (const c of cases) {
  const name = path.basename(c.file, '.onnx');
  const session = await ort.InferenceSession.create(c.file, {
    graphOptimizationLevel: 'all', intraOpNumThreads: c.threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  if (!(await parity(session, c.file))) bad = 1;
  // The input's shape: ONNX Runtime's own metadata is not in every version; the file's
  // input.npy gives it where the exporter wrote one, else 224x224 RGB.
  const base = c.file.replace(/\.onnx$/, '');
  const dims = fs.existsSync(`${base}.input.npy`) ? readNpy(`${base}.input.npy`).shape.slice(1) : [3, 224, 224];
  const feedShape = [c.batch, ...dims];
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input(feedShape), feedShape) };
  const ortMs = [];
  const csMs = [];
  const roundRatios = [];
  let gflop = 0;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < (r === 0 ? 3 : 1); i++) await session.run(feeds);
    const ortRound = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      ortRound.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ortMs.push(...ortRound);
    const [res] = convscope(['--runs', String(runs), '--warmup', '3', '--threads', String(c.threads), '--batch',
      String(c.batch), '--precision', c.precision, '--no-gradcam', c.model]);
    csMs.push(res.ms);
    roundRatios.push(median(ortRound) / res.ms);
    gflop = res.gflop;
  }
  await session.release();
  results.push({ name, c, ort: median(ortMs), cs: median(csMs), gflop, roundRatios });
}
peaks.push(peak());
const best = peaks.reduce((a, b) => (b.gflops > a.gflops ? b : a));
console.log(`fma peak (${peaks[1].isa}): ${peaks[1].gflops.toFixed(1)} GFLOP/s on ${peaks[1].threads} threads, ` +
  `${peaks[1].gflops_1.toFixed(1)} on 1 (after)`);
// The rounds' own ratios (each round's medians), lowest to highest: how far the machine's
// moods moved the figure within the run.
const spread = (xs) =>
  xs.length > 1 ? ` (rounds ${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}x)` : '';
for (const r of results) {
  const pk = r.c.threads >= best.threads ? best.gflops : r.c.threads === 1 ? Math.max(...peaks.map((p) => p.gflops_1)) :
    best.gflops * r.c.threads / best.threads;
  const rate = (ms) => r.gflop / (ms / 1e3);
  const frac = (ms) => `${(100 * rate(ms) / pk).toFixed(0)}%`;
  const ips = (ms) => (r.c.batch > 1 ? `, ${(r.c.batch / (ms / 1e3)).toFixed(0)} images/s` : '');
  const same = (o) => o.c.precision === 'fp32' && o.c.model === r.c.model && o.c.batch === r.c.batch &&
    o.c.threads === r.c.threads;
  const fp32 = r.c.precision === 'bf16' ? results.find(same) : null;
  const vs = fp32 ? `; convscope fp32 / bf16 = ${(fp32.cs / r.cs).toFixed(2)}x` : '';
  console.log(`${r.name} batch ${r.c.batch}, ${r.c.threads} thread${r.c.threads > 1 ? 's' : ''}: ` +
    `convscope${r.c.precision === 'bf16' ? ' bf16' : ''} ${r.cs.toFixed(3)} ms (${rate(r.cs).toFixed(1)} GFLOP/s, ${frac(r.cs)} of peak${ips(r.cs)}), ` +
    `ort ${r.ort.toFixed(3)} ms (${rate(r.ort).toFixed(1)} GFLOP/s, ${frac(r.ort)}${ips(r.ort)}): ` +
    `ort / convscope = ${(r.ort / r.cs).toFixed(2)}x${spread(r.roundRatios)}${vs}`);
}
process.exit(bad);

// ONNX Runtime's forward time on this machine, the figure convscope's is set against.
// For every .onnx given: one image (1x3x224x224 unless --shape says otherwise), ONNX
// Runtime's CPU engine with all graph optimisations, for each thread count: warm-up runs,
// then the median of --runs timed runs (the best beside it, since other work on a shared
// machine only ever slows a run down). One line per model and thread count:
//   ort <model> <threads> threads: X ms (best Y ms)
// Usage: node bench/ort_bench.mjs [--threads 1,2] [--runs 20] [--warmup 3] [--shape 1,3,224,224] MODEL.onnx...
// onnxruntime-node comes from tests/models (the same engine the parity tests use);
// `npm ci --ignore-scripts` there installs it.
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/models/package.json', import.meta.url));
let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.error('ort_bench: onnxruntime-node is missing; run: cd tests/models && npm ci --ignore-scripts');
  process.exit(1);
}

const args = process.argv.slice(2);
const opts = { threads: '1,2', runs: '20', warmup: '3', shape: '1,3,224,224' };
const models = [];
for (let i = 0; i < args.length; i++) {
  const key = args[i].startsWith('--') ? args[i].slice(2) : null;
  if (key === null) models.push(args[i]);
  else if (key in opts && i + 1 < args.length) opts[key] = args[++i];
  else {
    console.error(`ort_bench: unknown or incomplete option ${args[i]}`);
    process.exit(2);
  }
}
const list = (s) => s.split(',').map(Number);
const threads = list(opts.threads);
const shape = list(opts.shape);
const runs = Number(opts.runs);
const warmup = Number(opts.warmup);
if (!models.length || [...threads, ...shape, runs].some((n) => !Number.isInteger(n) || n < 1) ||
    !Number.isInteger(warmup) || warmup < 0) {
  console.error('usage: node bench/ort_bench.mjs [--threads 1,2] [--runs N] [--warmup N] [--shape 1,3,224,224] MODEL.onnx...');
  process.exit(2);
}

// A fixed pseudo-random image (the same on every run), roughly unit variance.
const input = new Float32Array(shape.reduce((a, b) => a * b, 1));
let state = 12345;
for (let i = 0; i < input.length; i++) {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  input[i] = (state / 4294967296 - 0.5) * 3.46;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

for (const file of models) {
  const name = path.basename(file, '.onnx');
  for (const t of threads) {
    let session;
    try {
      session = await ort.InferenceSession.create(file, {
        graphOptimizationLevel: 'all',
        intraOpNumThreads: t,
        interOpNumThreads: 1,
        executionMode: 'sequential',
      });
    } catch (e) {
      console.error(`ort_bench: ${file}: ${e.message}`);
      process.exit(1);
    }
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, shape) };
    for (let i = 0; i < warmup; i++) await session.run(feeds);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    await session.release();
    console.log(`ort ${name} ${t} threads: ${median(times).toFixed(2)} ms (best ${Math.min(...times).toFixed(2)} ms)`);
  }
}

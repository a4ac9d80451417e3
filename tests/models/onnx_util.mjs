// Helpers the ONNX Runtime checks share: .npy files (little-endian float32, C order)
// read and written, a graph output added to an ONNX model so an inner tensor can be
// read, and comparisons.
import fs from 'node:fs';

// --- .npy: version 1.0-3.0 headers, little-endian float32, C order -------------------

export function readNpy(file) {
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

export function writeNpy(file, shape, data) {
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
export function withOutput(model, tensorName) {
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

export function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN propagates
  }
  return m;
}

export function argmaxRows(data, rows, cols) {
  const out = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (data[r * cols + c] > data[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

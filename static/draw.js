// draw.js - the drawing pad. Its shape follows the model's input: the aspect of the pad is
// the input's width to height, and what is sent is shrunk in the browser to exactly the
// input's size (28x28 for the Fashion-MNIST network, 224x224 for VGG16, whatever an ONNX
// model takes), so what is sent is what the model sees, whatever the server's resizing
// would have done. Gray models get white ink on black like Fashion-MNIST; colour models
// get a colour to draw with. A soft round brush (a radial gradient stamped along the
// stroke, so lines have the blurred edges the network saw in training), an eraser, undo
// and clear.

const UNDO_DEPTH = 25;
const LONG_SIDE = 560;   // drawing resolution of the pad's longer side
const PAPER = '#000000'; // the pad's background, the eraser's colour

export function createPad(canvas, { onStroke, onEnd } = {}) {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  let radius = 22, tool = 'brush', ink = '#ffffff', drawing = false, last = null;
  let dab = null;
  let shape = { w: 28, h: 28, c: 1 };
  const undo = [];

  function fillPaper() {
    ctx.globalCompositeOperation = 'source-over';
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  // One pre-rendered stamp per size, tool and colour; stamping an image is much faster
  // than building a gradient for every point of the stroke.
  function makeDab() {
    const r = radius * (Math.max(canvas.width, canvas.height) / 280);
    const size = Math.ceil(r * 2) + 2;
    const c = document.createElement('canvas');
    c.width = c.height = size;
    const g = c.getContext('2d');
    const grad = g.createRadialGradient(size / 2, size / 2, 0, size / 2, size / 2, r);
    const rgb = hexRgb(tool === 'eraser' ? PAPER : ink).join(',');
    grad.addColorStop(0, `rgba(${rgb},1)`);
    grad.addColorStop(0.45, `rgba(${rgb},0.85)`);
    grad.addColorStop(1, `rgba(${rgb},0)`);
    g.fillStyle = grad;
    g.fillRect(0, 0, size, size);
    dab = { canvas: c, half: size / 2, step: Math.max(1, r * 0.18) };
  }

  function stamp(x, y) {
    ctx.drawImage(dab.canvas, x - dab.half, y - dab.half);
  }

  function point(e) {
    const rect = canvas.getBoundingClientRect();
    return {
      x: (e.clientX - rect.left) * (canvas.width / rect.width),
      y: (e.clientY - rect.top) * (canvas.height / rect.height),
    };
  }

  function lineTo(p) {
    const dx = p.x - last.x, dy = p.y - last.y;
    const dist = Math.hypot(dx, dy);
    const n = Math.floor(dist / dab.step);
    for (let i = 1; i <= n; i++) stamp(last.x + (dx * i) / n, last.y + (dy * i) / n);
    if (n > 0) last = p;
  }

  function down(e) {
    if (e.button !== undefined && e.button > 0) return;
    e.preventDefault();
    canvas.focus({ preventScroll: true });
    try { canvas.setPointerCapture(e.pointerId); } catch { /* synthetic events */ }
    undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    if (undo.length > UNDO_DEPTH) undo.shift();
    if (!dab) makeDab();
    drawing = true;
    last = point(e);
    stamp(last.x, last.y);
    onStroke && onStroke();
  }

  function move(e) {
    if (!drawing) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) lineTo(point(ev));
    onStroke && onStroke();
  }

  function up() {
    if (!drawing) return;
    drawing = false;
    last = null;
    onEnd && onEnd();
  }

  canvas.addEventListener('pointerdown', down);
  canvas.addEventListener('pointermove', move);
  canvas.addEventListener('pointerup', up);
  canvas.addEventListener('pointercancel', up);
  canvas.addEventListener('lostpointercapture', up);
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());

  function resize() {
    const long = Math.max(shape.w, shape.h);
    canvas.width = Math.round((LONG_SIDE * shape.w) / long);
    canvas.height = Math.round((LONG_SIDE * shape.h) / long);
    canvas.style.aspectRatio = `${shape.w} / ${shape.h}`;
    undo.length = 0;
    dab = null;
    fillPaper();
  }
  resize();

  // The picture at the model's input size, as a canvas.
  function shrink() {
    // In steps of at most a half, which averages better than one big jump.
    let src = canvas;
    while (src.width / 2 >= shape.w * 1.5 && src.height / 2 >= shape.h * 1.5) {
      const half = document.createElement('canvas');
      half.width = Math.round(src.width / 2);
      half.height = Math.round(src.height / 2);
      const h = half.getContext('2d');
      h.imageSmoothingEnabled = true;
      h.imageSmoothingQuality = 'high';
      h.drawImage(src, 0, 0, half.width, half.height);
      src = half;
    }
    const out = document.createElement('canvas');
    out.width = shape.w;
    out.height = shape.h;
    const o = out.getContext('2d', { willReadFrequently: true });
    o.imageSmoothingEnabled = true;
    o.imageSmoothingQuality = 'high';
    o.drawImage(src, 0, 0, shape.w, shape.h);
    return out;
  }

  return {
    setRadius(r) { radius = r; dab = null; },
    setTool(t) { tool = t; dab = null; },
    setInk(colour) { ink = colour; dab = null; },
    get tool() { return tool; },
    get shape() { return { ...shape }; },
    // A new input shape: the pad takes its aspect and starts blank (the old drawing was
    // made for another model's input).
    setShape(next) {
      const changed = next.w !== shape.w || next.h !== shape.h || next.c !== shape.c;
      shape = { w: next.w, h: next.h, c: next.c };
      if (changed) resize();
      if (shape.c === 1) ink = '#ffffff';
      dab = null;
      return changed;
    },
    // Blank when no pixel of the model's view differs from the paper.
    isEmpty() {
      const small = shrink();
      const d = small.getContext('2d').getImageData(0, 0, small.width, small.height).data;
      const [r, g, b] = hexRgb(PAPER);
      for (let i = 0; i < d.length; i += 4) if (d[i] !== r || d[i + 1] !== g || d[i + 2] !== b) return false;
      return true;
    },
    clear() {
      undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
      fillPaper();
      onEnd && onEnd();
    },
    undo() {
      const img = undo.pop();
      if (!img) return false;
      if (img.width === canvas.width && img.height === canvas.height) ctx.putImageData(img, 0, 0);
      onEnd && onEnd();
      return true;
    },
    // Puts a picture (a dataset image, an upload) on the pad to draw over: gray for a
    // gray model, in colour for a colour one.
    load(image) {
      undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
      fillPaper();
      ctx.imageSmoothingEnabled = true;
      ctx.filter = shape.c === 1 ? 'grayscale(1)' : 'none';
      const w = image.naturalWidth || image.width, h = image.naturalHeight || image.height;
      const s = Math.min(canvas.width / w, canvas.height / h);
      ctx.drawImage(image, (canvas.width - w * s) / 2, (canvas.height - h * s) / 2, w * s, h * s);
      ctx.filter = 'none';
    },
    // The PNG the model gets: exactly its input's width and height.
    toBlob() {
      const out = shrink();
      return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
    },
  };
}

function hexRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// draw.js - the drawing pad for the 28x28 model: white ink on black like Fashion-MNIST,
// a soft round brush (a radial gradient stamped along the stroke, so lines have the
// blurred edges the network saw in training), an eraser, undo and clear. The pad is
// drawn large and shrunk to 28x28 in the browser, so what is sent is what the model
// sees, whatever the server's resizing would have done.

const SIDE = 28;
const UNDO_DEPTH = 25;

export function createPad(canvas, { onStroke, onEnd } = {}) {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  let radius = 22, tool = 'brush', drawing = false, last = null, dirty = false;
  let dab = null;
  const undo = [];

  function fillBlack() {
    ctx.globalCompositeOperation = 'source-over';
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  // One pre-rendered stamp per size and tool; stamping an image is much faster than
  // building a gradient for every point of the stroke.
  function makeDab() {
    const r = radius * (canvas.width / 280);
    const size = Math.ceil(r * 2) + 2;
    const c = document.createElement('canvas');
    c.width = c.height = size;
    const g = c.getContext('2d');
    const grad = g.createRadialGradient(size / 2, size / 2, 0, size / 2, size / 2, r);
    const rgb = tool === 'eraser' ? '0,0,0' : '255,255,255';
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
    dirty = true;
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

  fillBlack();

  return {
    setRadius(r) { radius = r; dab = null; },
    setTool(t) { tool = t; dab = null; },
    get tool() { return tool; },
    isEmpty() { return !dirty; },
    clear() {
      undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
      fillBlack();
      dirty = false;
      onEnd && onEnd();
    },
    undo() {
      const img = undo.pop();
      if (!img) return false;
      ctx.putImageData(img, 0, 0);
      onEnd && onEnd();
      return true;
    },
    // Puts a picture (a dataset image, an upload) on the pad, grayscale, to draw over.
    load(image) {
      undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
      fillBlack();
      ctx.imageSmoothingEnabled = true;
      ctx.filter = 'grayscale(1)';
      const w = image.naturalWidth || image.width, h = image.naturalHeight || image.height;
      const s = Math.min(canvas.width / w, canvas.height / h);
      ctx.drawImage(image, (canvas.width - w * s) / 2, (canvas.height - h * s) / 2, w * s, h * s);
      ctx.filter = 'none';
      dirty = true;
    },
    // The 28x28 PNG the model gets: shrunk in two steps, which averages better than
    // one big jump.
    toBlob() {
      const mid = document.createElement('canvas');
      mid.width = mid.height = SIDE * 4;
      const m = mid.getContext('2d');
      m.imageSmoothingEnabled = true;
      m.imageSmoothingQuality = 'high';
      m.drawImage(canvas, 0, 0, mid.width, mid.height);
      const out = document.createElement('canvas');
      out.width = out.height = SIDE;
      const o = out.getContext('2d');
      o.imageSmoothingEnabled = true;
      o.imageSmoothingQuality = 'high';
      o.drawImage(mid, 0, 0, SIDE, SIDE);
      return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
    },
  };
}

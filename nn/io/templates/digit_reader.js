"use strict";
// The digit reader of an exported network: the network's steps run in plain JavaScript on the
// embedded weights, and a drawing is prepared exactly as nn/data/preprocess.py prepares it.
// Globals for scripts and tests: predictPixels(array784) -> ten probabilities (one per class),
// preprocessImageData(rgba, width, height) -> {blank, pixels}, predictCanvas().

const MODEL = JSON.parse(document.getElementById("model-data").textContent);

function decodeFloat32(base64) {
  const bytes = atob(base64);
  const view = new DataView(new ArrayBuffer(bytes.length));
  for (let i = 0; i < bytes.length; i++) view.setUint8(i, bytes.charCodeAt(i));
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

const STEPS = MODEL.steps.map((step) => {
  const arrays = {};
  for (const [name, encoded] of Object.entries(step.arrays)) {
    arrays[name] = decodeFloat32(encoded);
  }
  return { kind: step.kind, attrs: step.attrs, shapes: step.shapes, arrays };
});

// ------------------------------------------------------------------ network (channels-last)
// A tensor is {data: Float32Array, shape: [h, w, c]} or {data, shape: [n_features]}.

function dense(x, step) {
  const w = step.arrays.weight;
  const b = step.arrays.bias;
  const [fanIn, fanOut] = step.shapes.weight;
  const out = new Float32Array(fanOut);
  const sums = new Float64Array(fanOut);
  for (let i = 0; i < fanIn; i++) {
    const xi = x.data[i];
    if (xi === 0) continue;
    const row = i * fanOut;
    for (let j = 0; j < fanOut; j++) sums[j] += xi * w[row + j];
  }
  for (let j = 0; j < fanOut; j++) out[j] = sums[j] + b[j];
  return { data: out, shape: [fanOut] };
}

function activation(x, step) {
  const d = x.data;
  const out = new Float32Array(d.length);
  const name = step.attrs.name;
  const slope = step.attrs.slope;
  for (let i = 0; i < d.length; i++) {
    const z = d[i];
    if (name === "sigmoid") out[i] = 1 / (1 + Math.exp(-z));
    else if (name === "tanh") out[i] = Math.tanh(z);
    else if (name === "relu") out[i] = z > 0 ? z : 0;
    else out[i] = z > 0 ? z : slope * z;
  }
  return { data: out, shape: x.shape };
}

function reshape(x, step) {
  return { data: x.data, shape: step.attrs.shape };
}

function conv2d(x, step) {
  const [h, w, c] = x.shape;
  const [k, , , f] = step.shapes.weight;
  const [top, , left] = step.attrs.pads;
  const stride = step.attrs.stride;
  const [oh, ow] = step.attrs.output_shape;
  const weight = step.arrays.weight;
  const bias = step.arrays.bias;
  const out = new Float32Array(oh * ow * f);
  const sums = new Float64Array(f);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let o = 0; o < f; o++) sums[o] = bias[o];
      for (let ky = 0; ky < k; ky++) {
        const iy = oy * stride + ky - top;
        if (iy < 0 || iy >= h) continue;
        for (let kx = 0; kx < k; kx++) {
          const ix = ox * stride + kx - left;
          if (ix < 0 || ix >= w) continue;
          const xBase = (iy * w + ix) * c;
          const wBase = (ky * k + kx) * c * f;
          for (let ci = 0; ci < c; ci++) {
            const v = x.data[xBase + ci];
            if (v === 0) continue;
            const wRow = wBase + ci * f;
            for (let o = 0; o < f; o++) sums[o] += v * weight[wRow + o];
          }
        }
      }
      const oBase = (oy * ow + ox) * f;
      for (let o = 0; o < f; o++) out[oBase + o] = sums[o];
    }
  }
  return { data: out, shape: [oh, ow, f] };
}

function pool(x, step) {
  const [h, w, c] = x.shape;
  const size = step.attrs.size;
  const stride = step.attrs.stride;
  const oh = Math.floor((h - size) / stride) + 1;
  const ow = Math.floor((w - size) / stride) + 1;
  const isMax = step.attrs.mode === "max";
  const out = new Float32Array(oh * ow * c);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let ci = 0; ci < c; ci++) {
        let acc = isMax ? -Infinity : 0;
        for (let ky = 0; ky < size; ky++) {
          for (let kx = 0; kx < size; kx++) {
            const v = x.data[((oy * stride + ky) * w + ox * stride + kx) * c + ci];
            if (isMax) acc = v > acc ? v : acc;
            else acc += v;
          }
        }
        out[(oy * ow + ox) * c + ci] = isMax ? acc : acc / (size * size);
      }
    }
  }
  return { data: out, shape: [oh, ow, c] };
}

function batchnorm(x, step) {
  // The engine's inference: (x - mean) * (1 / sqrt(var + epsilon)) * gamma + beta, in float32.
  const { gamma, beta, mean } = step.arrays;
  const c = gamma.length;
  const invStd = step.arrays.var.map((v) => Math.fround(1 / Math.fround(Math.sqrt(Math.fround(v + step.attrs.epsilon)))));
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const ch = i % c;
    out[i] = Math.fround(Math.fround(x.data[i] - mean[ch]) * invStd[ch]) * gamma[ch] + beta[ch];
  }
  return { data: out, shape: x.shape };
}

function flatten(x) {
  return { data: x.data, shape: [x.data.length] };
}

const STEP_FUNCTIONS = { dense, activation, reshape, conv2d, pool, batchnorm, flatten };

function softmax(logits) {
  let max = -Infinity;
  for (const v of logits) max = v > max ? v : max;
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

function predictPixels(pixels) {
  if (pixels.length !== MODEL.n_features) {
    throw new Error(`predictPixels needs ${MODEL.n_features} pixels, got ${pixels.length}`);
  }
  let x = { data: Float32Array.from(pixels), shape: [MODEL.n_features] };
  for (const step of STEPS) x = STEP_FUNCTIONS[step.kind](x, step);
  return softmax(x.data);
}

// ------------------------------------------------------------------ drawing preprocessing
// The same steps, thresholds and roundings as nn/data/preprocess.py (see that file's docstring).
const SIZE = 28;
const BOX = 20;
const CENTRE = 14.0;
const THRESHOLD = 0.05;

function roundHalfEven(v) {
  // Python's round() and NumPy's rint: halves go to the even neighbour.
  const floor = Math.floor(v);
  const rest = v - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

function greyFromRgba(rgba, count) {
  // Pillow's RGB -> L (ITU-R 601 luma in 16-bit fixed point), composited over black by alpha.
  const grey = new Uint8Array(count);
  const alpha = new Uint8Array(count);
  let aMin = 255;
  let aMax = 0;
  for (let i = 0; i < count; i++) {
    const p = 4 * i;
    grey[i] = (rgba[p] * 19595 + rgba[p + 1] * 38470 + rgba[p + 2] * 7471 + 0x8000) >> 16;
    alpha[i] = rgba[p + 3];
    aMin = Math.min(aMin, alpha[i]);
    aMax = Math.max(aMax, alpha[i]);
  }
  if (aMin === 255) return grey;
  const composited = new Uint8Array(count);
  let any = false;
  for (let i = 0; i < count; i++) {
    const t = grey[i] * alpha[i] + 128;
    composited[i] = (t + (t >> 8)) >> 8;
    any = any || composited[i] > 0;
  }
  if (aMax > 0 && aMin === 0 && !any) return alpha;
  return composited;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function removeBackground(grey, height, width) {
  const sample = [];
  const stepY = Math.max(1, Math.floor(height / 64));
  const stepX = Math.max(1, Math.floor(width / 64));
  for (let y = 0; y < height; y += stepY) {
    for (let x = 0; x < width; x += stepX) sample.push(grey[y * width + x]);
  }
  const mean = sample.reduce((a, b) => a + b, 0) / sample.length;
  const inverted = mean > 127.0;
  if (inverted) {
    for (let i = 0; i < sample.length; i++) sample[i] = 255 - sample[i];
  } else if (2 * sample.filter((v) => v !== 0).length < sample.length) {
    return grey;
  }
  const background = median(sample);
  const spread = median(sample.map((v) => Math.abs(v - background)));
  let gMin = 255;
  let gMax = 0;
  for (const v of grey) {
    gMin = Math.min(gMin, v);
    gMax = Math.max(gMax, v);
  }
  const peak = inverted ? 255 - gMin : gMax;
  const floor = Math.ceil(background + Math.max(7.5 * spread, 0.12 * (peak - background)));
  if (peak <= floor) return new Uint8Array(grey.length);
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    const level = inverted ? 255 - v : v;
    const stretched = Math.floor(((level - floor) * 255 + Math.floor((peak - floor) / 2)) / (peak - floor));
    lut[v] = Math.min(255, Math.max(0, stretched));
  }
  return grey.map((v) => lut[v]);
}

function boxCoefficients(inSize, outSize) {
  // Pillow's precompute_coeffs for the BOX filter (support 0.5), in double precision.
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 0.5 * filterScale;
  const bounds = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const weights = [];
    let total = 0;
    const reciprocal = 1.0 / filterScale;
    for (let x = 0; x < xmax; x++) {
      const arg = (x + xmin - center + 0.5) * reciprocal;
      const weight = arg > -0.5 && arg <= 0.5 ? 1.0 : 0.0;
      weights.push(weight);
      total += weight;
    }
    bounds.push({ xmin, weights: weights.map((wt) => (total !== 0 ? wt / total : wt)) });
  }
  return bounds;
}

function resizeBox(image, height, width, newHeight, newWidth) {
  // Pillow's two-pass resample of a float32 ("F") image: horizontal, then vertical, each a
  // double-precision sum stored as float32. Pillow 13 runs some tall crops vertical pass first;
  // the two orders differ by at most a float32 rounding, which moves a pixel by 1/255 (or the
  // centring by a pixel) only when a value lies on a rounding boundary.
  let current = image;
  let currentWidth = width;
  if (newWidth !== width) {
    const coeffs = boxCoefficients(width, newWidth);
    const out = new Float32Array(height * newWidth);
    for (let y = 0; y < height; y++) {
      for (let xx = 0; xx < newWidth; xx++) {
        const { xmin, weights } = coeffs[xx];
        let sum = 0;
        for (let x = 0; x < weights.length; x++) sum += current[y * width + xmin + x] * weights[x];
        out[y * newWidth + xx] = sum;
      }
    }
    current = out;
    currentWidth = newWidth;
  }
  if (newHeight !== height) {
    const coeffs = boxCoefficients(height, newHeight);
    const out = new Float32Array(newHeight * currentWidth);
    for (let yy = 0; yy < newHeight; yy++) {
      const { xmin, weights } = coeffs[yy];
      for (let x = 0; x < currentWidth; x++) {
        let sum = 0;
        for (let y = 0; y < weights.length; y++) sum += current[(xmin + y) * currentWidth + x] * weights[y];
        out[yy * currentWidth + x] = sum;
      }
    }
    current = out;
  }
  return current;
}

const f32 = Math.fround;

function pairwiseSum32(a, start, n) {
  // NumPy's float32 pairwise summation (what ndarray.sum does along a contiguous axis).
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res = f32(res + a[start + i]);
    return res;
  }
  if (n <= 128) {
    const r = Array.from(a.subarray(start, start + 8));
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = f32(r[j] + a[start + i + j]);
    }
    let res = f32(f32(f32(r[0] + r[1]) + f32(r[2] + r[3])) + f32(f32(r[4] + r[5]) + f32(r[6] + r[7])));
    for (; i < n; i++) res = f32(res + a[start + i]);
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return f32(pairwiseSum32(a, start, half) + pairwiseSum32(a, start + half, n - half));
}

function weightedIndexSum32(values) {
  // float32 dot product with 0, 1, 2, ... as NumPy's cblas_sdot does it for short vectors:
  // float32 products summed in double, the total rounded to float32.
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += f32(values[i] * i);
  return f32(sum);
}

function centreOfMass(image, height, width) {
  // The (row, column) centre of mass, with preprocess.py's float32 sums, so that a centre that
  // float32 rounding puts just below a half rounds the same way here.
  const total = pairwiseSum32(image, 0, height * width);
  const rowSums = new Float32Array(height);
  for (let y = 0; y < height; y++) rowSums[y] = pairwiseSum32(image, y * width, width);
  const colSums = new Float32Array(width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) colSums[x] = f32(colSums[x] + image[y * width + x]);
  }
  return [weightedIndexSum32(rowSums) / total, weightedIndexSum32(colSums) / total];
}

function preprocessImageData(rgba, width, height) {
  // RGBA bytes of a drawing (white ink on black) -> {blank, pixels: 784 floats in [0, 1]}.
  const count = width * height;
  const grey = removeBackground(greyFromRgba(rgba, count), height, width);
  const minInk = Math.max(5, Math.ceil(0.005 * count));
  const level = THRESHOLD * 255.0;
  let inkCount = 0;
  let r0 = height;
  let r1 = -1;
  let c0 = width;
  let c1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (grey[y * width + x] > level) {
        inkCount++;
        r0 = Math.min(r0, y);
        r1 = Math.max(r1, y);
        c0 = Math.min(c0, x);
        c1 = Math.max(c1, x);
      }
    }
  }
  if (inkCount < Math.max(1, minInk)) return { blank: true, pixels: null };
  const h = r1 + 1 - r0;
  const w = c1 + 1 - c0;
  let cropMax = 0;
  for (let y = r0; y <= r1; y++) {
    for (let x = c0; x <= c1; x++) cropMax = Math.max(cropMax, grey[y * width + x]);
  }
  const gain = Math.fround(255.0 / cropMax);
  const cropped = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) cropped[y * w + x] = grey[(y + r0) * width + x + c0] * gain;
  }
  const factor = BOX / Math.max(h, w);
  const newW = Math.max(1, roundHalfEven(w * factor));
  const newH = Math.max(1, roundHalfEven(h * factor));
  const scaled = resizeBox(cropped, h, w, newH, newW);
  for (let i = 0; i < scaled.length; i++) scaled[i] = Math.min(255, Math.max(0, scaled[i]));
  const [rowCentre, colCentre] = centreOfMass(scaled, newH, newW);
  const top = Math.min(Math.max(roundHalfEven(CENTRE - rowCentre), 0), SIZE - newH);
  const left = Math.min(Math.max(roundHalfEven(CENTRE - colCentre), 0), SIZE - newW);
  const pixels = new Float32Array(SIZE * SIZE);
  let any = false;
  for (let y = 0; y < newH; y++) {
    for (let x = 0; x < newW; x++) {
      const value = roundHalfEven(scaled[y * newW + x]);
      pixels[(y + top) * SIZE + x + left] = value / 255;
      any = any || value > 0;
    }
  }
  if (!any) return { blank: true, pixels: null };
  return { blank: false, pixels };
}

// ------------------------------------------------------------------ page
const canvas = document.getElementById("canvas");
const context = canvas.getContext("2d", { willReadFrequently: true });
const preview = document.getElementById("preview").getContext("2d");
const predictionElement = document.getElementById("prediction");
const bars = document.getElementById("bars");
let drawing = false;
let last = null;

function clearCanvas() {
  context.fillStyle = "#000000";
  context.fillRect(0, 0, canvas.width, canvas.height);
  preview.fillStyle = "#000000";
  preview.fillRect(0, 0, SIZE, SIZE);
  showProbabilities(null);
}

function showProbabilities(probabilities) {
  const rows = bars.children;
  if (probabilities === null) {
    predictionElement.textContent = "Draw a digit";
  } else {
    let best = 0;
    for (let i = 1; i < probabilities.length; i++) if (probabilities[i] > probabilities[best]) best = i;
    const sure = `${(100 * probabilities[best]).toFixed(1)} %`;
    predictionElement.textContent =
      MODEL.threshold !== null && MODEL.threshold !== undefined && probabilities[best] < MODEL.threshold
        ? `Not sure (best guess ${MODEL.labels[best]}, ${sure})`
        : `${MODEL.labels[best]} (${sure})`;
  }
  for (let i = 0; i < rows.length; i++) {
    const p = probabilities === null ? 0 : probabilities[i];
    rows[i].querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    rows[i].querySelector(".value").textContent = `${(100 * p).toFixed(1)}%`;
  }
}

function showPreview(pixels) {
  const image = preview.createImageData(SIZE, SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const v = Math.round(255 * pixels[i]);
    image.data.set([v, v, v, 255], 4 * i);
  }
  preview.putImageData(image, 0, 0);
}

function predictCanvas() {
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  const result = preprocessImageData(data, canvas.width, canvas.height);
  if (result.blank) {
    showProbabilities(null);
    return null;
  }
  showPreview(result.pixels);
  const probabilities = predictPixels(result.pixels);
  showProbabilities(probabilities);
  return probabilities;
}

function canvasPoint(event) {
  const rect = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * canvas.width) / rect.width,
    y: ((event.clientY - rect.top) * canvas.height) / rect.height,
  };
}

function strokeTo(point) {
  context.beginPath();
  context.moveTo(last.x, last.y);
  context.lineTo(point.x, point.y);
  context.stroke();
  last = point;
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  drawing = true;
  last = canvasPoint(event);
  context.strokeStyle = "#ffffff";
  context.lineWidth = 20;
  context.lineCap = "round";
  context.lineJoin = "round";
  strokeTo(last);
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  event.preventDefault();
  strokeTo(canvasPoint(event));
});
function endStroke(event) {
  if (!drawing) return;
  event.preventDefault();
  drawing = false;
  predictCanvas();
  canvas.dataset.strokes = String(Number(canvas.dataset.strokes) + 1);
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
document.getElementById("clear").addEventListener("click", () => {
  clearCanvas();
  canvas.dataset.strokes = "0";
});

for (const label of MODEL.labels) {
  const row = document.createElement("div");
  row.className = "bar";
  row.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
  row.querySelector(".label").textContent = label;
  bars.appendChild(row);
}
clearCanvas();
window.predictPixels = predictPixels;
window.preprocessImageData = preprocessImageData;
window.predictCanvas = predictCanvas;

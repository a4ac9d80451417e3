// app.js - starts the page: loads the models, then wires the panels, each of which owns
// one part of the page and listens to the store for the model and the image.

import { initModels } from './models.js';
import { initInput } from './input.js';
import { initPredict } from './predict.js';
import { initGradcam } from './gradcam.js';
import { initNetwork } from './network.js';
import { initTrain } from './train.js';
import { reportBug } from './store.js';

// The notebook's Grad-CAM example: test image 18, a bag.
const FIRST_SAMPLE = 18;

async function main() {
  // Panels subscribe before the first model event so none misses it.
  initPredict();
  initGradcam();
  initNetwork();
  const models = initModels();
  const input = initInput();
  initTrain({ onNewVersion: () => models.refresh() });
  const ok = await models.start();
  if (ok) await input.dataset.goto(FIRST_SAMPLE);
  document.documentElement.dataset.ready = 'true';
}

window.addEventListener('error', (e) => reportBug(e.error || e.message));
window.addEventListener('unhandledrejection', (e) => reportBug(e.reason));
main().catch(reportBug);

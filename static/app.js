// app.js - starts the page: loads the models, then wires the panels, each of which owns
// one part of the page and listens to the store for the model and the image. The view
// in the address (url.js) picks the model, the image and the layers to start with.

import { initModels } from './models.js';
import { initInput } from './input.js';
import { initPredict } from './predict.js';
import { initGradcam } from './gradcam.js';
import { initExplain } from './explain.js';
import { initLegend } from './legend.js';
import { initCompare } from './compare.js';
import { initNetwork } from './network.js';
import { initGraph } from './graph.js';
import { initAddModel } from './addmodel.js';
import { initChannels } from './channels.js';
import { initDetails } from './details.js';
import { initLayerBars } from './layerbars.js';
import { initWeights } from './weights.js';
import { initOutputs } from './outputs.js';
import { initTrain } from './train.js';
import { initInsight } from './insight.js';
import { initUrl, readView } from './url.js';
import { getJSON } from './api.js';
import { state, on, reportBug } from './store.js';

// The notebook's Grad-CAM example: test image 18, a bag.
const FIRST_SAMPLE = { split: 'test', index: 18 };

// A request that got no answer at all is said once, here, for the whole page; the
// panels only drop what they showed.
function initOffline() {
  const box = document.getElementById('net-error');
  on('offline', (e) => {
    box.textContent = `${e.message} The results below were cleared; they return with the next answer.`;
    box.hidden = false;
  });
  on('online', () => { box.hidden = true; });
}

async function main() {
  initOffline();
  // Panels subscribe before the first model event so none misses it.
  initPredict();
  const gradcam = initGradcam();
  initExplain();
  initLegend();
  const network = initNetwork();
  initGraph({ network });
  initChannels();
  initDetails();
  initLayerBars();
  initWeights();
  initOutputs();
  initCompare();
  const models = initModels();
  initAddModel({ models });
  const input = initInput();
  initTrain({ onNewVersion: () => models.refresh({ quiet: true }) });
  initInsight({
    // A test image picked in a view of the whole set becomes the image analysed above.
    analyse: async (index) => {
      const sel = input.dataset.selected;
      if (!sel || sel.split !== 'test') await input.dataset.setSplit('test');
      await input.dataset.goto(index);
      document.getElementById('explore').scrollIntoView({ behavior: 'smooth' });
    },
    onNewVersion: () => models.refresh({ quiet: true }),
  });
  const url = initUrl({ network, gradcam });
  const view = readView();
  try { state.dataset = await getJSON('v1/datasets/fashion-mnist'); } catch { /* the class names have a default */ }
  const ok = await models.start(view.model);
  if (ok) {
    const s = view.sample || FIRST_SAMPLE;
    if (s.split !== 'test') await input.dataset.setSplit(s.split);
    await input.dataset.goto(s.index);
    url.start(view);
  }
  document.documentElement.dataset.ready = 'true';
}

window.addEventListener('error', (e) => reportBug(e.error || e.message));
window.addEventListener('unhandledrejection', (e) => reportBug(e.reason));
main().catch(reportBug);

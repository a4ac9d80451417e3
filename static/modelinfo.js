// modelinfo.js - what the page needs to know about a model beyond its name: the input it
// takes (height, width, gray or colour), whether its classes are Fashion-MNIST's (only
// then can a dataset label be compared with its answer), and the words to name it by.
// Any ONNX file in the models folder is served too, so nothing here may assume the two
// built-in networks.

import { state } from './store.js';

// The data set's own class names, used when GET /v1/datasets/fashion-mnist is not known.
const FASHION = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

const TITLES = { fmnist: 'Fashion-MNIST', vgg16: 'VGG16' };
const NAMES = { fmnist: 'Fashion-MNIST CNN', vgg16: 'VGG16 (ImageNet)' };

export const modelTitle = (name) => TITLES[name] || name;
export const modelName = (name) => NAMES[name] || name;

export function datasetClasses() {
  return (state.dataset && state.dataset.classes) || FASHION;
}

export function testSetSize() {
  return state.dataset?.splits?.test?.size || 10000;
}

// {h, w, c} of the chosen model's input (the summary knows it; so does the list entry).
export function inputShape(model = state.model, summary = state.summary) {
  const s = (summary && summary.input_shape) || (model && model.input_shape) || [28, 28, 1];
  return { h: s[0] || 28, w: s[1] || 28, c: s[2] || 1 };
}

export const isColour = (shape = inputShape()) => shape.c === 3;

export function describeInput(shape = inputShape()) {
  return `${shape.w}×${shape.h} ${shape.c === 1 ? 'gray' : 'colour'}`;
}

export function classesOf(model = state.model, summary = state.summary) {
  return (summary && summary.classes) || (model && model.classes) || [];
}

// A model answers in Fashion-MNIST's classes when it has exactly those ten names, in
// that order: only then does "the label in the data set" mean something next to its guess.
export function isFashionModel(model = state.model, summary = state.summary) {
  const mine = classesOf(model, summary), ds = datasetClasses();
  return mine.length === ds.length && mine.every((c, i) => c === ds[i]);
}

export * from './init.js';
export * from './layers.js';
export * from './losses.js';
export * from './module.js';

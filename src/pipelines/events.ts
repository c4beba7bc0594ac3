import type { NDArray } from '../engine/ndarray.js';

/**
 * Progress of long operations, one union for every front end (CLI bars, server events, web page).
 */
export type ProgressEvent =
  | { status: 'load'; what: string }
  | { status: 'encode'; prompts: number }
  | { status: 'step'; stage: string; step: number; total: number; t: number; predOriginalSample?: NDArray }
  | { status: 'done'; stage: string };

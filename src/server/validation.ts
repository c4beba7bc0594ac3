import type { GenerateParams, ModelInfo, Thresholding } from './types.js';

/** Limits of `POST /v1/generate`; the OpenAPI document and the web page use the same numbers. */
export const LIMITS = {
  promptLength: 1000,
  stepsMax: 1000,
  guidanceMax: 100,
  numImagesMax: 8,
  sizeMin: 8,
  sizeMax: 1024,
  /** Seeds are 32-bit in the sampler's generator. */
  seedMax: 0xffffffff,
  /** Request bodies are a few hundred bytes; anything near this is abuse. */
  bodyBytes: 64 * 1024,
} as const;

/** Used where the loaded stage I's generation_config.json sets no steps / guidance scale. */
export const DEFAULTS = { steps: 50, guidance_scale: 7, num_images: 1 } as const;

/** The defaults a request gets: stage I's generation_config.json, else `DEFAULTS`. */
export function requestDefaults(models: readonly ModelInfo[]): { steps: number; guidance_scale: number } {
  const base = models.find((m) => m.stage === 'base');
  return {
    steps: base?.steps ?? DEFAULTS.steps,
    guidance_scale: base?.guidance_scale ?? DEFAULTS.guidance_scale,
  };
}

export const THRESHOLDINGS: readonly Thresholding[] = ['dynamic', 'static', 'none'];

const FIELDS = new Set([
  'prompt',
  'negative_prompt',
  'seed',
  'steps',
  'guidance_scale',
  'thresholding',
  'size',
  'num_images',
]);

/** A request the client must fix; `field` is named in the 400 answer. */
export class ValidationError extends Error {
  constructor(
    readonly field: string | null,
    message: string,
  ) {
    super(message);
    this.name = 'ValidationError';
  }
}

function integer(body: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  // JSON has no NaN/Infinity; strings such as "12" are refused rather than coerced so that a client
  // bug is seen at once instead of half-working.
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new ValidationError(field, `${field} must be an integer, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw new ValidationError(field, `${field} must be in ${min}..${max}, got ${v}`);
  return v;
}

function text(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ValidationError(field, `${field} must be a string`);
  if (v.length > LIMITS.promptLength)
    throw new ValidationError(field, `${field} is ${v.length} characters; at most ${LIMITS.promptLength}`);
  return v;
}

/**
 * Check every field of a generate request (type, range, length, unknown names) and fill defaults.
 * `sizes` are the output sides the loaded cascade can produce, when known.
 */
export function validateGenerate(
  body: unknown,
  o: {
    sizes?: readonly number[];
    randomSeed?: () => number;
    /** The loaded model's (`requestDefaults`); default `DEFAULTS`. */
    defaults?: { steps: number; guidance_scale: number };
  } = {},
): GenerateParams {
  const d = o.defaults ?? DEFAULTS;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ValidationError(null, 'the request body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!FIELDS.has(k)) throw new ValidationError(k, `unknown field ${k}`);

  const prompt = text(b, 'prompt');
  if (prompt === undefined) throw new ValidationError('prompt', 'prompt is required');
  if (prompt.trim() === '') throw new ValidationError('prompt', 'prompt must not be empty');
  const negative = text(b, 'negative_prompt') ?? '';

  const g = b.guidance_scale;
  let guidance: number = d.guidance_scale;
  if (g !== undefined && g !== null) {
    if (typeof g !== 'number' || !Number.isFinite(g))
      throw new ValidationError('guidance_scale', `guidance_scale must be a finite number`);
    if (g < 0 || g > LIMITS.guidanceMax)
      throw new ValidationError(
        'guidance_scale',
        `guidance_scale must be in [0, ${LIMITS.guidanceMax}], got ${g}`,
      );
    guidance = g;
  }

  const th = b.thresholding;
  if (th !== undefined && th !== null && !THRESHOLDINGS.includes(th as Thresholding))
    throw new ValidationError('thresholding', `thresholding must be one of ${THRESHOLDINGS.join(', ')}`);

  const size = integer(b, 'size', LIMITS.sizeMin, LIMITS.sizeMax);
  if (size !== undefined && o.sizes?.length && !o.sizes.includes(size))
    throw new ValidationError(
      'size',
      `size ${size} is not produced by the loaded model; use ${o.sizes.join(' or ')}`,
    );

  const params: GenerateParams = {
    prompt,
    negative_prompt: negative,
    seed: integer(b, 'seed', 0, LIMITS.seedMax) ?? (o.randomSeed ?? randomSeed)(),
    steps: integer(b, 'steps', 1, LIMITS.stepsMax) ?? d.steps,
    guidance_scale: guidance,
    num_images: integer(b, 'num_images', 1, LIMITS.numImagesMax) ?? DEFAULTS.num_images,
  };
  if (th !== undefined && th !== null) params.thresholding = th as Thresholding;
  if (size !== undefined) params.size = size;
  return params;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

/** JSON Schema of the request body (for the OpenAPI document; validation itself is `validateGenerate`). */
export function generateRequestSchema(): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['prompt'],
    properties: {
      prompt: { type: 'string', minLength: 1, maxLength: LIMITS.promptLength },
      negative_prompt: { type: 'string', maxLength: LIMITS.promptLength, default: '' },
      seed: {
        type: 'integer',
        minimum: 0,
        maximum: LIMITS.seedMax,
        description: 'random when absent (echoed in the job)',
      },
      steps: {
        type: 'integer',
        minimum: 1,
        maximum: LIMITS.stepsMax,
        description: `stage-I denoising steps; absent: the stage-I model's default (its generation_config.json, see /v1/models), else ${DEFAULTS.steps} (echoed in the job)`,
      },
      guidance_scale: {
        type: 'number',
        minimum: 0,
        maximum: LIMITS.guidanceMax,
        description: `stage-I classifier-free guidance scale; absent: the model's default, else ${DEFAULTS.guidance_scale} (echoed in the job)`,
      },
      thresholding: {
        type: 'string',
        enum: [...THRESHOLDINGS],
        description: "absent: the model's scheduler config (dynamic for IF)",
      },
      size: {
        type: 'integer',
        minimum: LIMITS.sizeMin,
        maximum: LIMITS.sizeMax,
        description: 'output side in pixels; must be one the loaded cascade produces (see /v1/models)',
      },
      num_images: { type: 'integer', minimum: 1, maximum: LIMITS.numImagesMax, default: DEFAULTS.num_images },
    },
  };
}

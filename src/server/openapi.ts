import { VERSION } from '../cli/version.js';
import { generateRequestSchema, LIMITS } from './validation.js';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });
const jobIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$' },
};

/** OpenAPI 3.1 description of every route `buildApp` serves. */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'imagen-ts server',
      version: VERSION,
      description:
        'Text-to-image jobs (Imagen / DeepFloyd IF cascade). Submit with POST /v1/generate, follow with ' +
        'GET /v1/jobs/{id} or the server-sent events at /v1/jobs/{id}/events, fetch PNGs from the image URLs.',
    },
    paths: {
      '/v1/generate': {
        post: {
          summary: 'Queue a generation job',
          requestBody: { required: true, content: json(ref('GenerateRequest')) },
          responses: {
            '202': {
              description: 'accepted; follow the job at `url`',
              headers: { Location: { schema: { type: 'string' } } },
              content: json({
                type: 'object',
                required: ['id', 'status', 'url'],
                properties: { id: { type: 'string' }, status: { const: 'queued' }, url: { type: 'string' } },
              }),
            },
            '400': errorResponse(
              `invalid body: malformed JSON, larger than ${LIMITS.bodyBytes} bytes, unknown field, wrong type or range; \`field\` names the field`,
            ),
            '415': errorResponse('the body is not application/json'),
            '429': {
              description: 'the queue is full; retry after the Retry-After seconds',
              headers: { 'Retry-After': { schema: { type: 'integer' } } },
              content: json(ref('Error')),
            },
          },
        },
      },
      '/v1/jobs/{id}': {
        parameters: [jobIdParam],
        get: {
          summary: 'Job status, progress, result image URLs and error',
          responses: {
            '200': { description: 'the job', content: json(ref('Job')) },
            '404': errorResponse('no such job'),
          },
        },
        delete: {
          summary: 'Cancel a job: a queued job ends at once, a running one at its next sampling step',
          responses: {
            '200': {
              description: 'the job after the request (a running job may still say running)',
              content: json(ref('Job')),
            },
            '404': errorResponse('no such job'),
          },
        },
      },
      '/v1/jobs/{id}/events': {
        parameters: [jobIdParam],
        get: {
          summary: 'Server-sent events of one job',
          description:
            'Events: `status` (a Job, first the current state, then on every transition), `progress` ' +
            '({stage, step, total} every step), `preview` ({stage, step, total, image: PNG data URL of the ' +
            'predicted clean image x̂0, about ten per stage}; dropped for clients that do not keep up), and ' +
            '`done` (the final Job) after which the server closes the stream.',
          responses: {
            '200': {
              description: 'the event stream',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            '404': errorResponse('no such job'),
          },
        },
      },
      '/v1/jobs/{id}/images/{name}': {
        parameters: [
          jobIdParam,
          { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9]+\\.png$' } },
        ],
        get: {
          summary: "A finished job's image",
          responses: {
            '200': {
              description: 'PNG',
              content: { 'image/png': { schema: { type: 'string', contentMediaType: 'image/png' } } },
            },
            '404': errorResponse('no such image (unknown job, not done, or index out of range)'),
          },
        },
      },
      '/v1/models': {
        get: {
          summary: 'The loaded cascade (stage I and optional stage II) and the sizes it produces',
          responses: {
            '200': {
              description: 'models',
              content: json({
                type: 'object',
                properties: { models: { type: 'array', items: ref('Model') } },
              }),
            },
          },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } },
        },
      },
      '/v1/browser': {
        get: {
          summary:
            "Whether browser mode is offered (the page runs the server's cascade itself with onnxruntime-web)",
          responses: {
            '200': {
              description:
                '`{available: true, model_files, sr_model_files, ort, module}` (sr_model_files only with a stage II) or `{available: false, reason}`',
              content: json({
                type: 'object',
                required: ['available'],
                properties: {
                  available: { type: 'boolean' },
                  reason: { type: 'string' },
                  model_files: { type: 'string' },
                  sr_model_files: { type: 'string' },
                  ort: { type: 'string' },
                  module: { type: 'string' },
                },
              }),
            },
          },
        },
      },
      '/v1/browser/model/{path}': {
        get: {
          summary:
            "Browser mode: one of the local stage-I folder's files (a fixed list: configs, weights, tokenizer)",
          parameters: [{ name: 'path', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description: 'the file',
              content: { 'application/octet-stream': { schema: { type: 'string' } } },
            },
            '404': errorResponse('not a served model file, or browser mode is off'),
          },
        },
      },
      '/v1/browser/sr/{path}': {
        get: {
          summary:
            "Browser mode: one of the local stage-II folder's files (a fixed list: configs, weights, tokenizer, image noising scheduler)",
          parameters: [{ name: 'path', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': {
              description: 'the file',
              content: { 'application/octet-stream': { schema: { type: 'string' } } },
            },
            '404': errorResponse('not a served model file, no stage II, or browser mode is off'),
          },
        },
      },
      '/browser.js': {
        get: {
          summary: "Browser mode: the page-side pipeline (this project's engine, bundled once)",
          responses: {
            '200': {
              description: 'JavaScript module',
              content: { 'text/javascript': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/ort/{file}': {
        get: {
          summary: "Browser mode: onnxruntime-web's module and .wasm files, served locally",
          parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            '200': { description: 'JavaScript or WebAssembly' },
            '404': errorResponse('no such file'),
          },
        },
      },
      '/': {
        get: {
          summary: 'The web page (prompt, parameters, live preview, gallery)',
          responses: {
            '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } },
          },
        },
      },
    },
    components: {
      schemas: {
        GenerateRequest: generateRequestSchema(),
        Progress: {
          type: 'object',
          required: ['stage', 'step', 'total'],
          properties: { stage: { type: 'string' }, step: { type: 'integer' }, total: { type: 'integer' } },
        },
        Job: {
          type: 'object',
          required: ['id', 'status', 'params', 'progress', 'images', 'error', 'created_at'],
          properties: {
            id: { type: 'string' },
            status: { enum: ['queued', 'running', 'done', 'failed', 'cancelled'] },
            params: ref('GenerateRequest'),
            progress: { oneOf: [ref('Progress'), { type: 'null' }] },
            images: {
              type: 'array',
              items: { type: 'string' },
              description: 'image URLs, relative to the server',
            },
            error: { type: ['string', 'null'] },
            created_at: { type: 'string', format: 'date-time' },
            started_at: { type: ['string', 'null'], format: 'date-time' },
            finished_at: { type: ['string', 'null'], format: 'date-time' },
            worker: { type: ['string', 'null'], description: '`local` or the name of the worker process' },
          },
        },
        Model: {
          type: 'object',
          required: ['id', 'stage', 'size', 'text_encoder'],
          properties: {
            id: { type: 'string' },
            stage: { enum: ['base', 'sr'] },
            size: { type: 'integer' },
            text_encoder: { type: 'boolean' },
            steps: {
              type: 'integer',
              description: "this stage's default steps (its generation_config.json)",
            },
            guidance_scale: { type: 'number', description: "this stage's default guidance scale" },
          },
        },
        Error: {
          type: 'object',
          required: ['error', 'message'],
          properties: {
            error: { type: 'string' },
            field: { type: ['string', 'null'], description: 'the request field at fault, when there is one' },
            message: { type: 'string' },
          },
        },
      },
    },
  };
}

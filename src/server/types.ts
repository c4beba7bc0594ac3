/** Wire types shared by the HTTP routes, both job queues, the worker and the web page. */

export type Thresholding = 'dynamic' | 'static' | 'none';

/** A validated `POST /v1/generate` body, defaults filled in. */
export interface GenerateParams {
  prompt: string;
  negative_prompt: string;
  seed: number;
  steps: number;
  guidance_scale: number;
  /** Absent: the model's scheduler config decides (dynamic for IF). */
  thresholding?: Thresholding;
  /** Output side in pixels; absent: the largest the loaded cascade produces. */
  size?: number;
  num_images: number;
}

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['done', 'failed', 'cancelled']);

export interface JobProgress {
  stage: string;
  step: number;
  total: number;
}

/** What `GET /v1/jobs/:id` returns. */
export interface JobInfo {
  id: string;
  status: JobStatus;
  params: GenerateParams;
  progress: JobProgress | null;
  /** Image URLs, relative to the server (`/v1/jobs/:id/images/0.png`); empty until done. */
  images: string[];
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** Which worker ran (or runs) the job: `local` in-process, else the worker's name. */
  worker: string | null;
}

/** Events a job subscriber receives (relayed to SSE clients one to one). */
export type JobEvent =
  | { type: 'status'; job: JobInfo }
  | { type: 'progress'; progress: JobProgress }
  | { type: 'preview'; stage: string; step: number; total: number; image: string };

export interface ModelInfo {
  id: string;
  stage: 'base' | 'sr';
  /** Output side of this stage in pixels. */
  size: number;
  text_encoder: boolean;
  /** Sampling defaults of this stage from its generation_config.json (when it gives a step count). */
  steps?: number;
  guidance_scale?: number;
}

export function imageUrls(id: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `/v1/jobs/${id}/images/${i}.png`);
}

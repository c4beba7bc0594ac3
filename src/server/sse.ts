import type { ServerResponse } from 'node:http';

/** Bytes buffered for a slow client above which previews (not status/progress) are dropped. */
const PREVIEW_BACKLOG_BYTES = 1 << 20;

/**
 * One server-sent-events stream on a raw response. It owns nothing but the socket: `close()` (or
 * the client leaving) runs the `onClose` callbacks once, which is where subscriptions are removed.
 */
export class SseStream {
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly closers: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    heartbeatMs = 15_000,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Reverse proxies (nginx) would otherwise buffer the stream and the page would see nothing.
      'x-accel-buffering': 'no',
    });
    res.write(': stream open\n\n');
    // Comments keep idle connections from being cut by proxies and reveal dead peers.
    this.heartbeat = setInterval(() => this.write(': ping\n\n'), heartbeatMs);
    this.heartbeat.unref();
    res.on('close', () => this.close());
    res.on('error', () => this.close());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closers.push(fn);
  }

  /** Send one event; `droppable` events are skipped while the client is not keeping up. */
  send(event: string, data: unknown, droppable = false): void {
    if (droppable && this.res.writableLength > PREVIEW_BACKLOG_BYTES) return;
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const fn of this.closers.splice(0)) fn();
    if (!this.res.writableEnded) this.res.end();
  }

  private write(chunk: string): void {
    if (this.closed || this.res.writableEnded || this.res.destroyed) return;
    this.res.write(chunk);
  }
}

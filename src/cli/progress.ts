import cliProgress from 'cli-progress';

export interface ProgressOptions {
  quiet?: boolean;
}

/** A progress bar on stderr; silent with --quiet or when stderr is not a terminal. */
export class ProgressBar {
  private bar: cliProgress.SingleBar | undefined;

  constructor(
    private readonly label: string,
    format: string,
    o: ProgressOptions = {},
  ) {
    if (!o.quiet && process.stderr.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {value}/{total} ${format} | ETA {eta_formatted}`,
          stream: process.stderr,
          hideCursor: true,
          etaBuffer: 20,
          barsize: 24,
        },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  start(total: number, value = 0, payload: Record<string, unknown> = {}): void {
    this.bar?.start(total, value, payload);
  }

  update(value: number, payload: Record<string, unknown> = {}): void {
    this.bar?.update(value, payload);
  }

  stop(): void {
    this.bar?.stop();
  }

  get active(): boolean {
    return this.bar !== undefined;
  }

  get name(): string {
    return this.label;
  }
}

/** Messages for humans go to stderr unless --quiet (stdout stays clean for --json). */
export function logger(quiet: boolean | undefined): (msg: string) => void {
  return quiet ? () => {} : (msg) => process.stderr.write(`${msg}\n`);
}

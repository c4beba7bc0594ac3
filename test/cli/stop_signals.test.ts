/**
 * Ctrl-C under `npx` can arrive twice for one keypress: the first signal asks training to stop and
 * save, a repeat within 1.5 s is ignored, a later one aborts. (`imagen train --stage text-encoder`
 * exited on the repeat, losing the encoder it was about to write, before it shared this helper.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { installStopSignals } from '../../src/cli/stop_signals.js';

afterEach(() => vi.restoreAllMocks());

describe('installStopSignals', () => {
  it('stops on the first signal, ignores a quick repeat, aborts on a later one, and unregisters', () => {
    const handlers = new Map<string, () => void>();
    vi.spyOn(process, 'on').mockImplementation(((ev: string, fn: () => void) => {
      handlers.set(ev, fn);
      return process;
    }) as typeof process.on);
    const off = vi.spyOn(process, 'off').mockImplementation((() => process) as typeof process.off);
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    let now = 1_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const said: string[] = [];
    const s = installStopSignals((m) => said.push(m), 'saving');
    expect(s.stop.stop).toBe(false);
    handlers.get('SIGINT')!();
    expect(s.stop.stop).toBe(true);
    expect(said).toEqual(['\nSIGINT: saving']);
    now += 200;
    handlers.get('SIGTERM')!();
    expect(exit).not.toHaveBeenCalled();
    now += 2000;
    handlers.get('SIGINT')!();
    expect(exit).toHaveBeenCalledWith(130);
    s.dispose();
    expect(off.mock.calls.map((c) => c[0]).sort()).toEqual(['SIGINT', 'SIGTERM']);
  });
});

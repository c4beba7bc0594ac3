/** A stop request set by Ctrl-C / SIGTERM, for loops that finish their step and save first. */
export interface StopSignals {
  readonly stop: { stop: boolean };
  /** Remove the handlers (call in `finally`). */
  dispose(): void;
}

/**
 * The first SIGINT/SIGTERM sets `stop.stop` and says `message`; a later one aborts (exit 130).
 * `npx`/`npm exec` forward the signal they get, and a terminal's Ctrl-C reaches the whole process
 * group: one keypress can arrive twice, so only a signal more than 1.5 s after the first aborts.
 */
export function installStopSignals(say: (m: string) => void, message: string): StopSignals {
  const stop = { stop: false };
  let firstSignalAt = 0;
  const onSignal = (sig: string) => {
    if (stop.stop) {
      if (Date.now() - firstSignalAt > 1500) process.exit(130);
      return;
    }
    firstSignalAt = Date.now();
    stop.stop = true;
    say(`\n${sig}: ${message}`);
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  return {
    stop,
    dispose: () => {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
    },
  };
}

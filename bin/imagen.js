#!/usr/bin/env node
// The CLI runs from the TypeScript sources through tsx, so a fresh `npm ci` needs no build step.
import { register } from 'tsx/esm/api';

register();
// `imagen … | head` closes the pipe early: that is not an error worth a stack trace.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);

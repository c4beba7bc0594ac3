/**
 * Export the latest checkpoint of a running (or stopped) `imagen train` run as a pipeline folder,
 * without interrupting it: what the learning-curve evaluations in training/README.md use.
 *
 *   npx tsx training/snapshot.ts RUN_DIR DEST_DIR
 */
import { exportCheckpoint } from '../src/platform/node/train_run.js';

const [run, dest] = process.argv.slice(2);
if (!run || !dest) {
  console.error('usage: snapshot.ts RUN_DIR DEST_DIR');
  process.exit(2);
}
const { step } = await exportCheckpoint(run, dest);
console.log(JSON.stringify({ run, dest, step }));

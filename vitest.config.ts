import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ONNX Runtime uses both cores inside one test file; more workers only thrash.
    pool: 'forks',
    maxWorkers: 2,
  },
});

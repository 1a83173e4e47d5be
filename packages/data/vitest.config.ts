import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // One GPU device per test file; files run in forked workers, two at most (2-core machines).
    pool: 'forks',
    maxWorkers: 2,
  },
});

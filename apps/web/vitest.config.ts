import { defineConfig } from 'vitest/config';

// The browser tests start the CLI's server and headless Chromium: one file at a time, with room for the
// attacks on the software drivers.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});

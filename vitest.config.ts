import { defineConfig } from 'vitest/config';

// One run over every package's tests (each package's own vitest.config.ts applies to its files).
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'apps/*/vitest.config.ts'],
    // Two cores: at most two test files at once, each with its own GPU device.
    maxWorkers: 2,
  },
});

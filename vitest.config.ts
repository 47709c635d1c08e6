import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Two cores: spawned CLIs and HTTPS servers run beside the workers.
    maxWorkers: 2,
  },
});

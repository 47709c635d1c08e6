import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The control-plane suite has its own command (npm run test:e2e) and needs Go-built binaries.
    exclude: ['test/control-plane/**', 'node_modules/**'],
    globalSetup: ['test/support/setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Two cores: spawned CLIs and HTTPS servers run beside the workers.
    maxWorkers: 2,
  },
});

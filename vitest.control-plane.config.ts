import { defineConfig } from 'vitest/config';

/**
 * The control-plane suite (`npm run test:e2e`): real etcd, kube-apiserver, kube-controller-manager,
 * kubectl and helm, built from source by `npm run cluster:build`. One control plane serves every
 * file, one file at a time.
 */
export default defineConfig({
  test: {
    include: ['test/control-plane/**/*.test.ts'],
    globalSetup: ['test/control-plane/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // starts (or reuses) the local Kafka broker once per run; see infra/kafka.ts
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // 2 cores, and integration tests share one broker
    fileParallelism: false,
  },
});

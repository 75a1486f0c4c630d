import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The conformance comparison (npm run test:conformance) stays out of the default run until an
    // intermittent stall it found is understood: see test/conformance/conformance.test.ts.
    exclude: process.env.CONFORMANCE ? [] : ['test/conformance/**'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Integration tests start real servers on port 0; files run in parallel on the two cores.
    pool: 'forks',
  },
});

import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Two projects: `edge` runs inside workerd through the Workers Vitest integration; `node` runs the
// relay, the local stack and end-to-end tests in Node against real sockets and a real Postgres.
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          // A function so that the Postgres started by test/edge/pg-setup.ts (globalSetup) reaches
          // the Worker as DATABASE_URL / NEON_WS_PROXY, as `npm start` passes them to wrangler dev.
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                AUTH_SECRET: "test-secret-0123456789abcdef",
                DATABASE_URL: inject("edgePgUrl"),
                NEON_WS_PROXY: inject("edgePgProxy"),
              },
            },
          })),
        ],
        test: {
          name: "edge",
          include: ["test/edge/**/*.test.ts"],
          globalSetup: ["test/edge/pg-setup.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // End-to-end tests start real processes on fixed resources; run files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});

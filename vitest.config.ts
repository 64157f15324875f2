import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Three projects, one per layer of the test pyramid:
// - `unit`: the pure layers (edge/protocol, edge/domain) in plain Node, in parallel, no runtime;
// - `edge`: the fleet object and the Worker inside workerd through the Workers Vitest integration;
// - `node`: the relay, the Postgres code, the local stack and end-to-end tests in Node against real
//   sockets, a real Postgres, wrangler dev and Chromium.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/domain/**/*.test.ts", "test/protocol/**/*.test.ts"],
          environment: "node",
          testTimeout: 20_000,
        },
      },
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
          // pg-setup: a real Postgres; jwks-setup: a JWKS server for the identity-provider tests.
          globalSetup: ["test/edge/pg-setup.ts", "test/edge/jwks-setup.ts"],
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

/**
 * `npm start [-- --fleet demo --drones 5 --port 8787 --rate 1]`: the whole local stack with only
 * Node installed. Postgres is embedded PGlite (files in .data/pglite) unless DATABASE_URL is set;
 * wrangler state persists in .data/wrangler. Ctrl-C or SIGTERM stops everything; if a child dies
 * on its own, the launcher says which and stops the rest with exit status 1.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "./dev-vars";
import { startStack, type ChildName, type Stack } from "./stack";

const USAGE = `Usage: npm start [-- --fleet demo --drones 5 --port 8787 --rate 1]

  --fleet F      fleet the simulated relay serves (default demo)
  --drones N     simulated drones (default 5)
  --port P       edge port on 127.0.0.1 (default 8787; 0 picks a free one)
  --rate HZ      telemetry per drone per second, 1..10 (default 1)
  --no-relay     start without the relay
  -h, --help     show this help

Environment: DATABASE_URL uses that Postgres instead of embedded PGlite; AUTH_SECRET overrides .dev.vars.`;

function fail(message: string): never {
  process.stderr.write(`start: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        fleet: { type: "string", default: "demo" },
        drones: { type: "string", default: "5" },
        port: { type: "string", default: "8787" },
        rate: { type: "string", default: "1" },
        "no-relay": { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const drones = Number(values.drones);
  const port = Number(values.port);
  const rate = Number(values.rate);
  if (!Number.isInteger(drones) || drones < 1 || drones > 10_000) fail(`bad --drones "${values.drones}"`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port "${values.port}"`);
  // The simulated relay accepts 1..10 Hz per drone.
  if (!Number.isFinite(rate) || rate < 1 || rate > 10) fail(`bad --rate "${values.rate}" (Hz per drone, 1..10)`);
  return { fleet: values.fleet, drones, port, rate, relay: !values["no-relay"] };
}

async function main(): Promise<void> {
  const args = parse();
  let stack: Stack | undefined;
  let shuttingDown = false;
  const starting = new AbortController();

  const shutdown = async (code: number, why: string) => {
    if (!stack) {
      // Still starting. A signal aborts the start (startStack stops what it started, then rejects);
      // a child dying now makes startStack reject by itself, with that child's output.
      if (code === 0 && !starting.signal.aborted) {
        process.stderr.write(`\n[stack] ${why}; stopping…\n`);
        starting.abort();
      }
      return;
    }
    if (shuttingDown) return;
    shuttingDown = true;
    process.stderr.write(`\n[stack] ${why}; stopping…\n`);
    // A second Ctrl-C while stopping is answered by the kill escalation inside stop() (≤ 5 s).
    try {
      await stack.stop();
    } finally {
      process.stderr.write("[stack] stopped\n");
      process.exit(code);
    }
  };
  process.on("SIGINT", () => void shutdown(0, "SIGINT"));
  process.on("SIGTERM", () => void shutdown(0, "SIGTERM"));
  process.on("SIGHUP", () => void shutdown(0, "SIGHUP"));

  try {
    stack = await startStack({
      ...args,
      ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
      pgliteDir: resolve(REPO_ROOT, ".data/pglite"),
      persistTo: resolve(REPO_ROOT, ".data/wrangler"),
      signal: starting.signal,
      onUnexpectedExit: (child: ChildName, code, signal) =>
        void shutdown(1, `${child === "edge" ? "the edge (wrangler dev)" : "the relay"} exited unexpectedly (${signal ?? `code ${code}`})`),
    });
  } catch (err) {
    if (starting.signal.aborted) {
      process.stderr.write("[stack] stopped\n");
      process.exit(0);
    }
    process.stderr.write(`[stack] failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (starting.signal.aborted) return void shutdown(0, "stopping as asked during start-up");

  const redacted = stack.databaseUrl.replace(/(\/\/[^:/@]+):[^@]*@/, "$1:***@");
  process.stdout.write(
    [
      "",
      "Local stack is up.",
      `  Edge:        ${stack.edgeUrl}   (GET /health, /v1/fleets/${stack.fleet}/status)`,
      `  Dashboard:   ${stack.dashboardUrl}`,
      `  WebSocket:   ${stack.wsUrl}?access_token=<token>`,
      `  Postgres:    ${redacted}${stack.databaseKind === "pglite" ? "  (embedded PGlite, .data/pglite)" : ""}`,
      `  Relay:       ${args.relay ? `sim, ${args.drones} drones at ${args.rate} Hz, fleet ${stack.fleet}` : "not started"}`,
      `  Operator token (24 h):`,
      `    ${stack.tokens.operator}`,
      `  Admin token (24 h):`,
      `    ${stack.tokens.admin}`,
      "  More tokens: npm run token -- --fleet F --role viewer|operator|admin|relay",
      "  Ctrl-C stops everything.",
      "",
    ].join("\n") + "\n",
  );
}

void main();

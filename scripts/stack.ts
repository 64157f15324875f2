/**
 * The whole local stack, programmatically: database (PGlite or DATABASE_URL), the WebSocket → TCP
 * proxy the Neon driver needs, migrations, the edge under `wrangler dev`, the relay with a simulated
 * fleet, and a driver that fires the cron triggers on schedule. Used by `npm start` (scripts/start.ts)
 * and the end-to-end tests.
 *
 * Children (wrangler → workerd, relay) run in their own process groups (`detached`), so stopping
 * kills whole groups (SIGTERM, then SIGKILL after 5 s) and no workerd outlives the stack; a terminal
 * Ctrl-C reaches only the launcher, which then shuts everything down in order.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { signToken, type Role } from "../edge/worker/auth";
import { FLEET_ID_RE } from "../edge/protocol";
import { parseDatabaseUrl, runMigrations, startDatabase, type Database } from "./db";
import { readDevVars, REPO_ROOT, resolveAuthSecret } from "./dev-vars";
import { isLoopbackHost, startWsProxy, type WsProxy } from "./wsproxy";

export type ChildName = "edge" | "relay";

export interface StackOptions {
  /** Fleet the relay serves and the tokens grant (default "demo"). */
  fleet?: string;
  /** Simulated drones (default 5). */
  drones?: number;
  /** Telemetry rate per drone, Hz (default 1). */
  rate?: number;
  /** Edge port; 0 (default) picks a free one. */
  port?: number;
  /** Postgres to use instead of embedded PGlite. */
  databaseUrl?: string;
  /** PGlite data directory (default .data/pglite). */
  pgliteDir?: string;
  /** wrangler's --persist-to directory; default a temporary directory removed by stop(). */
  persistTo?: string;
  /** Token signing secret; default env AUTH_SECRET, else .dev.vars (what wrangler dev reads). */
  authSecret?: string;
  /** Start the relay (default true). */
  relay?: boolean;
  /** Base URL the relay connects to instead of the edge itself (the chaos run puts a fault proxy
   * in between, chaos/fault-proxy.ts). */
  relayEdgeUrl?: string;
  /** Extra environment for the relay process (e.g. RELAY_LOG_LEVEL, RELAY_HEALTH_PORT). */
  relayEnv?: Record<string, string>;
  /** Fire the cron triggers every minute (default true). */
  cron?: boolean;
  /** Longest to wait for GET /health after starting wrangler (default 120 s). */
  healthTimeoutMs?: number;
  /** Launcher messages (default: stderr). */
  log?: (line: string) => void;
  /** Output lines of the children (default: stdout with a [name] prefix). */
  output?: (child: ChildName, line: string) => void;
  /** A child exited without being asked to; default: log it. */
  onUnexpectedExit?: (child: ChildName, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Abort a start in progress (Ctrl-C while wrangler boots): everything started is stopped and
   * startStack rejects. */
  signal?: AbortSignal;
}

export interface StackTokens {
  viewer: string;
  operator: string;
  admin: string;
  relay: string;
}

export interface Stack {
  fleet: string;
  port: number;
  /** http://127.0.0.1:PORT */
  edgeUrl: string;
  /** Dashboard page with an operator token. */
  dashboardUrl: string;
  /** Dashboard WebSocket for the fleet (add a token). */
  wsUrl: string;
  databaseUrl: string;
  databaseKind: "external" | "pglite";
  proxyPort: number;
  tokens: StackTokens;
  /** Last lines each child wrote (bounded), for error reports. */
  recentOutput(child: ChildName): string[];
  /** Fire one cron trigger now, as the driver does; resolves with the HTTP status. */
  runCron(cron: string): Promise<number>;
  startRelay(): Promise<void>;
  /** Kill the relay's process group with `signal` (default SIGTERM) and wait until it is gone. */
  killRelay(signal?: NodeJS.Signals): Promise<void>;
  restartRelay(): Promise<void>;
  relayRunning(): boolean;
  /**
   * Stop wrangler dev (whole process group, SIGTERM then SIGKILL), wait `downMs`, start it again
   * on the same port with the same --persist-to directory, and resolve once /health answers. The
   * fleet objects' SQLite storage and alarms survive; their in-memory state does not: this is how
   * a fleet object is evicted locally (wrangler dev has no evict call).
   */
  restartEdge(downMs?: number): Promise<void>;
  /** Stop everything; safe to call twice. */
  stop(): Promise<void>;
}

const KILL_GRACE_MS = 5_000;
const OUTPUT_LINES_KEPT = 200;

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolvePort(port));
    });
  });
}

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((ok, fail) => {
    const s = createServer();
    s.once("error", (err: NodeJS.ErrnoException) =>
      fail(
        new Error(
          err.code === "EADDRINUSE"
            ? `port ${port} on 127.0.0.1 is in use (another npm start?); pass --port N, or --port 0 for a free one`
            : `cannot use port ${port}: ${err.message}`,
        ),
      ),
    );
    s.listen(port, "127.0.0.1", () => s.close(() => ok()));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    // ESRCH: the group is already gone, which is what we want.
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Signal a detached child's whole group; escalate to SIGKILL after the grace period; resolve when
 * the leader has exited and no process of the group is left (bounded). */
export async function killProcessGroup(
  child: ChildProcess,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs = KILL_GRACE_MS,
): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const exited = child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((r) => child.once("exit", () => r()));
  signalGroup(pid, signal);
  const deadline = Date.now() + graceMs;
  let leaderGone = false;
  void exited.then(() => (leaderGone = true));
  while (Date.now() < deadline) {
    await sleep(50);
    if (leaderGone && !groupAlive(pid)) return;
  }
  signalGroup(pid, "SIGKILL");
  // SIGKILL cannot be ignored; wait (bounded) until the kernel has removed every member.
  const hardDeadline = Date.now() + 2_000;
  while (Date.now() < hardDeadline && (!leaderGone || groupAlive(pid))) await sleep(25);
}

interface Managed {
  name: ChildName;
  proc: ChildProcess;
  expectedExit: boolean;
  exited: Promise<void>;
}

/** Start the stack; resolves when the edge answers /health and the relay is launched. */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const fleet = opts.fleet ?? "demo";
  if (!FLEET_ID_RE.test(fleet)) throw new Error(`bad fleet id "${fleet}": use 1-63 of a-z 0-9 _ -`);
  const drones = opts.drones ?? 5;
  const rate = opts.rate ?? 1;
  if (!Number.isInteger(drones) || drones < 1) throw new Error(`--drones must be a positive integer (got ${drones})`);
  if (!(rate > 0)) throw new Error(`--rate must be a positive number of Hz (got ${rate})`);
  const log = opts.log ?? ((line: string) => process.stderr.write(`[stack] ${line}\n`));
  const output = opts.output ?? ((child: ChildName, line: string) => process.stdout.write(`[${child}] ${line}\n`));
  const onUnexpectedExit =
    opts.onUnexpectedExit ??
    ((child: ChildName, code: number | null, signal: NodeJS.Signals | null) =>
      log(`${child} exited unexpectedly (${signal ?? `code ${code}`})`));

  const found = resolveAuthSecret(opts.authSecret);
  if (!found) throw new Error("no AUTH_SECRET: add it to .dev.vars (wrangler dev reads it there) or set AUTH_SECRET");
  const secret = found.secret;

  const recent = new Map<ChildName, string[]>([
    ["edge", []],
    ["relay", []],
  ]);
  const children = new Map<ChildName, Managed>();
  let stopping = false;
  let db: Database | undefined;
  let proxy: WsProxy | undefined;
  let tempPersist: string | undefined;
  let cronTimer: NodeJS.Timeout | undefined;

  // Safety net for abnormal exits of the launcher (an uncaught error): no orphan process groups.
  const onProcessExit = () => {
    for (const m of children.values()) {
      if (m.proc.pid !== undefined && m.proc.exitCode === null && m.proc.signalCode === null) {
        try {
          process.kill(-m.proc.pid, "SIGKILL");
        } catch {
          // Already gone; nothing else can be done during exit.
        }
      }
    }
  };
  process.on("exit", onProcessExit);

  function launch(name: ChildName, command: string, args: string[], env: NodeJS.ProcessEnv): Managed {
    const proc = spawn(command, args, {
      cwd: REPO_ROOT,
      env,
      detached: true, // own process group: killed as a group, untouched by the terminal's Ctrl-C
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = recent.get(name)!;
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
        keep.push(line);
        if (keep.length > OUTPUT_LINES_KEPT) keep.shift();
        output(name, line);
      });
    }
    const m: Managed = {
      name,
      proc,
      expectedExit: false,
      // "error" without "exit" happens when the command cannot be spawned at all.
      exited: new Promise<void>((r) => {
        proc.once("exit", () => r());
        proc.once("error", () => r());
      }),
    };
    proc.once("error", (err) => {
      log(`${name}: cannot start ${command}: ${err.message}`);
      if (proc.pid === undefined && !stopping) {
        children.delete(name);
        onUnexpectedExit(name, null, null);
      }
    });
    proc.once("exit", (code, signal) => {
      if (children.get(name) === m) children.delete(name);
      if (!m.expectedExit && !stopping) onUnexpectedExit(name, code, signal);
    });
    children.set(name, m);
    return m;
  }

  async function stopChild(name: ChildName, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const m = children.get(name);
    if (!m) return;
    m.expectedExit = true;
    await killProcessGroup(m.proc, signal);
    await Promise.race([m.exited, sleep(1_000)]);
    children.delete(name);
  }

  let port = 0;
  const edgeUrl = () => `http://127.0.0.1:${port}`;

  async function runCron(cron: string): Promise<number> {
    const res = await fetch(`${edgeUrl()}/cdn-cgi/local/scheduled?cron=${cron.trim().split(/\s+/).join("+")}`, {
      signal: AbortSignal.timeout(30_000),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** Every minute on the minute: "* * * * *"; at minute 2 also "2 * * * *" (wrangler.toml crons,
   * UTC like Cloudflare's). Sequential, so a slow run delays the next rather than overlapping it. */
  let lastCronAt = 0;
  function scheduleCron(): void {
    // From the later of now and the last slot: a timer that fires a millisecond early must not
    // schedule the same minute twice.
    const now = Math.max(Date.now(), lastCronAt);
    const next = Math.ceil((now + 1) / 60_000) * 60_000;
    cronTimer = setTimeout(async () => {
      if (stopping) return;
      lastCronAt = next;
      const minute = new Date(next).getUTCMinutes();
      const crons = minute === 2 ? ["* * * * *", "2 * * * *"] : ["* * * * *"];
      for (const cron of crons) {
        try {
          const status = await runCron(cron);
          if (status !== 200) log(`cron "${cron}": edge answered ${status}`);
        } catch (err) {
          if (!stopping) log(`cron "${cron}" failed: ${(err as Error).message}`);
        }
      }
      if (!stopping) scheduleCron();
    }, next - now);
  }

  let tokens: StackTokens;
  const relayArgs = () => [
    "--import",
    "tsx",
    resolve(REPO_ROOT, "relay/cli.ts"),
    "--edge",
    opts.relayEdgeUrl ?? edgeUrl(),
    "--fleet",
    fleet,
    "--source",
    "sim",
    "--drones",
    String(drones),
    "--rate",
    String(rate),
    // Several local stacks may run at once: let each relay's health endpoint pick a free port.
    "--health-port",
    "0",
  ];

  async function startRelay(): Promise<void> {
    if (children.has("relay")) throw new Error("relay is already running");
    // The token goes in RELAY_TOKEN rather than --token: command lines are visible in ps.
    launch("relay", process.execPath, relayArgs(), { ...process.env, ...opts.relayEnv, RELAY_TOKEN: tokens.relay, NO_COLOR: "1" });
  }

  /** Starts wrangler dev with this stack's arguments; set once they are known. */
  let launchEdge: (() => Managed) | undefined;
  async function restartEdge(downMs = 0): Promise<void> {
    if (stopping || !launchEdge) throw new Error("the stack is stopping or the edge was never started");
    await stopChild("edge");
    if (downMs > 0) await sleep(downMs);
    const edge = launchEdge();
    await waitForHealth(edgeUrl(), opts.healthTimeoutMs ?? 120_000, edge, () => recent.get("edge")!, opts.signal);
  }

  let stopped: Promise<void> | undefined;
  /** Idempotent: a second call waits for the first. */
  const stop = (): Promise<void> => (stopped ??= doStop());
  async function doStop(): Promise<void> {
    stopping = true;
    clearTimeout(cronTimer);
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    await attempt("relay", () => stopChild("relay"));
    await attempt("edge", () => stopChild("edge"));
    await attempt("proxy", async () => proxy?.close());
    await attempt("database", async () => db?.close());
    if (tempPersist) rmSync(tempPersist, { recursive: true, force: true });
    process.off("exit", onProcessExit);
    if (errors.length) log(`stopped with errors: ${errors.join("; ")}`);
  }

  const checkAborted = () => {
    if (opts.signal?.aborted) throw new Error("start aborted");
  };
  try {
    // A fixed port that is taken fails here, before anything is started.
    if (opts.port && opts.port > 0) {
      await assertPortFree(opts.port);
      port = opts.port;
    }

    // 1. database and proxy
    db = await startDatabase({
      ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
      ...(opts.pgliteDir ? { dataDir: opts.pgliteDir } : {}),
      log,
    });
    proxy = await startWsProxy({ log: (l) => log(`ws proxy: ${l}`) });
    const dbHost = parseDatabaseUrl(db.url).host;
    const viaProxy = isLoopbackHost(dbHost);
    checkAborted();
    log(`database: ${db.kind === "pglite" ? "embedded PGlite" : "DATABASE_URL"}; ws proxy on 127.0.0.1:${proxy.port}`);

    // 2. migrations
    const mig = await runMigrations(db.url, proxy.port);
    log(`migrations: ${mig.applied} applied, ${mig.total} in total`);
    checkAborted();

    // 3. tokens
    const ttl = 24 * 3600;
    const sign = (role: Role, ttlSeconds = ttl) =>
      signToken(secret, { sub: `local-${role}`, role, fleets: [fleet] }, ttlSeconds);
    tokens = {
      viewer: await sign("viewer"),
      operator: await sign("operator"),
      admin: await sign("admin"),
      relay: await sign("relay", 30 * 24 * 3600),
    };

    // 4. edge under wrangler dev
    if (!port) port = await freePort();
    const inspectorPort = await freePort();
    let persistTo = opts.persistTo;
    if (!persistTo) {
      tempPersist = mkdtempSync(join(tmpdir(), "dronefleet-wrangler-"));
      persistTo = tempPersist;
    } else {
      mkdirSync(persistTo, { recursive: true });
    }
    const wranglerArgs = [
      resolve(REPO_ROOT, "node_modules/wrangler/bin/wrangler.js"),
      "dev",
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      persistTo,
      "--test-scheduled",
      "--show-interactive-dev-session=false",
      "--var",
      `DATABASE_URL:${db.url}`,
    ];
    if (viaProxy) wranglerArgs.push("--var", `NEON_WS_PROXY:127.0.0.1:${proxy.port}`);
    // wrangler dev reads AUTH_SECRET from .dev.vars; only when the tokens are signed with another
    // secret (env or option) is it passed explicitly, so tokens and edge always agree.
    if (readDevVars().AUTH_SECRET !== secret) wranglerArgs.push("--var", `AUTH_SECRET:${secret}`);
    log(`starting wrangler dev on ${edgeUrl()} (persist ${persistTo})`);
    launchEdge = () =>
      launch("edge", process.execPath, wranglerArgs, {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        // Miniflare otherwise fetches Request.cf from workers.cloudflare.com on every start (3 s
        // timeout and a stack trace when offline); local development does not need real cf data.
        CLOUDFLARE_CF_FETCH_ENABLED: process.env.CLOUDFLARE_CF_FETCH_ENABLED ?? "false",
        NO_COLOR: "1",
        FORCE_COLOR: "0",
      });
    const edge = launchEdge();
    await waitForHealth(edgeUrl(), opts.healthTimeoutMs ?? 120_000, edge, () => recent.get("edge")!, opts.signal);
    log(`edge ready on ${edgeUrl()}`);

    // 5. relay and cron
    checkAborted();
    if (opts.relay !== false) await startRelay();
    if (opts.cron !== false) scheduleCron();
  } catch (err) {
    await stop();
    throw err;
  }

  const stack: Stack = {
    fleet,
    port,
    edgeUrl: edgeUrl(),
    dashboardUrl: `${edgeUrl()}/?token=${tokens.operator}`,
    wsUrl: `ws://127.0.0.1:${port}/v1/fleets/${fleet}/ws`,
    databaseUrl: db.url,
    databaseKind: db.kind,
    proxyPort: proxy.port,
    tokens,
    recentOutput: (child) => [...recent.get(child)!],
    runCron,
    startRelay,
    killRelay: (signal = "SIGTERM") => stopChild("relay", signal),
    restartRelay: async () => {
      await stopChild("relay");
      await startRelay();
    },
    relayRunning: () => children.has("relay"),
    restartEdge,
    stop,
  };
  return stack;
}

/** Poll GET /health until 200, the child exits, or the timeout passes (each failure says why). */
async function waitForHealth(
  base: string,
  timeoutMs: number,
  edge: Managed,
  recentLines: () => string[],
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void edge.exited.then(() => (exited = true));
  let last = "no answer yet";
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new Error("start aborted");
    if (exited) {
      throw new Error(
        `wrangler dev exited (${edge.proc.signalCode ?? `code ${edge.proc.exitCode}`}) before ${base}/health answered.\n` +
          `Last output:\n${recentLines().slice(-30).join("\n")}`,
      );
    }
    try {
      const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(250);
  }
  throw new Error(
    `edge did not answer GET ${base}/health with 200 within ${Math.round(timeoutMs / 1000)} s (last: ${last}).\n` +
      `Last wrangler output:\n${recentLines().slice(-30).join("\n")}`,
  );
}

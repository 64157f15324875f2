/**
 * Database plumbing for the local stack and tests.
 *
 * - startDatabase(): DATABASE_URL when given, else an embedded PGlite (WASM Postgres, files under
 *   `.data/pglite`) served over TCP by PGLiteSocketServer behind a transaction-level gate
 *   (scripts/pglite-gate.ts explains why the gate is needed for more than one client).
 * - runMigrations(): applies drizzle/migrations with drizzle-orm's neon-serverless migrator through
 *   the same path the edge uses: @neondatabase/serverless over a WebSocket, via scripts/wsproxy.ts.
 * - neonLocalConfig(): the neonConfig settings that make the Neon driver talk to the local proxy.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { neonConfig, Pool, type NeonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-serverless";
import { migrate } from "drizzle-orm/neon-serverless/migrator";
import ws from "ws";
import { REPO_ROOT } from "./dev-vars";
import { startPgliteGate } from "./pglite-gate";
import { isLoopbackHost } from "./wsproxy";
import { connect as netConnect } from "node:net";

export const MIGRATIONS_FOLDER = resolve(REPO_ROOT, "drizzle/migrations");

export interface DatabaseOptions {
  /** PGlite data directory (default `<repo>/.data/pglite`); "memory://" keeps it in memory. */
  dataDir?: string;
  /** Use this Postgres instead of PGlite (the launcher passes env DATABASE_URL). */
  databaseUrl?: string;
  /** Simultaneous client connections PGlite accepts through the gate (default 64). */
  maxConnections?: number;
  log?: (line: string) => void;
}

export interface Database {
  /** Connection string clients use (postgresql://…). */
  url: string;
  host: string;
  port: number;
  kind: "external" | "pglite";
  close(): Promise<void>;
}

/** Host and port of a postgres:// URL (port 5432 when absent). */
export function parseDatabaseUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`DATABASE_URL is not a URL: ${url.replace(/:[^:@/]*@/, ":***@")}`);
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") {
    throw new Error(`DATABASE_URL must start with postgres:// or postgresql:// (got ${u.protocol})`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : 5432 };
}

/** Start (or adopt) the database. */
export async function startDatabase(opts: DatabaseOptions = {}): Promise<Database> {
  if (opts.databaseUrl) {
    const { host, port } = parseDatabaseUrl(opts.databaseUrl);
    return { url: opts.databaseUrl, host, port, kind: "external", close: async () => {} };
  }
  const log = opts.log ?? (() => {});
  const dataDir = opts.dataDir ?? resolve(REPO_ROOT, ".data/pglite");
  const inMemory = dataDir.startsWith("memory://");
  const lockFile = inMemory ? null : `${dataDir.replace(/\/+$/, "")}.pid`;
  if (lockFile) {
    mkdirSync(dataDir, { recursive: true });
    takeLock(lockFile, dataDir);
  }
  // Imported lazily: the WASM module is large and unused when DATABASE_URL is set.
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const maxConnections = opts.maxConnections ?? 64;
  let db: Awaited<ReturnType<typeof PGlite.create>> | undefined;
  let server: InstanceType<typeof PGLiteSocketServer> | undefined;
  try {
    db = await PGlite.create(dataDir);
    // One upstream connection per gate client; the gate keeps their traffic from interleaving. The
    // server frees a slot asynchronously after a close, hence the headroom over the gate's limit.
    server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: maxConnections * 2 });
    await server.start();
    const upstreamPort = Number(server.getServerConn().split(":").pop());
    const gate = await startPgliteGate({ upstreamPort, maxClients: maxConnections, log });
    const url = `postgresql://postgres@127.0.0.1:${gate.port}/postgres`;
    log(`PGlite (${inMemory ? "in memory" : dataDir}) on ${url}`);
    const s = server;
    const d = db;
    let closed = false;
    return {
      url,
      host: "127.0.0.1",
      port: gate.port,
      kind: "pglite",
      close: async () => {
        if (closed) return;
        closed = true;
        await gate.close();
        await s.stop();
        await d.close();
        dropLock(lockFile);
      },
    };
  } catch (err) {
    await server?.stop().catch(() => {});
    await db?.close().catch(() => {});
    dropLock(lockFile);
    throw err;
  }
}

/** Data directories this process has open. */
const heldDirs = new Set<string>();

/** PGlite has no multi-process locking: two launchers on one data directory would corrupt it. */
function takeLock(lockFile: string, dataDir: string): void {
  if (heldDirs.has(lockFile)) throw new Error(`${dataDir} is in use by this process already`);
  try {
    const pid = Number(readFileSync(lockFile, "utf8").trim());
    if (pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new Error(
        `${dataDir} is in use by process ${pid} (another npm start?). Stop it, or set DATABASE_URL to use another Postgres.`,
      );
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  writeFileSync(lockFile, `${process.pid}\n`);
  heldDirs.add(lockFile);
}

function dropLock(lockFile: string | null): void {
  if (!lockFile) return;
  heldDirs.delete(lockFile);
  rmSync(lockFile, { force: true });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export type NeonLocalSettings = Pick<
  NeonConfig,
  "webSocketConstructor" | "wsProxy" | "useSecureWebSocket" | "pipelineConnect" | "pipelineTLS" | "forceDisablePgSSL"
>;

/** The neonConfig `wsProxy` function for a local proxy at "host:port" (or just a port on 127.0.0.1). */
export function neonWsProxy(proxy: number | string): (host: string, port: number | string) => string {
  const addr = typeof proxy === "number" ? `127.0.0.1:${proxy}` : proxy;
  return (host, port) => `${addr}/v1?address=${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * neonConfig settings for Postgres behind the local WebSocket proxy: plain ws:// (loopback only), no
 * pipelining (ordinary Postgres and PGlite do not take Neon's pipelined startup), no TLS to Postgres.
 * The edge does the same inside workerd from NEON_WS_PROXY="127.0.0.1:PORT", with the global WebSocket.
 * Apply with `Object.assign(neonConfig, neonLocalConfig(port))` or applyNeonLocalConfig(port).
 */
export function neonLocalConfig(
  proxy: number | string,
  webSocketConstructor: NeonConfig["webSocketConstructor"] = ws as unknown as NeonConfig["webSocketConstructor"],
): NeonLocalSettings {
  return {
    webSocketConstructor,
    wsProxy: neonWsProxy(proxy),
    useSecureWebSocket: false,
    pipelineConnect: false,
    pipelineTLS: false,
    forceDisablePgSSL: true,
  };
}

/** Set neonLocalConfig() on the driver's global neonConfig (process-wide). */
export function applyNeonLocalConfig(proxy: number | string): void {
  Object.assign(neonConfig, neonLocalConfig(proxy));
}

export interface MigrationResult {
  /** Migrations applied by this call (0 when the database was already current). */
  applied: number;
  /** Migrations recorded in the database afterwards. */
  total: number;
}

/**
 * Apply drizzle/migrations to `url` with drizzle-orm's neon-serverless migrator. Loopback databases
 * are reached through the local proxy on `proxyPort`; anything else (Neon) through Neon's own proxy.
 * Idempotent: applied migrations are recorded in drizzle.__drizzle_migrations and skipped.
 */
export async function runMigrations(
  url: string,
  proxyPort: number,
  opts: { migrationsFolder?: string; timeoutMs?: number } = {},
): Promise<MigrationResult> {
  if (isLoopbackHost(parseDatabaseUrl(url).host)) applyNeonLocalConfig(proxyPort);
  else neonConfig.webSocketConstructor = ws as unknown as NeonConfig["webSocketConstructor"];
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const pool = new Pool({ connectionString: url, max: 1, connectionTimeoutMillis: Math.min(timeoutMs, 15_000) });
  // An idle client that errors (server restart) must not crash the process; the query fails instead.
  pool.on("error", () => {});
  try {
    return await migrateCounted(pool, () => migrate(drizzle({ client: pool }), { migrationsFolder: opts.migrationsFolder ?? MIGRATIONS_FOLDER }), timeoutMs);
  } finally {
    await pool.end().catch(() => {});
  }
}

/** Anything that answers `query` like pg's and Neon's clients. */
export type Queryable = { query<R extends Record<string, unknown>>(sql: string): Promise<{ rows: R[] }> };

/**
 * Run `apply` (a drizzle migrator) between two counts of the applied migrations, within
 * `timeoutMs`; shared by every driver the migrations run through (Neon here, node-postgres in
 * scripts/migrate.ts).
 */
export async function migrateCounted(client: Queryable, apply: () => Promise<void>, timeoutMs: number): Promise<MigrationResult> {
  let timer: NodeJS.Timeout | undefined;
  const work = (async () => {
    const before = await countMigrations(client);
    await apply();
    const total = await countMigrations(client);
    return { applied: total - before, total };
  })();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`migrations did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function countMigrations(pool: Queryable): Promise<number> {
  // Two queries: a subquery on a missing table fails at parse time even inside CASE.
  const t = await pool.query<{ t: string | null }>(`select to_regclass('drizzle.__drizzle_migrations')::text as t`);
  if (!t.rows[0]?.t) return 0;
  const r = await pool.query<{ n: number }>(`select count(*)::int as n from drizzle.__drizzle_migrations`);
  return r.rows[0]?.n ?? 0;
}

/** Whether something accepts TCP connections at host:port within `timeoutMs`. */
export function tcpReachable(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

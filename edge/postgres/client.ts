/**
 * Postgres from the edge: drizzle-orm over @neondatabase/serverless (Postgres over a WebSocket).
 * In production DATABASE_URL is a Neon secret and the driver uses Neon's own proxy; locally the
 * launcher sets NEON_WS_PROXY ("127.0.0.1:PORT", scripts/wsproxy.ts) and plain ws:// is used.
 * A pool lives for one flush, cron run or request and is ended after it (no pooling across
 * requests in Workers: a socket may not outlive the request that opened it).
 *
 * Everything is bounded: connecting (10 s), each query (30 s), ending the pool (5 s). A flush that
 * waited forever would keep the fleet's outbox from ever draining again.
 */
import { neonConfig, Pool, type PoolClient } from "@neondatabase/serverless";
import { drizzle, type NeonDatabase } from "drizzle-orm/neon-serverless";
import * as schema from "../../drizzle/schema";

/** drizzle over a pool: what the writer, the hourly job and the routes take. */
export type AnalyticsDb = NeonDatabase<typeof schema> & { $client: Pool };
/** drizzle inside one transaction (one connection). */
export type AnalyticsTx = NeonDatabase<typeof schema>;
export type DbEnv = { DATABASE_URL?: string | undefined; NEON_WS_PROXY?: string | undefined };
export type DbHandle = { db: AnalyticsDb; close(): Promise<void> };

export const CONNECT_TIMEOUT_MS = 10_000;
export const QUERY_TIMEOUT_MS = 30_000;
const END_TIMEOUT_MS = 5_000;

/** Point the driver at a local WebSocket proxy ("host:port"); no TLS, no pipelining (plain Postgres). */
export function useLocalProxy(proxy: string): void {
  neonConfig.wsProxy = (host, port) => `${proxy}/v1?address=${host.includes(":") ? `[${host}]` : host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineConnect = false;
  neonConfig.pipelineTLS = false;
  neonConfig.forceDisablePgSSL = true;
}

/** drizzle over an existing pool (Node tests and the benchmark bring their own). */
export function drizzleFor(pool: Pool): AnalyticsDb {
  return drizzle({ client: pool, schema });
}

/** A pool for this run, or null when no DATABASE_URL is configured. */
export function openDatabase(env: DbEnv, opts: { max?: number } = {}): DbHandle | null {
  if (!env.DATABASE_URL) return null;
  if (env.NEON_WS_PROXY) useLocalProxy(env.NEON_WS_PROXY);
  const pool = new Pool({
    connectionString: env.DATABASE_URL,
    max: opts.max ?? 1,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
  });
  // An idle client whose socket drops must not become an uncaught error; the next query reports it.
  // Once the pool is ending, its sockets closing is expected (workerd reports "Network connection lost").
  let closed: Promise<void> | null = null;
  pool.on("error", (err: Error) => {
    if (!closed) console.warn(`postgres pool: ${err.message}`);
  });
  return { db: drizzleFor(pool), close: () => (closed ??= endPool(pool)) };
}

/** End a pool, giving up after 5 s (a client stuck on a dead socket must not hold the caller). */
export async function endPool(pool: Pool): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      console.warn(`postgres pool did not end within ${END_TIMEOUT_MS} ms; abandoning it`);
      resolve();
    }, END_TIMEOUT_MS);
  });
  try {
    await Promise.race([pool.end().catch((err: Error) => console.warn(`postgres pool end: ${err.message}`)), timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/**
 * Run `fn` in one transaction on one connection of `db`'s pool: BEGIN, fn, COMMIT; ROLLBACK on
 * error. Resolves only after COMMIT. Unlike drizzle's own transaction(), the connection is released
 * in every case (drizzle's keeps it when BEGIN itself fails, and pool.end() then waits forever),
 * and a connection that failed is destroyed rather than reused.
 */
export async function inTransaction<T>(db: AnalyticsDb, fn: (tx: AnalyticsTx) => Promise<T>): Promise<T> {
  const client: PoolClient = await db.$client.connect();
  let failed: Error | undefined;
  // A checked-out client whose socket drops emits "error" besides failing its query; without a
  // listener that would be an uncaught exception. The failing query reports it.
  const onError = (err: Error) => {
    failed ??= err;
  };
  client.on("error", onError);
  try {
    await client.query("begin");
    const result = await fn(drizzle({ client, schema }));
    await client.query("commit");
    return result;
  } catch (err) {
    failed = err instanceof Error ? err : new Error(String(err));
    // On a dead connection this fails too; Postgres rolls back when the connection goes.
    await client.query("rollback").catch(() => {});
    throw err;
  } finally {
    client.off("error", onError);
    client.release(failed);
  }
}

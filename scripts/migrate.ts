/**
 * `npm run db:migrate [-- --url URL] [--driver auto|neon|pg]`
 *
 * Applies the committed SQL migrations (drizzle/migrations) to a Postgres database: Neon, or any
 * other (a staging server, RDS, a laptop). The URL comes from --url, else env DATABASE_URL.
 * The driver is chosen by the host:
 * - a host ending in .neon.tech: @neondatabase/serverless over Neon's WebSocket proxy, the driver
 *   the edge itself uses (scripts/db.ts runMigrations);
 * - anything else: node-postgres (`pg`) over TCP, honouring sslmode in the URL.
 * `--driver neon` forces the Neon driver (for a loopback host through a local WebSocket proxy,
 * as `npm start` does); `--driver pg` forces TCP (e.g. Neon's direct connection from a network
 * that allows port 5432).
 *
 * Idempotent: applied migrations are recorded in drizzle.__drizzle_migrations and skipped. On
 * failure it says what went wrong in one line (no URL password, ever) and exits 1; usage errors,
 * a missing or malformed DATABASE_URL, exit 2.
 */
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import { MIGRATIONS_FOLDER, migrateCounted, parseDatabaseUrl, runMigrations, type MigrationResult } from "./db";
import { isLoopbackHost, startWsProxy } from "./wsproxy";

const USAGE = `Usage: DATABASE_URL=postgres://… npm run db:migrate [-- --url URL] [--driver auto|neon|pg]

  --url URL         database to migrate (default: env DATABASE_URL)
  --driver D        auto (default): Neon's serverless driver for *.neon.tech hosts, node-postgres
                    over TCP for any other; neon or pg to force one
  --migrations DIR  migrations folder (default drizzle/migrations)
  --timeout-ms N    give up after N ms (default 60000)
  -h, --help        show this help`;

export class UsageError extends Error {}
/** A failure explained for the person running the command. */
export class MigrateError extends Error {}

export type Driver = "neon" | "pg";

export interface MigrateOptions {
  url: string;
  driver?: Driver | "auto";
  migrationsFolder?: string;
  timeoutMs?: number;
}

export interface MigrateOutcome extends MigrationResult {
  driver: Driver;
  host: string;
  database: string;
}

/** Neon's hosts (ep-….neon.tech, pooled or direct) get Neon's driver; every other host TCP. */
export function chooseDriver(url: string, forced: Driver | "auto" = "auto"): Driver {
  if (forced !== "auto") return forced;
  const { host } = parseDatabaseUrl(url);
  return /(^|\.)neon\.tech$/i.test(host) ? "neon" : "pg";
}

/** The URL for messages: no password. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/** Apply the migrations; throws MigrateError with a message fit for the user. */
export async function migrateDatabase(opts: MigrateOptions): Promise<MigrateOutcome> {
  let target: { host: string; port: number };
  try {
    target = parseDatabaseUrl(opts.url);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const driver = chooseDriver(opts.url, opts.driver);
  const u = new URL(opts.url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || u.username || "postgres";
  const user = decodeURIComponent(u.username) || "postgres";
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const migrationsFolder = opts.migrationsFolder ?? MIGRATIONS_FOLDER;
  try {
    const result = driver === "pg" ? await migrateWithPg(opts.url, migrationsFolder, timeoutMs) : await migrateWithNeon(opts.url, target.host, migrationsFolder, timeoutMs);
    return { ...result, driver, host: target.host, database };
  } catch (err) {
    throw new MigrateError(explain(err, { ...target, database, user, driver }));
  }
}

async function migrateWithPg(url: string, migrationsFolder: string, timeoutMs: number): Promise<MigrationResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: Math.min(timeoutMs, 15_000), query_timeout: timeoutMs });
  // A connection that drops after connecting fails the running query; the event must not crash us.
  client.on("error", () => {});
  try {
    await client.connect();
    return await migrateCounted(client, () => migrate(drizzle({ client }), { migrationsFolder }), timeoutMs);
  } finally {
    await client.end().catch(() => {});
  }
}

async function migrateWithNeon(url: string, host: string, migrationsFolder: string, timeoutMs: number): Promise<MigrationResult> {
  // Neon's own proxy serves *.neon.tech; a loopback Postgres needs the local one (as `npm start`).
  const proxy = isLoopbackHost(host) ? await startWsProxy() : null;
  try {
    return await runMigrations(url, proxy?.port ?? 0, { migrationsFolder, timeoutMs });
  } finally {
    await proxy?.close();
  }
}

type Target = { host: string; port: number; database: string; user: string; driver: Driver };

/** One line that says what failed and what to check. */
export function explain(err: unknown, t: Target): string {
  const e = (typeof err === "object" && err !== null ? err : {}) as { code?: unknown; message?: unknown; errors?: unknown; cause?: unknown };
  // node-postgres reports a refused dual-stack connect as an AggregateError of both attempts.
  const inner = Array.isArray(e.errors) && e.errors.length ? (e.errors[0] as typeof e) : e.cause && typeof e.cause === "object" ? (e.cause as typeof e) : e;
  const code = String(e.code ?? inner.code ?? "");
  // Driver messages do not quote the URL; redacted anyway, as nothing here may print a password.
  const message = redactUrl(String(e.message || inner.message || err));
  const where = `${t.host}:${t.port}`;
  if (["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET"].includes(code) || /timeout expired|connect ETIMEDOUT|getaddrinfo|Connection terminated unexpectedly/i.test(message)) {
    // ("Connection terminated unexpectedly": the Neon driver's WebSocket closed before Postgres answered.)
    return `cannot reach Postgres at ${where} (${code || message}): check the host and port in DATABASE_URL, that the server is running, and that this machine may connect to it`;
  }
  if (code === "28P01" || code === "28000" || /password authentication failed|role ".*" does not exist/i.test(message)) {
    return `Postgres at ${where} refused the login of user "${t.user}" (${message}): check the user and password in DATABASE_URL`;
  }
  if (code === "3D000") return `database "${t.database}" does not exist on ${where}: create it first (createdb, or the Neon console), then run this again`;
  if (/SSL|TLS|certificate/i.test(message)) return `TLS to ${where} failed (${message}): check sslmode in DATABASE_URL (Neon needs sslmode=require)`;
  if (/did not finish within/.test(message)) return `${message} (${t.driver} driver, ${where})`;
  return `migration failed on ${where}, database "${t.database}" (${t.driver} driver): ${message}`;
}

function parseCli(argv: string[]): { opts: MigrateOptions } | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: "string" },
        driver: { type: "string", default: "auto" },
        migrations: { type: "string" },
        "timeout-ms": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return "help";
  const url = values.url ?? process.env.DATABASE_URL;
  if (!url) throw new UsageError("DATABASE_URL is not set: run DATABASE_URL='postgres://user:password@host/db' npm run db:migrate, or pass --url");
  const driver = values.driver;
  if (driver !== "auto" && driver !== "neon" && driver !== "pg") throw new UsageError(`bad --driver "${driver}": use auto, neon or pg`);
  const timeoutMs = values["timeout-ms"] === undefined ? undefined : Number(values["timeout-ms"]);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new UsageError("--timeout-ms must be a positive integer");
  return { opts: { url, driver, ...(values.migrations ? { migrationsFolder: values.migrations } : {}), ...(timeoutMs ? { timeoutMs } : {}) } };
}

async function main(): Promise<number> {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
    if (cli === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const r = await migrateDatabase(cli.opts);
    process.stdout.write(
      `db:migrate: ${r.applied === 0 ? "already up to date" : `applied ${r.applied} migration(s)`}; ${r.total} recorded in ${r.database} on ${r.host} (${r.driver} driver)\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`db:migrate: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof MigrateError) {
      process.stderr.write(`db:migrate: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

// Run only as a script, so the test can import migrateDatabase and explain.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`db:migrate: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

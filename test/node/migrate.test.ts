/**
 * `npm run db:migrate` (scripts/migrate.ts) against the machine's Postgres: node-postgres for an
 * ordinary server, the Neon driver when forced (through a local WebSocket proxy), idempotence, and
 * a clear one-line failure for every way it commonly goes wrong — never with the URL's password.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS_FOLDER } from "../../scripts/db";
import { REPO_ROOT } from "../../scripts/dev-vars";
import { chooseDriver, explain, migrateDatabase, redactUrl } from "../../scripts/migrate";
import { createTestDatabase, PG_URL } from "./support";

const SCRIPT = resolve(REPO_ROOT, "scripts/migrate.ts");
const MIGRATIONS = (JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta/_journal.json"), "utf8")) as { entries: unknown[] }).entries.length;

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!("DATABASE_URL" in env)) delete childEnv.DATABASE_URL;
  return new Promise((done) => {
    execFile(process.execPath, ["--import", "tsx", SCRIPT, ...args], { cwd: REPO_ROOT, env: childEnv, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function tables(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ t: string }>(`select table_name as t from information_schema.tables where table_schema = 'public' order by 1`);
    return r.rows.map((x) => x.t);
  } finally {
    await c.end();
  }
}

const dbs: { drop(): Promise<void> }[] = [];
let plain: { name: string; url: string };
let viaNeon: { name: string; url: string };
let viaCli: { name: string; url: string };

beforeAll(async () => {
  for (const prefix of ["df_migrate_pg", "df_migrate_neon", "df_migrate_cli"]) dbs.push(await createTestDatabase(prefix));
  [plain, viaNeon, viaCli] = dbs as unknown as [typeof plain, typeof viaNeon, typeof viaCli];
});
afterAll(async () => {
  for (const d of dbs) await d.drop();
});

describe("db:migrate", () => {
  it("picks the Neon driver for Neon's hosts and node-postgres for any other, unless forced", () => {
    expect(chooseDriver("postgres://u:p@ep-cool-sun-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require")).toBe("neon");
    expect(chooseDriver("postgres://u:p@ep-cool-sun-123456-pooler.eu-central-1.aws.neon.tech/neondb")).toBe("neon");
    expect(chooseDriver("postgresql://postgres@127.0.0.1:5432/test")).toBe("pg");
    expect(chooseDriver("postgres://u@db.internal.example:6543/app")).toBe("pg");
    expect(chooseDriver("postgres://u@notneon.tech.example/app")).toBe("pg");
    expect(chooseDriver("postgresql://postgres@127.0.0.1:5432/test", "neon")).toBe("neon");
    expect(chooseDriver("postgres://u:p@ep-x.neon.tech/db", "pg")).toBe("pg");
    expect(redactUrl("postgres://alice:s3cr3t@host/db")).toBe("postgres://alice:***@host/db");
  });

  it("applies every migration to a plain Postgres over TCP, then finds nothing to do", async () => {
    const first = await migrateDatabase({ url: plain.url });
    expect(first).toMatchObject({ driver: "pg", applied: MIGRATIONS, total: MIGRATIONS, host: "127.0.0.1", database: plain.name });
    expect(await tables(plain.url)).toEqual(expect.arrayContaining(["fleets", "drones", "performance_metrics", "hourly_analytics"]));
    expect(await migrateDatabase({ url: plain.url })).toMatchObject({ applied: 0, total: MIGRATIONS });
  });

  it("applies them with the Neon driver when forced (through a local WebSocket proxy), to the same schema", async () => {
    expect(await migrateDatabase({ url: viaNeon.url, driver: "neon" })).toMatchObject({ driver: "neon", applied: MIGRATIONS, total: MIGRATIONS });
    expect(await tables(viaNeon.url)).toEqual(await tables(plain.url));
    // Either driver sees the other's record: nothing is applied twice.
    expect(await migrateDatabase({ url: viaNeon.url, driver: "pg" })).toMatchObject({ applied: 0 });
  });

  it("runs as npm run db:migrate does, from DATABASE_URL or --url", async () => {
    const r = await run([], { DATABASE_URL: viaCli.url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`applied ${MIGRATIONS} migration\\(s\\); ${MIGRATIONS} recorded in ${viaCli.name} on 127\\.0\\.0\\.1 \\(pg driver\\)`));
    const again = await run(["--url", viaCli.url]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already up to date/);
  });

  it("fails with a clear message: no DATABASE_URL, unreachable host, refused login, missing database, bad flags", async () => {
    const missing = await run([]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/DATABASE_URL is not set/);

    const notUrl = await run([], { DATABASE_URL: "mysql://x@y/z" });
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toMatch(/must start with postgres:\/\/ or postgresql:\/\//);

    // Nothing listens on port 1.
    const unreachable = await run([], { DATABASE_URL: "postgresql://postgres:hunter2pw@127.0.0.1:1/test" });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach Postgres at 127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    const unreachableNeon = await run(["--driver", "neon"], { DATABASE_URL: "postgresql://postgres:hunter2pw@127.0.0.1:1/test" });
    expect(unreachableNeon.code).toBe(1);
    expect(unreachableNeon.stderr).toMatch(/cannot reach Postgres at 127\.0\.0\.1:1/);

    const u = new URL(PG_URL);
    u.username = "no_such_role_df";
    u.password = "hunter2pw";
    const login = await run([], { DATABASE_URL: u.toString() });
    expect(login.code).toBe(1);
    expect(login.stderr).toMatch(/refused the login of user "no_such_role_df".*check the user and password/);

    const nodb = new URL(PG_URL);
    nodb.pathname = "/df_no_such_database";
    const absent = await run([], { DATABASE_URL: nodb.toString() });
    expect(absent.code).toBe(1);
    expect(absent.stderr).toMatch(/database "df_no_such_database" does not exist on 127\.0\.0\.1:5432: create it first/);

    const flag = await run(["--driver", "mysql"], { DATABASE_URL: plain.url });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/bad --driver "mysql"/);

    for (const r of [unreachable, unreachableNeon, login]) expect(r.stdout + r.stderr).not.toContain("hunter2pw");
  });

  it("explains TLS and DNS failures too", () => {
    const t = { host: "db.example", port: 5432, database: "app", user: "u", driver: "pg" as const };
    expect(explain(Object.assign(new Error("getaddrinfo ENOTFOUND db.example"), { code: "ENOTFOUND" }), t)).toMatch(/cannot reach Postgres at db\.example:5432 \(ENOTFOUND\)/);
    expect(explain(new Error("The server does not support SSL connections"), t)).toMatch(/TLS to db\.example:5432 failed.*sslmode/);
  });
});

/**
 * Database plumbing: the WebSocket → TCP proxy, the Neon driver through it to the machine's
 * Postgres and to embedded PGlite, drizzle migrations, and the PGlite gate under concurrency.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { applyNeonLocalConfig, MIGRATIONS_FOLDER, neonWsProxy, runMigrations, startDatabase, type Database } from "../../scripts/db";
import { isLoopbackHost, parseTarget, startWsProxy, type WsProxy } from "../../scripts/wsproxy";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
/** Migrations committed under drizzle/migrations (the journal lists them). */
const MIGRATIONS = (JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta/_journal.json"), "utf8")) as { entries: unknown[] }).entries.length;

let proxy: WsProxy;

beforeAll(async () => {
  proxy = await startWsProxy();
  applyNeonLocalConfig(proxy.port);
});
afterAll(async () => {
  await proxy?.close();
});

function pool(url: string, max = 1): Pool {
  const p = new Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000 });
  p.on("error", () => {}); // idle-client errors surface through the failing query instead
  return p;
}

/** A WebSocket upgrade's outcome: "open", or the HTTP status it was refused with. */
function upgrade(url: string): Promise<"open" | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error("no answer from the proxy within 5 s"));
    }, 5_000);
    ws.on("open", () => {
      clearTimeout(timer);
      ws.terminate();
      resolve("open");
    });
    ws.on("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      res.resume();
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.on("error", () => {}); // terminate() after unexpected-response may emit one
  });
}

describe("wsproxy target rules", () => {
  it("treats only loopback as local", () => {
    for (const h of ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]", "::ffff:127.0.0.1", "LOCALHOST"]) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of ["10.0.0.1", "192.168.1.1", "0.0.0.0", "::", "example.com", "127.0.0.1.nip.io", "::ffff:10.0.0.1"]) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });

  it("parses host:port and [v6]:port", () => {
    expect(parseTarget("127.0.0.1:5432")).toEqual({ host: "127.0.0.1", port: 5432 });
    expect(parseTarget("[::1]:6543")).toEqual({ host: "::1", port: 6543 });
    expect(parseTarget("localhost:0")).toBeNull();
    expect(parseTarget("localhost")).toBeNull();
    expect(parseTarget(null)).toBeNull();
  });

  it("builds the address neonConfig.wsProxy sends", () => {
    expect(neonWsProxy(4000)("127.0.0.1", 5432)).toBe("127.0.0.1:4000/v1?address=127.0.0.1:5432");
    expect(neonWsProxy("127.0.0.1:4000")("::1", "5432")).toBe("127.0.0.1:4000/v1?address=[::1]:5432");
  });

  it("refuses non-loopback targets and malformed requests before upgrading", async () => {
    const base = `ws://127.0.0.1:${proxy.port}`;
    expect(await upgrade(`${base}/v1?address=10.1.2.3:5432`)).toBe(403);
    expect(await upgrade(`${base}/v1?address=example.com:5432`)).toBe(403);
    expect(await upgrade(`${base}/v1?address=nonsense`)).toBe(400);
    expect(await upgrade(`${base}/elsewhere?address=127.0.0.1:5432`)).toBe(404);
    expect(proxy.connections()).toBe(0);
  });

  it("fails a Neon client fast when its target is refused", async () => {
    const p = pool("postgresql://postgres@10.255.255.1:5432/test");
    const started = Date.now();
    await expect(p.query("select 1")).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
    await p.end();
  });

  it("allows other targets only when configured to", async () => {
    const open = await startWsProxy({ allowHosts: ["db.internal"] });
    try {
      // Allowed by policy: the upgrade succeeds (the TCP connect then fails and closes the socket).
      expect(await upgrade(`ws://127.0.0.1:${open.port}/v1?address=db.internal:5432`)).toBe("open");
      expect(await upgrade(`ws://127.0.0.1:${open.port}/v1?address=127.0.0.1:5432`)).toBe(403);
    } finally {
      await open.close();
    }
  });
});

describe("the machine's Postgres through the proxy", () => {
  const dbName = `df_test_${randomUUID().replace(/-/g, "").slice(0, 16)}`;
  const dbUrl = (() => {
    const u = new URL(PG_URL);
    u.pathname = `/${dbName}`;
    return u.toString();
  })();
  let admin: Pool;

  beforeAll(async () => {
    admin = pool(PG_URL);
    await admin.query(`create database ${dbName}`);
  });
  afterAll(async () => {
    await admin?.query(`drop database if exists ${dbName} with (force)`);
    await admin?.end();
  });

  it("answers select 1", async () => {
    const p = pool(PG_URL);
    try {
      const r = await p.query<{ one: number }>("select 1 as one");
      expect(r.rows).toEqual([{ one: 1 }]);
    } finally {
      await p.end();
    }
  });

  it("applies the migrations to a fresh database, then again as a no-op", async () => {
    expect(await runMigrations(dbUrl, proxy.port)).toEqual({ applied: MIGRATIONS, total: MIGRATIONS });
    expect(await runMigrations(dbUrl, proxy.port)).toEqual({ applied: 0, total: MIGRATIONS });
    const p = pool(dbUrl);
    try {
      const cols = await p.query<{ table_name: string; column_name: string }>(
        `select table_name, column_name from information_schema.columns
          where table_schema = 'public' and table_name in ('fleets', 'drones') order by table_name, ordinal_position`,
      );
      expect(cols.rows.map((r) => `${r.table_name}.${r.column_name}`)).toEqual([
        "drones.fleet_id",
        "drones.drone_id",
        "drones.first_seen_at",
        "drones.last_seen_at",
        "fleets.id",
        "fleets.name",
        "fleets.created_at",
        "fleets.config",
        "fleets.config_version",
      ]);
      await p.query(`insert into fleets (id, name) values ('f1', 'Fleet 1')`);
      await p.query(`insert into drones (fleet_id, drone_id) values ('f1', 'd1')`);
      const f = await p.query(`select config, config_version from fleets where id = 'f1'`);
      expect(f.rows).toEqual([{ config: {}, config_version: 0 }]);
      // The foreign key holds and cascades.
      await expect(p.query(`insert into drones (fleet_id, drone_id) values ('nope', 'd1')`)).rejects.toThrow(
        /foreign key/,
      );
      await p.query(`delete from fleets where id = 'f1'`);
      expect((await p.query(`select count(*)::int as n from drones`)).rows[0]).toEqual({ n: 0 });
    } finally {
      await p.end();
    }
  });
});

describe("embedded PGlite behind the gate", () => {
  let db: Database;
  beforeAll(async () => {
    db = await startDatabase({ dataDir: "memory://" });
  });
  afterAll(async () => {
    await db?.close();
  });

  it("is reachable through the proxy and takes the migrations", async () => {
    expect(db.kind).toBe("pglite");
    expect(await runMigrations(db.url, proxy.port)).toEqual({ applied: MIGRATIONS, total: MIGRATIONS });
    expect(await runMigrations(db.url, proxy.port)).toEqual({ applied: 0, total: MIGRATIONS });
    const p = pool(db.url);
    try {
      expect((await p.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      const t = await p.query(`select to_regclass('public.drones')::text as t`);
      expect(t.rows).toEqual([{ t: "drones" }]);
    } finally {
      await p.end();
    }
  });

  it("keeps concurrent clients' queries, errors and transactions apart", async () => {
    const p = pool(db.url, 8);
    try {
      await p.query("create table gate_t (id int primary key, v text)");
      const results = await Promise.all(
        Array.from({ length: 120 }, async (_, i): Promise<string> => {
          if (i % 7 === 0) {
            return p.query("select $1::int / 0", [i]).then(
              () => "no error",
              (e: Error) => (/division by zero/.test(e.message) ? "ok" : e.message),
            );
          }
          if (i % 5 === 0) {
            const c = await p.connect();
            try {
              await c.query("begin");
              await c.query("insert into gate_t values ($1, $2)", [i, `v${i}`]);
              const r = await c.query<{ n: number }>("select count(*)::int as n from gate_t where id = $1", [i]);
              await c.query(i % 10 === 0 ? "rollback" : "commit");
              return r.rows[0]?.n === 1 ? "ok" : "tx row missing";
            } finally {
              c.release();
            }
          }
          const r = await p.query<{ n: number; s: string }>("select $1::int as n, $2::text as s", [i, `x${i}`]);
          return r.rows[0]?.n === i && r.rows[0]?.s === `x${i}` ? "ok" : `wrong row for ${i}`;
        }),
      );
      expect(results.filter((r) => r !== "ok")).toEqual([]);
      const committed = Array.from({ length: 120 }, (_, i) => i).filter((i) => i % 7 && i % 5 === 0 && i % 10).length;
      expect((await p.query("select count(*)::int as n from gate_t")).rows[0]).toEqual({ n: committed });

      // A client that vanishes inside a transaction has it rolled back, and frees the database.
      const c = await p.connect();
      await c.query("begin");
      await c.query("insert into gate_t values (100000, 'orphan')");
      (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      c.release(true);
      const after = await p.query<{ n: number }>("select count(*)::int as n from gate_t where id = 100000");
      expect(after.rows[0]).toEqual({ n: 0 });
    } finally {
      await p.end();
    }
  });

  it("keeps data on disk across restarts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "df-pglite-"));
    try {
      const a = await startDatabase({ dataDir: join(dir, "pglite") });
      await runMigrations(a.url, proxy.port);
      const p = pool(a.url);
      await p.query(`insert into fleets (id, name) values ('kept', 'Kept')`);
      await p.end();
      // The data directory is locked while in use.
      await expect(startDatabase({ dataDir: join(dir, "pglite") })).rejects.toThrow(/in use by/);
      await a.close();

      const b = await startDatabase({ dataDir: join(dir, "pglite") });
      try {
        expect(await runMigrations(b.url, proxy.port)).toEqual({ applied: 0, total: MIGRATIONS });
        const q = pool(b.url);
        expect((await q.query(`select name from fleets where id = 'kept'`)).rows).toEqual([{ name: "Kept" }]);
        await q.end();
      } finally {
        await b.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

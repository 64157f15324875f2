/**
 * globalSetup of the `edge` project: a real Postgres for the workerd tests of the analytics path.
 *
 * Starts the WebSocket → TCP proxy the Neon driver needs, creates a fresh database on the machine's
 * Postgres (TEST_DATABASE_URL, default 127.0.0.1:5432/test; embedded PGlite when the variable is
 * unset and nothing listens there), applies the migrations and provides `edgePgUrl` and
 * `edgePgProxy` to vitest.config.ts, which passes them to the Worker as DATABASE_URL and
 * NEON_WS_PROXY. The teardown drops the database and stops the proxy.
 */
import { randomUUID } from "node:crypto";
import type { TestProject } from "vitest/node";
import { Pool } from "@neondatabase/serverless";
import { applyNeonLocalConfig, runMigrations, startDatabase, type Database, tcpReachable } from "../../scripts/db";
import { startWsProxy } from "../../scripts/wsproxy";

declare module "vitest" {
  export interface ProvidedContext {
    /** Postgres URL for the Worker under test ("" when none could be set up). */
    edgePgUrl: string;
    /** "127.0.0.1:PORT" of the WebSocket proxy in front of it. */
    edgePgProxy: string;
  }
}

const DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test";


export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const proxy = await startWsProxy();
  applyNeonLocalConfig(proxy.port);
  const base = process.env.TEST_DATABASE_URL ?? DEFAULT_URL;
  let url: string;
  let pglite: Database | undefined;
  let drop: (() => Promise<void>) | undefined;
  const u = new URL(base);
  if (process.env.TEST_DATABASE_URL || (await tcpReachable(u.hostname, Number(u.port || 5432)))) {
    const name = `df_edge_${randomUUID().replace(/-/g, "").slice(0, 16)}`;
    const admin = new Pool({ connectionString: base, max: 1, connectionTimeoutMillis: 10_000 });
    admin.on("error", () => {});
    await admin.query(`create database ${name}`);
    u.pathname = `/${name}`;
    url = u.toString();
    drop = async () => {
      await admin.query(`drop database if exists ${name} with (force)`).catch(() => {});
      await admin.end().catch(() => {});
    };
  } else {
    pglite = await startDatabase({ dataDir: "memory://" });
    url = pglite.url;
  }
  await runMigrations(url, proxy.port);
  project.provide("edgePgUrl", url);
  project.provide("edgePgProxy", `127.0.0.1:${proxy.port}`);
  return async () => {
    await drop?.();
    await pglite?.close();
    await proxy.close();
  };
}

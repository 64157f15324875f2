/**
 * Shared pieces of the Node tests that run the real stack: a Postgres admin helper and a
 * dashboard client that records frames and waits for conditions with bounded timeouts.
 */
import { Pool } from "@neondatabase/serverless";
import WebSocket from "ws";
import type { ServerMessage } from "../../edge/protocol";
import { applyNeonLocalConfig } from "../../scripts/db";
import { startWsProxy } from "../../scripts/wsproxy";

export const PG_URL = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";

/** Run SQL on the server's maintenance database through a short-lived proxy. */
export async function adminSql(sql: string): Promise<void> {
  const proxy = await startWsProxy();
  applyNeonLocalConfig(proxy.port);
  const pool = new Pool({ connectionString: PG_URL, max: 1, connectionTimeoutMillis: 10_000 });
  pool.on("error", () => {});
  try {
    await pool.query(sql);
  } finally {
    await pool.end();
    await proxy.close();
  }
}

export type Received = { at: number; msg: ServerMessage };

/** A dashboard socket that records every frame and lets a test wait, bounded, for a condition. */
export class Dashboard {
  readonly frames: Received[] = [];
  /** Set when the socket closes (for failure messages: e.g. wrangler reloaded the Worker). */
  closed: string | null = null;
  private waiters = new Set<() => void>();
  private constructor(readonly ws: WebSocket) {
    ws.on("close", (code, reason) => {
      this.closed = `dashboard socket closed: ${code} ${reason.toString()}`;
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      this.frames.push({ at: Date.now(), msg: JSON.parse(data.toString()) as ServerMessage });
      for (const w of this.waiters) w();
    });
  }

  static open(url: string, token: string): Promise<Dashboard> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
      const d = new Dashboard(ws);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error("dashboard socket did not open within 10 s"));
      }, 10_000);
      ws.once("open", () => {
        clearTimeout(timer);
        resolve(d);
      });
      ws.once("unexpected-response", (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`dashboard socket refused: HTTP ${res.statusCode}`));
      });
      ws.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** Resolve once `check` holds for the frames received so far; reject after `timeoutMs`. */
  waitFor(what: string, timeoutMs: number, check: (frames: Received[]) => boolean, context: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const test = () => {
        if (check(this.frames)) {
          clearTimeout(timer);
          this.waiters.delete(test);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(test);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${context()}`));
      }, timeoutMs);
      this.waiters.add(test);
      test();
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A fresh database on the test Postgres, named `<prefix>_<random>`; `drop()` removes it. */
export async function createTestDatabase(prefix: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  await adminSql(`create database ${name}`);
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return { name, url: u.toString(), drop: () => adminSql(`drop database if exists ${name} with (force)`) };
}

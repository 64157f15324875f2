/**
 * globalSetup of the `edge` project: a real HTTP server on 127.0.0.1 that publishes JSON Web Key
 * Sets, for the identity-provider tests (test/edge/auth-oidc.test.ts). The Worker under test
 * fetches its keys from it exactly as it would from Cloudflare Access or an OIDC provider.
 *
 * Each test owns named key sets (so the Worker's per-URL key cache never mixes tests):
 * - GET  /jwks/<set>      the set's JWKS (503 while the set is "down"), counted;
 * - PUT  /control/<set>   `{"keys": [...]}` publishes keys (rotation = publish a different list),
 *                         `{"down": true|false}` takes the endpoint down or back up;
 * - GET  /stats/<set>     `{"fetches": n}`: how often the Worker fetched the set.
 * The tests generate the key pairs themselves (jose in workerd) and publish only public keys.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** http://127.0.0.1:PORT of the JWKS server. */
    jwksServer: string;
  }
}

type KeySet = { keys: unknown[]; down: boolean; fetches: number };

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      s += c;
      if (s.length > 1_000_000) reject(new Error("body too large"));
    });
    req.on("end", () => resolve(s));
    req.on("error", reject);
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const sets = new Map<string, KeySet>();
  const setOf = (name: string): KeySet => {
    let s = sets.get(name);
    if (!s) {
      s = { keys: [], down: false, fetches: 0 };
      sets.set(name, s);
    }
    return s;
  };
  const server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const m = /^\/(jwks|control|stats)\/([A-Za-z0-9_-]{1,64})$/.exec(new URL(req.url ?? "/", "http://x").pathname);
    if (!m) return send(404, { error: "no such route" });
    const [, kind, name] = m as unknown as [string, string, string];
    const set = setOf(name);
    if (kind === "jwks" && req.method === "GET") {
      set.fetches++;
      if (set.down) return send(503, { error: "down" });
      return send(200, { keys: set.keys });
    }
    if (kind === "stats" && req.method === "GET") return send(200, { fetches: set.fetches });
    if (kind === "control" && req.method === "PUT") {
      readBody(req)
        .then((text) => {
          const body: unknown = JSON.parse(text);
          if (typeof body !== "object" || body === null) return send(400, { error: "expected an object" });
          if ("keys" in body && Array.isArray(body.keys)) set.keys = body.keys;
          if ("down" in body && typeof body.down === "boolean") set.down = body.down;
          send(200, { ok: true });
        })
        .catch((err: unknown) => send(400, { error: String(err) }));
      return;
    }
    send(405, { error: "method not allowed" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  project.provide("jwksServer", `http://127.0.0.1:${port}`);
  return async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

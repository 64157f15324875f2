/**
 * Safe defaults outside local development (edge/worker/deployment.ts): no serving with a weak or
 * committed AUTH_SECRET, no dashboard sockets while ALLOWED_ORIGINS is "*". Each case runs the
 * Worker with its own bindings (app.request with a per-test env over the real ones).
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { signToken } from "../../edge/worker/auth";
import { DEVELOPMENT_SECRET } from "../../edge/worker/deployment";
import { app } from "../../edge/worker/index";
import { uniqueFleet } from "./helpers";

const STRONG = "k3y-".padEnd(48, "x7Q"); // 48 bytes
const ORIGIN = "https://fleet.acme.example";

function production(over: Record<string, unknown> = {}) {
  return { ...env, ENVIRONMENT: "production", AUTH_SECRET: STRONG, ALLOWED_ORIGINS: ORIGIN, ...over };
}

async function call(e: object, path: string, headers: Record<string, string> = {}) {
  const res = await app.request(`https://edge.test${path}`, { headers }, e);
  const body = res.status === 101 ? {} : ((await res.json()) as { error?: { code: string; message: string } });
  if (res.status === 101) {
    res.webSocket?.accept();
    res.webSocket?.close(1000, "done");
  }
  return { status: res.status, body };
}

/** Every console line the edge writes during `fn`, as JSON text. */
async function logsOf(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  for (const m of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
  await fn();
  return lines;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("AUTH_SECRET outside local development", () => {
  for (const [what, secret, why] of [
    ["the committed development secret", DEVELOPMENT_SECRET, /development secret committed in \.dev\.vars/],
    ["a 31-byte secret", "x".repeat(31), /shorter than 32 bytes/],
    ["no secret", "", /AUTH_SECRET is not set/],
  ] as const) {
    it(`refuses every route but /health with ${what}, and logs how to set one`, async () => {
      const e = production({ AUTH_SECRET: secret });
      const fleet = uniqueFleet("dep");
      const tok = await signToken(secret || "unused", { sub: "a", role: "admin", fleets: "*" });
      const lines = await logsOf(async () => {
        for (const path of [`/v1/fleets/${fleet}/status`, `/v1/fleets/${fleet}/ws`, "/v1/me", "/nope"]) {
          const r = await call(e, path, { Authorization: `Bearer ${tok}`, Upgrade: "websocket" });
          expect(r.status, path).toBe(503);
          expect(r.body.error?.code).toBe("misconfigured");
          expect(r.body.error?.message).toMatch(/wrangler secret put AUTH_SECRET --env production/);
        }
        expect((await call(e, "/health")).status).toBe(200);
      });
      const refusals = lines.filter((l) => l.includes("edge misconfigured"));
      // Said once per isolate, not once per refused request; `why` there, never the secret.
      expect(refusals.length).toBeLessThanOrEqual(1);
      const all = lines.join("\n");
      if (refusals.length) {
        expect(all).toMatch(why);
        expect(all).toMatch(/npx wrangler secret put AUTH_SECRET --env production/);
      }
      if (secret) expect(all).not.toContain(secret);
    });
  }

  it("logs the refusal with the fix the first time it happens", async () => {
    // A secret no other test uses, so this isolate has not logged its problem yet.
    const e = production({ AUTH_SECRET: "short", ENVIRONMENT: "staging" });
    const lines = await logsOf(async () => {
      expect((await call(e, `/v1/fleets/${uniqueFleet("dep")}/status`)).status).toBe(503);
    });
    expect(lines.join("\n")).toMatch(/AUTH_SECRET is shorter than 32 bytes.*openssl rand -base64 48 \| npx wrangler secret put AUTH_SECRET --env staging/);
  });

  it("serves with a secret of 32 bytes or more, and holds a Worker without ENVIRONMENT to the same rules", async () => {
    const fleet = uniqueFleet("dep");
    for (const secret of [STRONG, "y".repeat(32)]) {
      const tok = await signToken(secret, { sub: "a", role: "viewer", fleets: [fleet] });
      expect((await call(production({ AUTH_SECRET: secret }), `/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${tok}` })).status).toBe(200);
    }
    const noEnv: Record<string, unknown> = { ...production({ AUTH_SECRET: DEVELOPMENT_SECRET }) };
    delete noEnv.ENVIRONMENT;
    const r = await call(noEnv, `/v1/fleets/${fleet}/status`);
    expect(r.status).toBe(503);
    expect(r.body.error?.message).toMatch(/--env <environment>/);
    // Local development (the top level of wrangler.toml) runs with the .dev.vars secret.
    expect(env.ENVIRONMENT).toBe("development");
    const dev = await signToken(DEVELOPMENT_SECRET, { sub: "a", role: "viewer", fleets: [fleet] });
    expect((await call({ ...env, AUTH_SECRET: DEVELOPMENT_SECRET }, `/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${dev}` })).status).toBe(200);
  });
});

describe("ALLOWED_ORIGINS outside local development", () => {
  it('refuses dashboard sockets while it is "*" or unset, with a log line saying what to set', async () => {
    const fleet = uniqueFleet("dep");
    const viewer = await signToken(STRONG, { sub: "v", role: "viewer", fleets: [fleet] });
    const relay = await signToken(STRONG, { sub: "r", role: "relay", fleets: [fleet] });
    const up = (tok: string, origin?: string) => ({ Upgrade: "websocket", Authorization: `Bearer ${tok}`, ...(origin ? { Origin: origin } : {}) });
    for (const allowed of ["*", "", " * , https://x.example", undefined, "fleet.acme.example", "https://fleet.acme.example/dashboard"]) {
      const e = production({ ALLOWED_ORIGINS: allowed, ENVIRONMENT: "staging" });
      const lines = await logsOf(async () => {
        const ws = await call(e, `/v1/fleets/${fleet}/ws`, up(viewer, "https://edge.test"));
        expect(ws.status, String(allowed)).toBe(503);
        expect(ws.body.error?.code).toBe("misconfigured");
        expect(ws.body.error?.message).toMatch(/ALLOWED_ORIGINS/);
        // REST and the relay socket are not browser sessions' sockets: they keep working.
        expect((await call(e, `/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${viewer}` })).status).toBe(200);
        expect((await call(e, `/v1/fleets/${fleet}/relay`, up(relay))).status).toBe(101);
      });
      for (const l of lines) expect(l).not.toContain(viewer);
      vi.restoreAllMocks();
    }
    const lines = await logsOf(async () => {
      await call(production({ ALLOWED_ORIGINS: "*", ENVIRONMENT: "production" }), `/v1/fleets/${fleet}/ws`, up(viewer));
    });
    expect(lines.join("\n")).toMatch(/dashboard sockets refused.*ALLOWED_ORIGINS is \\?"\*\\?".*\[env\.production\.vars\]/);
  });

  it("opens dashboard sockets from the named origins and the edge's own, and refuses others", async () => {
    const fleet = uniqueFleet("dep");
    const viewer = await signToken(STRONG, { sub: "v", role: "viewer", fleets: [fleet] });
    const e = production({ ALLOWED_ORIGINS: `${ORIGIN}, https://backup.acme.example` });
    const ws = (origin?: string) => call(e, `/v1/fleets/${fleet}/ws`, { Upgrade: "websocket", Authorization: `Bearer ${viewer}`, ...(origin ? { Origin: origin } : {}) });
    for (const origin of [ORIGIN, "https://backup.acme.example", "https://edge.test", undefined]) expect((await ws(origin)).status, String(origin)).toBe(101);
    expect((await ws("https://evil.example")).status).toBe(403);
    // In development "*" still opens from anywhere (npm start, the dev dashboard on another port).
    expect((await call({ ...env, ALLOWED_ORIGINS: "*" }, `/v1/fleets/${fleet}/ws`, { Upgrade: "websocket", Authorization: `Bearer ${await signToken(env.AUTH_SECRET, { sub: "v", role: "viewer", fleets: [fleet] })}`, Origin: "http://localhost:5173" })).status).toBe(101);
  });
});

describe("GET /v1/me with the edge's own token", () => {
  it("describes the token's grant", async () => {
    const tok = await signToken(env.AUTH_SECRET, { sub: "alice", role: "operator", fleets: ["a", "b"] });
    const res = await app.request("https://edge.test/v1/me", { headers: { Authorization: `Bearer ${tok}` } }, env);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ sub: "alice", via: "token", grants: [{ role: "operator", fleets: ["a", "b"] }] });
    expect((await app.request("https://edge.test/v1/me", {}, env)).status).toBe(401);
  });
});

import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { signToken, verifyToken } from "../../edge/worker/auth";
import { SECRET, token, uniqueFleet } from "./helpers";

const enc = (o: unknown) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await SELF.fetch(`https://edge.test${path}`, { headers });
  const body = (await res.json()) as { error?: { code: string; message: string } };
  return { status: res.status, body };
}

describe("auth matrix", () => {
  const fleet = uniqueFleet("auth");
  const upgrade = { Upgrade: "websocket" };

  it("serves /health without a token", async () => {
    const { status, body } = await get("/health");
    expect(status).toBe(200);
    expect(body).toMatchObject({ ok: true });
  });

  it("rejects a missing token with 401 before the upgrade", async () => {
    for (const p of ["status", "ws", "relay"]) {
      const { status, body } = await get(`/v1/fleets/${fleet}/${p}`, upgrade);
      expect(status).toBe(401);
      expect(body.error?.code).toBe("unauthorized");
    }
  });

  it("rejects malformed, expired, wrongly signed and alg=none tokens with 401", async () => {
    const expired = await signToken(SECRET, { sub: "a", role: "operator", fleets: [fleet], exp: Math.floor(Date.now() / 1000) - 120 });
    const wrongKey = await token("operator", [fleet], { secret: "another-secret" });
    const none = `${enc({ alg: "none", typ: "JWT" })}.${enc({ sub: "a", role: "admin", fleets: "*", exp: 9e9 })}.`;
    const missingClaims = await signToken(SECRET, { sub: "a", fleets: [fleet] } as never);
    for (const [tok, msg] of [
      ["not-a-jwt", /malformed/],
      ["a.b.c", /malformed/],
      [expired, /expired/],
      [wrongKey, /signature/],
      [none, /HS256/],
      [missingClaims, /claims/],
    ] as const) {
      const { status, body } = await get(`/v1/fleets/${fleet}/ws`, { ...upgrade, Authorization: `Bearer ${tok}` });
      expect(status, String(tok)).toBe(401);
      expect(body.error?.message).toMatch(msg);
    }
  });

  it("accepts ?access_token= as well as the header", async () => {
    const tok = await token("viewer", [fleet]);
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/status?access_token=${tok}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ type: "fleet_status", fleet, relay_connected: false });
  });

  it("answers 403 for a token of another fleet, and allows '*'", async () => {
    const other = await token("operator", ["some-other-fleet"]);
    expect((await get(`/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${other}` })).status).toBe(403);
    const star = await token("operator", "*");
    expect((await get(`/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${star}` })).status).toBe(200);
  });

  it("lets only relays open /relay and keeps relays off /ws", async () => {
    for (const role of ["viewer", "operator", "admin"] as const) {
      const { status, body } = await get(`/v1/fleets/${fleet}/relay`, { ...upgrade, Authorization: `Bearer ${await token(role, [fleet])}` });
      expect(status, role).toBe(403);
      expect(body.error?.code).toBe("forbidden");
    }
    const relayTok = await token("relay", [fleet]);
    expect((await get(`/v1/fleets/${fleet}/ws`, { ...upgrade, Authorization: `Bearer ${relayTok}` })).status).toBe(403);
  });

  it("answers 426 when a socket route is fetched without an upgrade", async () => {
    const { status, body } = await get(`/v1/fleets/${fleet}/ws`, { Authorization: `Bearer ${await token("viewer", [fleet])}` });
    expect(status).toBe(426);
    expect(body.error?.code).toBe("upgrade_required");
  });

  it("rejects an invalid fleet id and unknown routes with coded errors", async () => {
    const tok = await token("admin", "*");
    expect((await get(`/v1/fleets/BAD%20ID/status`, { Authorization: `Bearer ${tok}` })).body.error?.code).toBe("bad_fleet");
    expect((await get(`/nope`)).status).toBe(404);
  });

  it("verifyToken honours nbf with leeway", async () => {
    const future = await signToken(SECRET, { sub: "a", role: "viewer", fleets: "*", nbf: Math.floor(Date.now() / 1000) + 600 } as never);
    const r = await verifyToken(SECRET, future);
    expect(r.ok).toBe(false);
  });
});

/**
 * Sign-in through the operators' identity provider: Cloudflare Access assertions (header and
 * cookie) and OIDC tokens, verified against keys the Worker fetches from a real local JWKS server
 * (test/edge/jwks-setup.ts), and the IDENTITY_CONFIG rules that turn groups into roles and fleets.
 * Each test publishes its own key sets, so the Worker's per-URL key cache never mixes tests, and
 * runs the Worker with its own IDENTITY_CONFIG (app.request with a per-test env).
 */
import { env } from "cloudflare:test";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { describe, expect, inject, it } from "vitest";
import { app } from "../../edge/worker/index";
import { parseIdentityConfig } from "../../edge/worker/sso-config";
import { TestSocket, token, uniqueFleet } from "./helpers";

const JWKS = inject("jwksServer");
const AUD = "aud-tag-0123456789abcdef";

type Alg = "RS256" | "ES256" | "EdDSA";
type Key = { kid: string; alg: Alg; privateKey: CryptoKey; jwk: JWK };

async function newKey(alg: Alg = "RS256", kid = `kid-${crypto.randomUUID().slice(0, 8)}`): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

/** A key set of its own on the JWKS server. */
class KeySetOnServer {
  readonly name = `set-${crypto.randomUUID().slice(0, 12)}`;
  readonly url = `${JWKS}/jwks/${this.name}`;
  async publish(...keys: Key[]): Promise<void> {
    await this.control({ keys: keys.map((k) => k.jwk) });
  }
  async down(down = true): Promise<void> {
    await this.control({ down });
  }
  async fetches(): Promise<number> {
    const r = await fetch(`${JWKS}/stats/${this.name}`);
    return ((await r.json()) as { fetches: number }).fetches;
  }
  private async control(body: unknown): Promise<void> {
    const r = await fetch(`${JWKS}/control/${this.name}`, { method: "PUT", body: JSON.stringify(body) });
    expect(r.status).toBe(200);
  }
}

type Claims = Record<string, unknown> & { iss?: string; aud?: string | string[] };

async function sign(key: Key, claims: Claims, opts: { exp?: number; nbf?: number; kid?: string | null; alg?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const header: { alg: string; kid?: string; typ: string } = { alg: opts.alg ?? key.alg, typ: "JWT" };
  if (opts.kid !== null) header.kid = opts.kid ?? key.kid;
  const jwt = new SignJWT(claims).setProtectedHeader(header).setIssuedAt(now).setExpirationTime(opts.exp ?? now + 600);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(key.privateKey);
}

const ACCESS_ISS = "https://acme.cloudflareaccess.test";
const OIDC_ISS = "https://login.acme.test/oauth2";

function config(accessJwks: string, more: Record<string, unknown> = {}, oidcJwks?: string) {
  return {
    providers: [
      { name: "access", kind: "cloudflare-access", issuer: ACCESS_ISS, jwks_url: accessJwks, audience: AUD },
      ...(oidcJwks ? [{ name: "okta", kind: "oidc", issuer: OIDC_ISS, jwks_url: oidcJwks, audience: "dronefleet-client" }] : []),
    ],
    rules: [
      { group: "fleet-admins", role: "admin", fleets: "*" },
      { group: "fleet-ops-zurich", role: "operator", fleets: ["zurich-*"] },
      { email: "*@acme.example", role: "viewer", fleets: "*" },
    ],
    ...more,
  };
}

/** Access application token claims as Access issues them (groups from the IdP under `custom`). */
function accessClaims(email: string, groups: string[] = [], over: Claims = {}): Claims {
  return { iss: ACCESS_ISS, aud: [AUD], email, sub: crypto.randomUUID(), type: "app", custom: { groups }, ...over };
}

function withConfig(cfg: unknown, extra: Record<string, unknown> = {}) {
  return { ...env, IDENTITY_CONFIG: JSON.stringify(cfg), ...extra };
}

async function call(e: object, path: string, headers: Record<string, string> = {}, init: RequestInit = {}) {
  const res = await app.request(`https://edge.test${path}`, { ...init, headers }, e);
  const text = await res.text();
  let body: { error?: { code: string; message: string } } & Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    /* not JSON: a 101 or an empty body */
  }
  return { status: res.status, body, res };
}

const assertion = (jwt: string) => ({ "Cf-Access-Jwt-Assertion": jwt });

describe("Cloudflare Access and OIDC sign-in", () => {
  it("accepts a valid Access assertion (header or cookie) and maps groups to role and fleets", async () => {
    const ks = new KeySetOnServer();
    const key = await newKey("RS256");
    await ks.publish(key);
    const e = withConfig(config(ks.url));
    const zurich = uniqueFleet("zurich");
    const geneva = uniqueFleet("geneva");
    const ops = await sign(key, accessClaims("ana@ops.example", ["fleet-ops-zurich"]));

    expect((await call(e, `/v1/fleets/${zurich}/status`, assertion(ops))).status).toBe(200);
    // The cookie a browser sends when it reaches the Worker without Access in front.
    expect((await call(e, `/v1/fleets/${zurich}/status`, { Cookie: `theme=dark; CF_Authorization=${ops}` })).status).toBe(200);
    // Operator in zurich-*: may read, may not change the configuration; nothing in other fleets.
    const put = await call(e, `/v1/fleets/${zurich}/config`, assertion(ops), { method: "PUT", body: "{}" });
    expect(put.status).toBe(403);
    expect(put.body.error?.message).toMatch(/role operator may not change the fleet configuration/);
    const other = await call(e, `/v1/fleets/${geneva}/status`, assertion(ops));
    expect(other.status).toBe(403);
    expect(other.body.error?.message).toMatch(/ana@ops\.example has no role in fleet geneva-/);

    // Highest role wins: an admin who also matches the viewer rule is admin everywhere.
    const admin = await sign(key, accessClaims("bo@acme.example", ["fleet-admins"]));
    expect((await call(e, `/v1/fleets/${geneva}/config`, assertion(admin))).status).toBe(200);
    // Viewer by email domain (case-insensitive), in every fleet.
    const viewer = await sign(key, accessClaims("Cy@ACME.example"));
    expect((await call(e, `/v1/fleets/${geneva}/status`, assertion(viewer))).status).toBe(200);
    expect((await call(e, `/v1/fleets/${geneva}/config`, assertion(viewer), { method: "PUT", body: "{}" })).status).toBe(403);

    // /v1/me tells the dashboard who it is (it has no token of its own to decode).
    const me = await call(e, "/v1/me", assertion(ops));
    expect(me.status).toBe(200);
    expect(me.res.headers.get("cache-control")).toBe("no-store");
    expect(me.body).toMatchObject({ sub: "ana@ops.example", via: "cloudflare-access", provider: "access", groups: ["fleet-ops-zurich"], grants: [{ role: "operator", fleets: ["zurich-*"] }] });
    // Someone no rule matches gets nothing.
    const nobody = await sign(key, accessClaims("eve@elsewhere.example"));
    expect((await call(e, `/v1/fleets/${zurich}/status`, assertion(nobody))).status).toBe(403);
    // One fetch of the key set served all of the above.
    expect(await ks.fetches()).toBe(1);
  });

  it("accepts OIDC tokens signed with RS256, ES256 and EdDSA as Bearer tokens, beside the edge's own HS256 tokens", async () => {
    const access = new KeySetOnServer();
    const okta = new KeySetOnServer();
    const keys = [await newKey("RS256"), await newKey("ES256"), await newKey("EdDSA")];
    await access.publish(await newKey("RS256"));
    await okta.publish(...keys);
    const e = withConfig(config(access.url, {}, okta.url));
    const fleet = uniqueFleet("zurich");
    for (const k of keys) {
      const jwt = await sign(k, { iss: OIDC_ISS, aud: "dronefleet-client", sub: "00u1", email: "dee@acme.example", groups: ["fleet-ops-zurich"] });
      const r = await call(e, `/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${jwt}` });
      expect(r.status, k.alg).toBe(200);
      expect((await call(e, "/v1/me", { Authorization: `Bearer ${jwt}` })).body).toMatchObject({ sub: "dee@acme.example", via: "oidc", provider: "okta" });
    }
    // HS256 tokens keep working with IDENTITY_CONFIG set, and win over an Access assertion.
    const relayTok = await token("relay", [fleet]);
    const accessJwt = await sign((await newKey("RS256")), accessClaims("x@acme.example"));
    const me = await call(e, "/v1/me", { Authorization: `Bearer ${relayTok}`, ...assertion(accessJwt) });
    expect(me.body).toMatchObject({ via: "token", grants: [{ role: "relay", fleets: [fleet] }] });
  });

  it("refuses expired, not-yet-valid, wrong-audience and wrong-issuer tokens", async () => {
    const ks = new KeySetOnServer();
    const key = await newKey("RS256");
    await ks.publish(key);
    const e = withConfig(config(ks.url));
    const fleet = uniqueFleet("zurich");
    const now = Math.floor(Date.now() / 1000);
    const admin = (over: Claims = {}) => accessClaims("bo@acme.example", ["fleet-admins"], over);
    for (const [jwt, msg] of [
      // Past the 30 s leeway.
      [await sign(key, admin(), { exp: now - 120 }), /token expired/],
      [await sign(key, admin(), { nbf: now + 600 }), /not yet valid/],
      [await sign(key, admin({ aud: ["another-application"] })), /audience is not this edge's/],
      [await sign(key, admin({ iss: "https://evil.cloudflareaccess.test" })), /issuer is not a configured identity provider/],
      [await sign(key, admin({ iss: undefined })), /issuer is not a configured identity provider/],
      ["not.a.jwt", /malformed/],
    ] as const) {
      const r = await call(e, `/v1/fleets/${fleet}/status`, assertion(jwt));
      expect(r.status, String(msg)).toBe(401);
      expect(r.body.error).toMatchObject({ code: "unauthorized", message: expect.stringMatching(msg) });
    }
    // Within the leeway, still fine.
    expect((await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(key, admin(), { exp: now - 5 })))).status).toBe(200);
  });

  it("refuses an unknown kid, a token without kid and a forged signature, without a fetch per attempt", async () => {
    const ks = new KeySetOnServer();
    const key = await newKey("RS256");
    await ks.publish(key);
    const e = withConfig(config(ks.url));
    const fleet = uniqueFleet("zurich");
    const claims = accessClaims("bo@acme.example", ["fleet-admins"]);
    expect((await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)))).status).toBe(200);
    const stranger = await newKey("RS256", "kid-nobody-knows");
    for (let i = 0; i < 3; i++) {
      const r = await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(stranger, claims)));
      expect(r.status).toBe(401);
      expect(r.body.error?.message).toMatch(/no RS256 key with kid kid-nobody-knows/);
    }
    // The cooldown (30 s by default) keeps made-up kids from turning into requests to the provider.
    expect(await ks.fetches()).toBe(1);
    const noKid = await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims, { kid: null })));
    expect(noKid.body.error?.message).toMatch(/no kid/);
    // Signed by another key under the published key's kid.
    const forged = await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(stranger, claims, { kid: key.kid })));
    expect(forged.status).toBe(401);
    expect(forged.body.error?.message).toMatch(/bad token signature/);
  });

  it("follows a key rotation: a new kid makes it fetch the keys again, a removed key stops working", async () => {
    const ks = new KeySetOnServer();
    const [a, b, c] = [await newKey("RS256"), await newKey("RS256"), await newKey("RS256")];
    await ks.publish(a);
    // cooldown_s 0: a test cannot wait out the default 30 s.
    const e = withConfig(config(ks.url, { jwks: { cooldown_s: 0 } }));
    const fleet = uniqueFleet("zurich");
    const claims = accessClaims("bo@acme.example", ["fleet-admins"]);
    const st = async (k: Key) => (await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(k, claims)))).status;
    expect(await st(a)).toBe(200);
    // Access publishes the new key beside the old one, then drops the old one.
    await ks.publish(a, b);
    expect(await st(b)).toBe(200);
    expect(await st(a)).toBe(200);
    expect(await ks.fetches()).toBe(2);
    // The next rotation drops a. The edge learns of it with its next fetch (here: c's unknown kid;
    // otherwise when the cached keys age out), and from then on a is refused.
    await ks.publish(b, c);
    expect(await st(c)).toBe(200);
    expect(await ks.fetches()).toBe(3);
    const gone = await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(a, claims)));
    expect(gone.status).toBe(401);
    expect(gone.body.error?.message).toMatch(/no RS256 key with kid/);
    expect(await st(b)).toBe(200);
  });

  it("refuses an algorithm the provider does not use, and never tries HS256 or none against its keys", async () => {
    const ks = new KeySetOnServer();
    const rsa = await newKey("RS256");
    const ec = await newKey("ES256");
    await ks.publish(rsa, ec);
    const e = withConfig(config(ks.url)); // Access: RS256 only
    const fleet = uniqueFleet("zurich");
    const claims = accessClaims("bo@acme.example", ["fleet-admins"]);
    const es = await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(ec, claims)));
    expect(es.status).toBe(401);
    expect(es.body.error?.message).toMatch(/algorithm ES256 is not accepted for provider access \(RS256\)/);
    // An HS256 token naming the provider's issuer is one of the edge's own: checked with AUTH_SECRET.
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: rsa.kid }).setExpirationTime("10m").sign(new TextEncoder().encode(JSON.stringify(rsa.jwk)));
    const r = await call(e, `/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${hs}` });
    expect(r.status).toBe(401);
    expect(r.body.error?.message).toMatch(/bad token signature/);
    const enc = (o: unknown) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const none = `${enc({ alg: "none", kid: rsa.kid })}.${enc({ ...claims, exp: 9e9 })}.`;
    expect((await call(e, `/v1/fleets/${fleet}/status`, assertion(none))).status).toBe(401);
    expect((await call(e, `/v1/fleets/${fleet}/status`, { Authorization: `Bearer ${none}` })).body.error?.message).toMatch(/HS256/);
  });

  it("fails closed when the key set cannot be fetched, and keeps verifying with fresh cached keys", async () => {
    const fleet = uniqueFleet("zurich");
    const claims = accessClaims("bo@acme.example", ["fleet-admins"]);
    const key = await newKey("RS256");

    // Down from the start: nothing cached, nothing accepted; 503, not 401 (the person is fine).
    const cold = new KeySetOnServer();
    await cold.publish(key);
    await cold.down();
    const r1 = await call(withConfig(config(cold.url)), `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)));
    expect(r1.status).toBe(503);
    expect(r1.body.error).toMatchObject({ code: "idp_unavailable", message: expect.stringMatching(/signing keys of identity provider access/) });

    // Nothing listening at all.
    const r2 = await call(withConfig(config("http://127.0.0.1:1/jwks")), `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)));
    expect(r2.status).toBe(503);

    // Cached and fresh: a known kid keeps working through the outage, an unknown one does not.
    const warm = new KeySetOnServer();
    await warm.publish(key);
    const e = withConfig(config(warm.url, { jwks: { cooldown_s: 0 } }));
    expect((await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)))).status).toBe(200);
    await warm.down();
    expect((await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)))).status).toBe(200);
    const unknown = await call(e, `/v1/fleets/${fleet}/status`, assertion(await sign(await newKey("RS256"), claims)));
    expect(unknown.status).toBe(503);

    // Stale (cache_max_age_s 0: always stale): the outage refuses even a key it has seen.
    const stale = new KeySetOnServer();
    await stale.publish(key);
    const es = withConfig(config(stale.url, { jwks: { cache_max_age_s: 0 } }));
    expect((await call(es, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)))).status).toBe(200);
    await stale.down();
    expect((await call(es, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)))).status).toBe(503);
    // And back up: accepted again.
    await stale.down(false);
    expect((await call(es, `/v1/fleets/${fleet}/status`, assertion(await sign(key, claims)))).status).toBe(200);
  });

  it("runs a dashboard socket on the Access assertion alone and records the person's email for every command", async () => {
    const ks = new KeySetOnServer();
    const key = await newKey("RS256");
    await ks.publish(key);
    const e = withConfig(config(ks.url));
    const fleet = uniqueFleet("zurich");
    const jwt = await sign(key, accessClaims("ana@ops.example", ["fleet-ops-zurich"]));
    const up = await app.request(`https://edge.test/v1/fleets/${fleet}/ws`, { headers: { Upgrade: "websocket", ...assertion(jwt) } }, e);
    expect(up.status).toBe(101);
    const sock = new TestSocket(up.webSocket!);
    up.webSocket!.accept();
    sock.send({ type: "emergency_land", command_id: "sso-cmd-1", drone_id: "d1", reason: "test" });
    // No relay: refused at once, and on the record.
    expect(await sock.nextOfType("emergency_land_response")).toMatchObject({ command_id: "sso-cmd-1", success: false });
    sock.close();
    const audit = await call(e, `/v1/fleets/${fleet}/commands`, assertion(jwt));
    expect(audit.status).toBe(200);
    const row = (audit.body.commands as { command_id: string; sub: string; role: string }[]).find((c) => c.command_id === "sso-cmd-1");
    expect(row).toMatchObject({ sub: "ana@ops.example", role: "operator" });
  });

  it("lets Access credentials change things only from an allowed Origin (they ride along with any page's request)", async () => {
    const ks = new KeySetOnServer();
    const key = await newKey("RS256");
    await ks.publish(key);
    const e = withConfig(config(ks.url), { ALLOWED_ORIGINS: "https://ops.acme.example" });
    const fleet = uniqueFleet("zurich");
    const admin = await sign(key, accessClaims("bo@acme.example", ["fleet-admins"]));
    const current = (await call(e, `/v1/fleets/${fleet}/config`, assertion(admin))).body;
    const put = (origin?: string) =>
      call(e, `/v1/fleets/${fleet}/config`, { ...assertion(admin), "content-type": "application/json", ...(origin ? { Origin: origin } : {}) }, { method: "PUT", body: JSON.stringify(current) });
    const evil = await put("https://evil.example");
    expect(evil.status).toBe(403);
    expect(evil.body.error?.code).toBe("origin_not_allowed");
    for (const origin of ["https://ops.acme.example", "https://edge.test", undefined]) {
      expect((await put(origin)).status, String(origin)).toBe(200);
    }
    // Reads stay open to any Origin (the browser keeps cross-origin answers from the page).
    expect((await call(e, `/v1/fleets/${fleet}/status`, { ...assertion(admin), Origin: "https://evil.example" })).status).toBe(200);
  });

  it("answers an Access assertion without IDENTITY_CONFIG with a clear 401", async () => {
    const key = await newKey("RS256");
    const r = await call(env, `/v1/fleets/${uniqueFleet("z")}/status`, assertion(await sign(key, accessClaims("a@acme.example"))));
    expect(r.status).toBe(401);
    expect(r.body.error?.message).toMatch(/IDENTITY_CONFIG names no provider/);
  });
});

describe("IDENTITY_CONFIG", () => {
  it("is checked at first use: an invalid one answers 503 with every problem by its path", async () => {
    const bad = { providers: [{ name: "access", kind: "cloudflare-access", audience: "" }], rules: [{ role: "pilot", fleets: ["Zurich"] }] };
    const r = await call(withConfig(bad), `/v1/fleets/${uniqueFleet("z")}/status`, { Authorization: `Bearer ${await token("admin", "*")}` });
    expect(r.status).toBe(503);
    expect(r.body.error?.code).toBe("misconfigured");
    expect(r.body.error?.message).toMatch(/IDENTITY_CONFIG\.providers\[0\]\.audience/);
    expect(r.body.error?.message).toMatch(/IDENTITY_CONFIG\.rules\[0\]\.role/);
    expect(r.body.error?.message).toMatch(/IDENTITY_CONFIG\.rules\[0\]\.fleets\[0\]: fleet pattern/);
    expect((await call(withConfig(bad), "/health")).status).toBe(200);
    expect((await call({ ...env, IDENTITY_CONFIG: "{not json" }, "/v1/me")).body.error?.message).toMatch(/IDENTITY_CONFIG is not valid JSON/);
  });

  it("spells out what is missing or inconsistent", () => {
    const err = (v: unknown) => {
      const r = parseIdentityConfig(v);
      return r.ok ? "" : r.error;
    };
    expect(err({ providers: [{ name: "okta", kind: "oidc", audience: "x" }], rules: [] })).toMatch(/providers\[0\]: needs "issuer".*providers\[0\]: needs "jwks_url"/);
    expect(err({ providers: [{ name: "a", kind: "oidc", issuer: "i", jwks_url: "http://idp.example/keys", audience: "x" }], rules: [] })).toMatch(/jwks_url: must be an https:\/\/ URL/);
    const p = { kind: "oidc", issuer: "https://i", jwks_url: "https://i/keys", audience: "x" };
    expect(err({ providers: [{ ...p, name: "a" }, { ...p, name: "b" }], rules: [] })).toMatch(/issuer "https:\/\/i" is used twice/);
    expect(err({ providers: [{ ...p, name: "a" }], rules: [{ group: "g", role: "viewer", fleets: "*", provider: "zz" }] })).toMatch(/rules\[0\]\.provider: no provider named "zz"/);
    expect(err({ providers: [{ ...p, name: "a" }], rules: [{ role: "viewer", fleets: "*" }] })).toMatch(/a rule needs group, email or subject/);
    expect(err({ providers: [{ ...p, name: "a" }], rules: [{ group: "g", role: "relay", fleets: "*" }] })).toMatch(/rules\[0\]\.role/);
    expect(err({ providers: [{ ...p, name: "a", extra: 1 }], rules: [] })).toMatch(/providers\[0\]/);
    // Access from its team domain alone.
    const ok = parseIdentityConfig({ providers: [{ name: "access", kind: "cloudflare-access", team_domain: "acme.cloudflareaccess.com", audience: "t" }], rules: [] });
    expect(ok.ok && ok.config.providers[0]).toMatchObject({
      issuer: "https://acme.cloudflareaccess.com",
      jwksUrl: "https://acme.cloudflareaccess.com/cdn-cgi/access/certs",
      algorithms: ["RS256"],
      groupsClaim: "custom.groups",
    });
  });
});

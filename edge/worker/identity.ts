/**
 * Who is calling: one answer for every route, from whichever credential the request carries.
 *
 * 1. An explicit token, `Authorization: Bearer …` or `?access_token=`: the edge's own HS256 token
 *    (relays, scripts, local development) — or, when IDENTITY_CONFIG is set and the token is not
 *    HS256, an OIDC token of a configured provider.
 * 2. Otherwise Cloudflare Access: the `Cf-Access-Jwt-Assertion` header Access adds to every request
 *    it lets through, or its `CF_Authorization` cookie (a browser reaching the Worker directly).
 *
 * An explicit token wins, so a relay behind an Access bypass or service-token policy stays a relay.
 * Access credentials are ambient (a browser sends them with any request to the host): routes that
 * change something check the Origin for them as /ws does for every socket (fleets.ts).
 *
 * A provider identity becomes Claims per fleet: the highest role IDENTITY_CONFIG's rules give the
 * person there; `sub` is the person's email (or subject), which the fleet object records as the
 * sender of every command.
 */
import type { MeBody } from "../protocol";
import { allowsFleet, tokenFromRequest, verifyToken, type Claims } from "./auth";
import type { Env } from "./env";
import { identityConfig, grantsFor, personFrom, roleInFleet, type Grant, type IdentityConfig, type Person } from "./sso-config";
import { verifySsoToken } from "./sso";

export type Identity =
  | { via: "token"; claims: Claims; ambient: false }
  | { via: "cloudflare-access" | "oidc"; provider: string; person: Person; grants: Grant[]; exp: number; ambient: boolean };

export type IdentityFailure = { ok: false; status: 401 | 403 | 503; code: string; message: string };
export type IdentityResult = { ok: true; id: Identity } | IdentityFailure;

export const ACCESS_HEADER = "cf-access-jwt-assertion";
export const ACCESS_COOKIE = "CF_Authorization";

const MISSING = "missing token: send Authorization: Bearer <token> or ?access_token=";

/** A cookie's value from the Cookie header, or null. */
export function cookieValue(req: Request, name: string): string | null {
  const header = req.headers.get("cookie");
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

/** The JWT header's `alg`, without verifying anything (to route the token to its verifier). */
function algOf(token: string): unknown {
  const h = token.split(".")[0] ?? "";
  try {
    const header: unknown = JSON.parse(atob(h.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof header === "object" && header !== null ? (header as { alg?: unknown }).alg : undefined;
  } catch {
    return undefined;
  }
}

/** Identify the caller. Never throws. */
export async function identify(req: Request, env: Env): Promise<IdentityResult> {
  const cfg = identityConfig(env.IDENTITY_CONFIG);
  if (cfg && !cfg.ok) return { ok: false, status: 503, code: "misconfigured", message: cfg.error };
  const config = cfg?.config ?? null;

  const explicit = tokenFromRequest(req);
  if (explicit) {
    const alg = algOf(explicit);
    if (config && typeof alg === "string" && alg !== "HS256" && alg !== "none") return fromProvider(config, explicit, false);
    const auth = await verifyToken(env.AUTH_SECRET, explicit);
    if (!auth.ok) return auth;
    return { ok: true, id: { via: "token", claims: auth.claims, ambient: false } };
  }

  const assertion = req.headers.get(ACCESS_HEADER) ?? cookieValue(req, ACCESS_COOKIE);
  if (assertion) {
    if (!config) {
      return { ok: false, status: 401, code: "unauthorized", message: `${MISSING} (a Cloudflare Access assertion came with the request, but IDENTITY_CONFIG names no provider to verify it)` };
    }
    return fromProvider(config, assertion, true);
  }
  return { ok: false, status: 401, code: "unauthorized", message: MISSING };
}

async function fromProvider(config: IdentityConfig, token: string, ambient: boolean): Promise<IdentityResult> {
  const v = await verifySsoToken(config, token);
  if (!v.ok) return v;
  const person = personFrom(v.provider, v.payload);
  if (!person) {
    return { ok: false, status: 401, code: "unauthorized", message: `token names no person (none of ${v.provider.identityClaims.join(", ")} is set)` };
  }
  const exp = typeof v.payload.exp === "number" ? v.payload.exp : 0;
  return { ok: true, id: { via: v.provider.kind, provider: v.provider.name, person, grants: grantsFor(config, person), exp, ambient } };
}

/** The identity as Claims for one fleet, or 403 when it grants nothing there. */
export function claimsInFleet(id: Identity, fleet: string): { ok: true; claims: Claims } | IdentityFailure {
  if (id.via === "token") {
    const { claims } = id;
    if (!allowsFleet(claims, fleet)) return { ok: false, status: 403, code: "forbidden", message: `token does not grant fleet ${fleet}` };
    return { ok: true, claims };
  }
  const role = roleInFleet(id.grants, fleet);
  if (!role) {
    return { ok: false, status: 403, code: "forbidden", message: `${id.person.identity} has no role in fleet ${fleet} (no IDENTITY_CONFIG rule gives one)` };
  }
  return { ok: true, claims: { sub: id.person.identity, role, fleets: [fleet], exp: id.exp } };
}

/** GET /v1/me. */
export function describeIdentity(id: Identity): MeBody {
  if (id.via === "token") {
    const { claims } = id;
    return { sub: claims.sub, via: "token", exp: claims.exp, grants: [{ role: claims.role, fleets: claims.fleets }] };
  }
  return { sub: id.person.identity, via: id.via, provider: id.provider, groups: id.person.groups, exp: id.exp, grants: id.grants };
}

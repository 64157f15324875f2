/**
 * HS256 JSON Web Tokens with WebCrypto only, so the same code signs in Node (token CLI, tests)
 * and verifies in workerd. Claims: sub, role, fleets (list or "*"), exp, optional iat/nbf.
 */
// The namespace import lets the bundler drop what is unused; `import { z }` pulls in all of zod,
// its 60-odd locales included (about 580 KiB of the Worker bundle).
import * as z from "zod";

export const ROLES = ["viewer", "operator", "admin", "relay"] as const;
export type Role = (typeof ROLES)[number];

export const Claims = z.object({
  sub: z.string().min(1).max(128),
  role: z.enum(ROLES),
  fleets: z.union([z.literal("*"), z.array(z.string().min(1).max(64)).max(1000)]),
  exp: z.number().int(),
  iat: z.number().int().optional(),
  nbf: z.number().int().optional(),
});
export type Claims = z.infer<typeof Claims>;

export type AuthFailure = { ok: false; status: 401 | 403; code: "unauthorized" | "forbidden"; message: string };
export type AuthResult = { ok: true; claims: Claims } | AuthFailure;

const enc = new TextEncoder();

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function b64urlDecode(s: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error("not base64url");
  const pad = s.length % 4 === 0 ? "" : "=".repeat(4 - (s.length % 4));
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + pad);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const keyCache = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  let k = keyCache.get(secret);
  if (!k) {
    k = crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    // A handful of secrets at most (current + rotated); the cache cannot grow without bound.
    if (keyCache.size > 8) keyCache.clear();
    keyCache.set(secret, k);
  }
  return k;
}

/** Sign claims; `ttlSeconds` sets exp from now when claims.exp is absent. */
export async function signToken(
  secret: string,
  claims: Omit<Claims, "exp" | "iat"> & { exp?: number },
  ttlSeconds = 3600,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const body: Claims = { iat: now, exp: claims.exp ?? now + ttlSeconds, ...claims } as Claims;
  const header = b64url(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const payload = b64url(enc.encode(JSON.stringify(body)));
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), enc.encode(`${header}.${payload}`));
  return `${header}.${payload}.${b64url(new Uint8Array(sig))}`;
}

const fail = (message: string): AuthFailure => ({ ok: false, status: 401, code: "unauthorized", message });

/** Verify signature, algorithm, time claims and shape. Never throws. */
export async function verifyToken(secret: string, token: string, nowMs = Date.now()): Promise<AuthResult> {
  if (!secret) return fail("server has no AUTH_SECRET configured");
  const parts = token.split(".");
  if (parts.length !== 3) return fail("malformed token");
  const [h, p, s] = parts as [string, string, string];
  let header: unknown;
  let payload: unknown;
  let sig: Uint8Array<ArrayBuffer>;
  try {
    header = JSON.parse(new TextDecoder().decode(b64urlDecode(h)));
    payload = JSON.parse(new TextDecoder().decode(b64urlDecode(p)));
    sig = b64urlDecode(s);
  } catch {
    return fail("malformed token");
  }
  // Only HS256: "none" and asymmetric algorithms are refused outright (no algorithm confusion).
  if (typeof header !== "object" || header === null || (header as { alg?: unknown }).alg !== "HS256") {
    return fail("token algorithm must be HS256");
  }
  const valid = await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, enc.encode(`${h}.${p}`));
  if (!valid) return fail("bad token signature");
  const parsed = Claims.safeParse(payload);
  if (!parsed.success) return fail("token claims missing or invalid (sub, role, fleets, exp)");
  const now = Math.floor(nowMs / 1000);
  // 30 s of leeway for clock skew between the signer and the edge.
  if (parsed.data.exp + 30 < now) return fail("token expired");
  if (parsed.data.nbf !== undefined && parsed.data.nbf - 30 > now) return fail("token not yet valid");
  return { ok: true, claims: parsed.data };
}

/** May these claims act on this fleet? */
export function allowsFleet(claims: Claims, fleet: string): boolean {
  return claims.fleets === "*" || claims.fleets.includes(fleet);
}

/** Token from `Authorization: Bearer …` or `?access_token=`. */
export function tokenFromRequest(req: Request): string | null {
  const h = req.headers.get("authorization");
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1]! : null;
  }
  return new URL(req.url).searchParams.get("access_token");
}

/** Parse "90s", "15m", "1h", "7d" or plain seconds. */
export function parseTtl(s: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(s.trim());
  if (!m) throw new Error(`bad ttl "${s}": use e.g. 90s, 15m, 1h, 7d`);
  const n = Number(m[1]);
  const mult = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return n * mult;
}

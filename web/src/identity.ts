/**
 * Pure parts of signing in (no DOM, tested in Node): reading a token's claims, checking a token
 * pasted to replace one that expired, and turning the edge's `GET /v1/me` answer (signed in
 * through the identity provider) into the page's session. Fleet patterns (`zurich-*`) cannot be opened by
 * name, so the fleet is the one asked for (`?fleet=` or the last one opened), else the first fleet
 * granted by name; the role is the highest grant that matches that fleet.
 */
import * as z from "zod";
import { FLEET_ID_RE, MeBody, parseRestBody } from "../../edge/protocol";

/** The claims the page shows and decides its controls by (the edge alone decides what is allowed). */
export const Claims = z.object({
  sub: z.string().min(1),
  role: z.enum(["viewer", "operator", "admin", "relay"]),
  fleets: z.union([z.literal("*"), z.array(z.string().min(1))]),
  exp: z.number(),
});
export type Claims = z.infer<typeof Claims>;

export type Session = { token: string; fleet: string; claims: Claims };
export type SessionProblem = { problem: string; token?: string; claims?: Claims };

const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 } as const;
type PersonRole = keyof typeof ROLE_RANK;

/** null: the answer is not a person signed in through a provider (no answer, or an edge token). */
export function sessionFromMe(body: unknown, wantedFleet: string | null): Session | SessionProblem | null {
  const me = parseRestBody(MeBody, body);
  if (!me.ok || me.value.via === "token") return null;
  const grants = me.value.grants.filter((g): g is { role: PersonRole; fleets: "*" | string[] } => g.role in ROLE_RANK);
  const named = [...new Set(grants.flatMap((g) => (g.fleets === "*" ? [] : g.fleets.filter((f) => FLEET_ID_RE.test(f)))))];
  const fleet = wantedFleet || named[0] || "";
  const matches = (pattern: string) => pattern === fleet || (pattern.endsWith("*") && fleet.startsWith(pattern.slice(0, -1)));
  const role = grants
    .filter((g) => g.fleets === "*" || g.fleets.some(matches))
    .map((g) => g.role)
    .sort((a, b) => ROLE_RANK[b] - ROLE_RANK[a])[0];
  const claims: Claims = { sub: me.value.sub, role: role ?? "viewer", fleets: named.length ? named : "*", exp: me.value.exp };
  if (!fleet) return { problem: `Signed in as ${me.value.sub}: enter the fleet to open.`, claims };
  if (!FLEET_ID_RE.test(fleet) || !role) return { problem: `${me.value.sub} may not open fleet "${fleet}".`, claims };
  return { token: "", fleet, claims };
}

/** Decode a JWT's payload and check its shape (not its signature). */
export function decodeClaims(token: string): { ok: true; claims: Claims } | { ok: false; problem: string } {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || !parts[1]) return { ok: false, problem: "That is not a token (expected three dot-separated parts)." };
  let payload: unknown;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    payload = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return { ok: false, problem: "The token's payload cannot be read." };
  }
  const r = Claims.safeParse(payload);
  if (!r.success) return { ok: false, problem: "The token's claims are not ones this dashboard understands." };
  if (r.data.role === "relay") return { ok: false, problem: "That is a relay token; sign in with a viewer, operator or admin token." };
  return { ok: true, claims: r.data };
}

/**
 * A token pasted to replace one that expired while the dashboard was open: it must read, be a
 * person's token (not a relay's), not be expired, and grant the fleet on screen. `roleChanged`:
 * the page's controls were built for the old role, so it reloads to show the new one's.
 */
export function checkRenewal(token: string, fleet: string, oldRole: Claims["role"], now = Date.now()): { ok: true; claims: Claims; roleChanged: boolean } | { ok: false; problem: string } {
  if (!token.trim()) return { ok: false, problem: "Paste a new token." };
  const d = decodeClaims(token);
  if (!d.ok) return d;
  const c = d.claims;
  if (c.exp * 1000 <= now) return { ok: false, problem: `This token expired too (at ${new Date(c.exp * 1000).toLocaleString()}).` };
  if (c.fleets !== "*" && !c.fleets.includes(fleet)) return { ok: false, problem: `This token does not grant fleet "${fleet}" (it grants ${c.fleets.join(", ")}).` };
  return { ok: true, claims: c, roleChanged: c.role !== oldRole };
}

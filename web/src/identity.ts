/**
 * Pure part of signing in through the identity provider (no DOM, tested in Node): turn the edge's
 * `GET /v1/me` answer into the page's session. Fleet patterns (`zurich-*`) cannot be opened by
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

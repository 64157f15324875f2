/**
 * Sign-in state: the token (pasted, or from `?token=` in the link `npm start` prints) and the
 * fleet. The token lives in sessionStorage only (gone when the tab closes) and is stripped from
 * the address bar at once, so it does not stay in history, bookmarks or screenshots.
 *
 * The payload is decoded here for display and to decide which controls to draw; it is never
 * trusted: the edge verifies the signature and enforces the role on every request and command.
 */
import { FLEET_ID_RE } from "../../edge/protocol";
import { decodeClaims, sessionFromMe, type Claims, type Session, type SessionProblem } from "./identity";

// The claims this page reads live in identity.ts (the dashboard imports protocol and domain only,
// not the Worker's auth module). Unknown claims are ignored, so a token with more of them (an
// identity provider's) still shows; the edge alone decides what a token may do.
export type { Claims, Session, SessionProblem } from "./identity";
export { checkRenewal, decodeClaims } from "./identity";

const TOKEN_KEY = "dronefleet.token";
const FLEET_KEY = "dronefleet.fleet";

/**
 * Read the session from the URL (taking `?token=` out of it) and sessionStorage. Returns the
 * session, or why there is none (shown on the sign-in form).
 */
export function loadSession(loc: Location = location, hist: History = history, store: Storage = sessionStorage): Session | SessionProblem {
  const url = new URL(loc.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl !== null) {
    url.searchParams.delete("token");
    hist.replaceState(hist.state, "", url.pathname + url.search + url.hash);
    if (fromUrl) store.setItem(TOKEN_KEY, fromUrl.trim());
  }
  const fleetParam = url.searchParams.get("fleet");
  if (fleetParam) store.setItem(FLEET_KEY, fleetParam);

  const token = store.getItem(TOKEN_KEY);
  if (!token) return { problem: "" };
  const decoded = decodeClaims(token);
  if (!decoded.ok) return { problem: decoded.problem, token };
  const claims = decoded.claims;
  if (claims.exp * 1000 <= Date.now()) return { problem: `This token expired at ${new Date(claims.exp * 1000).toLocaleString()}.`, token, claims };

  const granted = claims.fleets;
  let fleet = store.getItem(FLEET_KEY) ?? "";
  if (!fleet && granted !== "*" && granted.length >= 1) fleet = granted[0]!;
  if (!fleet) return { problem: "This token grants every fleet: enter the fleet to open.", token, claims };
  if (!FLEET_ID_RE.test(fleet)) return { problem: `"${fleet}" is not a fleet id.`, token, claims };
  if (granted !== "*" && !granted.includes(fleet)) {
    return { problem: `This token does not grant fleet "${fleet}" (it grants ${granted.join(", ")}).`, token, claims };
  }
  return { token, fleet, claims };
}

/** Store a pasted token and optional fleet; loadSession() then says whether they work. */
export function saveSignIn(token: string, fleet: string, store: Storage = sessionStorage): void {
  store.setItem(TOKEN_KEY, token.trim());
  if (fleet.trim()) store.setItem(FLEET_KEY, fleet.trim());
  else store.removeItem(FLEET_KEY);
}

export function signOut(store: Storage = sessionStorage): void {
  store.removeItem(TOKEN_KEY);
  store.removeItem(FLEET_KEY);
}

export const isSession = (s: Session | SessionProblem): s is Session => "fleet" in s;

/** Whether the role may send commands (the edge enforces the same rule). */
export const canCommand = (claims: Claims) => claims.role === "operator" || claims.role === "admin";

/**
 * The session of a person the edge already knows without a token of this page's own: signed in
 * through Cloudflare Access (the browser sends the Access cookie with every request) or another
 * identity provider in front of the edge. Asks `GET /v1/me` (see identity.ts); null when the edge
 * knows nobody, and then the sign-in form asks for a token. The page then sends no token.
 */
export async function sessionFromIdentity(store: Storage = sessionStorage, loc: Location = location): Promise<Session | SessionProblem | null> {
  let body: unknown;
  try {
    const res = await fetch("/v1/me", { headers: { accept: "application/json" }, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return null;
    body = await res.json();
  } catch {
    return null;
  }
  const s = sessionFromMe(body, new URL(loc.href).searchParams.get("fleet") ?? store.getItem(FLEET_KEY));
  if (s && isSession(s)) store.setItem(FLEET_KEY, s.fleet);
  return s;
}

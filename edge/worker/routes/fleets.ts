/** Routes under /v1/fleets/:fleet: auth once, then hand over to the fleet's Durable Object. */
import { Hono, type Context } from "hono";
import { allowsFleet, tokenFromRequest, verifyToken, type Role } from "../auth";
import { IDENTITY_HEADERS } from "../env";
import { httpError, type AppEnv } from "../http";
import { MAX_BODY_BYTES, originAllowed, readBodyCapped } from "../limits";
import { FLEET_ID_RE } from "../../protocol";
import { analytics } from "./analytics";

export const fleets = new Hono<AppEnv>();

fleets.use("*", async (c, next) => {
  const fleet = c.req.param("fleet") ?? "";
  if (!FLEET_ID_RE.test(fleet)) throw httpError(400, "bad_fleet", "fleet id: 1-63 of a-z 0-9 _ -, starting with a letter or digit");
  const token = tokenFromRequest(c.req.raw);
  if (!token) throw httpError(401, "unauthorized", "missing token: send Authorization: Bearer <token> or ?access_token=");
  const auth = await verifyToken(c.env.AUTH_SECRET, token);
  if (!auth.ok) throw httpError(auth.status, auth.code, auth.message);
  if (!allowsFleet(auth.claims, fleet)) throw httpError(403, "forbidden", `token does not grant fleet ${fleet}`);
  c.set("claims", auth.claims);
  c.set("fleet", fleet);
  await next();
});

// Request bodies are read here, with a cap, before any route sees them: a Content-Length over the
// cap, or a chunked body that turns out longer, is a 413 and nothing more is read.
fleets.use("*", async (c, next) => {
  const m = c.req.method;
  if (m === "GET" || m === "HEAD" || m === "OPTIONS") return next();
  const body = await readBodyCapped(c.req.raw, MAX_BODY_BYTES);
  if (body === "too_large") throw httpError(413, "body_too_large", `request body larger than ${MAX_BODY_BYTES / 1024} KiB`);
  c.req.raw = new Request(c.req.raw, { body });
  await next();
});

/** Roles allowed on each route. */
const DASHBOARD_ROLES: readonly Role[] = ["viewer", "operator", "admin"];

function requireRole(role: Role, allowed: readonly Role[], what: string): void {
  if (!allowed.includes(role)) throw httpError(403, "forbidden", `role ${role} may not ${what}`);
}

function requireUpgrade(req: Request): void {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw httpError(426, "upgrade_required", "this route expects a WebSocket upgrade");
  }
}

/** Forward to the fleet object with the verified identity in internal headers (never the token). */
function toFleet(c: Context<AppEnv>, path: string): Promise<Response> {
  const fleet = c.get("fleet");
  const claims = c.get("claims");
  const stub = c.env.FLEET_HUB.get(c.env.FLEET_HUB.idFromName(fleet));
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  headers.set(IDENTITY_HEADERS.fleet, fleet);
  headers.set(IDENTITY_HEADERS.sub, claims.sub);
  headers.set(IDENTITY_HEADERS.role, claims.role);
  return stub.fetch(new Request(`https://fleet${path}`, { method: c.req.raw.method, headers, body: c.req.raw.body }));
}

fleets.get("/status", (c) => {
  requireRole(c.get("claims").role, [...DASHBOARD_ROLES, "relay"], "read fleet status");
  return toFleet(c, "/status");
});

fleets.get("/ws", (c) => {
  // Browsers send Origin on WebSocket upgrades and let any page open one with the user's token in
  // hand: only the allowed origins may (ALLOWED_ORIGINS; non-browser clients send no Origin).
  if (!originAllowed(c.req.header("origin") ?? null, c.req.url, c.env.ALLOWED_ORIGINS)) {
    throw httpError(403, "origin_not_allowed", "this Origin may not open dashboard sockets (ALLOWED_ORIGINS)");
  }
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "open a dashboard socket");
  requireUpgrade(c.req.raw);
  return toFleet(c, "/ws");
});

fleets.get("/relay", (c) => {
  // A relay is never a browser; an Origin here is a page trying its luck with a relay token.
  if (!originAllowed(c.req.header("origin") ?? null, c.req.url, c.env.ALLOWED_ORIGINS)) {
    throw httpError(403, "origin_not_allowed", "this Origin may not open sockets (ALLOWED_ORIGINS)");
  }
  requireRole(c.get("claims").role, ["relay"], "open the relay socket");
  requireUpgrade(c.req.raw);
  return toFleet(c, "/relay");
});

fleets.get("/config", (c) => {
  requireRole(c.get("claims").role, [...DASHBOARD_ROLES, "relay"], "read the fleet configuration");
  return toFleet(c, "/config");
});

fleets.put("/config", async (c) => {
  requireRole(c.get("claims").role, ["admin"], "change the fleet configuration");
  const len = Number(c.req.header("content-length") ?? "0");
  if (len > 256 * 1024) throw httpError(413, "body_too_large", "configuration larger than 256 KiB");
  return toFleet(c, "/config");
});

fleets.get("/commands", (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read the command audit");
  return toFleet(c, `/commands${new URL(c.req.url).search}`);
});

fleets.get("/missions", (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read missions");
  return toFleet(c, `/missions${new URL(c.req.url).search}`);
});

fleets.get("/coordination", (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read coordination events");
  return toFleet(c, `/coordination${new URL(c.req.url).search}`);
});

fleets.get("/coordination/:event_id", (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read coordination events");
  const id = c.req.param("event_id");
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw httpError(400, "bad_event_id", "event id: 1-64 of A-Z a-z 0-9 _ -");
  return toFleet(c, `/coordination/${id}`);
});

// Analytics routes (/analytics/…, /insights, /alerts): after the auth middleware above.
fleets.route("/", analytics);

/**
 * Routes under /v1/fleets/:fleet: every check once, here (fleet id, token, fleet grant, role,
 * Origin, upgrade, body size and shape, ids), then a typed RPC call on the fleet's Durable Object.
 * The two socket routes hand the upgrade request itself to the object, with the verified identity
 * in headers (never the token).
 */
import { Hono, type Context } from "hono";
import type { IdentityHeaders } from "../../fleet/sockets";
import { parseFleetConfig } from "../../domain/fleet-config";
import {
  FLEET_ID_RE,
  type CommandsBody,
  type CoordinationBody,
  type CoordinationReplayBody,
  type MissionsBody,
  type StatusBody,
} from "../../protocol";
import { allowsFleet, tokenFromRequest, verifyToken, type Role } from "../auth";
import { callFleet, fleetStub } from "../fleet-stub";
import { httpError, type AppEnv } from "../http";
import { MAX_BODY_BYTES, originAllowed, readBodyCapped } from "../limits";
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
const EVENT_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function requireRole(role: Role, allowed: readonly Role[], what: string): void {
  if (!allowed.includes(role)) throw httpError(403, "forbidden", `role ${role} may not ${what}`);
}

function requireUpgrade(req: Request): void {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw httpError(426, "upgrade_required", "this route expects a WebSocket upgrade");
  }
}

/** `?limit=`: 1..1000, default 100; anything else is clamped (not refused), as it always was. */
function listLimit(raw: string | undefined): number {
  return Math.min(Math.max(Number(raw ?? 100) || 100, 1), 1000);
}

/** Hand a socket upgrade to the fleet object with the verified identity (never the token). */
function upgrade(c: Context<AppEnv>, path: "/ws" | "/relay"): Promise<Response> {
  const claims = c.get("claims");
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  // Set, not appended: identity headers a client sent itself are overwritten.
  const identity: IdentityHeaders = { "x-df-sub": claims.sub, "x-df-role": claims.role };
  for (const [k, v] of Object.entries(identity)) headers.set(k, v);
  return fleetStub(c).fetch(new Request(`https://fleet${path}`, { method: "GET", headers }));
}

fleets.get("/status", async (c) => {
  requireRole(c.get("claims").role, [...DASHBOARD_ROLES, "relay"], "read fleet status");
  const body: StatusBody = await callFleet(c, "getStatus", (hub) => hub.getStatus());
  return c.json(body);
});

fleets.get("/ws", (c) => {
  // Browsers send Origin on WebSocket upgrades and let any page open one with the user's token in
  // hand: only the allowed origins may (ALLOWED_ORIGINS; non-browser clients send no Origin).
  if (!originAllowed(c.req.header("origin") ?? null, c.req.url, c.env.ALLOWED_ORIGINS)) {
    throw httpError(403, "origin_not_allowed", "this Origin may not open dashboard sockets (ALLOWED_ORIGINS)");
  }
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "open a dashboard socket");
  requireUpgrade(c.req.raw);
  return upgrade(c, "/ws");
});

fleets.get("/relay", (c) => {
  // A relay is never a browser; an Origin here is a page trying its luck with a relay token.
  if (!originAllowed(c.req.header("origin") ?? null, c.req.url, c.env.ALLOWED_ORIGINS)) {
    throw httpError(403, "origin_not_allowed", "this Origin may not open sockets (ALLOWED_ORIGINS)");
  }
  requireRole(c.get("claims").role, ["relay"], "open the relay socket");
  requireUpgrade(c.req.raw);
  return upgrade(c, "/relay");
});

fleets.get("/config", async (c) => {
  requireRole(c.get("claims").role, [...DASHBOARD_ROLES, "relay"], "read the fleet configuration");
  return c.json(await callFleet(c, "getConfig", (hub) => hub.getConfig()));
});

fleets.put("/config", async (c) => {
  const claims = c.get("claims");
  requireRole(claims.role, ["admin"], "change the fleet configuration");
  let body: unknown;
  try {
    body = JSON.parse(await c.req.raw.text());
  } catch {
    throw httpError(400, "bad_json", "body is not valid JSON");
  }
  const parsed = parseFleetConfig(body);
  if (!parsed.ok) {
    // The refusal lists every problem (`errors`) besides the joined message.
    return c.json({ error: { code: "invalid_config", message: parsed.errors.join("; "), errors: parsed.errors } }, 400);
  }
  const config = parsed.config;
  return c.json(await callFleet(c, "putConfig", (hub) => hub.putConfig(config, claims.sub)));
});

fleets.get("/commands", async (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read the command audit");
  const limit = listLimit(c.req.query("limit"));
  const rawBefore = c.req.query("before");
  const before = rawBefore ? Number(rawBefore) : undefined;
  const commands = await callFleet(c, "listCommands", (hub) => hub.listCommands(limit, before));
  return c.json({ commands } satisfies CommandsBody);
});

fleets.get("/missions", async (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read missions");
  const limit = listLimit(c.req.query("limit"));
  const missions = await callFleet(c, "listMissions", (hub) => hub.listMissions(limit));
  return c.json({ missions } satisfies MissionsBody);
});

fleets.get("/coordination", async (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read coordination events");
  const limit = listLimit(c.req.query("limit"));
  const body: CoordinationBody = await callFleet(c, "listCoordination", (hub) => hub.listCoordination(limit));
  return c.json(body);
});

fleets.get("/coordination/:event_id", async (c) => {
  requireRole(c.get("claims").role, DASHBOARD_ROLES, "read coordination events");
  const id = c.req.param("event_id");
  if (!EVENT_ID_RE.test(id)) throw httpError(400, "bad_event_id", "event id: 1-64 of A-Z a-z 0-9 _ -");
  const replay: CoordinationReplayBody | null = await callFleet(c, "getCoordinationEvent", (hub) => hub.getCoordinationEvent(id));
  if (!replay) throw httpError(404, "unknown_event", `no coordination event ${id}`);
  return c.json(replay);
});

// Analytics routes (/analytics/…, /insights, /alerts): after the auth middleware above.
fleets.route("/", analytics);

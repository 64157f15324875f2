/**
 * Routes under /v1/fleets/:fleet: every check once, here (fleet id, identity, fleet grant, role,
 * Origin, upgrade, body size and shape, ids), then a typed RPC call on the fleet's Durable Object.
 * The two socket routes hand the upgrade request itself to the object, with the verified identity
 * in headers (never the token).
 */
import { Hono, type Context } from "hono";
import type { IdentityHeaders } from "../../fleet/sockets";
import { parseFleetConfig } from "../../domain/fleet-config";
import {
  auditCursor,
  DRONE_ID_RE,
  FLEET_ID_RE,
  isSafeId,
  parseAuditCursor,
  type CommandsBody,
  type CoordinationBody,
  type CoordinationReplayBody,
  type MissionsBody,
  type StatusBody,
} from "../../protocol";
import type { Role } from "../auth";
import { originsProblem, reportProblem } from "../deployment";
import { ACCESS_HEADER, claimsInFleet, identify } from "../identity";
import { callFleet, fleetStub } from "../fleet-stub";
import { httpError, type AppEnv } from "../http";
import { MAX_BODY_BYTES, originAllowed, readBodyCapped } from "../limits";
import { analytics } from "./analytics";

export const fleets = new Hono<AppEnv>();

fleets.use("*", async (c, next) => {
  const fleet = c.req.param("fleet") ?? "";
  if (!FLEET_ID_RE.test(fleet)) throw httpError(400, "bad_fleet", "fleet id: 1-63 of a-z 0-9 _ -, starting with a letter or digit");
  // The edge's own token, an OIDC token, or Cloudflare Access's assertion (identity.ts).
  const who = await identify(c.req.raw, c.env);
  if (!who.ok) throw httpError(who.status, who.code, who.message);
  const inFleet = claimsInFleet(who.id, fleet);
  if (!inFleet.ok) throw httpError(inFleet.status, inFleet.code, inFleet.message);
  // Access credentials ride along with any request the browser makes to this host, whichever page
  // started it: a change needs an allowed Origin (or none), as every dashboard socket does.
  const m = c.req.method;
  if (who.id.ambient && m !== "GET" && m !== "HEAD" && m !== "OPTIONS" && !originAllowed(c.req.header("origin") ?? null, c.req.url, c.env.ALLOWED_ORIGINS)) {
    throw httpError(403, "origin_not_allowed", "this Origin may not change anything with the signed-in person's credentials (ALLOWED_ORIGINS)");
  }
  c.set("claims", inFleet.claims);
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
  // The socket carries the verified identity only: no credential goes further than the Worker.
  headers.delete("authorization");
  headers.delete(ACCESS_HEADER);
  headers.delete("cookie");
  // Set, not appended: identity headers a client sent itself are overwritten.
  // exp: the object closes the socket when the token runs out (edge/fleet/sockets.ts).
  const identity: IdentityHeaders = { "x-df-sub": claims.sub, "x-df-role": claims.role, "x-df-exp": String(claims.exp) };
  for (const [k, v] of Object.entries(identity)) headers.set(k, v);
  return fleetStub(c).fetch(new Request(`https://fleet${path}`, { method: "GET", headers }));
}

fleets.get("/status", async (c) => {
  requireRole(c.get("claims").role, [...DASHBOARD_ROLES, "relay"], "read fleet status");
  const body: StatusBody = await callFleet(c, "getStatus", (hub) => hub.getStatus());
  return c.json(body);
});

fleets.get("/ws", (c) => {
  // Outside local development ALLOWED_ORIGINS must name the dashboard's origins; "*" there would
  // let any page open a socket with a signed-in operator's Access cookie (deployment.ts).
  const problem = originsProblem(c.env);
  if (problem) {
    reportProblem(problem, "dashboard sockets");
    throw httpError(503, "misconfigured", `dashboard sockets refused: ${problem.message}. Fix: ${problem.fix}`);
  }
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
  // `before`: next_before of the previous page (a unique cursor), or a bare received_at as before.
  const before = parseAuditCursor(c.req.query("before"));
  if (before === null) throw httpError(400, "bad_cursor", "before: <received_at ms>[:<command_id>], the next_before of the previous page");
  const commands = await callFleet(c, "listCommands", (hub) => hub.listCommands(limit, before));
  const last = commands.length === limit ? commands[commands.length - 1] : undefined;
  return c.json({ commands, next_before: last ? auditCursor(last) : null } satisfies CommandsBody);
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

// Relay identity (admin, edge/fleet/relay-registry.ts): the relay_ids and their token subjects,
// giving a drone to another relay, and releasing a relay_id from its subject.
const relayIdOk = (id: string) => id.length >= 1 && id.length <= 128 && isSafeId(id);

fleets.get("/relays", async (c) => {
  requireRole(c.get("claims").role, ["admin"], "read the fleet's relays");
  return c.json({ relays: await callFleet(c, "listRelays", (hub) => hub.listRelays()) });
});

fleets.put("/drones/:drone_id/relay", async (c) => {
  requireRole(c.get("claims").role, ["admin"], "reassign drones");
  const drone = c.req.param("drone_id");
  if (!DRONE_ID_RE.test(drone)) throw httpError(400, "bad_drone_id", "drone id: 1-64 of A-Z a-z 0-9 _ . -");
  let body: unknown;
  try {
    body = JSON.parse(await c.req.raw.text());
  } catch {
    throw httpError(400, "bad_json", "body is not valid JSON");
  }
  const relayId = typeof body === "object" && body !== null && "relay_id" in body ? (body as { relay_id: unknown }).relay_id : undefined;
  if (relayId !== null && (typeof relayId !== "string" || !relayIdOk(relayId))) {
    throw httpError(400, "invalid_body", "body: {relay_id: a relay_id (1-128 characters, no control characters) or null for none}");
  }
  const r = await callFleet(c, "assignDroneRelay", (hub) => hub.assignDroneRelay(drone, relayId));
  if (!r) throw httpError(404, "unknown_drone", `drone ${drone} is not in this fleet`);
  return c.json(r);
});

fleets.delete("/relays/:relay_id", async (c) => {
  requireRole(c.get("claims").role, ["admin"], "release relay ids");
  const id = c.req.param("relay_id");
  if (!relayIdOk(id)) throw httpError(400, "bad_relay_id", "relay id: 1-128 characters, no control characters");
  const r = await callFleet(c, "releaseRelayId", (hub) => hub.releaseRelayId(id));
  if (r === "unknown") throw httpError(404, "unknown_relay", `no relay ${id} in this fleet`);
  if (r === "connected") throw httpError(409, "relay_connected", `relay ${id} is connected; it can be released once its socket is gone`);
  return c.json({ relay_id: id, released: true });
});

// Where the fleet object's time goes (admin, edge/fleet/profile.ts): turns, the longest one and
// time per component since the last reset; `?reset=1` starts a new window after reading.
fleets.get("/profile", async (c) => {
  requireRole(c.get("claims").role, ["admin"], "read the fleet object's profile");
  const reset = c.req.query("reset");
  if (reset !== undefined && reset !== "0" && reset !== "1") throw httpError(400, "bad_query", "reset: 0 or 1");
  return c.json(await callFleet(c, "profile", (hub) => hub.profile(reset === "1")));
});

// Analytics routes (/analytics/…, /insights, /alerts): after the auth middleware above.
fleets.route("/", analytics);

/**
 * Analytics routes under /v1/fleets/:fleet (auth and fleet checks run in routes/fleets.ts first):
 * - GET  /analytics/live                      live metrics, active alerts, outbox state (fleet object)
 * - GET  /analytics/hourly?from=&to=          hourly rows with trends (Postgres)
 * - GET  /analytics/insights?from=&to=&limit= insights, newest hour first (Postgres); also /insights
 * - GET  /analytics/alerts?from=&to=&active=&limit= alert history (Postgres); also /alerts
 * - POST /analytics/hourly/recompute?hour=ISO admin: flush, then aggregate that hour again (backfill)
 * - GET  /analytics/dead-letters?limit=&before= admin: outbox rows Postgres refused (fleet object)
 * - POST /analytics/dead-letters/replay {ids?} admin: those (or all) back into the outbox, once fixed
 * Reads are for viewer, operator and admin (dead letters for admin: they hold raw command params). Without DATABASE_URL the Postgres routes answer 503
 * `analytics_unavailable`; bad query parameters answer 400 with a code naming the problem.
 */
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { log } from "../../domain/log";
import type { Role } from "../auth";
import { parseRestBody, ReplayDeadLettersRequest, type AnalyticsLiveBody, type DeadLettersBody, type ReplayDeadLettersBody } from "../../protocol";
import { callFleet } from "../fleet-stub";
import { httpError, type AppEnv } from "../http";
import { openDatabase, type AnalyticsDb } from "../../postgres/client";
import { errorText } from "../../postgres/drain";
import { aggregateHour, HOUR_MS, hourStart } from "../../postgres/hourly";
import { readAlerts, readHourly, readInsights, withSeedKeys, type Range } from "../../postgres/reads";

export const analytics = new Hono<AppEnv>();

const READ_ROLES: readonly Role[] = ["viewer", "operator", "admin"];
const DAY_MS = 24 * HOUR_MS;
/** Longest window one request may ask for. */
export const MAX_RANGE_MS = 31 * DAY_MS;
const ISO_RE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function requireRole(c: Context<AppEnv>, allowed: readonly Role[], what: string): void {
  const role = c.get("claims").role;
  if (!allowed.includes(role)) throw httpError(403, "forbidden", `role ${role} may not ${what}`);
}

/** An ISO 8601 time from the query, or `fallback` when absent. */
export function parseTime(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const t = ISO_RE.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(t)) throw httpError(400, "bad_time", `${name}: expected an ISO 8601 time such as 2026-01-31T14:00:00Z, got ${JSON.stringify(raw.slice(0, 40))}`);
  return t;
}

/** from/to from the query: default the last `defaultMs` up to now; from < to; at most 31 days. */
export function parseRange(q: Record<string, string | undefined>, now: number, defaultMs: number): Range {
  const to = parseTime("to", q.to, now);
  const from = parseTime("from", q.from, to - defaultMs);
  if (from >= to) throw httpError(400, "bad_range", "from must be before to");
  if (to - from > MAX_RANGE_MS) throw httpError(400, "range_too_large", `at most ${MAX_RANGE_MS / DAY_MS} days per request`);
  return { from: new Date(from), to: new Date(to) };
}

export function parseLimit(raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw httpError(400, "bad_limit", `limit: an integer from 1 to ${max}`);
  return Number(raw);
}

function parseBool(name: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw httpError(400, "bad_param", `${name}: true or false`);
}

/** A stored row's JSON text as a value (the outbox wrote it), or the text should it not parse. */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Run `fn` with a Postgres connection for this request, or answer 503 when none is configured. */
async function withDb<T>(c: Context<AppEnv>, fn: (db: AnalyticsDb) => Promise<T>): Promise<T> {
  const h = openDatabase(c.env);
  if (!h) throw httpError(503, "analytics_unavailable", "DATABASE_URL is not configured: hourly analytics, insights and alert history need Postgres");
  try {
    return await fn(h.db);
  } catch (err) {
    if (err instanceof HTTPException) throw err;
    log("error", "analytics query failed", { fleet: c.get("fleet") }, err);
    throw httpError(503, "database_unavailable", `Postgres query failed: ${errorText(err)}`);
  } finally {
    await h.close();
  }
}

analytics.get("/analytics/live", async (c) => {
  requireRole(c, READ_ROLES, "read analytics");
  const fleet = c.get("fleet");
  const view = await callFleet(c, "analyticsLive", (hub) => hub.analyticsLive());
  // Flat as the seed's analytics:live hash, and nested in `metrics` as before.
  return c.json({ ...view.metrics, fleet, ...view } satisfies AnalyticsLiveBody);
});

analytics.get("/analytics/dead-letters", async (c) => {
  requireRole(c, ["admin"], "read dead letters");
  const q = c.req.query();
  const limit = parseLimit(q.limit, 100, 1_000);
  let before: number | undefined;
  if (q.before !== undefined && q.before !== "") {
    if (!/^\d{1,15}$/.test(q.before)) throw httpError(400, "bad_param", "before: the id of a dead letter (a positive integer)");
    before = Number(q.before);
  }
  const fleet = c.get("fleet");
  const r = await callFleet(c, "analyticsDeadLetters", (hub) => hub.analyticsDeadLetters(limit, before));
  const deadLetters = r.dead_letters.map((d) => ({ ...d, body: jsonOrText(d.body) }));
  return c.json({ fleet, kept: r.kept, total: r.total, dropped: r.dropped, dead_letters: deadLetters } satisfies DeadLettersBody);
});

analytics.post("/analytics/dead-letters/replay", async (c) => {
  requireRole(c, ["admin"], "replay dead letters");
  const text = await c.req.raw.text();
  let body: unknown = {};
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      throw httpError(400, "bad_json", "body is not valid JSON");
    }
  }
  const parsed = parseRestBody(ReplayDeadLettersRequest, body);
  if (!parsed.ok) throw httpError(400, "invalid_body", `body: {ids?: [dead letter ids, at most 1,000]}; ${parsed.message}`);
  const ids = parsed.value.ids;
  const fleet = c.get("fleet");
  const r = await callFleet(c, "analyticsReplayDeadLetters", (hub) => hub.analyticsReplayDeadLetters(ids));
  return c.json({ fleet, ...r } satisfies ReplayDeadLettersBody);
});

analytics.get("/analytics/hourly", async (c) => {
  requireRole(c, READ_ROLES, "read analytics");
  const range = parseRange(c.req.query(), Date.now(), DAY_MS);
  const fleet = c.get("fleet");
  const hours = await withDb(c, (db) => readHourly(db, fleet, range));
  return c.json({ fleet, from: range.from.toISOString(), to: range.to.toISOString(), hours });
});

const insightsRoute = async (c: Context<AppEnv>) => {
  requireRole(c, READ_ROLES, "read insights");
  const q = c.req.query();
  const range = parseRange(q, Date.now(), DAY_MS);
  const limit = parseLimit(q.limit, 200, 5_000);
  const fleet = c.get("fleet");
  const insights = await withDb(c, (db) => readInsights(db, fleet, range, limit));
  return c.json({ fleet, from: range.from.toISOString(), to: range.to.toISOString(), insights });
};
analytics.get("/analytics/insights", insightsRoute);
analytics.get("/insights", insightsRoute);

const alertsRoute = async (c: Context<AppEnv>) => {
  requireRole(c, READ_ROLES, "read alerts");
  const q = c.req.query();
  const range = parseRange(q, Date.now(), DAY_MS);
  const limit = parseLimit(q.limit, 500, 5_000);
  const active = parseBool("active", q.active);
  const fleet = c.get("fleet");
  const alerts = await withDb(c, (db) => readAlerts(db, fleet, range, { limit, ...(active !== undefined ? { active } : {}) }));
  return c.json({ fleet, from: range.from.toISOString(), to: range.to.toISOString(), alerts });
};
analytics.get("/analytics/alerts", alertsRoute);
analytics.get("/alerts", alertsRoute);

analytics.post("/analytics/hourly/recompute", async (c) => {
  requireRole(c, ["admin"], "recompute analytics");
  const raw = c.req.query("hour");
  if (!raw) throw httpError(400, "missing_hour", "hour: the ISO 8601 start of the hour to recompute, e.g. ?hour=2026-01-31T14:00:00Z");
  const hour = hourStart(parseTime("hour", raw, 0));
  if (hour.getTime() > Date.now()) throw httpError(400, "hour_in_future", `hour ${hour.toISOString()} has not started yet`);
  if (!c.env.DATABASE_URL) throw httpError(503, "analytics_unavailable", "DATABASE_URL is not configured");
  const fleet = c.get("fleet");
  // What is still in the fleet's outbox belongs in the recomputed hour.
  const flush = await callFleet(c, "flushOutbox", (hub) => hub.flushOutbox());
  const r = await withDb(c, (db) => aggregateHour(db, fleet, hour));
  const { fleet_id: _f, ...row } = r.row;
  return c.json({ fleet, hour: hour.toISOString(), flush, hourly: withSeedKeys(row), trends: r.trends, insights: r.insights, ms: r.ms });
});

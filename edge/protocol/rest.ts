/**
 * REST bodies under /v1/fleets/{fleet}/…, as the Worker answers them and the dashboard reads them
 * (`parseRestBody`). Imports zod, ./common and ./dashboard only.
 *
 * The fleet configuration (GET and PUT /config) is not here: its one schema is the domain's
 * `FleetConfig` (edge/domain/fleet-config.ts), which also carries the cross-field safety rules;
 * clients read it with `parseFleetConfig`.
 */
import * as z from "zod";
import { CheckedWaypoint, CommandState, Count, DroneId, EpochMs, LedgerCommand, MissionState, summarizeIssues } from "./common";
import { AlertView, CoordinationEventView, FleetStatus, LiveAnalytics } from "./dashboard";

/** Every HTTP error: `{error: {code, message}}`; a refused configuration also lists `errors`. */
export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), errors: z.array(z.string()).optional() }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/**
 * GET /v1/me: who the edge takes the caller to be and what they may do, for a dashboard signed in
 * through Cloudflare Access or OIDC (no token of its own to decode). `grants` lists role and fleet
 * patterns ("zurich-*", or "*" for all); in one fleet the highest matching role counts.
 */
export const MeBody = z.object({
  /** The identity the audit log records (email for a person, else the token's subject). */
  sub: z.string(),
  via: z.enum(["token", "cloudflare-access", "oidc"]),
  /** IDENTITY_CONFIG provider name (absent for the edge's own tokens). */
  provider: z.string().optional(),
  groups: z.array(z.string()).optional(),
  exp: z.number(),
  grants: z.array(z.object({ role: z.string(), fleets: z.union([z.literal("*"), z.array(z.string())]) })),
});
export type MeBody = z.infer<typeof MeBody>;

/** GET /status: the fleet_status frame, never split into parts. */
export const StatusBody = FleetStatus;
export type StatusBody = FleetStatus;

/** One ledger entry of GET /commands (the audit view: no stored response, params parsed). */
export const CommandAuditEntry = z.object({
  command_id: z.string(),
  command: LedgerCommand,
  drone_id: z.string().nullable(),
  /** Token subject of the sender, or `coordinator:<event>` for the edge's own commands. */
  sub: z.string(),
  role: z.string(),
  status: CommandState,
  code: z.string().nullable(),
  message: z.string().nullable(),
  relay_id: z.string().nullable(),
  received_at: EpochMs,
  sent_at: EpochMs.nullable(),
  finished_at: EpochMs.nullable(),
  deadline_at: EpochMs.nullable(),
  /** The command's parameters as sent (new_waypoint, mission, reason, …). */
  params: z.unknown(),
  latency_ms: z.number().nullable(),
});
export type CommandAuditEntry = z.infer<typeof CommandAuditEntry>;
/**
 * GET /commands?limit=&before=: newest first (received_at, then command_id, descending).
 * `next_before` is the cursor of the next page (null on the last one): pass it as `before`.
 */
export const CommandsBody = z.object({ commands: z.array(CommandAuditEntry), next_before: z.string().nullable().optional() });
export type CommandsBody = z.infer<typeof CommandsBody>;

/**
 * Where a page of the command audit ends: `received_at` (ms) and the `command_id` of its last
 * entry, written `<received_at>:<command_id>`. Unique, so commands that share a received_at are
 * neither skipped nor repeated. A bare `<received_at>` still works: the commands received
 * strictly before it.
 */
export type AuditCursor = { received_at: number; command_id?: string };

/** The `before` cursor of the page after `last`. */
export function auditCursor(last: { received_at: number; command_id: string }): string {
  return `${last.received_at}:${last.command_id}`;
}

/** Read a `before` query value: undefined when absent, null when malformed. */
export function parseAuditCursor(raw: string | undefined): AuditCursor | undefined | null {
  if (raw === undefined || raw === "") return undefined;
  const m = /^(\d{1,16})(?::([A-Za-z0-9_-]{1,64}))?$/.exec(raw);
  if (!m) return null;
  const received_at = Number(m[1]);
  if (!Number.isSafeInteger(received_at)) return null;
  return m[2] === undefined ? { received_at } : { received_at, command_id: m[2] };
}

/** One mission of GET /missions, with its waypoints and a timestamp per step. */
export const MissionEntry = z.object({
  mission_id: z.string(),
  drone_id: DroneId,
  command_id: z.string(),
  status: MissionState,
  priority: z.string(),
  waypoints: z.array(CheckedWaypoint),
  /** Index of the waypoint being flown to. */
  waypoint_index: Count,
  created_at: EpochMs,
  assigned_at: EpochMs.nullable(),
  started_at: EpochMs.nullable(),
  completed_at: EpochMs.nullable(),
  message: z.string().nullable(),
});
export type MissionEntry = z.infer<typeof MissionEntry>;
/** GET /missions?limit=: newest first. */
export const MissionsBody = z.object({ missions: z.array(MissionEntry) });
export type MissionsBody = z.infer<typeof MissionsBody>;

/** The latest detection pass: how long it took (ms, fractional, over `turns` turns of the fleet
 * object when its detection ran in steps), over how many drones. */
export const DetectionPass = z.object({ ms: z.number(), drones: Count, conflicts: Count, at: z.number(), turns: Count.optional() });
/** GET /coordination?limit=: events newest first, and the last detection pass. */
export const CoordinationBody = z.object({ events: z.array(CoordinationEventView), last_pass: DetectionPass });
export type CoordinationBody = z.infer<typeof CoordinationBody>;

export const TrackPoint = z.object({ t: EpochMs, lat: z.number(), lon: z.number(), alt_m: z.number() });
export type TrackPoint = z.infer<typeof TrackPoint>;
/** GET /coordination/{event_id}: the event and the involved drones' tracks around it, for replay. */
export const CoordinationReplayBody = z.object({ event: CoordinationEventView, tracks: z.record(z.string(), z.array(TrackPoint)) });
export type CoordinationReplayBody = z.infer<typeof CoordinationReplayBody>;

export const FLUSH_STATUSES = ["ok", "error", "no_database", "unknown_fleet"] as const;
/** One drain of a fleet's outbox into Postgres. */
export const FlushResult = z.object({
  status: z.enum(FLUSH_STATUSES),
  /** Rows committed by this run. */
  rows: Count,
  batches: Count,
  ms: z.number(),
  /** Rows still in the outbox afterwards. */
  remaining: Count,
  /** Rows this run set aside because Postgres refused them (absent in flushes before dead letters). */
  dead_lettered: Count.optional(),
  error: z.string().optional(),
});
export type FlushResult = z.infer<typeof FlushResult>;

/**
 * GET /analytics/live: live metrics now, active alerts, and the outbox's state. The live metrics
 * come twice: flat at the top level, as the seed's `analytics:live` hash has them (timestamp,
 * active_drones, total_drones, fleet_battery_average, active_missions, coordination_events_active,
 * fleet_utilization_percentage, emergency_status, and ours beside them), and nested in `metrics`.
 */
export const AnalyticsLiveBody = LiveAnalytics.extend({
  fleet: z.string(),
  metrics: LiveAnalytics,
  alerts: z.array(AlertView),
  outbox: z.object({
    /** Rows waiting per outbox kind (and `snapshot`). */
    pending: z.record(z.string(), Count),
    snapshots_thinned: Count,
    metrics_thinned: Count,
    /** Rows Postgres refused, kept in the fleet object (GET /analytics/dead-letters lists them). */
    dead_letters: Count,
    /** Every row ever set aside, including those dropped beyond the kept bound. */
    dead_letters_total: Count,
    database: z.enum(["configured", "not_configured"]),
    last_flush: FlushResult.extend({ at: EpochMs }).nullable(),
  }),
});
export type AnalyticsLiveBody = z.infer<typeof AnalyticsLiveBody>;

/** The window a Postgres route answered for (ISO 8601). */
const rangeBody = { fleet: z.string(), from: z.string(), to: z.string() };

/** A number of an hourly row: Postgres numerics may arrive as strings; null when nothing to average. */
const HourlyNumber = z.union([z.number(), z.string()]).nullable().optional();

/**
 * One hour of GET /analytics/hourly: the hourly_analytics columns snake_cased (a metric per key)
 * and `trends` by metric. Loose: the charts read every numeric column they find, so a new column
 * shows without a page change.
 *
 * The seed's hourly keys are there under the seed's names (listed below; optional only so that
 * older bodies still read), with `coordination_<type>_count` and
 * `coordination_<type>_avg_resolution` (ms) for each event type seen in the hour, as the seed's
 * GROUP BY makes them. Our own columns stay beside them (avg_duration_minutes = avg_duration, …).
 */
export const HourlyRow = z.looseObject({
  hour: z.string(),
  /** Missions that reached a terminal state in the hour (completed, failed or aborted). */
  missions_completed: HourlyNumber,
  /** Mean flying time of those missions, minutes. */
  avg_duration: HourlyNumber,
  successful_missions: HourlyNumber,
  failed_missions: HourlyNumber,
  /** Mean battery gained per charging session started in the hour, percentage points. */
  avg_charge_gained: HourlyNumber,
  /** Mean length of those sessions, minutes. */
  avg_charging_time: HourlyNumber,
  charging_sessions: HourlyNumber,
  /** Mean share of the fleet moving (>1 m per 10 s snapshot) over the hour's snapshot slots, percent. */
  fleet_utilization_percentage: HourlyNumber,
  trends: z.record(z.string(), z.looseObject({ value: z.number().nullable().optional() })),
});
export type HourlyRow = z.infer<typeof HourlyRow>;
/** GET /analytics/hourly?from=&to=: oldest hour first. */
export const HourlyBody = z.object({ ...rangeBody, hours: z.array(HourlyRow) });
export type HourlyBody = z.infer<typeof HourlyBody>;

/** One insight (edge/domain/insights.ts), as stored in Postgres. */
export const InsightRow = z.object({
  hour: z.string(),
  rule: z.string(),
  /** A drone id, an event type, or "" for the fleet. */
  subject: z.string(),
  severity: z.string(),
  message: z.string(),
  data: z.record(z.string(), z.unknown()),
  created_at: z.string(),
});
export type InsightRow = z.infer<typeof InsightRow>;
/** GET /analytics/insights (and /insights): newest hour first. */
export const InsightsBody = z.object({ ...rangeBody, insights: z.array(InsightRow) });
export type InsightsBody = z.infer<typeof InsightsBody>;

/** One alert as stored in Postgres: the AlertView with ISO 8601 times. */
export const AlertRow = AlertView.extend({ raised_at: z.string(), cleared_at: z.string().nullable() });
export type AlertRow = z.infer<typeof AlertRow>;
/** GET /analytics/alerts (and /alerts): newest first. */
export const AlertsBody = z.object({ ...rangeBody, alerts: z.array(AlertRow) });
export type AlertsBody = z.infer<typeof AlertsBody>;

/** One outbox row Postgres refused, as the fleet object keeps it. */
export const DeadLetterEntry = z.object({
  id: Count,
  /** The outbox kind (mission, command_audit, …) or "snapshot". */
  kind: z.string(),
  key: z.string(),
  /** The row as it was queued. */
  body: z.unknown(),
  /** Why Postgres (or the driver) refused it. */
  error: z.string(),
  queued_at: EpochMs.nullable(),
  dead_at: EpochMs,
});
export type DeadLetterEntry = z.infer<typeof DeadLetterEntry>;
/** GET /analytics/dead-letters?limit=&before= (admin): newest first; `before` an id for paging. */
export const DeadLettersBody = z.object({
  fleet: z.string(),
  dead_letters: z.array(DeadLetterEntry),
  /** Kept now / ever set aside / dropped beyond the kept bound. */
  kept: Count,
  total: Count,
  dropped: Count,
});
export type DeadLettersBody = z.infer<typeof DeadLettersBody>;

/** POST /analytics/dead-letters/replay (admin): `ids` those dead letters, absent every one kept. */
export const ReplayDeadLettersRequest = z.object({ ids: z.array(z.number().int().min(1)).max(1_000).optional() }).strict();
export type ReplayDeadLettersRequest = z.infer<typeof ReplayDeadLettersRequest>;
export const ReplayDeadLettersBody = z.object({
  fleet: z.string(),
  /** Put back into the outbox (the next flush tries them). */
  replayed: Count,
  /** Dropped because a newer revision of the same row was queued meanwhile. */
  superseded: Count,
  /** Dead letters left. */
  kept: Count,
});
export type ReplayDeadLettersBody = z.infer<typeof ReplayDeadLettersBody>;

/** Check a REST body read from JSON. Never throws. */
export function parseRestBody<S extends z.ZodType>(schema: S, body: unknown): { ok: true; value: z.infer<S> } | { ok: false; message: string } {
  const r = schema.safeParse(body);
  return r.success ? { ok: true, value: r.data } : { ok: false, message: summarizeIssues(r.error) };
}

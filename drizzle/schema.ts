/**
 * The Postgres schema, in one place. Edit this file, then `npm run db:generate` writes a new SQL
 * migration into drizzle/migrations (commit it); scripts/db.ts applies pending migrations when the
 * local stack starts. Naming: snake_case tables and columns, `fleet_id` on everything fleet-scoped,
 * timestamps with time zone.
 *
 * Sections: registry (fleets, drones) first; the analytics tables (missions, charging_sessions,
 * coordination_events, hourly aggregates, …) go in their own section below, each keyed by fleet_id
 * with a natural or client-generated key so the outbox flush can upsert idempotently.
 */
import { sql } from "drizzle-orm";
import { boolean, doublePrecision, index, integer, jsonb, pgTable, primaryKey, text, timestamp } from "drizzle-orm/pg-core";

/** Timestamps are UTC instants; `now()` on insert. */
const createdAt = (name: string) => timestamp(name, { withTimezone: true, mode: "date" }).notNull().defaultNow();

// ------------------------------------------------------------------------------------ registry

/** One row per fleet. `config` is the fleet's settings document; `config_version` grows with each
 * change so readers can tell whether the copy they hold is current. */
export const fleets = pgTable("fleets", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt("created_at"),
  config: jsonb("config").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  configVersion: integer("config_version").notNull().default(0),
});

/** Every drone a fleet has seen, with first and latest sighting (written by the outbox flush). */
export const drones = pgTable(
  "drones",
  {
    fleetId: text("fleet_id")
      .notNull()
      .references(() => fleets.id, { onDelete: "cascade" }),
    droneId: text("drone_id").notNull(),
    firstSeenAt: createdAt("first_seen_at"),
    lastSeenAt: createdAt("last_seen_at"),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.droneId] })],
);

export type Fleet = typeof fleets.$inferSelect;
export type NewFleet = typeof fleets.$inferInsert;
export type Drone = typeof drones.$inferSelect;
export type NewDrone = typeof drones.$inferInsert;

// ------------------------------------------------------------------------------------ analytics
// Analytics, fed by the fleet objects' outboxes (edge/fleet/outbox.ts) through the cron flush.
//
// Every table here is written by the outbox flush (edge/postgres/writer.ts) or the hourly job
// (edge/postgres/hourly.ts). Rows that never change after they happen (snapshots, metrics, charging
// sessions, command audit) are inserted with `on conflict do nothing` on their natural key, so a
// retried flush counts them once; rows that evolve (missions, coordination events, alerts) are
// upserted on their id, newest revision wins (`updated_at`).

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const fleetRef = () =>
  text("fleet_id")
    .notNull()
    .references(() => fleets.id, { onDelete: "cascade" });

/** Missions as the fleet object tracks them (pending → assigned → active → completed | failed | aborted). */
export const missions = pgTable(
  "missions",
  {
    fleetId: fleetRef(),
    missionId: text("mission_id").notNull(),
    droneId: text("drone_id").notNull(),
    commandId: text("command_id").notNull(),
    status: text("status").notNull(),
    priority: text("priority").notNull(),
    waypointCount: integer("waypoint_count").notNull(),
    createdAt: ts("created_at").notNull(),
    assignedAt: ts("assigned_at"),
    startedAt: ts("started_at"),
    /** Set when the mission reached a terminal state (completed, failed or aborted). */
    completedAt: ts("completed_at"),
    /** completed_at − started_at (or assigned_at when it never reported active), minutes. */
    actualDurationMinutes: doublePrecision("actual_duration_minutes"),
    message: text("message"),
    /** Revision in the fleet object; an older revision never overwrites a newer one. */
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.missionId] }), index("missions_fleet_completed").on(t.fleetId, t.completedAt)],
);

/** A drone's stay in `charging`: opened when telemetry enters the status, closed when it leaves. */
export const chargingSessions = pgTable(
  "charging_sessions",
  {
    fleetId: fleetRef(),
    droneId: text("drone_id").notNull(),
    startTime: ts("start_time").notNull(),
    endTime: ts("end_time").notNull(),
    startBatteryPercentage: doublePrecision("start_battery_percentage").notNull(),
    endBatteryPercentage: doublePrecision("end_battery_percentage").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.droneId, t.startTime] }), index("charging_sessions_fleet_start").on(t.fleetId, t.startTime)],
);

/** Collision-avoidance events; `created_at` is the detection time. */
export const coordinationEvents = pgTable(
  "coordination_events",
  {
    fleetId: fleetRef(),
    eventId: text("event_id").notNull(),
    eventType: text("event_type").notNull(),
    droneIds: jsonb("drone_ids").$type<string[]>().notNull(),
    strategy: text("strategy").notNull(),
    status: text("status").notNull(),
    createdAt: ts("created_at").notNull(),
    firstCommandAt: ts("first_command_at"),
    resolvedAt: ts("resolved_at"),
    resolutionTimeMs: integer("resolution_time_ms"),
    overriddenBy: text("overridden_by"),
    timeToConflictS: doublePrecision("time_to_conflict_s").notNull(),
    minHorizontalM: doublePrecision("min_horizontal_m").notNull(),
    minVerticalM: doublePrecision("min_vertical_m").notNull(),
    attempts: integer("attempts").notNull(),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.eventId] }), index("coordination_events_fleet_created").on(t.fleetId, t.createdAt)],
);

/** One row per drone per 10 s slot (`snapshot_time` is the slot start, UTC), downsampled at the edge. */
export const droneTelemetrySnapshots = pgTable(
  "drone_telemetry_snapshots",
  {
    fleetId: fleetRef(),
    snapshotTime: ts("snapshot_time").notNull(),
    droneId: text("drone_id").notNull(),
    lat: doublePrecision("lat").notNull(),
    lon: doublePrecision("lon").notNull(),
    altM: doublePrecision("alt_m").notNull(),
    batteryPct: doublePrecision("battery_pct").notNull(),
    speedMps: doublePrecision("speed_mps").notNull(),
    status: text("status").notNull(),
    armed: boolean("armed").notNull(),
    /** Metres flown since the drone's previous snapshot (0 for the first, or below 1 m of GPS noise). */
    distanceTraveledM: doublePrecision("distance_traveled_m").notNull(),
  },
  // The key leads with (fleet_id, snapshot_time): the hourly range scan uses it.
  (t) => [primaryKey({ columns: [t.fleetId, t.snapshotTime, t.droneId] })],
);

/** The live metrics, one row per fleet every 5 s. */
export const performanceMetrics = pgTable(
  "performance_metrics",
  {
    fleetId: fleetRef(),
    ts: ts("ts").notNull(),
    activeDrones: integer("active_drones").notNull(),
    totalDrones: integer("total_drones").notNull(),
    liveDrones: integer("live_drones").notNull(),
    fleetBatteryAverage: doublePrecision("fleet_battery_average").notNull(),
    activeMissions: integer("active_missions").notNull(),
    coordinationEventsActive: integer("coordination_events_active").notNull(),
    fleetUtilizationPercentage: doublePrecision("fleet_utilization_percentage").notNull(),
    emergencyStatus: text("emergency_status").notNull(),
    alertsActive: integer("alerts_active").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.ts] })],
);

/** Threshold alerts: raised on entering a condition, cleared (cleared_at) on leaving it. */
export const alerts = pgTable(
  "alerts",
  {
    fleetId: fleetRef(),
    alertId: text("alert_id").notNull(),
    droneId: text("drone_id").notNull(),
    kind: text("kind").notNull(),
    severity: text("severity").notNull(),
    message: text("message").notNull(),
    value: doublePrecision("value"),
    raisedAt: ts("raised_at").notNull(),
    clearedAt: ts("cleared_at"),
    updatedAt: ts("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.alertId] }), index("alerts_fleet_raised").on(t.fleetId, t.raisedAt)],
);

/** Every command in its final state (acked, rejected, failed, timeout), from the fleet's ledger. */
export const commandAudit = pgTable(
  "command_audit",
  {
    fleetId: fleetRef(),
    commandId: text("command_id").notNull(),
    command: text("command").notNull(),
    droneId: text("drone_id"),
    sub: text("sub").notNull(),
    role: text("role").notNull(),
    status: text("status").notNull(),
    code: text("code"),
    message: text("message"),
    params: jsonb("params").$type<unknown>().notNull(),
    relayId: text("relay_id"),
    receivedAt: ts("received_at").notNull(),
    sentAt: ts("sent_at"),
    finishedAt: ts("finished_at"),
    latencyMs: integer("latency_ms"),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.commandId] }), index("command_audit_fleet_received").on(t.fleetId, t.receivedAt)],
);

/** Per coordination event type within an hour. */
export type CoordinationHourStats = Record<string, { count: number; avg_resolution_ms: number | null }>;

/** The seed's hourly metrics per fleet; re-running an hour rewrites the same row. */
export const hourlyAnalytics = pgTable(
  "hourly_analytics",
  {
    fleetId: fleetRef(),
    /** Start of the hour, UTC. */
    hour: ts("hour").notNull(),
    /** Missions that reached a terminal state in the hour (the seed's missions_completed). */
    missionsCompleted: integer("missions_completed").notNull(),
    successfulMissions: integer("successful_missions").notNull(),
    failedMissions: integer("failed_missions").notNull(),
    abortedMissions: integer("aborted_missions").notNull(),
    avgDurationMinutes: doublePrecision("avg_duration_minutes"),
    chargingSessions: integer("charging_sessions").notNull(),
    avgChargeGained: doublePrecision("avg_charge_gained"),
    avgChargingTimeMinutes: doublePrecision("avg_charging_time_minutes"),
    coordinationEvents: integer("coordination_events").notNull(),
    coordination: jsonb("coordination").$type<CoordinationHourStats>().notNull(),
    avgResolutionTimeMs: doublePrecision("avg_resolution_time_ms"),
    /** Drones in the fleet during the hour: the most the live metrics counted, or those seen in snapshots. */
    fleetSize: integer("fleet_size").notNull(),
    fleetUtilizationPercentage: doublePrecision("fleet_utilization_percentage"),
    snapshotsReceived: integer("snapshots_received").notNull(),
    /** One per 10 s slot per drone, from its first to its last snapshot of the hour (edge/postgres/hourly.ts). */
    snapshotsExpected: integer("snapshots_expected").notNull(),
    /** snapshots_received / snapshots_expected, 0..1 (null when no drone reported in the hour). */
    dataCompleteness: doublePrecision("data_completeness"),
    alertsRaised: integer("alerts_raised").notNull(),
    commands: integer("commands").notNull(),
    commandsFailed: integer("commands_failed").notNull(),
    computedAt: ts("computed_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.hour] })],
);

/** Each hourly metric against the previous hour and the same hour the day before. */
export const trendAnalysis = pgTable(
  "trend_analysis",
  {
    fleetId: fleetRef(),
    hour: ts("hour").notNull(),
    metric: text("metric").notNull(),
    value: doublePrecision("value"),
    previousHourValue: doublePrecision("previous_hour_value"),
    previousHourChangePct: doublePrecision("previous_hour_change_pct"),
    yesterdayValue: doublePrecision("yesterday_value"),
    yesterdayChangePct: doublePrecision("yesterday_change_pct"),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.hour, t.metric] })],
);

/** Sentences an operator can act on, generated per fleet and hour by rules (edge/domain/insights.ts). */
export const insights = pgTable(
  "insights",
  {
    fleetId: fleetRef(),
    hour: ts("hour").notNull(),
    /** The rule that fired (stable code). */
    rule: text("rule").notNull(),
    /** What it is about: a drone id, an event type, or "" for the fleet. */
    subject: text("subject").notNull(),
    severity: text("severity").notNull(),
    message: text("message").notNull(),
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.fleetId, t.hour, t.rule, t.subject] })],
);

export type Mission = typeof missions.$inferSelect;
export type HourlyAnalytics = typeof hourlyAnalytics.$inferSelect;
export type TrendRow = typeof trendAnalysis.$inferSelect;
export type Insight = typeof insights.$inferSelect;
export type AlertRow = typeof alerts.$inferSelect;

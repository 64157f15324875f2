/**
 * The Postgres writer: one outbox batch → one transaction of multi-row inserts.
 *
 * Idempotent by natural keys, so a batch written twice (a crash between COMMIT and the outbox
 * delete, a retried flush) counts once: immutable rows (snapshots, metrics, charging sessions,
 * command audit) use `on conflict do nothing`; rows that evolve (missions, coordination events,
 * alerts) use `on conflict do update` where the incoming revision (`updated_at`) is not older.
 * Also upserts the fleet (config and version) and its drones (first/last seen).
 *
 * Every string is cleaned on the way in (NUL and lone surrogates → U+FFFD, as the protocol does at
 * the boundary), the JSON ones too, and a NaN or infinite number becomes null: Postgres refuses them in text and jsonb, and a refused row would
 * fail its whole batch. What Postgres still refuses (a number out of an integer's range, a time out
 * of timestamptz's) the drain sets aside row by row (drain.ts).
 */
import { sql, type SQL } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import {
  alerts,
  chargingSessions,
  commandAudit,
  coordinationEvents,
  droneTelemetrySnapshots,
  drones,
  fleets,
  missions,
  performanceMetrics,
} from "../../drizzle/schema";
import type { OutboxBatch, OutboxBodies, OutboxItem, OutboxKind } from "../domain/outbox-rows";
import { sanitizeText } from "../protocol";
import { inTransaction, type AnalyticsDb } from "./client";

export type FleetInfo = { id: string; config: Record<string, unknown>; configVersion: number };
export type WriteCounts = Record<OutboxKind | "snapshot", number>;

/** Postgres takes at most 65,535 bind parameters per statement; stay well below. */
const MAX_PARAMS = 30_000;
// A time that is not a number (a NaN cleaned to null, below) is an invalid date Postgres refuses,
// never the epoch that `new Date(null)` would make of it.
const d = (ms: number) => new Date(typeof ms === "number" ? ms : Number.NaN);
const dn = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : d(ms));

/** Write one batch in one transaction; resolves after COMMIT. */
export async function writeBatch(db: AnalyticsDb, info: FleetInfo, raw: OutboxBatch): Promise<WriteCounts> {
  const fleet = clean(info);
  const batch: OutboxBatch = { items: raw.items.map((i) => ({ ...i, body: clean(i.body) }) as OutboxItem), snapshots: raw.snapshots.map(clean) };
  const by = groupByKind(batch.items);
  const counts = Object.fromEntries(Object.entries(by).map(([k, v]) => [k, v.length])) as WriteCounts;
  counts.snapshot = batch.snapshots.length;
  await inTransaction(db, async (tx) => {
    await tx
      .insert(fleets)
      .values({ id: fleet.id, name: fleet.id, config: fleet.config, configVersion: fleet.configVersion })
      .onConflictDoUpdate({
        target: fleets.id,
        set: { config: sql`excluded.config`, configVersion: sql`excluded.config_version` },
        setWhere: sql`${fleets.configVersion} <= excluded.config_version`,
      });

    // Drones first (their rows are referenced by nothing, but first/last seen come from snapshots).
    const seen = new Map<string, { first: number; last: number }>();
    for (const s of batch.snapshots) {
      const cur = seen.get(s.drone_id);
      if (!cur) seen.set(s.drone_id, { first: s.snapshot_time, last: s.snapshot_time });
      else {
        cur.first = Math.min(cur.first, s.snapshot_time);
        cur.last = Math.max(cur.last, s.snapshot_time);
      }
    }
    await insertChunks([...seen], 4, (rows) =>
      tx
        .insert(drones)
        .values(rows.map(([id, t]) => ({ fleetId: fleet.id, droneId: id, firstSeenAt: d(t.first), lastSeenAt: d(t.last) })))
        .onConflictDoUpdate({
          target: [drones.fleetId, drones.droneId],
          set: {
            firstSeenAt: sql`least(${drones.firstSeenAt}, excluded.first_seen_at)`,
            lastSeenAt: sql`greatest(${drones.lastSeenAt}, excluded.last_seen_at)`,
          },
        }),
    );

    await insertChunks(batch.snapshots, 11, (rows) =>
      tx
        .insert(droneTelemetrySnapshots)
        .values(
          rows.map((s) => ({
            fleetId: fleet.id,
            snapshotTime: d(s.snapshot_time),
            droneId: s.drone_id,
            lat: s.lat,
            lon: s.lon,
            altM: s.alt_m,
            batteryPct: s.battery_pct,
            speedMps: s.speed_mps,
            status: s.status,
            armed: s.armed,
            distanceTraveledM: s.distance_m,
          })),
        )
        .onConflictDoNothing(),
    );

    await insertChunks(by.performance_metrics, 11, (rows) =>
      tx
        .insert(performanceMetrics)
        .values(
          rows.map((m) => ({
            fleetId: fleet.id,
            ts: d(m.ts),
            activeDrones: m.active_drones,
            totalDrones: m.total_drones,
            liveDrones: m.live_drones,
            fleetBatteryAverage: m.fleet_battery_average,
            activeMissions: m.active_missions,
            coordinationEventsActive: m.coordination_events_active,
            fleetUtilizationPercentage: m.fleet_utilization_percentage,
            emergencyStatus: m.emergency_status,
            alertsActive: m.alerts_active,
          })),
        )
        .onConflictDoNothing(),
    );

    await insertChunks(by.charging_session, 6, (rows) =>
      tx
        .insert(chargingSessions)
        .values(
          rows.map((c) => ({
            fleetId: fleet.id,
            droneId: c.drone_id,
            startTime: d(c.start_time),
            endTime: d(c.end_time),
            startBatteryPercentage: c.start_battery,
            endBatteryPercentage: c.end_battery,
          })),
        )
        .onConflictDoNothing(),
    );

    await insertChunks(by.command_audit, 15, (rows) =>
      tx
        .insert(commandAudit)
        .values(
          rows.map((a) => ({
            fleetId: fleet.id,
            commandId: a.command_id,
            command: a.command,
            droneId: a.drone_id,
            sub: a.sub,
            role: a.role,
            status: a.status,
            code: a.code,
            message: a.message,
            // The params are JSON text: a NUL in them is an escape until parsed.
            params: clean(parseJson(a.params)),
            relayId: a.relay_id,
            receivedAt: d(a.received_at),
            sentAt: dn(a.sent_at),
            finishedAt: dn(a.finished_at),
            latencyMs: a.finished_at !== null ? a.finished_at - a.received_at : null,
          })),
        )
        .onConflictDoNothing(),
    );

    await insertChunks(by.mission, 14, (rows) =>
      tx
        .insert(missions)
        .values(
          rows.map((m) => ({
            fleetId: fleet.id,
            missionId: m.mission_id,
            droneId: m.drone_id,
            commandId: m.command_id,
            status: m.status,
            priority: m.priority,
            waypointCount: m.waypoint_count,
            createdAt: d(m.created_at),
            assignedAt: dn(m.assigned_at),
            startedAt: dn(m.started_at),
            completedAt: dn(m.completed_at),
            actualDurationMinutes: missionMinutes(m),
            message: m.message,
            updatedAt: d(m.updated_at),
          })),
        )
        .onConflictDoUpdate({
          target: [missions.fleetId, missions.missionId],
          set: excludedSet(missions, ["status", "assignedAt", "startedAt", "completedAt", "actualDurationMinutes", "message", "updatedAt"]),
          setWhere: sql`${missions.updatedAt} <= excluded.updated_at`,
        }),
    );

    await insertChunks(by.coordination_event, 16, (rows) =>
      tx
        .insert(coordinationEvents)
        .values(
          rows.map((e) => ({
            fleetId: fleet.id,
            eventId: e.event_id,
            eventType: e.event_type,
            droneIds: e.drone_ids,
            strategy: e.strategy,
            status: e.status,
            createdAt: d(e.detected_at),
            firstCommandAt: dn(e.first_command_at),
            resolvedAt: dn(e.resolved_at),
            resolutionTimeMs: e.resolution_time_ms,
            overriddenBy: e.overridden_by,
            timeToConflictS: e.time_to_conflict_s,
            minHorizontalM: e.min_horizontal_m,
            minVerticalM: e.min_vertical_m,
            attempts: e.attempts,
            updatedAt: d(e.updated_at),
          })),
        )
        .onConflictDoUpdate({
          target: [coordinationEvents.fleetId, coordinationEvents.eventId],
          set: excludedSet(coordinationEvents, ["strategy", "status", "firstCommandAt", "resolvedAt", "resolutionTimeMs", "overriddenBy", "attempts", "updatedAt"]),
          setWhere: sql`${coordinationEvents.updatedAt} <= excluded.updated_at`,
        }),
    );

    await insertChunks(by.alert, 10, (rows) =>
      tx
        .insert(alerts)
        .values(
          rows.map((a) => ({
            fleetId: fleet.id,
            alertId: a.alert_id,
            droneId: a.drone_id,
            kind: a.kind,
            severity: a.severity,
            message: a.message,
            value: a.value,
            raisedAt: d(a.raised_at),
            clearedAt: dn(a.cleared_at),
            updatedAt: d(a.updated_at),
          })),
        )
        .onConflictDoUpdate({
          target: [alerts.fleetId, alerts.alertId],
          set: excludedSet(alerts, ["clearedAt", "updatedAt"]),
          setWhere: sql`${alerts.updatedAt} <= excluded.updated_at`,
        }),
    );
  });
  return counts;
}

/** A mission's flying time in minutes, once it reached a terminal state. */
export function missionMinutes(m: OutboxBodies["mission"]): number | null {
  const start = m.started_at ?? m.assigned_at;
  if (m.completed_at === null || start === null) return null;
  return Math.max(0, m.completed_at - start) / 60_000;
}

/** Items by kind; for kinds that are upserted, only the last (newest) item per key is kept, since
 * one statement may not update the same row twice. */
function groupByKind(items: readonly OutboxItem[]): { [K in OutboxKind]: OutboxBodies[K][] } {
  const maps = new Map<OutboxKind, Map<string, unknown>>();
  for (const it of items) {
    let m = maps.get(it.kind);
    if (!m) maps.set(it.kind, (m = new Map()));
    m.delete(it.key);
    m.set(it.key, it.body);
  }
  const pick = <K extends OutboxKind>(k: K) => [...(maps.get(k)?.values() ?? [])] as OutboxBodies[K][];
  return {
    mission: pick("mission"),
    coordination_event: pick("coordination_event"),
    alert: pick("alert"),
    command_audit: pick("command_audit"),
    performance_metrics: pick("performance_metrics"),
    charging_session: pick("charging_session"),
  };
}

/** Multi-row inserts of at most MAX_PARAMS parameters each, one after the other. */
async function insertChunks<T>(rows: readonly T[], columns: number, insert: (rows: T[]) => Promise<unknown>): Promise<void> {
  const size = Math.max(1, Math.floor(MAX_PARAMS / columns));
  for (let i = 0; i < rows.length; i += size) await insert(rows.slice(i, i + size));
}

/** `{ col: excluded.col }` for the named columns of a table. */
function excludedSet<T extends PgTable>(table: T, keys: (keyof T["_"]["columns"] & string)[]): Record<string, SQL> {
  const cols = table as unknown as Record<string, PgColumn>;
  return Object.fromEntries(keys.map((k) => [k, sql.raw(`excluded."${cols[k]!.name}"`)]));
}

/** `v` with every string in it, keys included, cleaned by sanitizeText (a copy; `v` is left alone). */
export function clean<T>(v: T): T {
  if (typeof v === "string") return sanitizeText(v) as T;
  // NaN and ±Infinity are not measurements: null (unknown) where a column may be null; a NOT NULL
  // column refuses the row, which the drain sets aside as a dead letter with the reason.
  if (typeof v === "number" && !Number.isFinite(v)) return null as T;
  if (Array.isArray(v)) return v.map(clean) as T;
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  if (v !== null && typeof v === "object" && !(v instanceof Date)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [sanitizeText(k), clean(x)])) as T;
  return v;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { raw: text };
  }
}

/**
 * Benchmark hook (`npm run bench` calls it; no timed assertions anywhere): one flush of a minute of
 * a large fleet — `drones` × `snapshotsPerDrone` snapshots plus missions, coordination events,
 * alerts, command audit, charging sessions and live metrics — through the same writer the fleet
 * object uses, then the hourly aggregation of that hour. The caller brings a migrated database
 * (drizzleFor(pool) over the local proxy) and gets the timings back.
 */
import type { AnalyticsDb } from "../../edge/postgres/client";
import { drainOutbox } from "../../edge/postgres/drain";
import { aggregateHour, HOUR_MS, hourStart } from "../../edge/postgres/hourly";
import { MemoryOutbox } from "../../test/fixtures/memory-outbox";
import { SNAPSHOT_INTERVAL_MS } from "../../edge/domain/outbox-rows";

export type AnalyticsBenchOptions = {
  fleet?: string;
  drones?: number;
  snapshotsPerDrone?: number;
  /** Events of each other kind (missions, coordination events, alerts, commands, charging sessions). */
  events?: number;
  /** Any instant in the hour to fill (default: the previous hour). */
  hour?: number;
};
export type AnalyticsBenchResult = {
  fleet: string;
  hour: string;
  flush: { rows: number; snapshots: number; events: number; batches: number; ms: number };
  hourly: { ms: number; snapshots_received: number; fleet_size: number };
};

export async function benchAnalytics(db: AnalyticsDb, opts: AnalyticsBenchOptions = {}): Promise<AnalyticsBenchResult> {
  const fleet = opts.fleet ?? `bench-${Date.now().toString(36)}`;
  const drones = opts.drones ?? 1_000;
  const per = opts.snapshotsPerDrone ?? 6;
  const events = opts.events ?? 200;
  const hour = hourStart(opts.hour ?? Date.now() - HOUR_MS).getTime();
  const box = syntheticMinute({ fleetHour: hour, drones, per, events });
  const f = await drainOutbox(box, db, { id: fleet, config: {}, configVersion: 0 }, { maxSnapshots: drones * per, maxItems: events * 6 + 100 });
  if (f.status !== "ok") throw new Error(`bench flush failed: ${f.error}`);
  const t0 = performance.now();
  const h = await aggregateHour(db, fleet, hour);
  const ms = performance.now() - t0;
  return {
    fleet,
    hour: new Date(hour).toISOString(),
    flush: { rows: f.rows, snapshots: drones * per, events: f.rows - drones * per, batches: f.batches, ms: f.ms },
    hourly: { ms, snapshots_received: h.row.snapshots_received, fleet_size: h.row.fleet_size },
  };
}

/** A minute of a fleet: snapshots along straight tracks, and `events` of each other kind. */
export function syntheticMinute(o: { fleetHour: number; drones: number; per: number; events: number }): MemoryOutbox {
  const box = new MemoryOutbox();
  const t0 = o.fleetHour + 10 * 60_000;
  for (let d = 0; d < o.drones; d++) {
    const id = `drone_${d}`;
    for (let k = 0; k < o.per; k++) {
      box.addSnapshot({
        drone_id: id,
        snapshot_time: t0 + k * SNAPSHOT_INTERVAL_MS,
        lat: 47.39 + d * 1e-4,
        lon: 8.54 + k * 1e-3,
        alt_m: 50,
        battery_pct: 90 - k,
        speed_mps: d % 4 === 0 ? 0 : 8,
        status: d % 4 === 0 ? "idle" : "flying",
        armed: d % 4 !== 0,
        distance_m: d % 4 === 0 || k === 0 ? 0 : 76,
      });
    }
  }
  const types = ["head_on", "crossing", "overtaking", "converging"] as const;
  for (let i = 0; i < o.events; i++) {
    const t = t0 + (i % 60) * 1000;
    const drone = `drone_${i % o.drones}`;
    const status = i % 5 === 0 ? "failed" : "completed";
    box.add({ kind: "mission", key: `m-${i}`, body: { mission_id: `m-${i}`, drone_id: drone, command_id: `c-m-${i}`, status, priority: "normal", waypoint_count: 3, created_at: t - 600_000, assigned_at: t - 590_000, started_at: t - 580_000, completed_at: t, message: null, updated_at: t } });
    box.add({
      kind: "coordination_event",
      key: `ev-${i}`,
      body: { event_id: `ev-${i}`, key: `k-${i}`, event_type: types[i % types.length]!, drone_ids: [drone, `drone_${(i + 1) % o.drones}`], detected_at: t, first_command_at: t + 50, resolved_at: t + 1500, resolution_time_ms: 1500, strategy: "hold", status: "resolved", overridden_by: null, override_reason: null, time_to_conflict_s: 20, min_horizontal_m: 12, min_vertical_m: 3, attempts: 1, last_attempt_at: t, updated_at: t + 1500 },
    });
    box.add({ kind: "alert", key: `al-${i}`, body: { alert_id: `al-${i}`, drone_id: drone, kind: "battery_low", severity: "warning", message: `${drone} battery low`, value: 25, raised_at: t, cleared_at: null, updated_at: t } });
    box.add({ kind: "command_audit", key: `c-${i}`, body: { command_id: `c-${i}`, command: "modify_waypoint", drone_id: drone, sub: "op", role: "operator", status: i % 7 === 0 ? "timeout" : "acked", code: null, message: "ok", params: "{}", relay_id: "relay-1", received_at: t, sent_at: t + 2, finished_at: t + 40 } });
    box.add({ kind: "charging_session", key: `${drone}@${t}`, body: { drone_id: drone, start_time: t - 300_000, end_time: t, start_battery: 60, end_battery: 85 } });
  }
  for (let k = 0; k < 12; k++) {
    const ts = t0 + k * 5000;
    box.add({ kind: "performance_metrics", key: String(ts), body: { ts, active_drones: Math.floor((o.drones * 3) / 4), total_drones: o.drones, live_drones: o.drones, fleet_battery_average: 80, active_missions: 10, coordination_events_active: 1, fleet_utilization_percentage: 75, emergency_status: "normal", alerts_active: 3 } });
  }
  return box;
}

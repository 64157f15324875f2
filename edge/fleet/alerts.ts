/**
 * Threshold alerts: which conditions hold for each drone right now (pure), and an AlertBook that
 * turns the conditions of successive 5 s ticks into alert changes. An alert is raised when a drone
 * enters a condition and cleared when it leaves it, so a drone at 12 % battery for an hour makes
 * one alert, not 720. Active alerts live in the fleet object's SQLite (table `alerts`, schema.ts)
 * and survive eviction.
 */
import type { FleetConfig } from "../domain/fleet-config";
import type { DroneRecord } from "../domain/live-state";
import type { AlertKind, AlertSeverity, AlertView } from "../protocol";
import { checkPosition } from "../domain/safety";

export type AlertCondition = {
  drone_id: string;
  kind: AlertKind;
  severity: AlertSeverity;
  message: string;
  value: number | null;
};

const round1 = (x: number) => Math.round(x * 10) / 10;

/** A drone's alert conditions from its latest sample (a stale drone keeps its last known ones). */
export function droneConditions(rec: DroneRecord, config: FleetConfig): AlertCondition[] {
  const s = rec.sample;
  const out: AlertCondition[] = [];
  const { battery_low_pct: low, battery_critical_pct: critical } = config.thresholds;
  // Low and critical exclude each other: entering critical clears low and raises critical.
  if (s.battery_pct <= critical) {
    out.push({ drone_id: s.drone_id, kind: "battery_critical", severity: "critical", value: round1(s.battery_pct), message: `${s.drone_id} battery at ${round1(s.battery_pct)} %, at or below the critical ${critical} %` });
  } else if (s.battery_pct <= low) {
    out.push({ drone_id: s.drone_id, kind: "battery_low", severity: "warning", value: round1(s.battery_pct), message: `${s.drone_id} battery at ${round1(s.battery_pct)} %, at or below the low ${low} %` });
  }
  if (rec.link === "stale") {
    out.push({ drone_id: s.drone_id, kind: "link_lost", severity: "critical", value: null, message: `${s.drone_id} has sent no telemetry for over 15 s` });
  }
  if (s.status === "emergency") {
    out.push({ drone_id: s.drone_id, kind: "emergency", severity: "critical", value: null, message: `${s.drone_id} reports emergency status` });
  }
  // Only armed drones can breach: one parked outside the fence is not flying there. The altitude is
  // clamped into the band so that this checks the fence and the no-fly zones, not the floor.
  if (s.armed) {
    const alt = Math.min(Math.max(s.alt_m, config.floor_m), config.ceiling_m);
    const r = checkPosition({ lat: s.lat, lon: s.lon, alt_m: alt }, config, { suggest: false });
    if (!r.ok && (r.rule === "geofence" || r.rule === "no_fly_zone")) {
      out.push({ drone_id: s.drone_id, kind: "geofence_breach", severity: "critical", value: null, message: `${s.drone_id}: ${r.message}` });
    }
  }
  return out;
}

export function alertKey(droneId: string, kind: AlertKind): string {
  return `${droneId}\u0000${kind}`;
}

type AlertRow = Omit<AlertView, "kind" | "severity"> & { kind: string; severity: string };

/** Active and past alerts of one fleet, in the fleet object's SQLite. */
export class AlertBook {
  private readonly active = new Map<string, AlertView>();

  constructor(private readonly sql: SqlStorage) {}

  load(): void {
    for (const r of this.sql.exec<AlertRow>(`SELECT * FROM alerts WHERE cleared_at IS NULL`)) {
      const a = r as AlertView;
      this.active.set(alertKey(a.drone_id, a.kind), a);
    }
  }

  activeAlerts(): AlertView[] {
    return [...this.active.values()];
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Raise what is new in `conditions`, clear what is no longer there. */
  reconcile(conditions: readonly AlertCondition[], now: number): { raised: AlertView[]; cleared: AlertView[] } {
    const seen = new Set<string>();
    const raised: AlertView[] = [];
    const cleared: AlertView[] = [];
    for (const c of conditions) {
      const key = alertKey(c.drone_id, c.kind);
      seen.add(key);
      if (this.active.has(key)) continue;
      const a: AlertView = {
        alert_id: `al-${now.toString(36)}-${crypto.randomUUID().slice(0, 8)}`,
        drone_id: c.drone_id,
        kind: c.kind,
        severity: c.severity,
        message: c.message,
        value: c.value,
        raised_at: now,
        cleared_at: null,
      };
      this.active.set(key, a);
      raised.push(a);
    }
    for (const [key, a] of this.active) {
      if (seen.has(key)) continue;
      this.active.delete(key);
      cleared.push({ ...a, cleared_at: now });
    }
    // One statement each, however many changed: a relay gone takes all its drones' links at once
    // (a thousand link_lost alerts were 70 ms of one alarm when written row by row).
    if (raised.length) {
      this.sql.exec(
        `INSERT INTO alerts (alert_id, drone_id, kind, severity, message, value, raised_at)
         SELECT value ->> 'alert_id', value ->> 'drone_id', value ->> 'kind', value ->> 'severity', value ->> 'message', value ->> 'value', value ->> 'raised_at'
           FROM json_each(?)`,
        JSON.stringify(raised),
      );
    }
    if (cleared.length) {
      this.sql.exec(`UPDATE alerts SET cleared_at = ? WHERE alert_id IN (SELECT value FROM json_each(?))`, now, JSON.stringify(cleared.map((a) => a.alert_id)));
    }
    return { raised, cleared };
  }

  /** Newest first. */
  list(limit: number): AlertView[] {
    return this.sql.exec<AlertRow>(`SELECT * FROM alerts ORDER BY raised_at DESC LIMIT ?`, limit).toArray() as AlertView[];
  }
}

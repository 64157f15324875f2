/**
 * Analytics inside a fleet object: what the FleetHub's small hooks feed, and what the 5 s tick and
 * the cron flush run. It
 * - downsamples accepted telemetry to one snapshot per drone per 10 s slot, with the distance
 *   flown since the drone's previous snapshot, into the outbox;
 * - derives charging sessions from telemetry (status enters `charging`: open; leaves: close);
 * - queues missions, coordination events and final command states as the stores change them;
 * - on the tick: computes the live metrics, raises/clears alerts, broadcasts `analytics_live` and
 *   `alert`, queues a performance_metrics row, and pings the Directory at most once a minute;
 * - drains the outbox into Postgres when asked (flush), one flush at a time; rows Postgres refuses
 *   become dead letters (outbox.ts), counted in the live view and listed for admins.
 * Its tables (snapshot_last, charging_open, and those of the outbox and alerts) are in schema.ts.
 */
import { AlertBook, droneConditions, type AlertCondition } from "./alerts";
import { computeLiveMetrics } from "../domain/live-metrics";
import { log } from "../domain/log";
import { directoryStub } from "../postgres/directory";
import type { FleetEnv } from "./env";
import type { FleetConfig } from "../domain/fleet-config";
import { distance3dM } from "../domain/geo";
import type { LedgerRow } from "./ledger";
import type { DroneRecord } from "../domain/live-state";
import type { MissionRow } from "./missions";
import { Outbox, type DeadLetter, type OutboxStats } from "./outbox";
import { SNAPSHOT_INTERVAL_MS } from "../domain/outbox-rows";
import { openDatabase } from "../postgres/client";
import { drainOutbox, type FlushLimits, type FlushResult } from "../postgres/drain";
import { LIMITS, type AlertView, type CoordinationEventView, type LiveAnalytics, type ServerMessage, type TelemetrySample } from "../protocol";

/** Moves under this many metres between snapshots are GPS noise, recorded as 0 (not "active"). */
export const MIN_MOVE_M = 1;
const DIRECTORY_PING_MS = 60_000;

export interface AnalyticsPorts {
  /** The fleet object's clock (clock.ts). */
  now(): number;
  fleet(): string;
  config(): FleetConfig;
  drones(): Iterable<DroneRecord>;
  activeMissions(): number;
  activeCoordinationEvents(): number;
  /** Alert conditions other modules hold (collision avoidance: unresolvable events, saturation). */
  extraConditions?(): AlertCondition[];
  broadcast(frame: ServerMessage): void;
  waitUntil(p: Promise<unknown>): void;
}

export type LastFlush = FlushResult & { at: number };
export type AnalyticsLiveView = {
  metrics: LiveAnalytics;
  alerts: AlertView[];
  outbox: OutboxStats & { database: "configured" | "not_configured"; last_flush: LastFlush | null };
};

type SnapState = { slot: number; lat: number; lon: number; alt_m: number };
type OpenCharge = { start_time: number; start_battery: number; last_battery: number | null };

export class FleetAnalytics {
  readonly outbox: Outbox;
  readonly alerts: AlertBook;
  private readonly snaps = new Map<string, SnapState>();
  private readonly charging = new Map<string, OpenCharge>();
  private flushing: Promise<FlushResult> | null = null;
  private lastPing = 0;
  latest: LiveAnalytics | null = null;

  constructor(
    private readonly sql: SqlStorage,
    private readonly env: FleetEnv,
    private readonly ports: AnalyticsPorts,
    bounds?: { snapshots: number; metrics: number },
  ) {
    this.outbox = new Outbox(sql, bounds, () => ports.now());
    this.alerts = new AlertBook(sql);
  }

  load(): void {
    this.outbox.load();
    this.alerts.load();
    for (const r of this.sql.exec<SnapState & { drone_id: string }>(`SELECT * FROM snapshot_last`)) {
      this.snaps.set(r.drone_id, { slot: r.slot, lat: r.lat, lon: r.lon, alt_m: r.alt_m });
    }
    for (const r of this.sql.exec<{ drone_id: string; start_time: number; start_battery: number }>(`SELECT * FROM charging_open`)) {
      this.charging.set(r.drone_id, { start_time: r.start_time, start_battery: r.start_battery, last_battery: null });
    }
  }

  // ------------------------------------------------------------------ hooks

  /** Accepted telemetry (edge clock `now`): snapshots and charging sessions. */
  onTelemetry(samples: readonly TelemetrySample[], now: number): void {
    const slot = Math.floor(now / SNAPSHOT_INTERVAL_MS) * SNAPSHOT_INTERVAL_MS;
    // When a fleet's drones cross a slot together, a frame takes up to 500 snapshots: written as
    // two statements over JSON arrays, not two per drone (a 30 ms stall at 500 drones before).
    const rows: Parameters<Outbox["addSnapshot"]>[0][] = [];
    const lasts: { drone_id: string; slot: number; lat: number; lon: number; alt_m: number }[] = [];
    for (const s of samples) {
      this.chargingStep(s, now);
      const last = this.snaps.get(s.drone_id);
      if (last && last.slot >= slot) continue;
      const moved = last ? distance3dM(last, s) : 0;
      rows.push({
        drone_id: s.drone_id,
        snapshot_time: slot,
        lat: s.lat,
        lon: s.lon,
        alt_m: s.alt_m,
        battery_pct: s.battery_pct,
        speed_mps: s.speed_mps,
        status: s.status,
        armed: s.armed,
        distance_m: moved < MIN_MOVE_M ? 0 : Math.round(moved * 100) / 100,
      });
      const next = { slot, lat: s.lat, lon: s.lon, alt_m: s.alt_m };
      this.snaps.set(s.drone_id, next);
      lasts.push({ drone_id: s.drone_id, ...next });
    }
    if (!rows.length) return;
    this.outbox.addSnapshots(rows);
    this.sql.exec(
      `INSERT INTO snapshot_last (drone_id, slot, lat, lon, alt_m)
       SELECT value ->> 'drone_id', value ->> 'slot', value ->> 'lat', value ->> 'lon', value ->> 'alt_m' FROM json_each(?) WHERE true
       ON CONFLICT (drone_id) DO UPDATE SET slot = excluded.slot, lat = excluded.lat, lon = excluded.lon, alt_m = excluded.alt_m`,
      JSON.stringify(lasts),
    );
  }

  onMission(m: MissionRow, now: number): void {
    this.outbox.put(
      "mission",
      m.mission_id,
      {
        mission_id: m.mission_id,
        drone_id: m.drone_id,
        command_id: m.command_id,
        status: m.status,
        priority: m.priority,
        waypoint_count: (JSON.parse(m.waypoints) as unknown[]).length,
        created_at: m.created_at,
        assigned_at: m.assigned_at,
        started_at: m.started_at,
        completed_at: m.completed_at,
        message: m.message,
        updated_at: now,
      },
      now,
    );
  }

  /** A command reached its final state in the ledger. */
  onCommandFinal(r: LedgerRow): void {
    const now = r.finished_at ?? this.ports.now();
    this.outbox.put(
      "command_audit",
      r.command_id,
      {
        command_id: r.command_id,
        command: r.command,
        drone_id: r.drone_id,
        sub: r.sub,
        role: r.role,
        status: r.status,
        code: r.code,
        message: r.message,
        params: r.params,
        relay_id: r.relay_id,
        received_at: r.received_at,
        sent_at: r.sent_at,
        finished_at: r.finished_at,
      },
      now,
    );
  }

  onCoordinationEvent(e: CoordinationEventView, now: number): void {
    this.outbox.put("coordination_event", e.event_id, { ...e, updated_at: now }, now);
  }

  // ------------------------------------------------------------------ the 5 s tick

  /** Live metrics and alerts; called on the fleet object's status tick. */
  tick(now: number): LiveAnalytics {
    const config = this.ports.config();
    const drones = [...this.ports.drones()];
    const conditions = [...drones.flatMap((r) => droneConditions(r, config)), ...(this.ports.extraConditions?.() ?? [])];
    const { raised, cleared } = this.alerts.reconcile(conditions, now);
    this.outbox.putMany("alert", [...raised, ...cleared].map((a) => ({ key: a.alert_id, body: { ...a, updated_at: now } })), now);
    if (raised.length + cleared.length > LIMITS.alertFramesMax) this.ports.broadcast({ type: "alerts", raised, cleared });
    else {
      for (const [state, list] of [["raised", raised], ["cleared", cleared]] as const) {
        for (const a of list) this.ports.broadcast({ type: "alert", state, alert: a });
      }
    }
    const m = this.compute(now, drones);
    this.latest = m;
    this.ports.broadcast({ type: "analytics_live", ...m });
    if (m.total_drones > 0) {
      const { fleet: _f, timestamp: _t, ...body } = m;
      this.outbox.put("performance_metrics", String(now), body, now);
    }
    this.pingDirectory(now);
    return m;
  }

  /** What GET /analytics/live answers (computed now; no side effects). */
  liveView(now: number): AnalyticsLiveView {
    return {
      metrics: this.compute(now, [...this.ports.drones()]),
      alerts: this.alerts.activeAlerts(),
      outbox: {
        ...this.outbox.stats(),
        database: this.env.DATABASE_URL ? "configured" : "not_configured",
        last_flush: this.lastFlush(),
      },
    };
  }

  /** POST /analytics/dead-letters/replay: dead letters back into the outbox (outbox.ts). */
  replayDeadLetters(ids?: readonly number[]): { replayed: number; superseded: number; kept: number } {
    const r = this.outbox.replayDeadLetters(ids);
    if (r.replayed) log("info", "dead letters put back into the outbox", { fleet: this.ports.fleet(), ...r });
    return { ...r, kept: this.outbox.deadLetterCount() };
  }

  /** What GET /analytics/dead-letters answers: the newest rows Postgres refused, and the counts. */
  deadLetters(limit: number, before?: number): { dead_letters: DeadLetter[]; kept: number; total: number; dropped: number } {
    return {
      dead_letters: this.outbox.deadLetters(limit, before),
      kept: this.outbox.deadLetterCount(),
      total: this.outbox.meta("dead_letters_total"),
      dropped: this.outbox.meta("dead_letters_dropped"),
    };
  }

  // ------------------------------------------------------------------ flush

  /** Drain the outbox into Postgres. A call while a flush runs joins it instead of starting another. */
  flush(limits?: FlushLimits): Promise<FlushResult> {
    this.flushing ??= this.runFlush(limits).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async runFlush(limits?: FlushLimits): Promise<FlushResult> {
    const t0 = this.ports.now();
    const fleet = this.ports.fleet();
    let r: FlushResult;
    const db = fleet ? openDatabase(this.env) : null;
    if (!fleet) {
      r = { status: "unknown_fleet", rows: 0, batches: 0, ms: 0, remaining: this.outbox.pendingTotal(), dead_lettered: 0, error: "the fleet object does not know its name yet" };
    } else if (!db) {
      // Nothing to write to: the outbox keeps everything (within its bounds) until DATABASE_URL is set.
      r = { status: "no_database", rows: 0, batches: 0, ms: 0, remaining: this.outbox.pendingTotal(), dead_lettered: 0, error: "DATABASE_URL is not configured" };
    } else {
      try {
        const config = this.ports.config();
        r = await drainOutbox(this.outbox, db.db, { id: fleet, config: config as unknown as Record<string, unknown>, configVersion: config.version }, limits);
      } finally {
        await db.close();
      }
    }
    if (r.status === "error") log("warn", "outbox flush failed", { fleet, rows: r.rows, reason: r.error });
    if (r.dead_lettered) log("warn", "outbox rows Postgres refused were set aside (GET /analytics/dead-letters)", { fleet, dead_lettered: r.dead_lettered });
    const last: LastFlush = { ...r, at: t0 };
    this.outbox.setMetaText("last_flush", JSON.stringify(last));
    return r;
  }

  lastFlush(): LastFlush | null {
    const t = this.outbox.getMetaText("last_flush");
    return t ? (JSON.parse(t) as LastFlush) : null;
  }

  // ------------------------------------------------------------------ internals

  private compute(now: number, drones: DroneRecord[]): LiveAnalytics {
    return computeLiveMetrics({
      fleet: this.ports.fleet(),
      now,
      drones,
      activeMissions: this.ports.activeMissions(),
      activeCoordinationEvents: this.ports.activeCoordinationEvents(),
      activeAlerts: this.alerts.activeAlerts(),
    });
  }

  private chargingStep(s: TelemetrySample, now: number): void {
    const open = this.charging.get(s.drone_id);
    if (s.status === "charging") {
      if (open) {
        open.last_battery = s.battery_pct;
        return;
      }
      this.charging.set(s.drone_id, { start_time: now, start_battery: s.battery_pct, last_battery: s.battery_pct });
      this.sql.exec(`INSERT OR REPLACE INTO charging_open (drone_id, start_time, start_battery) VALUES (?, ?, ?)`, s.drone_id, now, s.battery_pct);
      return;
    }
    if (!open) return;
    this.charging.delete(s.drone_id);
    this.sql.exec(`DELETE FROM charging_open WHERE drone_id = ?`, s.drone_id);
    // The last charging sample's battery (the one leaving may already have spent some); after an
    // eviction that is unknown and the leaving sample stands in.
    this.outbox.put(
      "charging_session",
      `${s.drone_id}@${open.start_time}`,
      { drone_id: s.drone_id, start_time: open.start_time, end_time: now, start_battery: open.start_battery, end_battery: open.last_battery ?? s.battery_pct },
      now,
    );
  }

  private pingDirectory(now: number): void {
    const fleet = this.ports.fleet();
    if (!fleet || now - this.lastPing < DIRECTORY_PING_MS) return;
    this.lastPing = now;
    this.ports.waitUntil(
      directoryStub(this.env)
        .ping(fleet, now)
        .catch((err: unknown) => log("warn", "directory ping failed", { fleet }, err)),
    );
  }
}

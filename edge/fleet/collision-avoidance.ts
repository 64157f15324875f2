/**
 * The stateful side of collision avoidance in a fleet object: runs detection passes, opens an
 * event per new conflict, sends the chosen resolution through the command ledger, follows each
 * event until separation is restored, takes operator overrides, and keeps the involved drones'
 * tracks from 30 s before to 30 s after for replay. Detection and resolution themselves are the
 * pure functions of ../domain/conflicts.ts. Tables `coordination_events` and `event_tracks`
 * (schema.ts).
 */
import {
  applyResolution,
  chooseResolution,
  detectConflicts,
  isResolved,
  type Conflict,
  type CoordinationDrone,
  type HoldCommand,
  type OverrideStrategy,
  type WaypointCommand,
} from "../domain/conflicts";
import type { FleetConfig } from "../domain/fleet-config";
import type { DroneRecord } from "../domain/live-state";
import type { MissionStore } from "./missions";
import type { CoordinationEventView } from "../protocol";

/** How often the fleet object runs a detection pass while drones are airborne. */
export const DETECT_INTERVAL_MS = 500;
/** Track kept before and after an event, for replay. */
export const REPLAY_WINDOW_MS = 30_000;
/** A still-unresolved event gets a new resolution this long after its last one. */
const RETRY_AFTER_MS = 5_000;
const MAX_ATTEMPTS = 3;
/** How long a sent-but-unacknowledged resolution waypoint overrides the drone's known plan. */
const PENDING_PLAN_MS = 6_000;
/** One track point per drone per second is plenty for replay. */
const TRACK_EVERY_MS = 1_000;

/** An event's lifecycle state, as the protocol defines it. */
export type EventState = CoordinationEventView["status"];

export type CoordinationEvent = CoordinationEventView;

export type TrackPoint = { t: number; lat: number; lon: number; alt_m: number };

export interface CoordinatorPorts {
  config(): FleetConfig;
  /** Live, airborne-or-not drones with their plans and priorities. */
  drones(): CoordinationDrone[];
  /** Send resolution commands through the ledger; returns how many were sent. */
  issue(commands: readonly (WaypointCommand | HoldCommand)[], eventId: string): number;
  /** An event opened or changed. */
  changed(event: CoordinationEvent): void;
}

type EventRow = Omit<CoordinationEvent, "drone_ids"> & { drone_ids: string };

export class Coordinator {
  private readonly active = new Map<string, CoordinationEvent>();
  /** Recent track per drone (≤ 1 point/s over the replay window). */
  private readonly rings = new Map<string, TrackPoint[]>();
  /** Events still recording tracks: event_id → until (ms) and drones. */
  private readonly recording = new Map<string, { until: number; drones: string[] }>();
  /** Drones holding position until this time (from hold commands), for prediction. */
  private readonly holdUntil = new Map<string, number>();
  /** New waypoints sent to drones and not yet acknowledged (the mission plan updates on ack). */
  private readonly pendingPlans = new Map<string, { path: CoordinationDrone["path"]; at: number }>();
  lastPass = { ms: 0, drones: 0, conflicts: 0, at: 0 };

  constructor(
    private readonly sql: SqlStorage,
    private readonly ports: CoordinatorPorts,
  ) {}

  /** Active events come back after eviction, so an event in progress is followed to its end. */
  load(now: number): void {
    for (const r of this.sql.exec<EventRow>(`SELECT * FROM coordination_events WHERE status = 'active' OR resolved_at > ?`, now - REPLAY_WINDOW_MS)) {
      const e = fromRow(r);
      if (e.status === "active") this.active.set(e.key, e);
      this.recording.set(e.event_id, { until: e.resolved_at !== null ? e.resolved_at + REPLAY_WINDOW_MS : Infinity, drones: e.drone_ids });
    }
  }

  activeEvents(): CoordinationEvent[] {
    return [...this.active.values()];
  }

  holdFor(droneId: string, now: number): number | undefined {
    const until = this.holdUntil.get(droneId);
    if (until === undefined) return undefined;
    if (until <= now) {
      this.holdUntil.delete(droneId);
      return undefined;
    }
    return (until - now) / 1000;
  }

  /** Called for every accepted telemetry sample; cheap unless a point is due. */
  recordTrack(droneId: string, p: TrackPoint): void {
    let ring = this.rings.get(droneId);
    if (!ring) this.rings.set(droneId, (ring = []));
    const last = ring[ring.length - 1];
    if (last && p.t - last.t < TRACK_EVERY_MS) return;
    ring.push(p);
    while (ring.length && ring[0]!.t < p.t - REPLAY_WINDOW_MS) ring.shift();
    if (this.recording.size === 0) return;
    for (const [eventId, rec] of this.recording) {
      if (p.t > rec.until) {
        this.recording.delete(eventId);
        continue;
      }
      if (rec.drones.includes(droneId)) this.insertTrack(eventId, droneId, p);
    }
  }

  /** One detection pass: open events for new conflicts, follow and close the others. */
  pass(now: number, clock: () => number = () => performance.now()): void {
    const t0 = clock();
    // Resolutions sent but not yet acknowledged are part of the picture, and so is every
    // resolution chosen earlier in this same pass: otherwise two resolutions can send two
    // conflicting drones to the same new altitude.
    let drones = this.withPendingPlans(this.ports.drones(), now);
    const config = this.ports.config();
    const conflicts = detectConflicts({ drones, config, now });
    const seen = new Set<string>();
    for (const c of conflicts) {
      seen.add(c.key);
      const existing = this.active.get(c.key);
      if (!existing) drones = this.open(c, drones, config, now);
      else if (existing.strategy !== "dismissed" && now - existing.last_attempt_at > RETRY_AFTER_MS && existing.attempts < MAX_ATTEMPTS) {
        // Still predicted after the last resolution had time to act: try again (the
        // resolution chooser escalates to holds when re-routing does not verify).
        drones = this.resolve(existing, c, drones, config, now).drones;
      }
    }
    for (const e of [...this.active.values()]) {
      if (seen.has(e.key)) continue;
      const involved = e.drone_ids.map((id) => drones.find((d) => d.drone_id === id));
      if (involved.some((d) => d === undefined)) {
        // A drone went silent: nothing more can be known; the event ends as expired.
        this.close(e, "expired", now);
      } else if (isResolved(e.key, drones, config)) {
        this.close(e, "resolved", now);
      }
    }
    this.lastPass = { ms: clock() - t0, drones: drones.length, conflicts: conflicts.length, at: now };
  }

  /** Operator override: another strategy, or dismiss. */
  override(eventId: string, action: string, by: string, reason: string | undefined, now: number): { ok: true; message: string } | { ok: false; code: string; message: string } {
    const e = [...this.active.values()].find((x) => x.event_id === eventId);
    if (!e) {
      const known = this.sql.exec<{ status: string }>(`SELECT status FROM coordination_events WHERE event_id = ?`, eventId).toArray()[0];
      return known
        ? { ok: false, code: "event_closed", message: `event ${eventId} is already ${known.status}` }
        : { ok: false, code: "unknown_event", message: `no coordination event ${eventId}` };
    }
    e.overridden_by = by;
    e.override_reason = reason ?? null;
    if (action === "dismiss") {
      e.strategy = "dismissed";
      this.close(e, "dismissed", now);
      return { ok: true, message: `event ${eventId} dismissed by ${by}` };
    }
    const drones = this.ports.drones();
    const config = this.ports.config();
    // The operator's choice applies even when the current plan already avoids the conflict: use
    // the predicted conflict when there is one, else the event as it was detected.
    const predicted = detectConflicts({ drones: drones.filter((d) => e.drone_ids.includes(d.drone_id)), config, now }).find((c) => c.key === e.key);
    const conflict: Conflict = predicted ?? {
      key: e.key,
      event_type: e.event_type,
      drone_ids: e.drone_ids,
      time_to_conflict_s: e.time_to_conflict_s,
      min_horizontal_m: e.min_horizontal_m,
      min_vertical_m: e.min_vertical_m,
      at: midpoint(drones.filter((d) => e.drone_ids.includes(d.drone_id))),
      detected_at: e.detected_at,
      ...(e.key.includes("@no_fly:") ? { zone_id: e.key.slice(e.key.indexOf("@no_fly:") + 8) } : {}),
    };
    const { sent } = this.resolve(e, conflict, this.withPendingPlans(drones, now), config, now, action as OverrideStrategy);
    return { ok: true, message: `strategy ${e.strategy} applied by ${by}: ${sent} command(s) sent` };
  }

  /** The event with the involved drones' tracks, for replay. */
  replay(eventId: string): { event: CoordinationEvent; tracks: Record<string, TrackPoint[]> } | null {
    const row = this.sql.exec<EventRow>(`SELECT * FROM coordination_events WHERE event_id = ?`, eventId).toArray()[0];
    if (!row) return null;
    const tracks: Record<string, TrackPoint[]> = {};
    for (const p of this.sql.exec<TrackPoint & { drone_id: string }>(
      `SELECT drone_id, t, lat, lon, alt_m FROM event_tracks WHERE event_id = ? ORDER BY drone_id, t`,
      eventId,
    )) {
      (tracks[p.drone_id] ??= []).push({ t: p.t, lat: p.lat, lon: p.lon, alt_m: p.alt_m });
    }
    return { event: fromRow(row), tracks };
  }

  list(limit: number): CoordinationEvent[] {
    return this.sql
      .exec<EventRow>(`SELECT * FROM coordination_events ORDER BY detected_at DESC LIMIT ?`, limit)
      .toArray()
      .map(fromRow);
  }

  // ------------------------------------------------------------------ internals

  private open(c: Conflict, drones: CoordinationDrone[], config: FleetConfig, now: number): CoordinationDrone[] {
    const e: CoordinationEvent = {
      event_id: `ev-${now.toString(36)}-${crypto.randomUUID().slice(0, 8)}`,
      key: c.key,
      event_type: c.event_type,
      drone_ids: c.drone_ids,
      detected_at: now,
      first_command_at: null,
      resolved_at: null,
      resolution_time_ms: null,
      strategy: "hold",
      status: "active",
      overridden_by: null,
      override_reason: null,
      time_to_conflict_s: round(c.time_to_conflict_s),
      min_horizontal_m: round(c.min_horizontal_m),
      min_vertical_m: round(c.min_vertical_m),
      attempts: 0,
      last_attempt_at: now,
    };
    this.active.set(c.key, e);
    this.recording.set(e.event_id, { until: Infinity, drones: e.drone_ids });
    // The 30 s before detection, from the in-memory rings.
    for (const id of e.drone_ids) for (const p of this.rings.get(id) ?? []) this.insertTrack(e.event_id, id, p);
    return this.resolve(e, c, drones, config, now).drones;
  }

  /** Overlay the plans of resolution commands still waiting for their ack. */
  private withPendingPlans(drones: CoordinationDrone[], now: number): CoordinationDrone[] {
    if (this.pendingPlans.size === 0) return drones;
    for (const [id, p] of this.pendingPlans) if (now - p.at > PENDING_PLAN_MS) this.pendingPlans.delete(id);
    return drones.map((d) => {
      const p = this.pendingPlans.get(d.drone_id);
      return p ? { ...d, path: p.path } : d;
    });
  }

  private resolve(
    e: CoordinationEvent,
    c: Conflict,
    drones: CoordinationDrone[],
    config: FleetConfig,
    now: number,
    override?: OverrideStrategy,
  ): { sent: number; drones: CoordinationDrone[] } {
    const r = chooseResolution(c, drones, config, override);
    e.strategy = r.strategy;
    e.attempts++;
    e.last_attempt_at = now;
    const sent = this.ports.issue(r.commands, e.event_id);
    for (const cmd of r.commands) {
      if (cmd.command === "hold") this.holdUntil.set(cmd.drone_id, now + cmd.duration_s * 1000);
      else this.pendingPlans.set(cmd.drone_id, { path: [cmd.new_waypoint], at: now });
    }
    if (sent > 0 && e.first_command_at === null) e.first_command_at = now;
    this.save(e);
    this.ports.changed(e);
    return { sent, drones: applyResolution(drones, r) };
  }

  private close(e: CoordinationEvent, status: Exclude<EventState, "active">, now: number): void {
    e.status = status;
    e.resolved_at = now;
    e.resolution_time_ms = now - e.detected_at;
    this.active.delete(e.key);
    const rec = this.recording.get(e.event_id);
    if (rec) rec.until = now + REPLAY_WINDOW_MS;
    this.save(e);
    this.ports.changed(e);
  }

  private save(e: CoordinationEvent): void {
    this.sql.exec(
      `INSERT INTO coordination_events (event_id, key, event_type, drone_ids, detected_at, first_command_at, resolved_at, resolution_time_ms,
        strategy, status, overridden_by, override_reason, time_to_conflict_s, min_horizontal_m, min_vertical_m, attempts, last_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (event_id) DO UPDATE SET first_command_at = excluded.first_command_at, resolved_at = excluded.resolved_at,
        resolution_time_ms = excluded.resolution_time_ms, strategy = excluded.strategy, status = excluded.status,
        overridden_by = excluded.overridden_by, override_reason = excluded.override_reason, attempts = excluded.attempts,
        last_attempt_at = excluded.last_attempt_at`,
      e.event_id,
      e.key,
      e.event_type,
      JSON.stringify(e.drone_ids),
      e.detected_at,
      e.first_command_at,
      e.resolved_at,
      e.resolution_time_ms,
      e.strategy,
      e.status,
      e.overridden_by,
      e.override_reason,
      e.time_to_conflict_s,
      e.min_horizontal_m,
      e.min_vertical_m,
      e.attempts,
      e.last_attempt_at,
    );
  }

  private insertTrack(eventId: string, droneId: string, p: TrackPoint): void {
    this.sql.exec(
      `INSERT INTO event_tracks (event_id, drone_id, t, lat, lon, alt_m) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      eventId,
      droneId,
      p.t,
      p.lat,
      p.lon,
      p.alt_m,
    );
  }
}

const PRIORITY_RANK: Record<string, number> = { low: 1, normal: 2, high: 3, critical: 4 };

/**
 * Live drones as detection sees them: position, velocity, plan, mission priority and any hold.
 * Stale drones are left out (nothing current is known of them).
 */
export function coordinationDrones(
  records: Iterable<DroneRecord>,
  missions: Pick<MissionStore, "busy" | "plan">,
  holdFor: (droneId: string) => number | undefined,
): CoordinationDrone[] {
  const busy = missions.busy();
  const out: CoordinationDrone[] = [];
  for (const rec of records) {
    if (rec.link !== "live") continue;
    const s = rec.sample;
    const hold = holdFor(s.drone_id);
    out.push({
      drone_id: s.drone_id,
      lat: s.lat,
      lon: s.lon,
      alt_m: s.alt_m,
      heading_deg: s.heading_deg,
      speed_mps: s.speed_mps,
      ...(s.climb_mps !== undefined ? { climb_mps: s.climb_mps } : {}),
      status: s.status,
      armed: s.armed,
      path: missions.plan(s.drone_id),
      priority: PRIORITY_RANK[busy.get(s.drone_id) ?? ""] ?? 0,
      ...(hold !== undefined ? { hold_s: hold } : {}),
    });
  }
  return out;
}

function fromRow(r: EventRow): CoordinationEvent {
  return { ...r, drone_ids: JSON.parse(r.drone_ids) as string[] };
}

function midpoint(ds: readonly CoordinationDrone[]): { lat: number; lon: number; alt_m: number } {
  const n = Math.max(ds.length, 1);
  return {
    lat: ds.reduce((a, d) => a + d.lat, 0) / n,
    lon: ds.reduce((a, d) => a + d.lon, 0) / n,
    alt_m: ds.reduce((a, d) => a + d.alt_m, 0) / n,
  };
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : x;
}

/**
 * Missions and planned paths in the fleet object's SQLite. A mission moves
 * pending → assigned → active → completed | failed | aborted, with a timestamp per step, for
 * analytics. The planned path per drone (what it is still going to fly) feeds the separation check.
 * Tables `missions` and `plans` (schema.ts).
 */
import type { Waypoint } from "../protocol";

export const MISSION_STATES = ["pending", "assigned", "active", "completed", "failed", "aborted"] as const;
export type MissionState = (typeof MISSION_STATES)[number];
const TERMINAL: readonly MissionState[] = ["completed", "failed", "aborted"];

export type MissionRow = {
  mission_id: string;
  drone_id: string;
  command_id: string;
  status: MissionState;
  priority: string;
  waypoints: string;
  waypoint_index: number;
  created_at: number;
  assigned_at: number | null;
  started_at: number | null;
  completed_at: number | null;
  message: string | null;
};

export class MissionStore {
  /** drone → waypoints still to fly (in memory, mirrored in the plans table). */
  private readonly plans = new Map<string, Waypoint[]>();

  constructor(
    private readonly sql: SqlStorage,
    /** Analytics hook: every created or changed mission (the outbox keeps the newest revision). */
    private readonly onChange: (m: MissionRow, now: number) => void = () => {},
  ) {}

  load(): void {
    for (const r of this.sql.exec<{ drone_id: string; path: string }>(`SELECT drone_id, path FROM plans`)) {
      this.plans.set(r.drone_id, JSON.parse(r.path) as Waypoint[]);
    }
  }

  create(m: { mission_id: string; drone_id: string; command_id: string; priority: string; waypoints: Waypoint[] }, now: number): void {
    this.sql.exec(
      `INSERT INTO missions (mission_id, drone_id, command_id, status, priority, waypoints, created_at) VALUES (?, ?, ?, 'pending', ?, ?, ?)`,
      m.mission_id,
      m.drone_id,
      m.command_id,
      m.priority,
      JSON.stringify(m.waypoints),
      now,
    );
    this.onChange(this.get(m.mission_id)!, now);
  }

  get(missionId: string): MissionRow | null {
    return this.sql.exec<MissionRow>(`SELECT * FROM missions WHERE mission_id = ?`, missionId).toArray()[0] ?? null;
  }

  byCommand(commandId: string): MissionRow | null {
    return this.sql.exec<MissionRow>(`SELECT * FROM missions WHERE command_id = ?`, commandId).toArray()[0] ?? null;
  }

  /** Apply a transition; terminal missions never change again. Returns the row after, or null. */
  transition(missionId: string, to: MissionState, now: number, opts: { waypointIndex?: number; message?: string } = {}): MissionRow | null {
    const m = this.get(missionId);
    if (!m || TERMINAL.includes(m.status)) return null;
    const col = to === "assigned" ? "assigned_at" : to === "active" ? "started_at" : TERMINAL.includes(to) ? "completed_at" : null;
    this.sql.exec(
      `UPDATE missions SET status = ?, waypoint_index = COALESCE(?, waypoint_index), message = COALESCE(?, message)
       ${col ? `, ${col} = COALESCE(${col}, ?)` : ""} WHERE mission_id = ?`,
      ...([to, opts.waypointIndex ?? null, opts.message ?? null, ...(col ? [now] : []), missionId] as (string | number | null)[]),
    );
    const after = this.get(missionId)!;
    this.onChange(after, now);
    if (TERMINAL.includes(to)) {
      if (this.activeFor(m.drone_id).length === 0) this.clearPlan(m.drone_id);
    } else if (to === "active" || to === "assigned") {
      const wps = JSON.parse(after.waypoints) as Waypoint[];
      this.setPlan(m.drone_id, wps.slice(after.waypoint_index), now);
    }
    return after;
  }

  /** Missions of a drone that are not finished. */
  activeFor(droneId: string): MissionRow[] {
    return this.sql
      .exec<MissionRow>(`SELECT * FROM missions WHERE drone_id = ? AND status IN ('pending', 'assigned', 'active')`, droneId)
      .toArray();
  }

  /** Missions handed to a drone and not finished (live analytics). */
  activeCount(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM missions WHERE status IN ('assigned', 'active')`).one().n;
  }

  /** Number of unfinished missions per drone and their best priority. */
  busy(): Map<string, string> {
    const out = new Map<string, string>();
    const rank = { low: 0, normal: 1, high: 2, critical: 3 } as Record<string, number>;
    for (const r of this.sql.exec<{ drone_id: string; priority: string }>(
      `SELECT drone_id, priority FROM missions WHERE status IN ('assigned', 'active')`,
    )) {
      const cur = out.get(r.drone_id);
      if (cur === undefined || (rank[r.priority] ?? 0) > (rank[cur] ?? 0)) out.set(r.drone_id, r.priority);
    }
    return out;
  }

  /** Missions assigned per drone since `since`, for fairness. */
  assignedSince(since: number): Record<string, number> {
    // Null prototype: drone ids are relay strings ("constructor" is a fine drone name).
    const out = Object.create(null) as Record<string, number>;
    for (const r of this.sql.exec<{ drone_id: string; n: number }>(
      // By creation time: the planner would rather walk missions_drone for the GROUP BY, every mission.
      `SELECT drone_id, COUNT(*) AS n FROM missions INDEXED BY missions_created WHERE created_at >= ? GROUP BY drone_id`,
      since,
    ))
      out[r.drone_id] = r.n;
    return out;
  }

  setPlan(droneId: string, path: Waypoint[], now: number): void {
    this.plans.set(droneId, path);
    this.sql.exec(
      `INSERT INTO plans (drone_id, path, updated_at) VALUES (?, ?, ?) ON CONFLICT (drone_id) DO UPDATE SET path = excluded.path, updated_at = excluded.updated_at`,
      droneId,
      JSON.stringify(path),
      now,
    );
  }

  clearPlan(droneId: string): void {
    this.plans.delete(droneId);
    this.sql.exec(`DELETE FROM plans WHERE drone_id = ?`, droneId);
  }

  plan(droneId: string): Waypoint[] {
    return this.plans.get(droneId) ?? [];
  }

  list(limit: number): (Omit<MissionRow, "waypoints"> & { waypoints: Waypoint[] })[] {
    return this.sql
      .exec<MissionRow>(`SELECT * FROM missions ORDER BY created_at DESC LIMIT ?`, limit)
      .toArray()
      .map((r) => ({ ...r, waypoints: JSON.parse(r.waypoints) as Waypoint[] }));
  }
}

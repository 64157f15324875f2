/**
 * The dashboard's picture of one fleet, fed by server frames. Plain data and functions, no DOM,
 * so the merging rules (latest sample by seq wins, as at the edge; fleet_status parts, data age,
 * plans from mission_update, command ledger states) are tested in Node without a browser. Every
 * shape here comes from edge/protocol.
 */
import type {
  CommandAuditEntry,
  CommandResponse,
  CommandState,
  CommandStatusFrame,
  CoordinationEventView,
  DroneState,
  FleetStatus,
  LedgerCommand,
  LinkStatus,
  MissionEntry,
  MissionUpdate,
  TelemetrySample,
  Waypoint,
} from "../../edge/protocol";
import { FINAL_STATES, isNewerSample, LIMITS, ModifyWaypoint } from "../../edge/protocol";
import { isAirborne } from "../../edge/domain/drone";
import { planarDistanceM } from "../../edge/domain/geo";

/** How long a trail is kept. */
export const TRAIL_MS = 60_000;
/** Most trail points per drone (10 Hz × 60 s). */
const TRAIL_POINTS = 600;
/** Resolved/dismissed coordination events kept for the list. */
const CLOSED_EVENTS_KEPT = 30;

export type TrailPoint = { t: number; lat: number; lon: number };

export type DroneView = {
  sample: TelemetrySample;
  /** Local clock (ms) when the latest sample reached the edge; for fleet_status entries this is
   * the edge's received_at shifted by the frame's clock offset, so ages do not depend on clock skew. */
  seenAt: number;
  /** The edge's link verdict; the page also turns a drone stale on its own after staleAfterMs. */
  link: DroneState["link"];
  trail: TrailPoint[];
};

export type Plan = {
  kind: "waypoint" | "mission";
  waypoints: Waypoint[];
  mission_id?: string;
  /** Index of the waypoint being flown to (missions). */
  index: number;
  since: number;
};

/** Fields of a GET /missions entry this page reads. */
export type MissionPlanEntry = Pick<MissionEntry, "drone_id" | "mission_id" | "status" | "waypoints" | "waypoint_index">;

/** The parameters of a modify_waypoint as the ledger stores them (the D→E frame's fields). */
const WaypointParams = ModifyWaypoint.pick({ new_waypoint: true });

export class FleetModel {
  readonly drones = new Map<string, DroneView>();
  readonly plans = new Map<string, Plan>();
  readonly events = new Map<string, CoordinationEventView>();
  relayConnected: boolean | null = null;
  /** Local clock of the last relay state change (for "offline for 12 s"). */
  relayChangedAt = 0;
  counts: FleetStatus["counts"] | null = null;
  lastStatusAt = 0;
  /** Bumped on every change; views redraw when it moved. */
  version = 0;
  /** Bumped when a drone is added or removed (the table re-sorts only then). */
  idsVersion = 0;
  /** Bumped when coordination events change (their list is rebuilt only then, not per sample). */
  eventsVersion = 0;
  private sorted: { version: number; ids: string[] } = { version: -1, ids: [] };
  private pendingParts: { ts: number; parts: number; got: Set<number>; ids: Set<string> } | null = null;

  /** Apply a fleet_status frame or one part of a split one. Returns true when a complete snapshot
   * has been seen (then drones that were in no part are dropped). */
  applyStatus(f: FleetStatus, now: number): boolean {
    const offset = now - f.ts;
    for (const d of f.drones) this.upsertState(d, offset, now);
    this.setRelay(f.relay_connected, now);
    this.counts = f.counts;
    this.lastStatusAt = now;
    if (f.coordination_events) this.setActiveEvents(f.coordination_events);
    this.version++;

    const parts = f.parts ?? 1;
    if (parts <= 1 || f.part === undefined) {
      this.keepOnly(new Set(f.drones.map((d) => d.drone_id)));
      this.pendingParts = null;
      return true;
    }
    if (!this.pendingParts || this.pendingParts.ts !== f.ts || this.pendingParts.parts !== parts) {
      // A new snapshot began (or parts of the last one were lost): start collecting again.
      this.pendingParts = { ts: f.ts, parts, got: new Set(), ids: new Set() };
    }
    const p = this.pendingParts;
    p.got.add(f.part);
    for (const d of f.drones) p.ids.add(d.drone_id);
    if (p.got.size < p.parts) return false;
    this.keepOnly(p.ids);
    this.pendingParts = null;
    return true;
  }

  /** A live telemetry sample (telemetry or one item of telemetry_batch). */
  applySample(s: TelemetrySample, now: number): boolean {
    const cur = this.drones.get(s.drone_id);
    if (cur && !isNewerSample(s, cur.sample)) return false;
    const view: DroneView = cur ?? { sample: s, seenAt: now, link: "live", trail: [] };
    view.sample = s;
    view.seenAt = now;
    view.link = "live";
    pushTrail(view.trail, { t: now, lat: s.lat, lon: s.lon });
    if (!cur) {
      this.drones.set(s.drone_id, view);
      this.idsVersion++;
    }
    this.advancePlan(s.drone_id, s);
    this.version++;
    return true;
  }

  applyLink(f: LinkStatus, now: number): void {
    if (f.scope === "relay") {
      this.setRelay(f.state === "up", now);
    } else {
      const d = this.drones.get(f.drone_id);
      if (d) d.link = f.state;
    }
    this.version++;
  }

  applyMissionUpdate(f: MissionUpdate, now: number): void {
    const u = f.update;
    switch (u.type) {
      case "waypoint_modified": {
        const cur = this.plans.get(f.drone_id);
        if (cur?.kind === "mission" && cur.index < cur.waypoints.length) {
          // On a mission the new point replaces the waypoint being flown to; the mission goes on.
          const waypoints = [...cur.waypoints];
          waypoints[cur.index] = u.new_waypoint;
          this.plans.set(f.drone_id, { ...cur, waypoints, since: now });
        } else {
          this.plans.set(f.drone_id, { kind: "waypoint", waypoints: [u.new_waypoint], index: 0, since: now });
        }
        break;
      }
      case "mission_assigned":
        this.plans.set(f.drone_id, { kind: "mission", waypoints: u.waypoints, mission_id: u.mission_id, index: 0, since: now });
        break;
      case "emergency_land":
        this.plans.delete(f.drone_id);
        break;
      case "mission_status": {
        const cur = this.plans.get(f.drone_id);
        if (cur?.mission_id === u.mission_id && ["completed", "failed", "aborted"].includes(u.status)) this.plans.delete(f.drone_id);
        break;
      }
      default: {
        const never: never = u;
        void never;
      }
    }
    this.version++;
  }

  /** Plans of missions still being flown, from GET /missions (on start and after a reconnect). */
  setMissionPlans(missions: readonly MissionPlanEntry[], now: number): void {
    const flying = new Set<string>();
    // Newest first: the first open mission per drone is its current one.
    for (const m of missions) {
      if (flying.has(m.drone_id) || (m.status !== "assigned" && m.status !== "active")) continue;
      flying.add(m.drone_id);
      const existing = this.plans.get(m.drone_id);
      if (existing && existing.since > now - 1000) continue; // a fresher mission_update already set it
      this.plans.set(m.drone_id, { kind: "mission", waypoints: m.waypoints, mission_id: m.mission_id, index: Math.min(m.waypoint_index, m.waypoints.length), since: now });
    }
    this.version++;
  }

  /**
   * Waypoint targets from the command audit, for a page that opens after they were set (GET
   * /missions lists missions, not single waypoints): per drone, the newest acked command that
   * changed its plan decides. Plans that frames or /missions already gave are kept.
   */
  setWaypointPlansFromAudit(audit: readonly AuditLike[], now: number): void {
    const newest = new Map<string, AuditLike>();
    for (const a of audit) {
      if (a.status !== "acked" || !a.drone_id || !PLAN_COMMANDS.has(a.command)) continue;
      const cur = newest.get(a.drone_id);
      if (!cur || a.received_at > cur.received_at) newest.set(a.drone_id, a);
    }
    for (const [drone, a] of newest) {
      if (a.command !== "modify_waypoint" || this.plans.has(drone)) continue;
      const p = WaypointParams.safeParse(a.params);
      if (p.success) this.plans.set(drone, { kind: "waypoint", waypoints: [p.data.new_waypoint], index: 0, since: now });
    }
    this.version++;
  }

  applyEvent(e: CoordinationEventView): void {
    this.events.set(e.event_id, e);
    this.trimClosedEvents();
    this.version++;
    this.eventsVersion++;
  }

  /** fleet_status lists the events still active: anything else we hold as active has ended. */
  private setActiveEvents(active: CoordinationEventView[]): void {
    const ids = new Set(active.map((e) => e.event_id));
    for (const e of active) this.events.set(e.event_id, e);
    for (const [id, e] of this.events) {
      if (e.status === "active" && !ids.has(id)) this.events.set(id, { ...e, status: "expired" });
    }
    this.trimClosedEvents();
    this.eventsVersion++;
  }

  private trimClosedEvents(): void {
    const closed = [...this.events.values()].filter((e) => e.status !== "active").sort((a, b) => b.detected_at - a.detected_at);
    for (const e of closed.slice(CLOSED_EVENTS_KEPT)) this.events.delete(e.event_id);
  }

  activeEvents(): CoordinationEventView[] {
    return [...this.events.values()].filter((e) => e.status === "active");
  }

  /** Whether the page should show the drone as stale: the edge said so, or nothing came for
   * longer than the edge's own threshold (the edge may be unreachable to tell us). */
  isStale(d: DroneView, now: number): boolean {
    return d.link === "stale" || now - d.seenAt > LIMITS.staleAfterMs;
  }

  /** fleet_status's counts, from the freshest samples this page holds (fleet_status itself comes
   * every 5 s); same definitions as the edge's. */
  liveCounts(now: number): FleetStatus["counts"] {
    const c = { total: 0, live: 0, stale: 0, armed: 0, flying: 0, charging: 0 };
    for (const d of this.drones.values()) {
      c.total++;
      if (this.isStale(d, now)) c.stale++;
      else c.live++;
      const st = d.sample.status;
      if (d.sample.armed) c.armed++;
      if (isAirborne(d.sample)) c.flying++;
      if (st === "charging") c.charging++;
    }
    return c;
  }

  /** Drop trail points older than TRAIL_MS. */
  pruneTrails(now: number): void {
    for (const d of this.drones.values()) {
      let i = 0;
      while (i < d.trail.length && d.trail[i]!.t < now - TRAIL_MS) i++;
      if (i) d.trail.splice(0, i);
    }
  }

  /** Drone ids in natural order (drone_2 before drone_10); sorted again only when the set of
   * drones changed, so a table of 1,000 does not sort at every frame. Do not mutate. */
  sortedIds(): readonly string[] {
    if (this.sorted.version !== this.idsVersion) this.sorted = { version: this.idsVersion, ids: [...this.drones.keys()].sort(NATURAL.compare) };
    return this.sorted.ids;
  }

  private upsertState(d: DroneState, offset: number, now: number): void {
    const { received_at, link, ...sample } = d;
    const cur = this.drones.get(d.drone_id);
    if (cur && !isNewerSample(sample, cur.sample)) {
      cur.link = link; // the edge's link verdict is current even when the sample is not new
      return;
    }
    const view: DroneView = cur ?? { sample, seenAt: 0, link, trail: [] };
    view.sample = sample;
    view.seenAt = Math.min(now, received_at + offset);
    view.link = link;
    pushTrail(view.trail, { t: view.seenAt, lat: sample.lat, lon: sample.lon });
    if (!cur) {
      this.drones.set(d.drone_id, view);
      this.idsVersion++;
    }
  }

  private keepOnly(ids: Set<string>): void {
    for (const id of this.drones.keys()) {
      if (ids.has(id)) continue;
      this.drones.delete(id);
      this.idsVersion++;
    }
  }

  private setRelay(connected: boolean, now: number): void {
    if (this.relayConnected !== connected) {
      this.relayConnected = connected;
      this.relayChangedAt = now;
    }
  }

  /** A mission's index advances as the drone passes each point, so the map draws only what is
   * still to fly (mission_update carries the mission's state, not the waypoint index). */
  private advancePlan(droneId: string, s: TelemetrySample): void {
    const plan = this.plans.get(droneId);
    if (!plan || plan.kind !== "mission") return;
    const next = plan.waypoints[plan.index];
    if (next && planarDistanceM(s, next) < 8) plan.index++;
  }
}

/** One collator for every comparison: localeCompare with options builds a new one per call, which
 * is what made sorting 1,000 ids take tens of milliseconds. */
const NATURAL = new Intl.Collator(undefined, { numeric: true });

function pushTrail(trail: TrailPoint[], p: TrailPoint): void {
  const last = trail[trail.length - 1];
  if (last && last.lat === p.lat && last.lon === p.lon) {
    last.t = p.t;
    return;
  }
  trail.push(p);
  if (trail.length > TRAIL_POINTS) trail.splice(0, trail.length - TRAIL_POINTS);
}

// ------------------------------------------------------------------ commands

/** Client-side state before the edge has said anything. */
export type TrackedState = CommandState | "pending";

export type TrackedCommand = {
  command_id: string;
  command: LedgerCommand;
  drone_id: string | null;
  /** What the operator asked, in words ("waypoint 47.39810, 8.54601 @ 40 m"). */
  summary: string;
  status: TrackedState;
  code?: string;
  message?: string;
  by?: string;
  /** Local clock of each state. */
  history: { status: TrackedState; at: number }[];
  createdAt: number;
  response?: CommandResponse;
  /** Sent from this page (as opposed to another dashboard, or the edge's own holds). */
  mine: boolean;
};

const COMMANDS_KEPT = 60;

/** The fields of a GET /commands entry (the ledger's audit view) this page reads. */
export type AuditLike = Pick<
  CommandAuditEntry,
  "command_id" | "command" | "drone_id" | "sub" | "status" | "code" | "message" | "received_at" | "sent_at" | "finished_at" | "params"
>;

/** Commands that replace a drone's planned path when acked. */
const PLAN_COMMANDS = new Set<string>(["modify_waypoint", "assign_mission", "emergency_land"]);

export const isFinal = (s: TrackedState): boolean => s !== "pending" && FINAL_STATES.includes(s);

/** States in the order they can happen; a later frame never moves a command backwards. */
const ORDER: Record<TrackedState, number> = { pending: 0, received: 1, sent: 2, rejected: 3, acked: 3, failed: 3, timeout: 3 };

/** The ledger as this page sees it: commands it sent and every command_status it hears. */
export class CommandLog {
  readonly items = new Map<string, TrackedCommand>();
  version = 0;

  /** Record a command this page is about to send. */
  track(c: { command_id: string; command: LedgerCommand; drone_id: string | null; summary: string }, now: number): TrackedCommand {
    const t: TrackedCommand = { ...c, status: "pending", history: [{ status: "pending", at: now }], createdAt: now, mine: true };
    this.items.set(c.command_id, t);
    this.trim();
    this.version++;
    return t;
  }

  applyStatus(f: CommandStatusFrame, now: number): TrackedCommand {
    const t =
      this.items.get(f.command_id) ??
      ({ command_id: f.command_id, command: f.command, drone_id: f.drone_id, summary: "", status: "pending", history: [], createdAt: now, mine: false } satisfies TrackedCommand);
    if (!this.items.has(f.command_id)) {
      this.items.set(f.command_id, t);
      this.trim();
    }
    this.advance(t, f.status, now, f.code, f.message);
    t.by = f.by;
    if (f.drone_id) t.drone_id = f.drone_id;
    this.version++;
    return t;
  }

  applyResponse(r: CommandResponse, now: number): TrackedCommand | undefined {
    const t = this.items.get(r.command_id);
    if (!t) return undefined;
    t.response = r;
    if ("drone_id" in r && r.drone_id) t.drone_id = r.drone_id;
    this.advance(t, r.status, now, r.code, r.message);
    this.version++;
    return t;
  }

  /** A command this page could not send (socket down, invalid): final at once, client side. */
  failLocally(id: string, message: string, now: number): void {
    const t = this.items.get(id);
    if (!t) return;
    t.message = message;
    this.advance(t, "failed", now, "not_sent", message);
    this.version++;
  }

  /**
   * Merge the ledger audit (GET /commands): commands this page has not seen are added (recent
   * history on sign-in), and commands still open here catch up with states whose frames were
   * missed while the socket was down.
   */
  mergeAudit(audit: readonly AuditLike[], now: number): void {
    for (const a of audit) {
      const status = a.status;
      const t = this.items.get(a.command_id);
      if (t) {
        if (!isFinal(t.status)) this.advance(t, status, now, a.code ?? undefined, a.message ?? undefined);
        continue;
      }
      const history: TrackedCommand["history"] = [{ status: "received", at: a.received_at }];
      if (a.sent_at !== null) history.push({ status: "sent", at: a.sent_at });
      if (status !== "received" && status !== "sent") history.push({ status, at: a.finished_at ?? a.received_at });
      this.items.set(a.command_id, {
        command_id: a.command_id,
        command: a.command,
        drone_id: a.drone_id,
        summary: "",
        status,
        ...(a.code ? { code: a.code } : {}),
        ...(a.message ? { message: a.message } : {}),
        by: a.sub,
        history,
        createdAt: a.received_at,
        mine: false,
      });
    }
    this.trim();
    this.version++;
  }

  /** Newest first. */
  list(): TrackedCommand[] {
    return [...this.items.values()].sort((a, b) => b.createdAt - a.createdAt);
  }

  private advance(t: TrackedCommand, status: TrackedState, now: number, code?: string, message?: string): void {
    if (ORDER[status] < ORDER[t.status] || (isFinal(t.status) && status !== t.status)) return;
    if (status !== t.status) t.history.push({ status, at: now });
    t.status = status;
    if (code) t.code = code;
    if (message) t.message = message;
  }

  private trim(): void {
    if (this.items.size <= COMMANDS_KEPT) return;
    // Drop the oldest final commands first; open ones stay until they end.
    const finals = [...this.items.values()].filter((t) => isFinal(t.status)).sort((a, b) => a.createdAt - b.createdAt);
    for (const t of finals.slice(0, this.items.size - COMMANDS_KEPT)) this.items.delete(t.command_id);
  }
}

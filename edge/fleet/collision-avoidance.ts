/**
 * The stateful side of collision avoidance in a fleet object: decides what each drone is about to
 * do and how sure it is of that, runs detection passes, opens an event per conflict (merging
 * conflicts that share drones), sends resolutions through the command ledger within budgets,
 * follows each command to its outcome, takes operator overrides, says when the airspace is
 * saturated, and keeps the involved drones' tracks from 30 s before to 30 s after for replay.
 * Detection and resolution themselves are the pure functions of ../domain/conflicts.ts. Tables
 * `coordination_events` and `event_tracks` (schema.ts).
 *
 * What a drone is predicted to fly (its plan), in this order:
 * 1. a resolution the edge sent and the relay has not answered yet (the drone is about to turn);
 * 2. the intent its relay reports with each sample (edge/protocol/relay.ts `DroneIntent`), unless
 *    the edge's record below is newer;
 * 3. the edge's record of commands it sent and the relay acknowledged (missions.plan);
 * 4. none: dead reckoning on heading and speed.
 * A drone on the ground is predicted only by its own intent (a take-off it announces), or, armed,
 * climbing where it stands (conflicts.ts `mayTakeOff`).
 *
 * Trust, but check. Each new sample is compared with the plans (`planAgreement`): a plan the
 * drone's motion contradicts for DROP_AFTER_SAMPLES samples in a row is dropped (an intent until
 * its revision changes, a record until a new command replaces it). While a plan is new, was just
 * contradicted, or the drone hovers although the plan says fly, the edge is unsure, and the drone
 * is predicted both ways (plan and dead reckoning): a conflict in either counts. A relay that
 * connects again (`relayConnected`) or reports a new intent revision (a restarted route)
 * invalidates the plans stored for those drones.
 *
 * Right of way (`RightOfWay`): drones in an emergency, landing, on the ground about to take off,
 * returning, at critical battery or held by an operator's override keep their course and are never sent a resolution; the other
 * drone moves. A resolution that fails (refused, timed out, no relay) excludes that drone (or that
 * strategy of it) and the next pass tries the next strategy or the other drone. An event is
 * `resolved` only when one of its resolutions was acknowledged and separation is predicted to
 * hold; one that clears without an acknowledged resolution is `expired`. When nothing may or can
 * be sent, the operator gets a `coordination_unresolved` alert with the reason.
 *
 * Calm in dense airspace: a drone is not re-commanded while it flies its last resolution
 * (RETRY_AFTER_MS), nor after DRONE_COMMANDS_PER_MIN resolutions in a minute unless moving the
 * other drone does not work, nor ever beyond DRONE_COMMANDS_MAX_PER_MIN; a pass makes at most
 * MAX_RESOLUTIONS_PER_PASS resolution attempts and sends at most MAX_COMMANDS_PER_PASS commands,
 * most urgent first, within PASS_RESOLUTION_BUDGET_MS; what it had no time for goes to resolution
 * turns RESUME_GAP_MS apart (`resume`), each with the same budgets, until the next pass; a
 * resolution is worked out one candidate at a time, so one that takes longer than a turn is
 * carried on by the next (conflicts.ts `ResolutionPlanner.steps`), and so is building the
 * planner for a thousand drones (`ResolutionPlanner.build`), and so is a pass's detection when
 * it does not fit the pass's budget (conflicts.ts `detectSteps`). Conflicts left over pass after
 * pass mean the airspace is saturated: the operator gets an `airspace_saturated` alert and drones
 * starting to take off are held.
 */
import {
  detectConflicts,
  detectSteps,
  isResolved,
  parseConflictKey,
  planAgreement,
  ResolutionPlanner,
  run,
  type Conflict,
  type CoordinationDrone,
  type Detection,
  type HoldCommand,
  type OverrideStrategy,
  type PlanAgreement,
  type Resolution,
  type RightOfWay,
  type Steps,
  type Strategy,
  type WaypointCommand,
} from "../domain/conflicts";
import { isAirborne } from "../domain/drone";
import type { FleetConfig } from "../domain/fleet-config";
import type { DroneRecord } from "../domain/live-state";
import type { AlertKind, AlertSeverity, CommandState, CoordinationEventView, DroneIntent, LedgerCommand, Waypoint } from "../protocol";
import { budgetClock } from "./clock";

/** How often the fleet object runs a detection pass while drones are airborne. */
export const DETECT_INTERVAL_MS = 500;
/** After a pass (or a resolution turn) that left conflicts it had no time for, the next
 * resolution turn comes this much later: the object handles telemetry in between (short turns
 * often rather than long ones seldom: a turn delays every telemetry frame that arrives in it). */
export const RESUME_GAP_MS = 16;
/** Resolution turns stop for the pass interval once they took this long in all, ms: in airspace
 * saturated pass after pass, resolving takes at most ~40 % of the object, telemetry the rest. */
export const RESUME_TIME_PER_PASS_MS = 200;
/** A pass's detection runs in steps (turns RESUME_GAP_MS apart) for at most this long after its
 * picture was taken, then to its end: what it finds still has most of the pass interval for its
 * resolutions, however slow the machine. */
export const DETECT_STEPS_MAX_MS = 100;
/** A resolution turn has this many times the pass's PASS_RESOLUTION_BUDGET_MS (it runs no
 * detection): a hard resolution at a thousand drones (20–70 ms of candidates) takes three to
 * nine turns, 70–220 ms. */
export const RESUME_TURN_FACTOR = 1;
/** Track kept before and after an event, for replay. */
export const REPLAY_WINDOW_MS = 30_000;
/** A conflict still predicted this long after its last resolution gets another one: until then
 * the drone is flying that resolution and is not re-commanded. */
export const RETRY_AFTER_MS = 5_000;
/** Resolutions of one conflict before the operator is told it is not working (after that it is
 * retried every RETRY_AFTER_MS only). */
export const MAX_ATTEMPTS = 4;
/** How long a sent-but-unanswered resolution waypoint overrides the drone's known plan. */
const PENDING_PLAN_MS = 6_000;
/** A drone is taken to fly an acknowledged waypoint resolution for this long (holds: their time). */
const RESOLUTION_FLIGHT_MS = 15_000;
/** One track point per drone per second is plenty for replay. */
const TRACK_EVERY_MS = 1_000;
/** A plan contradicted by this many samples in a row is dropped ("more than a couple"). */
export const DROP_AFTER_SAMPLES = 3;
/** After this many samples in a row that do not agree with the plan, the edge is unsure of it
 * and predicts the drone both ways. One: a sample taken while the drone rounds a waypoint (it
 * averages the old leg and the new one) then costs a few extra predicted conflicts; waiting for
 * a second sample cost real ones in the separation figure. */
export const UNSURE_AFTER_SAMPLES = 1;
/** A new plan's first seconds do not count against it: the drone needs time to turn. */
const PLAN_GRACE_MS = 2_000;
/** How much later than its time to conflict a conflict with a resolution being flown ranks
 * among the pass's work, seconds (see `pass`). */
const FLOWN_PENALTY_S = RETRY_AFTER_MS / 1000;
/** Budgets of one pass, and of one drone. */
export const MAX_RESOLUTIONS_PER_PASS = 8;
/** Resolution stops for this pass once the pass (its detection included) has taken this long, ms
 * (a pass stalls every socket of the fleet for that long): between conflicts, and within
 * a resolution between its candidates (a resolution is worked out one candidate at a time; one
 * stopped half-way is carried on, not started over, by the next turn). A pass whose detection
 * already took this long leaves all resolving to the turns. What is left waits for the resolution
 * turns after the pass (`resume`), most urgent first; what they do not get to counts towards
 * saturation. Read off `budgetClock` (deployed, where the clock stands still inside a turn: about
 * that many steps). */
export const PASS_RESOLUTION_BUDGET_MS = 8;
export const MAX_COMMANDS_PER_PASS = 8;
/** A drone that had this many resolutions in the last minute is commanded again only when
 * moving the other drone does not work, and never beyond the hard cap. */
export const DRONE_COMMANDS_PER_MIN = 4;
export const DRONE_COMMANDS_MAX_PER_MIN = 12;
/** Conflicts that share drones join one event, up to this many drones. */
const MERGE_MAX_DRONES = 6;
/** Passes in a row with conflicts left over that make the airspace saturated, and quiet passes
 * that end it. */
const SATURATED_AFTER_PASSES = 6;
const CALM_AFTER_PASSES = 20;
/** How long a drone starting to take off into saturated airspace is held, seconds. */
export const TAKEOFF_HOLD_S = 30;
/** Alert `drone_id` of fleet-wide conditions (alerts are keyed by drone and kind, so a drone
 * named "fleet" cannot clash: it never has this kind). */
export const FLEET_ALERT_ID = "fleet";

/** An event's lifecycle state, as the protocol defines it. */
export type EventState = CoordinationEventView["status"];

export type CoordinationEvent = CoordinationEventView;

export type TrackPoint = { t: number; lat: number; lon: number; alt_m: number };

/*
 * The shapes this module takes from its neighbours, written out structurally (a ledger row, an
 * alert condition, the mission store, the object's SQL) rather than imported: the separation
 * figure (bench/lib/separation.ts) runs this module in plain Node, outside the Workers types.
 */
/** What the coordinator learns of a command's end (ledger.ts's LedgerRow has these fields). */
export type CommandFinal = {
  sub: string;
  drone_id: string | null;
  command: LedgerCommand;
  status: CommandState;
  message: string | null;
  finished_at: number | null;
};
/** An alert condition (alerts.ts's AlertCondition). */
export type CoordinationAlert = { drone_id: string; kind: AlertKind; severity: AlertSeverity; message: string; value: number | null };
/** The part of SqlStorage used here. */
export interface SqlPort {
  exec<T extends Record<string, SqlValue>>(query: string, ...bindings: SqlValue[]): Iterable<T> & { toArray(): T[] };
}
type SqlValue = ArrayBuffer | string | number | null;
/** The part of the mission store used here (missions.ts). */
export type MissionPlans = { busy(): Map<string, string>; plan(droneId: string): Waypoint[] };

export interface CoordinatorPorts {
  config(): FleetConfig;
  /** Live drones (`coordinationDrones`): position, motion, state, and as `path` the edge's record. */
  drones(): CoordinationDrone[];
  /** Send resolution commands through the ledger; returns how many were sent. Commands that
   * cannot be sent end at once, through `onCommandFinal`. */
  issue(commands: readonly (WaypointCommand | HoldCommand)[], eventId: string): number;
  /** An event opened or changed. */
  changed(event: CoordinationEvent): void;
}

type EventRow = Omit<CoordinationEvent, "drone_ids"> & { drone_ids: string };

/** One conflict waiting for its resolution: its event, and whether it is to be retried at once. */
type WorkItem = { e: CoordinationEvent; c: Conflict; retry: boolean };
/** Conflicts a pass had no time for, with the picture they are planned on (see `resume`). */
type Backlog = {
  at: number;
  drones: CoordinationDrone[];
  config: FleetConfig;
  planner: ResolutionPlanner | null;
  /** The planner while it is built in steps (`ResolutionPlanner.build`), across turns. */
  building: Steps<ResolutionPlanner> | null;
  /** Build the planner in one go (the last backlog's was given up before it was built). */
  buildToEnd: boolean;
  /** Resolutions to commit to the planner when it is built (sent after the picture was taken). */
  commits: Resolution[];
  items: WorkItem[];
  spentMs: number;
};
/** A pass's detection while it runs in steps (`detectSteps`), across turns: the picture it
 * works on, taken when the pass began (`at`). */
type Detecting = { at: number; drones: CoordinationDrone[]; config: FleetConfig; steps: Steps<Detection>; toEnd: boolean; spentMs: number; turns: number };
/** A resolution being worked out across turns (see `resolveTurn`). */
type InProgress = { e: CoordinationEvent; c: Conflict; steps: Steps<Resolution>; planner: ResolutionPlanner; since: number };
type TurnBudget = { resolutions: number; commands: number; sent: number };

/** What the coordinator believes of one drone's plans. */
type Belief = {
  /** Seq of the last sample judged (each sample counts once). */
  seq: number | undefined;
  intentBad: number;
  /** Samples in a row that did not agree with the intent (contradicted it, or could not tell). */
  intentOdd: number;
  intentLast: PlanAgreement;
  /** The intent's first waypoint at the last sample judged: when it changes, the drone has just
   * rounded a waypoint, and that sample's course (averaged over the turn) is not held against it. */
  intentFirst: { lat: number; lon: number } | null;
  /** When the drone last rounded a waypoint (or turned onto a new route): for a while after, its
   * reported speed is the last leg's, not the next one's. */
  roundedAt: number;
  /** `route_id#revision` of an intent the drone's motion contradicted. */
  intentDistrusted: string | null;
  /** The record (missions.plan array) last seen, since when, and how it fares. */
  record: readonly Waypoint[] | null;
  recordSince: number;
  recordBad: number;
  recordOdd: number;
  recordLast: PlanAgreement;
  /** A record the edge no longer trusts (contradicted, or from before a reconnect / a restarted
   * route); a new command replaces the array and is trusted again. */
  recordDistrusted: readonly Waypoint[] | null;
  /** Distrust whatever record is there at the next pass (reconnect, new intent revision). */
  invalidateRecord: boolean;
};

type IntentEntry = { intent: DroneIntent; key: string; at: number; since: number };

/** Following one event to its end (memory only; rebuilt from the ledger after eviction). */
type Follow = {
  /** Conflict keys merged into the event (the event's own key first). */
  keys: Set<string>;
  /** Commands sent and not answered: drone → what. */
  outstanding: Map<string, { command: "hold" | "modify_waypoint"; strategy: Strategy; key: string; at: number }>;
  /** Drones that acknowledged a resolution of this event. */
  acked: Set<string>;
  /** Drones (`id`) and strategies (`id:strategy`) not to use again, and why (drones). */
  exclude: Set<string>;
  why: Map<string, string>;
  /** Conflict key → when it was last given a resolution, and how many it had. */
  tries: Map<string, { at: number; n: number }>;
  /** A resolution failed: try again at the next pass, not after RETRY_AFTER_MS. */
  retryNow: boolean;
  /** Why nothing that works could be sent (the operator's alert), or null. */
  reason: string | null;
};

export class Coordinator {
  private readonly active = new Map<string, CoordinationEvent>();
  private readonly byId = new Map<string, CoordinationEvent>();
  /** Merged conflict key → event_id. */
  private readonly keyToEvent = new Map<string, string>();
  private readonly follow = new Map<string, Follow>();
  /** Recent track per drone (≤ 1 point/s over the replay window). */
  private readonly rings = new Map<string, TrackPoint[]>();
  /** Events still recording tracks: event_id → until (ms) and drones. */
  private readonly recording = new Map<string, { until: number; drones: string[] }>();
  /** Drones holding position until this time (from hold commands), and whether an operator's
   * override ordered it. */
  private readonly holdUntil = new Map<string, { until: number; operator: boolean; at: number }>();
  /** New waypoints sent to drones and not yet answered (the mission plan updates on ack). */
  private readonly pendingPlans = new Map<string, { path: Waypoint[]; at: number }>();
  /** Reported intents, by drone. */
  private readonly intents = new Map<string, IntentEntry>();
  private readonly beliefs = new Map<string, Belief>();
  /** Drone → until when it flies a resolution, of which event, since when, and (waypoint
   * resolutions) the intent it reported when the command left: a drone that acknowledges a new
   * waypoint but still reports the same intent afterwards does not fly it. */
  private readonly flying = new Map<string, { until: number; eventId: string; since: number; intentBefore: string | null }>();
  /** Drone → the intent key it reported when a waypoint resolution was sent to it. */
  private readonly intentAtSend = new Map<string, string | null>();
  /** Drone → times of the resolution commands sent to it in the last minute. */
  private readonly sentAt = new Map<string, number[]>();
  /** Drones whose relay said hello again, since when: until a sample arrives after it, what the
   * edge knows of such a drone is from before its relay (and maybe its route) restarted, so no
   * resolution is planned around it (see `pass`). */
  private readonly awaitingFresh = new Map<string, number>();
  /** Last reported motion per drone, and whether telemetry since the last pass changed what some
   * drone is predicted to fly (`passWanted`). */
  private readonly motions = new Map<string, Motion>();
  private wantPass = false;
  /** Drones held on take-off during this saturation. */
  private readonly takeoffHeld = new Set<string>();
  private busyPasses = 0;
  private calmPasses = 0;
  private saturatedSince: number | null = null;
  private lastDeferred = 0;
  /** The last pass: its time in all (`ms`, over `turns` turns when its detection ran in steps). */
  lastPass = { ms: 0, drones: 0, conflicts: 0, at: 0, saturated: false, deferred: 0, commands: 0, turns: 1 };
  /** The last resolution turn: its time, conflicts it worked on, how many are left, commands sent. */
  lastResume = { ms: 0, at: 0, worked: 0, left: 0, commands: 0 };
  private backlog: Backlog | null = null;
  private current: InProgress | null = null;
  /** Conflicts a backlog still held when it was given up (too old, or the turns' time spent). */
  private droppedLeft = 0;
  /** A backlog was given up (or replaced by a pass's) while its planner was being built: the
   * next one's is built in one go, so that however slow the machine, a planner gets built. */
  private buildUnfinished = false;
  /** The pass's detection while its steps are unfinished (see `pass`). */
  private detecting: Detecting | null = null;
  /** A pass came while the last one's detection was unfinished: the new one runs to its end in
   * its first turn, so that however slow the machine, detections finish. */
  private detectUnfinished = false;
  /** Commands sent since the object started, for the budget figures. */
  commandsSent = 0;

  constructor(
    private readonly sql: SqlPort,
    private readonly ports: CoordinatorPorts,
    /** Tests and the separation figure pass Infinity: a budget in real milliseconds would make
     * simulated runs depend on the machine's load. */
    private readonly resolutionBudgetMs: number = PASS_RESOLUTION_BUDGET_MS,
    /** What the budgets are read off (`budgetClock`: real time, or steps where the clock is frozen). */
    private readonly clock: () => number = budgetClock(),
  ) {}

  /** Active events come back after eviction, so an event in progress is followed to its end. */
  load(now: number): void {
    for (const r of this.sql.exec<EventRow>(`SELECT * FROM coordination_events WHERE status = 'active' OR resolved_at > ?`, now - REPLAY_WINDOW_MS)) {
      const e = fromRow(r);
      if (e.status === "active") this.track(e);
      this.recording.set(e.event_id, { until: e.resolved_at !== null ? e.resolved_at + REPLAY_WINDOW_MS : Infinity, drones: e.drone_ids });
    }
    for (const e of this.active.values()) {
      // Which of its resolutions the drones acknowledged before the eviction: the ledger knows.
      const f = this.followOf(e);
      for (const c of this.sql.exec<{ drone_id: string | null; status: string }>(`SELECT drone_id, status FROM commands WHERE sub = ?`, `coordinator:${e.event_id}`)) {
        if (c.status === "acked" && c.drone_id) f.acked.add(c.drone_id);
      }
    }
  }

  activeEvents(): CoordinationEvent[] {
    return [...this.active.values()];
  }

  /** Whether the airspace is saturated now (too many conflicts to resolve calmly). */
  saturated(): boolean {
    return this.saturatedSince !== null;
  }

  holdFor(droneId: string, now: number): number | undefined {
    const h = this.holdUntil.get(droneId);
    if (h === undefined) return undefined;
    if (h.until <= now) {
      this.holdUntil.delete(droneId);
      return undefined;
    }
    return (h.until - now) / 1000;
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

  /**
   * The intent on an accepted sample (`intentOf` of the raw update): every sample carries its
   * source's current intent, so none (or an invalid one) clears it. A new route or revision is a
   * replaced or restarted route: what the edge stored for that drone no longer holds.
   */
  recordIntent(droneId: string, intent: DroneIntent | null | "invalid", now: number, motion?: Motion): void {
    if (motion) {
      const before = this.motions.get(droneId);
      if (!before || motionChanged(before, motion)) this.wantPass = true;
      this.motions.set(droneId, motion);
    }
    if (intent === null || intent === "invalid") {
      if (this.intents.delete(droneId)) this.wantPass = true;
      return;
    }
    const key = `${intent.route_id}#${intent.revision}`;
    const prev = this.intents.get(droneId);
    if (!prev || prev.key !== key) this.wantPass = true;
    if (prev && prev.key !== key) {
      const b = this.belief(droneId);
      b.invalidateRecord = true;
      b.intentBad = 0;
      b.intentOdd = 0;
    }
    this.intents.set(droneId, { intent, key, at: now, since: prev?.key === key ? prev.since : now });
  }

  /**
   * A relay said hello (a first connection or a reconnect) for these drones: it may have
   * restarted, and its drones with it may have started their routes over. Nothing stored about
   * their plans holds any more; the next samples bring their intents again.
   */
  relayConnected(droneIds: readonly string[], now: number): void {
    if (droneIds.length > 0) this.wantPass = true;
    for (const id of droneIds) {
      this.awaitingFresh.set(id, now);
      this.intents.delete(id);
      this.pendingPlans.delete(id);
      // A restarted relay or drone forgot the holds it was told, as it forgot the waypoints.
      this.holdUntil.delete(id);
      this.flying.delete(id);
      const b = this.belief(id);
      b.invalidateRecord = true;
      b.intentBad = 0;
      b.intentOdd = 0;
      b.recordBad = 0;
      b.intentDistrusted = null;
    }
  }

  /** A command ended (the ledger's final-state hook). Follows the coordinator's own commands. */
  onCommandFinal(row: CommandFinal): void {
    if (!row.sub.startsWith("coordinator:") || !row.drone_id) return;
    const e = this.byId.get(row.sub.slice("coordinator:".length));
    const droneId = row.drone_id;
    const now = row.finished_at ?? 0;
    if (row.status !== "acked") {
      this.pendingPlans.delete(droneId);
      if (row.command === "hold") this.holdUntil.delete(droneId);
    }
    if (!e || e.status !== "active") return;
    const f = this.followOf(e);
    const out = f.outstanding.get(droneId);
    f.outstanding.delete(droneId);
    if (row.status === "acked") {
      f.acked.add(droneId);
      const hold = row.command === "hold" ? this.holdUntil.get(droneId) : undefined;
      const before = row.command === "modify_waypoint" ? (this.intentAtSend.get(droneId) ?? null) : null;
      this.flying.set(droneId, { until: hold ? hold.until : now + RESOLUTION_FLIGHT_MS, eventId: e.event_id, since: now, intentBefore: before });
      this.pendingPlans.delete(droneId);
      return;
    }
    // Refused, timed out or never sent: not that again; the next pass tries the next strategy
    // or the other drone. A drone that refuses outright (emergency landing, low battery, not
    // airborne) is not asked again at all for this event.
    const msg = `${row.status}${row.message ? `: ${row.message}` : ""}`;
    f.retryNow = true;
    f.reason = `${out ? `${out.strategy} for ${droneId}` : `resolution for ${droneId}`} ${msg}`;
    // Not sent at all (no relay connected): nothing was refused; the next pass tries again, and
    // the reconnecting relay brings fresh intents.
    if (row.status === "rejected") {
      this.ports.changed(e);
      return;
    }
    if (row.command === "hold") f.exclude.add(`${droneId}:hold`);
    else {
      f.exclude.add(`${droneId}:vertical_separation`);
      f.exclude.add(`${droneId}:lateral_reroute`);
      f.exclude.add(`${droneId}:return_inside`);
    }
    if (REFUSES_ALL.test(row.message ?? "")) {
      f.exclude.add(droneId);
      f.why.set(droneId, `it refused: ${msg}`);
    }
    this.ports.changed(e);
  }

  /** Alert conditions for the analytics tick: events nothing works for, and saturation. */
  alertConditions(): CoordinationAlert[] {
    const out: CoordinationAlert[] = [];
    for (const e of this.active.values()) {
      const f = this.follow.get(e.event_id);
      if (!f?.reason || e.strategy === "dismissed") continue;
      for (const id of e.drone_ids) {
        out.push({
          drone_id: id,
          kind: "coordination_unresolved",
          severity: "critical",
          value: e.time_to_conflict_s,
          message: `collision avoidance cannot resolve ${e.event_type.replace("_", "-")} ${e.key} (event ${e.event_id}): ${f.reason}`,
        });
      }
    }
    if (this.saturatedSince !== null) {
      out.push({
        drone_id: FLEET_ALERT_ID,
        kind: "airspace_saturated",
        severity: "critical",
        value: this.lastDeferred,
        message: `airspace saturated: ${this.active.size} coordination events, ${this.lastDeferred} conflicts waiting for a resolution; new take-offs are held`,
      });
    }
    return out;
  }

  /**
   * Whether telemetry since the last pass changed what a drone is predicted to fly: a new or
   * changed intent (a route replaced, restarted or dropped), a relay back, or a sample whose motion
   * breaks the dead reckoning of the one before (`motionChanged`). The fleet object may then run
   * the next pass soon after the sample instead of waiting out DETECT_INTERVAL_MS; a pass costs
   * ~10 ms at 1,000 drones, so one every 100 ms at most is cheap.
   */
  passWanted(): boolean {
    return this.wantPass;
  }

  /**
   * One detection pass: open events for new conflicts, resolve within budget, close the others.
   * The picture is taken now; detecting conflicts in it counts against the pass's budget, and
   * what of it does not fit is stepped on by the turns after (`resume`, RESUME_GAP_MS apart,
   * telemetry handled in between) before events are opened and resolved: at a thousand drones
   * with unsure plans predicted both ways, detection alone is tens of milliseconds. A pass due
   * while the last one's detection is unfinished starts over on a fresh picture, and runs to its
   * end at once.
   */
  pass(now: number, clock: () => number = this.clock): void {
    const t0 = clock();
    this.wantPass = false;
    const config = this.ports.config();
    const drones = this.picture(this.ports.drones(), now, config);
    const toEnd = this.detecting !== null || this.detectUnfinished;
    this.detectUnfinished = false;
    // The unfinished one is never resumed: the new detection reuses its scratch.
    this.detecting = { at: now, drones, config, steps: detectSteps({ drones, config, now }), toEnd, spentMs: 0, turns: 0 };
    this.detectTurn(now, clock, t0);
  }

  /** Whether a pass's detection is still running in steps (the next turn goes on with it). */
  detectionUnfinished(): boolean {
    return this.detecting !== null;
  }

  /** Steps of the unfinished detection until it is done, then the rest of its pass, or until the
   * turn's budget is up. One DETECT_STEPS_MAX_MS old runs to its end. */
  private detectTurn(now: number, clock: () => number, t0: number): void {
    const d = this.detecting!;
    d.turns++;
    const toEnd = d.toEnd || now - d.at >= DETECT_STEPS_MAX_MS;
    for (;;) {
      const r = d.steps.next();
      if (r.done) {
        this.detecting = null;
        this.afterDetection(d, r.value.conflicts, now, clock, t0);
        return;
      }
      if (!toEnd && clock() - t0 > this.resolutionBudgetMs) {
        d.spentMs += clock() - t0;
        return;
      }
    }
  }

  /** The pass after its detection: events for the conflicts found in picture `d`, resolving
   * what this turn has time for, closing events whose conflicts are gone. */
  private afterDetection(d: Detecting, conflicts: readonly Conflict[], turnNow: number, clock: () => number, t0: number): void {
    const { drones, config, at: now } = d;
    const byId = new Map(drones.map((x) => [x.drone_id, x]));
    const live = new Set<string>();
    const opened: CoordinationEvent[] = [];
    const work: [CoordinationEvent, Conflict][] = [];
    const merged = new Set<CoordinationEvent>();
    for (const c of conflicts) {
      let e = this.eventFor(c, merged);
      if (!e) opened.push((e = this.open(c, now)));
      live.add(e.event_id);
      work.push([e, c]);
    }
    // Events that took in more drones, once each (opened ones are announced below).
    const fresh = new Set(opened);
    for (const e of merged) {
      if (fresh.has(e)) continue;
      this.save(e);
      this.ports.changed(e);
    }
    const retrying = new Set<string>();
    for (const e of this.active.values()) {
      const f = this.follow.get(e.event_id);
      if (f?.retryNow) {
        retrying.add(e.event_id);
        f.retryNow = false;
      }
    }
    // Most urgent first, across events (conflicts come sorted by time to conflict), so a drone gets
    // its resolution for the nearest conflict before a later one claims it; a conflict that already
    // has a resolution being flown competes as if it were FLOWN_PENALTY_S further off, so a clear
    // new conflict is not left for the next pass behind re-resolutions of older ones.
    const urgency = ([e, c]: [CoordinationEvent, Conflict]) =>
      c.time_to_conflict_s + (this.follow.get(e.event_id)?.tries.has(c.key) && !retrying.has(e.event_id) ? FLOWN_PENALTY_S : 0);
    work.sort((a, b) => urgency(a) - urgency(b));
    // What this pass has no time for waits for the resolution turns after it (`resume`), not for
    // the next pass: with a thousand drones one hard resolution can take the pass's whole budget.
    // A pass whose detection already took the budget (a thousand drones on a busy machine) leaves
    // all resolving to the first turn, RESUME_GAP_MS later: two shorter stalls instead of one.
    const carried = this.backlog?.items.length ?? this.droppedLeft;
    this.droppedLeft = 0;
    if (this.backlog?.building) this.buildUnfinished = true;
    const buildToEnd = this.buildUnfinished;
    this.buildUnfinished = false;
    const backlog: Backlog = { at: now, drones, config, planner: null, building: null, buildToEnd, commits: [], items: work.map(([e, c]) => ({ e, c, retry: retrying.has(e.event_id) })), spentMs: 0 };
    // The budget covers the pass's detection too: resolving gets what detection left of it.
    const detectMs = clock() - t0;
    const turn = this.resolveTurn(backlog, turnNow, clock, detectMs <= this.resolutionBudgetMs ? MAX_RESOLUTIONS_PER_PASS : 0, this.resolutionBudgetMs - detectMs);
    this.backlog = backlog.items.length || this.current ? backlog : null;
    const deferred = backlog.items.length + (this.current ? 1 : 0);
    // A new event is announced with its first resolution; one the budget deferred, bare.
    for (const e of opened) {
      if (e.attempts > 0 || e.status !== "active") continue;
      this.save(e);
      this.ports.changed(e);
    }
    for (const e of [...this.active.values()]) {
      if (live.has(e.event_id)) continue;
      const f = this.followOf(e);
      const involved = e.drone_ids.map((id) => byId.get(id));
      if (involved.some((d) => d === undefined)) {
        // A drone went silent: nothing more can be known; the event ends as expired.
        this.close(e, "expired", now);
        continue;
      }
      // Waiting for a command's answer: the event is settled by it (the desk times it out).
      if (f.outstanding.size > 0) continue;
      if ([...f.keys].every((k) => isResolved(k, drones, config))) this.close(e, f.acked.size > 0 ? "resolved" : "expired", now);
    }
    // Saturated: conflicts the last interval (its pass and the resolution turns after it) did not
    // get to, pass after pass.
    this.saturation(drones, carried, turnNow, turn);
    this.lastDeferred = carried;
    this.lastPass = { ms: d.spentMs + clock() - t0, drones: drones.length, conflicts: conflicts.length, at: now, saturated: this.saturatedSince !== null, deferred, commands: turn.sent, turns: d.turns };
  }

  /** Whether a pass left conflicts it had no time for: a resolution turn (`resume`) is wanted. */
  resumeWanted(): boolean {
    return this.backlog !== null || this.detecting !== null;
  }

  /**
   * A resolution turn: the conflicts the last pass (or turn) had no time for, most urgent first,
   * planned on that pass's picture, within a turn's budgets (RESUME_TURN_FACTOR times the pass's
   * time; a resolution carried over from the turn before goes first). The fleet object runs one
   * RESUME_GAP_MS after the pass or the turn before, until none is left, the turns took
   * RESUME_TIME_PER_PASS_MS, or the next pass brings its own list; telemetry is handled between
   * turns. A backlog older than DETECT_INTERVAL_MS is the next pass's to redo on a fresh picture.
   */
  resume(now: number, clock: () => number = this.clock): void {
    // A pass's unfinished detection goes first: the backlog is the last pass's, which the
    // detection's own list replaces.
    if (this.detecting) {
      this.detectTurn(now, clock, clock());
      return;
    }
    const b = this.backlog;
    if (!b) return;
    if (now - b.at > DETECT_INTERVAL_MS) {
      this.dropBacklog(b);
      return;
    }
    const t0 = clock();
    const before = b.items.length;
    const turn = this.resolveTurn(b, now, clock, MAX_RESOLUTIONS_PER_PASS, RESUME_TURN_FACTOR * this.resolutionBudgetMs);
    const ms = clock() - t0;
    b.spentMs += ms;
    if ((!b.items.length && !this.current) || b.spentMs >= RESUME_TIME_PER_PASS_MS) this.dropBacklog(b);
    this.lastResume = { ms, at: now, worked: before - b.items.length, left: b.items.length, commands: turn.sent };
  }

  private dropBacklog(b: Backlog): void {
    this.droppedLeft = b.items.length;
    if (b.building) this.buildUnfinished = true;
    this.backlog = null;
  }

  /**
   * Resolve `b`'s items in order within one turn's budgets (`resolutions` 0: only drop the ones
   * no longer waiting); what is left stays in `b.items`. The backlog's planner is built in steps
   * (`ResolutionPlanner.build`, across turns; in one go after one was given up), a resolution
   * too (one candidate each), and the turn's clock is read between them: one that is
   * not done when the turn's time (`sliceMs`) is up is carried on by the next turn or pass,
   * before anything else (`this.current`), on the picture it began with. Each turn makes at least
   * one step.
   */
  private resolveTurn(b: Backlog, now: number, clock: () => number, resolutions = MAX_RESOLUTIONS_PER_PASS, sliceMs = this.resolutionBudgetMs): TurnBudget {
    const budget: TurnBudget = { resolutions, commands: MAX_COMMANDS_PER_PASS, sent: 0 };
    let since: number | null = null;
    const over = () => since !== null && clock() - since > sliceMs;
    /** Steps until done (the resolution) or, unless `toEnd`, the turn's time is up (null). */
    const drive = <T>(g: Steps<T>, toEnd = false): T | null => {
      since ??= clock();
      for (;;) {
        const r = g.next();
        if (r.done) return r.value;
        if (!toEnd && over()) return null;
      }
    };
    /** The backlog's planner, built in steps like a resolution: null when the turn's time ran
     * out first (the next turn goes on building it). */
    const planner = (): ResolutionPlanner | null => {
      if (!b.planner) {
        const g = (b.building ??= ResolutionPlanner.build(b.drones, b.config));
        // In one go, it is not counted in the turn's time (the resolution after it is).
        const p = b.buildToEnd ? run(g) : drive(g);
        if (p === null) return null;
        b.building = null;
        b.planner = p;
        // Resolutions sent since this picture was taken (one carried over from the last list).
        for (const r of b.commits) p.commit(r);
      }
      return b.planner;
    };
    let stopped = false;
    const cur = this.current;
    if (cur && resolutions > 0) {
      this.current = null;
      const f = this.follow.get(cur.e.event_id);
      // Given up when its event ended, a relay came back for one of its drones, or a command for
      // it went out meanwhile (an operator's override). One older than a pass interval is run to
      // its end now: however slow the machine, every resolution is finished.
      const stale =
        cur.e.status !== "active" ||
        cur.e.strategy === "dismissed" ||
        !f ||
        cur.c.drone_ids.some((id) => this.awaitingFresh.has(id)) ||
        !this.due(cur.e, f, cur.c, now, true);
      if (!stale) {
        const r = drive(cur.steps, now - cur.since > DETECT_INTERVAL_MS);
        if (r === null) {
          this.current = cur;
          stopped = true;
        } else {
          this.apply(cur.e, f, cur.c, cur.planner, r, now, budget);
          if (cur.planner !== b.planner && r.commands.length > 0) {
            if (b.planner) b.planner.commit(r);
            else b.commits.push(r);
          }
          budget.resolutions--;
        }
      }
    }
    const left: WorkItem[] = [];
    for (const it of b.items) {
      const { e, c, retry } = it;
      if (e.strategy === "dismissed" || e.status !== "active") continue;
      const f = this.followOf(e);
      // A drone last seen before its relay came back may fly something else by now (its route
      // restarted): a resolution planned on that picture can turn one drone into another's way.
      // The first fresh sample (one sample period) is worth waiting for; the retry flag waits too.
      if (c.drone_ids.some((id) => this.awaitingFresh.has(id))) {
        if (retry) f.retryNow = true;
        continue;
      }
      if (!this.due(e, f, c, now, retry)) continue;
      if (stopped || budget.resolutions <= 0 || budget.commands <= 0 || over() || this.current?.c.key === c.key) {
        left.push(it);
        // Still the next to retry at once.
        if (retry) f.retryNow = true;
        continue;
      }
      const p = planner();
      if (p === null) {
        left.push(it);
        if (retry) f.retryNow = true;
        stopped = true;
        continue;
      }
      const steps = this.decide(f, c, p, now);
      const r = drive(steps);
      if (r === null) {
        // Carried on first by the next turn; the rest waits behind it.
        this.current = { e, c, steps, planner: p, since: now };
        if (retry) f.retryNow = true;
        stopped = true;
        continue;
      }
      this.apply(e, f, c, p, r, now, budget);
      budget.resolutions--;
    }
    b.items = left;
    return budget;
  }

  /** Operator override: another strategy, or dismiss. */
  override(eventId: string, action: string, by: string, reason: string | undefined, now: number): { ok: true; message: string } | { ok: false; code: string; message: string } {
    const e = this.byId.get(eventId);
    if (!e || e.status !== "active") {
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
    const config = this.ports.config();
    const drones = this.picture(this.ports.drones(), now, config);
    const mine = drones.filter((d) => e.drone_ids.includes(d.drone_id));
    // The operator's choice applies even when the current plan already avoids the conflict: use
    // the predicted conflict when there is one, else the event as it was detected.
    const predicted = detectConflicts({ drones: mine, config, now }).find((c) => c.key === e.key);
    const parsed = parseConflictKey(e.key);
    const conflict: Conflict = predicted ?? {
      key: e.key,
      event_type: e.event_type,
      drone_ids: parsed?.kind === "pair" ? [...parsed.drone_ids] : e.drone_ids.slice(0, 1),
      time_to_conflict_s: e.time_to_conflict_s,
      min_horizontal_m: e.min_horizontal_m,
      min_vertical_m: e.min_vertical_m,
      at: midpoint(mine),
      detected_at: e.detected_at,
      ...(parsed?.kind === "no_fly" ? { zone_id: parsed.zone_id } : {}),
    };
    const f = this.followOf(e);
    const r = new ResolutionPlanner(drones, config).choose(conflict, { override: action as OverrideStrategy, exclude: f.exclude, why: f.why });
    const sent = this.send(e, f, conflict.key, r, now, action === "hold");
    if (r.commands.length === 0) f.reason = r.reason ?? "no drone may be commanded";
    return { ok: true, message: `strategy ${e.strategy} applied by ${by}: ${sent} command(s) sent${r.commands.length === 0 && r.reason ? ` (${r.reason})` : ""}` };
  }

  /** The event with the involved drones' tracks, for replay. */
  replay(eventId: string): { event: CoordinationEvent; tracks: Record<string, TrackPoint[]> } | null {
    const row = this.sql.exec<EventRow>(`SELECT * FROM coordination_events WHERE event_id = ?`, eventId).toArray()[0];
    if (!row) return null;
    // A Map, made an object at the end: drone ids are relay strings ("constructor" is a fine drone
    // name), and fromEntries defines own keys (an RPC cannot carry a null-prototype object).
    const byDrone = new Map<string, TrackPoint[]>();
    for (const p of this.sql.exec<TrackPoint & { drone_id: string }>(
      `SELECT drone_id, t, lat, lon, alt_m FROM event_tracks WHERE event_id = ? ORDER BY drone_id, t`,
      eventId,
    )) {
      let list = byDrone.get(p.drone_id);
      if (!list) byDrone.set(p.drone_id, (list = []));
      list.push({ t: p.t, lat: p.lat, lon: p.lon, alt_m: p.alt_m });
    }
    return { event: fromRow(row), tracks: Object.fromEntries(byDrone) };
  }

  list(limit: number): CoordinationEvent[] {
    return this.sql
      .exec<EventRow>(`SELECT * FROM coordination_events ORDER BY detected_at DESC LIMIT ?`, limit)
      .toArray()
      .map(fromRow);
  }

  // ------------------------------------------------------------------ what each drone will do

  private belief(id: string): Belief {
    let b = this.beliefs.get(id);
    if (!b) {
      b = {
        seq: undefined,
        intentBad: 0,
        intentOdd: 0,
        intentLast: "unknown",
        intentFirst: null,
        roundedAt: -Infinity,
        intentDistrusted: null,
        record: null,
        recordSince: 0,
        recordBad: 0,
        recordOdd: 0,
        recordLast: "unknown",
        recordDistrusted: null,
        invalidateRecord: false,
      };
      this.beliefs.set(id, b);
    }
    return b;
  }

  /**
   * The drones as detection should see them: each with the plan it is predicted to fly (see the
   * module comment), a second prediction while the edge is unsure of it, its right of way, and
   * any hold. Each new sample is judged against the plans here, once.
   */
  private picture(raw: readonly CoordinationDrone[], now: number, config: FleetConfig): CoordinationDrone[] {
    for (const [id, p] of this.pendingPlans) if (now - p.at > PENDING_PLAN_MS) this.pendingPlans.delete(id);
    return raw.map((d) => {
      const id = d.drone_id;
      const hello = this.awaitingFresh.get(id);
      if (hello !== undefined && (d.received_at === undefined || d.received_at >= hello)) this.awaitingFresh.delete(id);
      const b = this.belief(id);
      if (b.invalidateRecord) {
        b.recordDistrusted = d.path.length > 0 ? d.path : null;
        b.invalidateRecord = false;
      }
      if (d.path !== b.record) {
        // A mission moving on (the record loses the waypoints flown) is the same plan: what the
        // edge knows of how the drone follows it stands. Anything else is a new plan.
        const progress = b.record !== null && d.path.length > 0 && isSuffix(d.path, b.record, config);
        if (progress && b.record === b.recordDistrusted) b.recordDistrusted = d.path;
        b.record = d.path;
        if (!progress) {
          b.recordSince = now;
          b.recordBad = 0;
          b.recordOdd = 0;
          b.recordLast = "unknown";
        }
      }
      const recordOk = d.path.length > 0 && d.path !== b.recordDistrusted;
      const ie = this.intents.get(id);
      let intentOk = ie !== undefined && ie.key !== b.intentDistrusted;
      const hold = d.hold_s;
      const fresh = d.seq === undefined || d.seq !== b.seq;
      if (fresh) {
        b.seq = d.seq;
        if (intentOk) {
          const a = planAgreement(d, ie!.intent.waypoints, ie!.intent.hold_s, config);
          const first = ie!.intent.waypoints[0];
          const rounded = b.intentFirst !== null && first !== undefined && (first.lat !== b.intentFirst.lat || first.lon !== b.intentFirst.lon);
          b.intentFirst = first ? { lat: first.lat, lon: first.lon } : null;
          if (rounded) b.roundedAt = now;
          b.intentLast = a;
          b.intentBad = a === "disagree" && !rounded && now - ie!.since >= PLAN_GRACE_MS ? b.intentBad + 1 : a === "agree" ? 0 : b.intentBad;
          b.intentOdd = a === "agree" ? 0 : rounded ? b.intentOdd : b.intentOdd + 1;
          if (b.intentBad >= DROP_AFTER_SAMPLES) {
            b.intentDistrusted = ie!.key;
            intentOk = false;
          }
        }
        const fl = this.flying.get(id);
        if (fl && fl.intentBefore !== null && ie && ie.key === fl.intentBefore && now - fl.since >= PLAN_GRACE_MS) {
          // It acknowledged a new waypoint, yet still reports the route it had before.
          this.notFollowing(id);
        }
        // The record is judged only where no trusted intent says what the drone flies (a drone
        // on a mission that a resolution moved one leg of flies on; its intent says so).
        if (recordOk && !intentOk) {
          const a = planAgreement(d, d.path, hold, config);
          b.recordLast = a;
          b.recordBad = a === "disagree" && now - b.recordSince >= PLAN_GRACE_MS ? b.recordBad + 1 : a === "agree" ? 0 : b.recordBad;
          b.recordOdd = a === "agree" ? 0 : b.recordOdd + 1;
          if (b.recordBad >= DROP_AFTER_SAMPLES) {
            b.recordDistrusted = d.path;
            this.notFollowing(id);
          }
        }
      }
      const h = this.holdUntil.get(id);
      const row = rightOfWay(d, config, h !== undefined && h.operator && h.until > now);
      // Predicted from when its sample arrived, not as if it were where it was then now.
      const age = d.received_at !== undefined ? Math.max(0, (now - d.received_at) / 1000) : 0;
      const base: CoordinationDrone = { ...d, ...(row ? { right_of_way: row } : {}), ...(age > 0 ? { age_s: age } : {}) };
      if (!isAirborne(d)) {
        // On the ground only its own word says it is about to take off (a dock's schedule: a hold
        // on the pad, the climb, its route; conflicts.ts `mayTakeOff`); the record of a mission
        // flown before it landed says nothing of that.
        if (!intentOk) return { ...base, path: [] };
        const it = ie!.intent;
        return { ...base, path: it.waypoints, ...(it.speed_mps !== undefined ? { plan_speed_mps: it.speed_mps } : {}), hold_s: it.hold_s ?? 0 };
      }
      const pending = this.pendingPlans.get(id);
      if (pending) return { ...base, path: pending.path, also_dead_reckoning: true, plan_speed_only: true };
      const useRecord = d.path.length > 0 && d.path !== b.recordDistrusted;
      // The intent wins over the record when it is as new, or when it already starts where the
      // record does (a mission's progress moved the record on; the drone's intent says the same
      // and knows the rest of the route and the speed).
      if (intentOk && (!useRecord || ie!.at >= b.recordSince || sameWaypoint(ie!.intent.waypoints[0], d.path[0], config))) {
        const it = ie!.intent;
        // No grace period here: the drone itself says it flies this (a changed intent is its own
        // word, not the edge's hope); its motion is what decides.
        const unsure = b.intentOdd >= UNSURE_AFTER_SAMPLES;
        // The drone's own word on holding, except for a hold the edge has just sent (the drone
        // may not have reported it yet): a hold it no longer flies (a restart) is not assumed.
        const justHeld = h !== undefined && now - h.at < PLAN_GRACE_MS ? (hold ?? 0) : 0;
        const holdS = Math.max(justHeld, it.hold_s ?? 0);
        // Just past a waypoint, the sample's speed is the last leg's (a slow climb before a long
        // level leg): the legs ahead at the route's own speed.
        const newLeg = it.speed_mps !== undefined && now - b.roundedAt < PLAN_GRACE_MS;
        return {
          ...base,
          path: it.waypoints,
          ...(it.speed_mps !== undefined ? { plan_speed_mps: it.speed_mps } : {}),
          hold_s: holdS,
          ...(unsure ? { also_dead_reckoning: true } : {}),
          ...(newLeg ? { plan_speed_only: true } : {}),
        };
      }
      if (useRecord) {
        const recent = now - b.recordSince < PLAN_GRACE_MS;
        const unsure = b.recordOdd >= UNSURE_AFTER_SAMPLES || recent;
        // A record just replaced (a command acknowledged, a mission leg reached) is new to the
        // drone as well: flown at its own speed, not the last leg's.
        return { ...base, ...(unsure ? { also_dead_reckoning: true } : {}), ...(recent ? { plan_speed_only: true } : {}) };
      }
      return { ...base, path: [] };
    });
  }

  /** The drone does not fly the resolution it acknowledged: that event asks the other drone. */
  private notFollowing(droneId: string): void {
    const fl = this.flying.get(droneId);
    if (!fl) return;
    this.flying.delete(droneId);
    const e = this.byId.get(fl.eventId);
    if (!e || e.status !== "active") return;
    const f = this.followOf(e);
    f.exclude.add(droneId);
    f.why.set(droneId, "it acknowledged its resolution but does not fly it");
    f.acked.delete(droneId);
    f.retryNow = true;
    f.reason = `${droneId} acknowledged its resolution but does not fly it`;
  }

  // ------------------------------------------------------------------ events

  private followOf(e: CoordinationEvent): Follow {
    let f = this.follow.get(e.event_id);
    if (!f) {
      f = { keys: new Set([e.key]), outstanding: new Map(), acked: new Set(), exclude: new Set(), why: new Map(), tries: new Map(), retryNow: false, reason: null };
      this.follow.set(e.event_id, f);
    }
    return f;
  }

  private track(e: CoordinationEvent): void {
    this.active.set(e.event_id, e);
    this.byId.set(e.event_id, e);
    this.keyToEvent.set(e.key, e.event_id);
  }

  /** The active event a conflict belongs to: its own key's, else one sharing a drone (merged; then
   * in `merged`, to be saved and announced once however many conflicts join it in the pass). */
  private eventFor(c: Conflict, merged: Set<CoordinationEvent>): CoordinationEvent | null {
    const own = this.keyToEvent.get(c.key);
    const e = own ? this.active.get(own) : undefined;
    if (e) return e;
    if (own) this.keyToEvent.delete(c.key);
    for (const other of this.active.values()) {
      if (other.strategy === "dismissed" || !c.drone_ids.some((id) => other.drone_ids.includes(id))) continue;
      const union = [...new Set([...other.drone_ids, ...c.drone_ids])].sort();
      if (union.length > MERGE_MAX_DRONES) continue;
      const f = this.followOf(other);
      f.keys.add(c.key);
      this.keyToEvent.set(c.key, other.event_id);
      if (union.length !== other.drone_ids.length) {
        other.drone_ids = union;
        const rec = this.recording.get(other.event_id);
        if (rec) rec.drones = union;
        for (const id of c.drone_ids) if (!rec || !rec.drones.includes(id)) this.insertRing(other.event_id, id);
        merged.add(other);
      }
      return other;
    }
    return null;
  }

  private open(c: Conflict, now: number): CoordinationEvent {
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
    this.track(e);
    this.followOf(e);
    this.recording.set(e.event_id, { until: Infinity, drones: e.drone_ids });
    // The 30 s before detection, from the in-memory rings.
    for (const id of e.drone_ids) this.insertRing(e.event_id, id);
    return e;
  }

  /** Whether conflict `c` of event `e` should get a resolution now (hysteresis, attempts). */
  private due(e: CoordinationEvent, f: Follow, c: Conflict, now: number, retry: boolean): boolean {
    // Waiting for an answer about this conflict or from one of its drones.
    for (const o of f.outstanding.values()) if (o.key === c.key) return false;
    if (c.drone_ids.some((id) => f.outstanding.has(id))) return false;
    const last = f.tries.get(c.key);
    if (last === undefined) return true;
    const since = now - last.at;
    if (last.n >= MAX_ATTEMPTS) {
      // The operator is told it is not working; the edge does not give up on a conflict that is
      // still coming (a merged event lives on, and the same pair can meet again later): one more
      // resolution every RETRY_AFTER_MS, within the per-drone budgets.
      f.reason ??= `still predicted after ${last.n} resolutions`;
      return since >= RETRY_AFTER_MS;
    }
    if (retry) return true;
    // Being flown: the drones get the time to carry the last resolution out, unless the conflict
    // would come before that time is up (it is still predicted once the drone had time to turn).
    return since >= RETRY_AFTER_MS || (since >= PLAN_GRACE_MS && c.time_to_conflict_s * 1000 < RETRY_AFTER_MS + PLAN_GRACE_MS);
  }

  private tried(f: Follow, key: string, now: number): void {
    const t = f.tries.get(key);
    if (!t) f.tries.set(key, { at: now, n: 1 });
    else if (t.at !== now) {
      // One resolution attempt per pass, however it is counted.
      t.at = now;
      t.n++;
    }
  }

  /** Resolution commands a drone got in the last minute (per-drone budget). */
  private sentLastMinute(id: string, now: number): number {
    const times = this.sentAt.get(id);
    if (!times) return 0;
    while (times.length && times[0]! <= now - 60_000) times.shift();
    return times.length;
  }

  /**
   * Work out the resolution of one conflict, in steps (ResolutionPlanner.steps): the drones to
   * leave alone are chosen at its start; nothing changes until `apply` is given the result.
   */
  private *decide(f: Follow, c: Conflict, planner: ResolutionPlanner, now: number): Steps<Resolution> {
    const why = new Map(f.why);
    const hard = new Set(f.exclude);
    for (const id of c.drone_ids) {
      const n = this.sentLastMinute(id, now);
      if (n >= DRONE_COMMANDS_MAX_PER_MIN) {
        hard.add(id);
        why.set(id, `${n} resolutions in the last minute`);
      }
    }
    // Prefer not to re-command a drone that flies a resolution (or waits for one), or had its
    // share of them this minute: the other drone moves, unless nothing else works.
    const soft = new Set(hard);
    for (const id of c.drone_ids) {
      const fl = this.flying.get(id);
      if ((fl && fl.until > now) || this.pendingPlans.has(id) || (this.holdUntil.get(id)?.until ?? 0) > now) soft.add(id);
      if (this.sentLastMinute(id, now) >= DRONE_COMMANDS_PER_MIN) soft.add(id);
    }
    let r = yield* planner.steps(c, { exclude: soft, why });
    if (!r.verified && soft.size > hard.size) {
      const again = yield* planner.steps(c, { exclude: hard, why });
      if (again.verified || r.commands.length === 0) r = again;
    }
    return r;
  }

  /** Act on a worked-out resolution: count the attempt, and send its commands within `budget`. */
  private apply(e: CoordinationEvent, f: Follow, c: Conflict, planner: ResolutionPlanner, r: Resolution, now: number, budget: TurnBudget): void {
    this.tried(f, c.key, now);
    if (r.commands.length === 0) {
      e.attempts++;
      e.last_attempt_at = now;
      const why = r.reason ?? "no drone may be commanded";
      if (f.reason !== why) {
        f.reason = why;
        this.save(e);
        this.ports.changed(e);
      }
      return;
    }
    if (r.commands.length > budget.commands) return;
    planner.commit(r);
    budget.commands -= r.commands.length;
    budget.sent += this.send(e, f, c.key, r, now, false);
    f.reason = r.verified ? null : (r.reason ?? "no resolution could be shown to work");
  }

  /** Send a resolution's commands; returns how many left for the relay. */
  private send(e: CoordinationEvent, f: Follow, key: string, r: Resolution, now: number, operatorHold: boolean): number {
    e.strategy = r.strategy;
    e.attempts++;
    e.last_attempt_at = now;
    this.tried(f, key, now);
    for (const cmd of r.commands) {
      f.outstanding.set(cmd.drone_id, { command: cmd.command, strategy: r.strategy, key, at: now });
      if (cmd.command === "hold") this.holdUntil.set(cmd.drone_id, { until: now + cmd.duration_s * 1000, operator: operatorHold, at: now });
      else {
        this.pendingPlans.set(cmd.drone_id, { path: [cmd.new_waypoint], at: now });
        this.intentAtSend.set(cmd.drone_id, this.intents.get(cmd.drone_id)?.key ?? null);
      }
      let times = this.sentAt.get(cmd.drone_id);
      if (!times) this.sentAt.set(cmd.drone_id, (times = []));
      times.push(now);
      this.flying.delete(cmd.drone_id);
    }
    // Commands that cannot be sent end inside `issue` (onCommandFinal), so their state is set first.
    const sent = r.commands.length ? this.ports.issue(r.commands, e.event_id) : 0;
    this.commandsSent += sent;
    if (sent > 0 && e.first_command_at === null) e.first_command_at = now;
    this.save(e);
    this.ports.changed(e);
    return sent;
  }

  /** Saturation: conflicts left over pass after pass. Holds drones starting to take off. */
  private saturation(drones: readonly CoordinationDrone[], deferred: number, now: number, budget: { commands: number; sent: number }): void {
    if (deferred > 0) {
      this.busyPasses++;
      this.calmPasses = 0;
    } else {
      this.calmPasses++;
      if (this.calmPasses >= CALM_AFTER_PASSES) this.busyPasses = 0;
    }
    if (this.saturatedSince === null && this.busyPasses >= SATURATED_AFTER_PASSES) this.saturatedSince = now;
    if (this.saturatedSince !== null && this.calmPasses >= CALM_AFTER_PASSES) {
      this.saturatedSince = null;
      this.takeoffHeld.clear();
    }
    if (this.saturatedSince === null) return;
    const holds: HoldCommand[] = [];
    for (const d of drones) {
      if (holds.length >= 4) break;
      if (d.status !== "taking_off" || this.takeoffHeld.has(d.drone_id) || d.right_of_way) continue;
      this.takeoffHeld.add(d.drone_id);
      holds.push({ drone_id: d.drone_id, command: "hold", duration_s: TAKEOFF_HOLD_S, reason: `airspace saturated: hold ${TAKEOFF_HOLD_S} s before climbing into it` });
    }
    if (holds.length === 0) return;
    for (const h of holds) this.holdUntil.set(h.drone_id, { until: now + h.duration_s * 1000, operator: false, at: now });
    const sent = this.ports.issue(holds, "saturation");
    this.commandsSent += sent;
    budget.sent += sent;
  }

  private close(e: CoordinationEvent, status: Exclude<EventState, "active">, now: number): void {
    e.status = status;
    e.resolved_at = now;
    e.resolution_time_ms = now - e.detected_at;
    this.active.delete(e.event_id);
    this.byId.delete(e.event_id);
    const f = this.follow.get(e.event_id);
    for (const k of f?.keys ?? [e.key]) if (this.keyToEvent.get(k) === e.event_id) this.keyToEvent.delete(k);
    this.follow.delete(e.event_id);
    for (const [id, fl] of this.flying) if (fl.eventId === e.event_id) this.flying.delete(id);
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
       ON CONFLICT (event_id) DO UPDATE SET drone_ids = excluded.drone_ids, first_command_at = excluded.first_command_at, resolved_at = excluded.resolved_at,
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

  /** A drone's in-memory ring (its last REPLAY_WINDOW_MS) into an event's track: one statement
   * (dozens of events can open in one pass, each with up to 30 points per drone). */
  private insertRing(eventId: string, droneId: string): void {
    const ring = this.rings.get(droneId);
    if (!ring?.length) return;
    this.sql.exec(
      `INSERT INTO event_tracks (event_id, drone_id, t, lat, lon, alt_m)
       SELECT ?, ?, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]')
       FROM json_each(?) AS j WHERE true ON CONFLICT DO NOTHING`,
      eventId,
      droneId,
      JSON.stringify(ring.map((p) => [p.t, p.lat, p.lon, p.alt_m])),
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

/** What a sample says of a drone's motion (the fields dead reckoning uses). */
export type Motion = { heading_deg: number; speed_mps: number; climb_mps?: number | undefined };

/** A course change, speed change or climb change that moves a dead-reckoned drone off its last
 * prediction by more than a few metres within seconds. */
const MOTION_HEADING_DEG = 20;
const MOTION_SPEED_MPS = 2;
const MOTION_CLIMB_MPS = 1;

/** Whether `next` predicts a different path than `before` did (see `passWanted`). */
export function motionChanged(before: Motion, next: Motion): boolean {
  const moving = (m: Motion) => m.speed_mps > 1;
  if (moving(before) !== moving(next)) return true;
  if (Math.abs(next.speed_mps - before.speed_mps) > MOTION_SPEED_MPS) return true;
  if (Math.abs((next.climb_mps ?? 0) - (before.climb_mps ?? 0)) > MOTION_CLIMB_MPS) return true;
  if (!moving(next)) return false;
  const turn = Math.abs(((((next.heading_deg - before.heading_deg) % 360) + 540) % 360) - 180);
  return turn > MOTION_HEADING_DEG;
}

/** Messages of a relay refusing every command of a drone for now (the simulator's and common
 * autopilot wordings). */
const REFUSES_ALL = /emergency|battery|not airborne|landing|refus/i;

/** Why a drone keeps its course, if it does (see `RightOfWay`). */
export function rightOfWay(d: CoordinationDrone, config: FleetConfig, operatorHold: boolean): RightOfWay | undefined {
  // On the ground: a hold is refused there and a waypoint would launch it.
  if (!isAirborne(d)) return "on_ground";
  if (d.state_known !== false) {
    if (d.status === "emergency") return "emergency";
    if (d.status === "landing") return "landing";
    if (d.status === "returning") return "returning";
  }
  if (d.battery_pct !== undefined && d.battery_pct <= config.thresholds.battery_critical_pct) return "low_battery";
  if (operatorHold) return "operator_hold";
  return undefined;
}

const PRIORITY_RANK: Record<string, number> = { low: 1, normal: 2, high: 3, critical: 4 };

/**
 * Live drones as detection sees them before the coordinator picks their plans: position,
 * velocity, state, the edge's record of their plan (`path`), mission priority and any hold.
 * Stale drones are left out (nothing current is known of them).
 */
export function coordinationDrones(
  records: Iterable<DroneRecord>,
  missions: MissionPlans,
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
      seq: s.seq,
      lat: s.lat,
      lon: s.lon,
      alt_m: s.alt_m,
      heading_deg: s.heading_deg,
      speed_mps: s.speed_mps,
      ...(s.climb_mps !== undefined ? { climb_mps: s.climb_mps } : {}),
      status: s.status,
      armed: s.armed,
      ...(s.state_known !== undefined ? { state_known: s.state_known } : {}),
      battery_pct: s.battery_pct,
      path: missions.plan(s.drone_id),
      received_at: rec.receivedAt,
      priority: PRIORITY_RANK[busy.get(s.drone_id) ?? ""] ?? 0,
      ...(busy.has(s.drone_id) ? { on_mission: true } : {}),
      ...(hold !== undefined ? { hold_s: hold } : {}),
    });
  }
  return out;
}

function fromRow(r: EventRow): CoordinationEvent {
  return { ...r, drone_ids: JSON.parse(r.drone_ids) as string[] };
}

/** Whether `tail` is what is left of `plan` after its first waypoints were flown. */
function isSuffix(tail: readonly Waypoint[], plan: readonly Waypoint[], config: FleetConfig): boolean {
  const skip = plan.length - tail.length;
  if (skip <= 0) return false;
  for (let i = 0; i < tail.length; i++) if (!sameWaypoint(tail[i], plan[skip + i], config)) return false;
  return true;
}

/** Whether two waypoints are the same point (within a metre or so; intents are rounded). */
function sameWaypoint(a: Waypoint | undefined, b: Waypoint | undefined, config: FleetConfig): boolean {
  if (!a || !b) return false;
  const f = Math.cos((config.home.lat * Math.PI) / 180);
  return Math.abs(a.lat - b.lat) * 111_320 < 1 && Math.abs(a.lon - b.lon) * 111_320 * f < 1 && Math.abs(a.alt_m - b.alt_m) < 1;
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

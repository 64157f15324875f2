/**
 * A simulated fleet of multirotors, standing in for ROS 2 on a laptop, in CI and in benchmarks.
 *
 * Each drone flies its own patrol loop in its own sector (`SECTOR_M`: the area grows with the
 * fleet, at ~120 drones per km²), drains its battery with flight, returns to its pad at the
 * sector's centre below 25 %, lands, charges to ~95 % and takes off again, so dashboards,
 * analytics and coordination see every status in DRONE_STATUSES except `emergency` (reserved for
 * commands). Every sample carries the drone's intent (`simIntent`): what it is about to fly.
 *
 * Cost model: one timer for the whole fleet. Drone i is due at `i/N` of each publish period, so
 * 1,000 drones at 1 Hz spread over the second instead of firing in the same millisecond, and a
 * drone's physics advances only when it is due (O(N) per period, nothing per idle tick).
 * The physics step is a pure function (`stepDrone`), tested without timers.
 *
 * Operator commands (`execute`) act on the same state through another pure function,
 * `applyCommand`, after bringing the drone up to the present. What they do:
 * - modify_waypoint: fly to the point at cruise speed, then loiter there (status flying, mode
 *   AUTO.LOITER) until the next command or low battery. On a mission, it replaces the waypoint
 *   being flown to and the mission goes on afterwards. A drone on the ground (idle, landed,
 *   charging) takes off to fly there when its battery is at least `minTakeoffPct` (30 %),
 *   otherwise the command is rejected; so is one to an airborne drone below the RTL threshold or
 *   during an emergency landing. Acked once accepted, like a ROS service returning success.
 * - assign_mission: fly the waypoints in order at cruise speed, reporting mission_progress
 *   `active` (with the index being flown to) on acceptance and at each waypoint, `completed` at
 *   the last, then return to the pad. Same acceptance rules as modify_waypoint; a mission already
 *   being flown is `aborted` (superseded). Low battery on the way: `failed`, and the drone returns.
 *   Priority is not used by the simulator.
 * - emergency_land: descend where the drone is at `emergencyDescentMps` (2 m/s), status
 *   landing → landed, disarm, abort any mission; the drone then stays on the ground (no charging,
 *   no automatic take-off) until a modify_waypoint or assign_mission sends it up again.
 * - hold: loiter in place (mode AUTO.LOITER) for duration_s, then resume what it was doing.
 *   Rejected on the ground and during an emergency landing.
 */
import { INTENT_MAX_WAYPOINTS, type DroneIntent, type RelayCommand } from "../../../edge/protocol";
import { compassDeg, offsetM, toLocal, type LatLon } from "../../../edge/domain/geo";
import { silentLogger, type Logger } from "../../log";
import { SCENARIO_DEFAULT_DRONES, scenarioDrones, type ScenarioDrone, type ScenarioName } from "./scenarios";
import type { CommandOutcome, DroneSource, DroneStatus, MissionProgressEvent, SourceSample } from "../source";
import { seededRandom } from "../../../edge/domain/random";
import { DEFAULT_HOME, DEFAULT_SEPARATION as FLEET_SEPARATION } from "../../../edge/domain/fleet-config";
import { isAirborne, isGroundedStatus } from "../../../edge/domain/drone";

export { seededRandom };

/** A point in the local east-north-up frame centred on home, metres. */
export type Waypoint = { x: number; y: number; alt: number };

/** Tunables of the flight model; defaults give ~11 min missions and ~3 min charges. */
export interface SimPhysics {
  /** Battery drained per airborne second regardless of motion (hover power), %/s. */
  drainPerSecond: number;
  /** Extra drain per metre flown horizontally, %/m. */
  drainPerMetre: number;
  /** Extra drain per metre climbed, %/m. */
  drainPerMetreClimb: number;
  /** Charge rate on the pad, %/s. */
  chargePerSecond: number;
  /** Below this, a flying drone returns to home. */
  rtlBelowPct: number;
  /** A charging drone takes off again once it reaches this. */
  chargedPct: number;
  climbMps: number;
  descentMps: number;
  /** Seconds a drone hovers (AUTO.LOITER) at the end of each patrol lap. */
  loiterSeconds: number;
  /** Seconds a drone sits disarmed on the pad after touchdown before charging starts. */
  settleSeconds: number;
  /** Descent rate of an emergency landing, m/s. */
  emergencyDescentMps: number;
  /** A drone on the ground takes off for a command only with at least this battery, %. */
  minTakeoffPct: number;
}

export const DEFAULT_PHYSICS: SimPhysics = {
  drainPerSecond: 0.08,
  drainPerMetre: 0.002,
  drainPerMetreClimb: 0.01,
  chargePerSecond: 0.35,
  rtlBelowPct: 25,
  chargedPct: 95,
  climbMps: 3,
  descentMps: 1.5,
  loiterSeconds: 8,
  settleSeconds: 3,
  emergencyDescentMps: 2,
  minTakeoffPct: 30,
};

/** PX4 flight mode names, as MAVROS reports them. */
export const SIM_MODES = {
  takeoff: "AUTO.TAKEOFF",
  mission: "AUTO.MISSION",
  loiter: "AUTO.LOITER",
  rtl: "AUTO.RTL",
  land: "AUTO.LAND",
} as const;

/**
 * What a drone does besides its patrol, set by operator commands. Plain data, replaced (never
 * mutated) when it changes, so `stepDrone` stays pure.
 */
export type SimTask =
  /** Fly to `target`, then loiter there. */
  | { kind: "goto"; target: Waypoint }
  /** Fly `waypoints` in order; `index` is the one being flown to. */
  | { kind: "mission"; missionId: string; waypoints: readonly Waypoint[]; index: number }
  /** Emergency landing in place. */
  | { kind: "land" };

/** A mission report produced by the pure functions; the fleet adds drone_id and ts. */
export type SimEvent = Omit<MissionProgressEvent, "drone_id" | "ts">;

/** An operator command in the local frame (what `applyCommand` takes). */
export type SimCommand =
  | { kind: "goto"; target: Waypoint }
  | { kind: "mission"; missionId: string; waypoints: readonly Waypoint[] }
  | { kind: "land"; reason?: string }
  | { kind: "hold"; durationS: number };

/** The complete state of one simulated drone: plain data, so the step function can be pure. */
export interface SimDrone {
  readonly id: string;
  /** Patrol loop, local metres. */
  readonly route: readonly Waypoint[];
  /** This drone's landing pad, local metres (alt 0). */
  readonly pad: { x: number; y: number };
  /** Horizontal cruise speed on the patrol, m/s. */
  readonly cruiseMps: number;
  /** Index of the waypoint being flown to. */
  wp: number;
  x: number;
  y: number;
  alt: number;
  /** Velocity over the last step (east, north, up), m/s. */
  vx: number;
  vy: number;
  vz: number;
  /** Compass heading, degrees clockwise from north, [0, 360). Kept while hovering. */
  heading: number;
  battery: number;
  status: DroneStatus;
  mode: string;
  armed: boolean;
  /** Seconds left in a timed phase (idle before take-off, loiter, settle after landing). */
  holdS: number;
  /** Operator command being carried out; null on patrol. */
  task: SimTask | null;
  /** Seconds left of a `hold` command (loitering in place); 0 when none. */
  pauseS: number;
  /** Mode to restore when the hold ends. */
  resumeMode: string;
  /** Route revision reported in the drone's intent: grows whenever its route is replaced (a
   * command) or restarted (`SimFleet.restartRoutes`), not as it progresses along it. */
  revision: number;
}

const ARRIVE_M = 0.5;
const MIN_ALT = 30;
const MAX_ALT = 80;
/** Longest physics sub-step; large `timeScale`s are integrated in these slices. */
const MAX_SUBSTEP_S = 1;

/**
 * Advance one drone by `dtS` simulated seconds. Pure: returns a new state, never mutates `d`.
 * Long steps are integrated in ≤1 s slices so waypoints, the RTL threshold and landing are never
 * stepped over, whatever the time scale.
 */
export function stepDrone(d: SimDrone, dtS: number, physics: SimPhysics = DEFAULT_PHYSICS, events?: SimEvent[]): SimDrone {
  const s: SimDrone = { ...d };
  let left = Math.max(0, dtS);
  if (left === 0) return s;
  // Velocity reported is the average over the whole step, so speed and heading agree with how far
  // the drone actually moved between two samples.
  const x0 = s.x;
  const y0 = s.y;
  const alt0 = s.alt;
  while (left > 1e-9) {
    const dt = Math.min(left, MAX_SUBSTEP_S);
    substep(s, dt, physics, events);
    left -= dt;
  }
  const dx = s.x - x0;
  const dy = s.y - y0;
  s.vx = dx / dtS;
  s.vy = dy / dtS;
  s.vz = (s.alt - alt0) / dtS;
  if (Math.hypot(dx, dy) > 1e-6) s.heading = compassDeg(dx, dy);
  return s;
}

/** Airborne and able to hold: everything in the air except an emergency landing. */
function canHold(s: SimDrone): boolean {
  return s.status === "taking_off" || s.status === "flying" || s.status === "returning" || (s.status === "landing" && s.task?.kind !== "land");
}

/**
 * One slice of the phase machine; mutates the copy `stepDrone` owns. Mission reports go to
 * `events` (also pushed when the caller passes none: they are simply dropped then).
 */
function substep(s: SimDrone, dt: number, p: SimPhysics, events: SimEvent[] = []): void {
  if (s.pauseS > 0) {
    // A hold command: hover in place. Low battery ends it (the flying case below returns home).
    if (canHold(s) && !(s.status === "flying" && s.battery < p.rtlBelowPct)) {
      drain(s, p, dt, 0, 0);
      s.pauseS = Math.max(0, s.pauseS - dt);
      if (s.pauseS === 0) s.mode = s.resumeMode;
      return;
    }
    s.pauseS = 0;
    s.mode = s.resumeMode;
  }
  switch (s.status) {
    case "idle":
    case "landed": {
      s.holdS -= dt;
      if (s.holdS > 0) return;
      if (s.battery >= p.chargedPct) takeOff(s);
      else {
        s.status = "charging";
        s.mode = SIM_MODES.loiter;
      }
      return;
    }
    case "charging": {
      s.battery = Math.min(100, s.battery + p.chargePerSecond * dt);
      if (s.battery >= p.chargedPct) takeOff(s);
      return;
    }
    case "taking_off": {
      const target = currentTarget(s).alt;
      const climbed = moveVertical(s, target, p.climbMps * dt);
      drain(s, p, dt, 0, climbed);
      if (Math.abs(s.alt - target) < ARRIVE_M) {
        s.status = "flying";
        s.mode = SIM_MODES.mission;
      }
      return;
    }
    case "flying": {
      if (s.battery < p.rtlBelowPct) {
        const task = s.task;
        if (task?.kind === "mission") {
          events.push({ mission_id: task.missionId, state: "failed", waypoint_index: task.index, message: `battery ${s.battery.toFixed(1)} % below ${p.rtlBelowPct} %: returning home` });
        }
        s.task = null;
        s.status = "returning";
        s.mode = SIM_MODES.rtl;
        s.holdS = 0;
        return;
      }
      if (s.mode === SIM_MODES.loiter) {
        // End-of-lap loiter (holdS seconds) or loitering at a commanded waypoint (holdS = ∞).
        drain(s, p, dt, 0, 0);
        s.holdS -= dt;
        if (s.holdS <= 0) s.mode = SIM_MODES.mission;
        return;
      }
      const wp = currentTarget(s);
      // A straight 3D line, as autopilots fly between waypoints: horizontal and vertical progress
      // arrive together, at cruise speed unless the climb rate limits the leg.
      const dh = Math.hypot(wp.x - s.x, wp.y - s.y);
      const dv = Math.abs(wp.alt - s.alt);
      const legS = Math.max(dh / s.cruiseMps, dv / p.climbMps, 1e-9);
      const part = Math.min(1, dt / legS);
      const moved = moveHorizontal(s, wp.x, wp.y, dh * part);
      const climbed = moveVertical(s, wp.alt, dv * part);
      drain(s, p, dt, moved, climbed);
      if (Math.hypot(wp.x - s.x, wp.y - s.y) < ARRIVE_M && Math.abs(wp.alt - s.alt) < ARRIVE_M) arrive(s, p, events);
      return;
    }
    case "returning": {
      // RTL keeps its altitude (every patrol altitude is above the 30 m return floor).
      const moved = moveHorizontal(s, s.pad.x, s.pad.y, s.cruiseMps * dt);
      const climbed = s.alt < MIN_ALT ? moveVertical(s, MIN_ALT, p.climbMps * dt) : 0;
      drain(s, p, dt, moved, climbed);
      if (Math.hypot(s.pad.x - s.x, s.pad.y - s.y) < ARRIVE_M) {
        // Over the pad: the landing is a precise vertical descent onto it.
        s.x = s.pad.x;
        s.y = s.pad.y;
        s.status = "landing";
        s.mode = SIM_MODES.land;
      }
      return;
    }
    case "landing": {
      const emergency = s.task?.kind === "land";
      moveVertical(s, 0, (emergency ? p.emergencyDescentMps : p.descentMps) * dt);
      drain(s, p, dt, 0, 0);
      if (s.alt <= 1e-6) {
        s.alt = 0;
        s.status = "landed";
        s.armed = false;
        // After an emergency landing the drone stays down until a command sends it up again.
        s.holdS = emergency ? Number.POSITIVE_INFINITY : p.settleSeconds;
        s.task = null;
      }
      return;
    }
    case "emergency":
      // Not produced by the simulation itself (emergency landings report landing → landed).
      return;
    default: {
      const never: never = s.status;
      throw new Error(`unhandled status ${String(never)}`);
    }
  }
}

/** Reached the current target: next patrol corner, loiter at a commanded point, or next mission leg. */
function arrive(s: SimDrone, p: SimPhysics, events: SimEvent[]): void {
  const task = s.task;
  if (task?.kind === "goto") {
    s.mode = SIM_MODES.loiter;
    s.holdS = Number.POSITIVE_INFINITY;
    return;
  }
  if (task?.kind === "mission") {
    const next = task.index + 1;
    if (next >= task.waypoints.length) {
      events.push({ mission_id: task.missionId, state: "completed", waypoint_index: task.index });
      s.task = null;
      s.status = "returning";
      s.mode = SIM_MODES.rtl;
      return;
    }
    s.task = { ...task, index: next };
    events.push({ mission_id: task.missionId, state: "active", waypoint_index: next });
    return;
  }
  s.wp = (s.wp + 1) % s.route.length;
  if (s.wp === 0) {
    // End of a lap: hover a moment, as survey patrols do before the next pass.
    s.mode = SIM_MODES.loiter;
    s.holdS = p.loiterSeconds;
  }
}

function takeOff(s: SimDrone): void {
  s.status = "taking_off";
  s.mode = SIM_MODES.takeoff;
  s.armed = true;
  s.holdS = 0;
}

/** Where the drone is flying to: a commanded point, the mission's leg, or the patrol corner. */
function currentTarget(s: SimDrone): Waypoint {
  const task = s.task;
  if (task?.kind === "goto") return task.target;
  if (task?.kind === "mission") {
    const wp = task.waypoints[Math.min(task.index, task.waypoints.length - 1)];
    if (wp) return wp;
  }
  const wp = s.route[s.wp % s.route.length];
  if (!wp) throw new Error(`drone ${s.id} has an empty route`);
  return wp;
}

/** Move towards (tx, ty) by at most `maxM`; returns the distance covered. */
function moveHorizontal(s: SimDrone, tx: number, ty: number, maxM: number): number {
  const dx = tx - s.x;
  const dy = ty - s.y;
  const dist = Math.hypot(dx, dy);
  if (dist <= maxM) {
    s.x = tx;
    s.y = ty;
    return dist;
  }
  s.x += (dx / dist) * maxM;
  s.y += (dy / dist) * maxM;
  return maxM;
}

/** Move towards `target` altitude by at most `maxM`; returns metres climbed (0 when descending). */
function moveVertical(s: SimDrone, target: number, maxM: number): number {
  const d = target - s.alt;
  const step = Math.sign(d) * Math.min(Math.abs(d), maxM);
  s.alt += step;
  return Math.max(0, step);
}

function drain(s: SimDrone, p: SimPhysics, dt: number, movedM: number, climbedM: number): void {
  s.battery = Math.max(0, s.battery - p.drainPerSecond * dt - p.drainPerMetre * movedM - p.drainPerMetreClimb * climbedM);
}

// ------------------------------------------------------------------ operator commands (pure)

export type ApplyResult = { ok: boolean; message: string; drone: SimDrone; events: SimEvent[] };

const onGround = (s: SimDrone): boolean => isGroundedStatus(s.status);

/**
 * Apply an operator command to a drone (see the module comment for the rules). Pure: returns the
 * new state, the mission reports it causes and whether it was accepted; `d` is not touched.
 */
export function applyCommand(d: SimDrone, cmd: SimCommand, p: SimPhysics = DEFAULT_PHYSICS): ApplyResult {
  const s: SimDrone = { ...d };
  const events: SimEvent[] = [];
  const reject = (message: string): ApplyResult => ({ ok: false, message, drone: d, events: [] });
  const accept = (message: string): ApplyResult => ({ ok: true, message, drone: s, events });
  const emergencyLanding = s.status === "landing" && s.task?.kind === "land";
  const battery = `battery ${s.battery.toFixed(1)} %`;
  const abortMission = (why: string): void => {
    if (s.task?.kind === "mission") events.push({ mission_id: s.task.missionId, state: "aborted", waypoint_index: s.task.index, message: why });
  };

  if (cmd.kind !== "hold") s.revision = d.revision + 1;
  if (cmd.kind === "land") {
    const why = `emergency land${cmd.reason ? `: ${cmd.reason}` : ""}`;
    if (emergencyLanding) return accept("already landing in place");
    abortMission(why);
    s.pauseS = 0;
    if (onGround(s)) {
      // Keep it down: no take-off after charging until a command sends it up.
      Object.assign(s, { status: "landed", mode: SIM_MODES.land, armed: false, holdS: Number.POSITIVE_INFINITY, task: null } satisfies Partial<SimDrone>);
      return accept("already on the ground; disarmed and grounded until the next command");
    }
    Object.assign(s, { status: "landing", mode: SIM_MODES.land, task: { kind: "land" } } satisfies Partial<SimDrone>);
    return accept(`landing in place from ${s.alt.toFixed(1)} m`);
  }

  if (emergencyLanding) return reject("emergency landing in progress");

  if (cmd.kind === "hold") {
    if (!canHold(s)) return reject(`drone is ${s.status}, not airborne: nothing to hold`);
    if (s.pauseS === 0) s.resumeMode = s.mode;
    s.pauseS = cmd.durationS;
    s.mode = cmd.durationS > 0 ? SIM_MODES.loiter : s.resumeMode;
    return accept(`holding position for ${cmd.durationS} s`);
  }

  // goto and mission: the drone must be able to fly there.
  if (onGround(s)) {
    if (s.battery < p.minTakeoffPct) return reject(`${battery} is below the ${p.minTakeoffPct} % needed to take off${s.status === "charging" ? " (charging)" : ""}`);
  } else if (s.battery < p.rtlBelowPct) {
    return reject(`${battery} is below the ${p.rtlBelowPct} % return threshold${s.status === "returning" ? "; returning home" : ""}`);
  }
  s.pauseS = 0;
  let message: string;
  if (cmd.kind === "goto") {
    const target = { ...cmd.target, alt: Math.max(1, cmd.target.alt) };
    if (s.task?.kind === "mission") {
      // On a mission: the leg being flown now goes to the new point; the mission continues after.
      const waypoints = [...s.task.waypoints];
      waypoints[s.task.index] = target;
      s.task = { ...s.task, waypoints };
      message = `mission ${s.task.missionId}: waypoint ${s.task.index} moved`;
    } else {
      s.task = { kind: "goto", target };
      message = "flying to the new waypoint";
    }
  } else {
    if (cmd.waypoints.length === 0) return reject("mission has no waypoints");
    abortMission(`superseded by mission ${cmd.missionId}`);
    s.task = { kind: "mission", missionId: cmd.missionId, waypoints: cmd.waypoints.map((w) => ({ ...w, alt: Math.max(1, w.alt) })), index: 0 };
    events.push({ mission_id: cmd.missionId, state: "active", waypoint_index: 0 });
    message = `mission ${cmd.missionId} accepted: ${cmd.waypoints.length} waypoint${cmd.waypoints.length === 1 ? "" : "s"}`;
  }
  if (onGround(s)) {
    takeOff(s);
    message += "; taking off";
  } else if (s.status !== "taking_off") {
    // Flying, returning or landing at the pad: turn towards the new target now.
    s.status = "flying";
    s.mode = SIM_MODES.mission;
    s.holdS = 0;
  }
  return accept(message);
}

/** `d` with its route started over (see `SimFleet.restartRoutes`); unchanged unless it flies. Pure. */
export function restartedRoute(d: SimDrone): SimDrone {
  if (d.status !== "flying" && d.status !== "taking_off") return d;
  const task = d.task?.kind === "mission" ? { ...d.task, index: 0 } : null;
  return { ...d, task, wp: 0, pauseS: 0, holdS: 0, mode: d.status === "flying" ? SIM_MODES.mission : d.mode, revision: d.revision + 1 };
}

/** A relay command in the simulator's local frame, or an error message. */
export function toSimCommand(c: RelayCommand, home: LatLon): SimCommand | string {
  const local = (w: { lat: number; lon: number; alt_m: number }): Waypoint => {
    const { x_m: east, y_m: north } = toLocal(home, w);
    return { x: east, y: north, alt: w.alt_m };
  };
  switch (c.command) {
    case "modify_waypoint":
      return { kind: "goto", target: local(c.new_waypoint) };
    case "assign_mission":
      return { kind: "mission", missionId: c.mission_id, waypoints: c.waypoints.map(local) };
    case "emergency_land":
      return c.reason === undefined ? { kind: "land" } : { kind: "land", reason: c.reason };
    case "hold":
      return { kind: "hold", durationS: c.duration_s };
    default: {
      const never: never = c;
      return `unknown command ${JSON.stringify((never as { command?: unknown }).command ?? null)}`;
    }
  }
}

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/** Waypoints of a patrol loop an intent unrolls: with 8–14 m/s and ≥ 25 m legs, more than the
 * edge's 30 s horizon. */
const INTENT_PATROL_WAYPOINTS = 8;

/** A drone on its pad announces its take-off (an intent holding there until then) this long
 * before it: a dock's schedule, a charge nearly done. Longer than the edge's 30 s horizon, so a
 * pass sees the take-off coming before anything near the pad is inside it. */
export const TAKEOFF_ANNOUNCE_S = 40;

type Point = { x: number; y: number; alt: number };

/**
 * Seconds until a grounded drone takes off by itself (a settle or wait, then charging to
 * `chargedPct`), or Infinity (held down after an emergency landing, or airborne already).
 */
export function secondsToTakeoff(d: SimDrone, p: SimPhysics = DEFAULT_PHYSICS): number {
  if (!isGroundedStatus(d.status)) return Number.POSITIVE_INFINITY;
  const charge = d.battery >= p.chargedPct ? 0 : (p.chargedPct - d.battery) / p.chargePerSecond;
  if (d.status === "charging") return charge;
  return Number.isFinite(d.holdS) ? Math.max(0, d.holdS) + charge : Number.POSITIVE_INFINITY;
}

/**
 * The way home from `from` as a returning drone flies it (see `substep`'s returning case): below
 * the 30 m return floor it climbs at its climb rate while it flies home, so the point where it
 * levels off is a waypoint of its own (a straight leg to the pad would have it climb over the
 * whole way, and pass a neighbour's altitude seconds later than it does); then over the pad, then
 * down onto it.
 */
function wayHome(d: SimDrone, from: Point, p: SimPhysics): Point[] {
  const toPad = Math.hypot(d.pad.x - from.x, d.pad.y - from.y);
  const levelAfter = from.alt < MIN_ALT ? ((MIN_ALT - from.alt) / p.climbMps) * d.cruiseMps : 0;
  // Over the pad before it has levelled off: it arrives as high as it got.
  const padAlt = levelAfter >= toPad && toPad > 0 ? from.alt + (toPad / d.cruiseMps) * p.climbMps : Math.max(from.alt, MIN_ALT);
  const level = levelAfter > 0 && levelAfter < toPad ? [{ x: from.x + ((d.pad.x - from.x) * levelAfter) / toPad, y: from.y + ((d.pad.y - from.y) * levelAfter) / toPad, alt: MIN_ALT }] : [];
  return [...level, { ...d.pad, alt: padAlt }, { ...d.pad, alt: 0 }];
}

/**
 * `points` (flown from where `d` is, after `holdS` of hovering; an endless hover when there are
 * none) cut where the battery model says the drone falls below its return threshold, with the way
 * home from there: the drone turns home then (`substep`'s flying case: a hover ends early too), as
 * an autopilot that plans its low-battery return from the remaining charge does. Unchanged when the
 * battery lasts the route.
 */
function untilLowBattery(d: SimDrone, points: readonly Point[], holdS: number, p: SimPhysics): { points: Point[]; holdS: number } {
  const spare = d.battery - p.rtlBelowPct;
  const hover = points.length === 0 ? Number.POSITIVE_INFINITY : holdS;
  if (p.drainPerSecond * hover > spare) {
    // It turns home during the hover, once the hover has used up what it had to spare.
    return { points: wayHome(d, d, p), holdS: Math.max(0, spare / p.drainPerSecond) };
  }
  let battery = d.battery - p.drainPerSecond * holdS;
  let at: Point = { x: d.x, y: d.y, alt: d.alt };
  for (let i = 0; i < points.length; i++) {
    const wp = points[i]!;
    const dh = Math.hypot(wp.x - at.x, wp.y - at.y);
    const dv = wp.alt - at.alt;
    const legS = Math.max(dh / d.cruiseMps, Math.abs(dv) / p.climbMps);
    const use = p.drainPerSecond * legS + p.drainPerMetre * dh + p.drainPerMetreClimb * Math.max(0, dv);
    if (battery - use < p.rtlBelowPct && use > 0) {
      const f = Math.max(0, Math.min(1, (battery - p.rtlBelowPct) / use));
      const turn = { x: at.x + (wp.x - at.x) * f, y: at.y + (wp.y - at.y) * f, alt: at.alt + dv * f };
      return { points: [...points.slice(0, i), turn, ...wayHome(d, turn, p)], holdS };
    }
    battery -= use;
    at = wp;
  }
  return { points: [...points], holdS };
}

/**
 * What the drone is about to do, as the relay reports it with each sample (edge/protocol
 * `DroneIntent`): the waypoints still to fly from the one flown to now, the speed, any loiter
 * before it flies on, and where the battery model says it turns home (`untilLowBattery`). The
 * simulator always knows it. A drone on its pad has one only when it takes off within
 * TAKEOFF_ANNOUNCE_S: holding there until then, the climb, then its route. Pure.
 *
 * Route ids: `patrol`, `mission:<id>`, `goto`, `rtl`, `land`; with `revision` (bumped by
 * commands and by `SimFleet.restartRoutes`) they name one plan.
 */
export function simIntent(d: SimDrone, home: LatLon, p: SimPhysics = DEFAULT_PHYSICS): DroneIntent | undefined {
  if (isGroundedStatus(d.status)) {
    const wait = secondsToTakeoff(d, p);
    if (!(wait <= TAKEOFF_ANNOUNCE_S)) return undefined;
    // What it will report once up (`takeOff`: armed, climbing over the pad), held until then.
    const up = simIntent({ ...d, status: "taking_off", mode: SIM_MODES.takeoff, armed: true, holdS: 0, pauseS: 0, battery: Math.max(d.battery, p.chargedPct) }, home, p);
    return up && { ...up, hold_s: round(wait, 1) };
  }
  if (!d.armed) return undefined;
  const wp = (w: { x: number; y: number; alt: number }) => {
    const { lat, lon } = offsetM(home, w.x, w.y);
    return { lat: round(lat, 7), lon: round(lon, 7), alt_m: round(w.alt, 2) };
  };
  const task = d.task;
  const base = { revision: d.revision };
  let hold = d.pauseS > 0 ? d.pauseS : d.mode === SIM_MODES.loiter && Number.isFinite(d.holdS) && d.holdS > 0 ? d.holdS : 0;
  const held = () => (hold > 0 ? { hold_s: round(hold, 1) } : {});
  if (d.status === "landing") {
    // Straight down: over the pad after a return, where it is for an emergency landing.
    const at = task?.kind === "land" ? { x: d.x, y: d.y } : d.pad;
    const rate = task?.kind === "land" ? p.emergencyDescentMps : p.descentMps;
    return { ...base, route_id: "land", waypoints: [wp({ ...at, alt: 0 })], speed_mps: rate };
  }
  if (d.status === "returning") {
    return { ...base, route_id: "rtl", waypoints: wayHome(d, d, p).map(wp), speed_mps: d.cruiseMps, ...held() };
  }
  const routeId = task?.kind === "mission" ? `mission:${task.missionId}` : task?.kind === "goto" ? "goto" : "patrol";
  let points: Point[];
  if (task?.kind === "goto") {
    // Loitering at the commanded point until the next command: it holds there.
    points = d.mode === SIM_MODES.loiter && d.holdS === Number.POSITIVE_INFINITY ? [] : [task.target];
  } else if (task?.kind === "mission") {
    // The legs left, then home (`arrive`: a completed mission returns to the pad).
    const last = task.waypoints[task.waypoints.length - 1];
    points = [...task.waypoints.slice(task.index), ...(last ? wayHome(d, last, p) : [])];
  } else {
    // Unrolled up to the lap's last corner, where the drone loiters (`loiterSeconds`) before the
    // next lap: an intent has one hold, at its start, so the route after a loiter it has not begun
    // is not promised. Past the corner it would have the edge see the drone flying on seconds
    // before it does (and a hover there in a neighbour's way not at all); while it loiters, `hold_s`
    // says so and the next lap follows.
    points = [];
    const n = Math.min(INTENT_PATROL_WAYPOINTS, Math.max(d.route.length, 1) * 2);
    for (let k = 0; k < n; k++) {
      const i = (d.wp + k) % d.route.length;
      points.push(d.route[i]!);
      if (i === d.route.length - 1 && p.loiterSeconds > 0) break;
    }
  }
  // Taking off: a vertical climb over the pad to the first target's altitude, then the route it
  // flies from there (as an autopilot's take-off item leads into its mission). Listing only the
  // climb would leave the edge blind to where the drone heads the moment it levels off.
  if (d.status === "taking_off") points = [{ x: d.x, y: d.y, alt: currentTarget(d).alt }, ...points];
  else if (d.status === "flying") ({ points, holdS: hold } = untilLowBattery(d, points, hold, p));
  return { ...base, route_id: routeId, waypoints: points.slice(0, INTENT_MAX_WAYPOINTS).map(wp), speed_mps: d.cruiseMps, ...held() };
}

/** How a sample reports the drone's state: measured (default), or with no state topic (ROS 2
 * without one: armed/status are placeholders, `state_known: false`). */
export type SampleOptions = { intent?: boolean; stateKnown?: boolean; physics?: SimPhysics };

/**
 * The wire sample for a drone. Values are rounded (1e-7° ≈ 1 cm, centimetres, 0.1 %) because
 * more digits are noise that only makes every relay frame longer.
 */
export function toSample(d: SimDrone, home: LatLon, ts: number, opts: SampleOptions = {}): SourceSample {
  const { lat, lon } = offsetM(home, d.x, d.y);
  const intent = opts.intent === false ? undefined : simIntent(d, home, opts.physics);
  const unknown = opts.stateKnown === false;
  return {
    drone_id: d.id,
    ts,
    lat: round(lat, 7),
    lon: round(lon, 7),
    alt_m: round(d.alt, 2),
    heading_deg: round(d.heading, 1) % 360,
    speed_mps: round(Math.hypot(d.vx, d.vy), 2),
    climb_mps: round(d.vz, 2),
    battery_pct: round(d.battery, 1),
    // Without a state topic the relay knows neither: it reports what ROS 2's relay reports then.
    armed: unknown ? false : d.armed,
    mode: unknown ? "UNKNOWN" : d.mode,
    status: unknown ? "idle" : d.status,
    ...(unknown ? { state_known: false } : {}),
    ...(intent ? { intent } : {}),
  };
}


/**
 * The patrol fleet's layout: one drone per square sector of SECTOR_M metres, sectors on a grid
 * centred on home that grows with the fleet (⌈√N⌉ sectors a side), so the density stays that of
 * a busy operation (one drone per 90 m × 90 m, ~120 per km²) whatever N. Each drone patrols a
 * small loop around its sector's centre at one altitude, and its pad (dock) is at that centre.
 * Sectors are four-coloured by altitude band (SECTOR_BANDS, 13 m apart): two sectors of the same
 * band are two sectors apart, so patrols never come near each other's altitude, and a drone
 * climbing or descending over its pad passes neighbours' loops at least 55 m away. Up to 1,024
 * drones (32 × 32 sectors, ±1,440 m) fit inside the default ±1,500 m geofence; larger fleets need
 * a larger one (the fleet logs a warning). What brings drones together is what an operation
 * adds: missions and waypoints across sectors, returns home, and routes restarted.
 */
export const SECTOR_M = 90;
/** Sectors a side that fit inside the default geofence. */
export const SECTOR_GRID_IN_FENCE = 32;
const SECTOR_BANDS = [33, 46, 59, 72] as const;
/** Patrol loops stay within this radius of their sector's centre. */
const LOOP_RADIUS_M = 32;

/** Centre (local metres) and altitude band of sector `i` of `n`. */
export function sectorOf(i: number, n: number): { x: number; y: number; alt: number } {
  const side = Math.ceil(Math.sqrt(n));
  const cx = i % side;
  const cy = Math.floor(i / side);
  return {
    x: (cx - (side - 1) / 2) * SECTOR_M,
    y: (cy - (side - 1) / 2) * SECTOR_M,
    alt: SECTOR_BANDS[(cx % 2) + 2 * (cy % 2)]!,
  };
}

/**
 * Build drone `i` of `n` (see SECTOR_M for the layout): a patrol loop of 3–6 corners at 0.75–1 ×
 * 20–32 m around its sector's centre, at its band's altitude ±1 m, 8–14 m/s.
 */
export function createDrone(i: number, n: number, rand: () => number): SimDrone {
  const sector = sectorOf(i, n);
  const radius = 20 + rand() * (LOOP_RADIUS_M - 20);
  const corners = 3 + Math.floor(rand() * 4);
  const alt = sector.alt + (rand() - 0.5) * 2;
  const rot = rand() * 2 * Math.PI;
  const route: Waypoint[] = [];
  for (let k = 0; k < corners; k++) {
    const a = rot + (2 * Math.PI * k) / corners + (rand() - 0.5) * 0.4;
    const r = radius * (0.75 + rand() * 0.25);
    route.push({ x: sector.x + Math.sin(a) * r, y: sector.y + Math.cos(a) * r, alt: Math.min(MAX_ALT, Math.max(MIN_ALT, alt)) });
  }
  const pad = { x: sector.x, y: sector.y };
  const drone: SimDrone = {
    id: `drone_${i}`,
    route,
    pad,
    cruiseMps: 8 + rand() * 6,
    wp: 0,
    x: pad.x,
    y: pad.y,
    alt: 0,
    vx: 0,
    vy: 0,
    vz: 0,
    heading: rand() * 360,
    battery: 100,
    status: "idle",
    mode: SIM_MODES.loiter,
    armed: false,
    holdS: 0,
    task: null,
    pauseS: 0,
    resumeMode: SIM_MODES.mission,
    revision: 0,
  };
  // Start the fleet mid-day rather than all on the pads: most drones already on patrol with mixed
  // batteries, some charging, a few waiting to take off, so every status shows up at once.
  const r = rand();
  if (r < 0.7) {
    const wp = Math.floor(rand() * corners);
    const prev = route[(wp + corners - 1) % corners] ?? route[0]!;
    const next = route[wp] ?? route[0]!;
    const t = rand();
    Object.assign(drone, {
      wp,
      x: prev.x + (next.x - prev.x) * t,
      y: prev.y + (next.y - prev.y) * t,
      alt: prev.alt + (next.alt - prev.alt) * t,
      heading: compassDeg(next.x - prev.x, next.y - prev.y),
      battery: 35 + rand() * 65,
      status: "flying",
      mode: SIM_MODES.mission,
      armed: true,
    } satisfies Partial<SimDrone>);
  } else if (r < 0.85) {
    Object.assign(drone, { battery: 30 + rand() * 60, status: "charging" } satisfies Partial<SimDrone>);
  } else {
    Object.assign(drone, { battery: 95 + rand() * 5, holdS: rand() * 30 } satisfies Partial<SimDrone>);
  }
  return drone;
}

/** Scenario pads sit on a 4 m grid at home (scenario drones start airborne and stay so). */
const PAD_SPACING_M = 4;

/**
 * Build drone `i` of a conflict scenario (relay/sources/sim/scenarios.ts): airborne on its leg, full
 * battery, pad on the same 4 m grid as `createDrone`.
 */
export function createScenarioDrone(i: number, n: number, spec: ScenarioDrone): SimDrone {
  const side = Math.ceil(Math.sqrt(n));
  const next = spec.route[0];
  return {
    id: `drone_${i}`,
    route: spec.route.map((w) => ({ ...w })),
    pad: {
      x: ((i % side) - (side - 1) / 2) * PAD_SPACING_M,
      y: (Math.floor(i / side) - (side - 1) / 2) * PAD_SPACING_M,
    },
    cruiseMps: spec.cruiseMps,
    wp: 0,
    x: spec.start.x,
    y: spec.start.y,
    alt: spec.start.alt,
    vx: 0,
    vy: 0,
    vz: 0,
    heading: compassDeg(next.x - spec.start.x, next.y - spec.start.y),
    battery: 100,
    status: "flying",
    mode: SIM_MODES.mission,
    armed: true,
    holdS: 0,
    task: null,
    pauseS: 0,
    resumeMode: SIM_MODES.mission,
    revision: 0,
  };
}

/** Separation minima the monitor measures against; the edge's defaults. */
export interface SeparationMinima {
  horizontalM: number;
  verticalM: number;
}
export const DEFAULT_SEPARATION: SeparationMinima = {
  horizontalM: FLEET_SEPARATION.horizontal_m,
  verticalM: FLEET_SEPARATION.vertical_m,
};

/** A stretch of time a pair spent closer than both minima at once. */
export interface SeparationLoss {
  /** First and last instant seen below both minima, clock ms. */
  from: number;
  to: number;
  /** Least horizontal distance during the loss, and the vertical distance at that instant. */
  horizontal_m: number;
  vertical_m: number;
}

/** What a pair of drones actually flew, measured at common instants (see `SimFleet.separationReport`). */
export interface PairSeparation {
  drone_ids: [string, string];
  /** Least horizontal distance between the two, and the vertical distance at that same instant. */
  min_horizontal_m: number;
  vertical_at_min_horizontal_m: number;
  /** Least horizontal distance at an instant when they were within the vertical minimum; null
   * if they never were. */
  min_horizontal_within_vertical_m: number | null;
  /** Every loss of separation (both minima broken at the same instant), in order. */
  losses: SeparationLoss[];
}

type PairState = {
  minH: number;
  vAtMinH: number;
  minHWithinV: number;
  losses: SeparationLoss[];
  /** The loss in progress, if the last measurement was one. */
  open: SeparationLoss | null;
};

export interface SimFleetOptions {
  /** Number of drones, ids `drone_0`..`drone_{N-1}`. Default 5 (a scenario's own default with
   * `scenario`: 2, swarm 12). */
  drones?: number;
  /**
   * Fly a conflict scenario (relay/sources/sim/scenarios.ts) instead of patrol loops, or an explicit layout
   * (then `drones` is its length). Turns the separation monitor on.
   */
  scenario?: ScenarioName | readonly ScenarioDrone[];
  /** Measure the separation every pair actually flies (`separationReport`). Default: on with a
   * scenario, off otherwise. Costs a step of every drone and O(N²) per timer tick. */
  monitorSeparation?: boolean;
  /** Minima the monitor counts losses against. Default 30 m / 10 m. */
  separation?: SeparationMinima;
  /** Samples per drone per second, 1–10. Default 1. */
  rateHz?: number;
  /** PRNG seed: the same seed builds the same routes and starting states. Default 1. */
  seed?: number;
  /** Home point (local origin). Default: the fleet config's default home (PX4 SITL's Zurich home). */
  home?: LatLon;
  /** Simulated seconds per real second (e.g. 60 in tests so batteries drain in seconds). Default 1. */
  timeScale?: number;
  physics?: Partial<SimPhysics>;
  /** Clock for timestamps and physics, ms. Default Date.now. */
  now?: () => number;
  log?: Logger;
  /** Report each drone's intent with its samples (the edge predicts along it). Default true;
   * false stands in for a source that knows no routes. */
  intents?: boolean;
  /** Drones whose state is reported unknown, as a ROS 2 drone without a state topic is:
   * `armed: false, status: "idle", state_known: false`. */
  stateUnknown?: readonly string[];
  /** Perturb a named scenario's layout with `seed` (start along the leg, speed, altitude within
   * its band), so tests and the separation figure fly many variants of each encounter. */
  randomize?: boolean;
}

/** A deterministic simulated fleet driven by a single timer. */
export class SimFleet implements DroneSource {
  readonly kind = "sim" as const;
  readonly home: LatLon;
  readonly rateHz: number;
  readonly timeScale: number;
  readonly physics: SimPhysics;
  private readonly drones: SimDrone[];
  /** Clock time each drone was last stepped, ms. */
  private readonly lastStepAt: Float64Array;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly indexOf = new Map<string, number>();
  private readonly intents: boolean;
  private readonly stateUnknown: ReadonlySet<string>;
  /** Drones that acknowledge commands but do not carry them out (`ignoreCommands`). */
  private readonly ignoring = new Set<string>();
  private onSample: ((s: SourceSample) => void) | null = null;
  /** Mission reports go here (the link's `pushProgress`); set by the wiring code. */
  onMissionProgress: ((p: MissionProgressEvent) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private cycleStart = 0;
  private cursor = 0;
  private callbackErrors = 0;
  /** Separation monitor: null when off. Pair (i, j), i < j, lives at i * n + j. */
  private readonly monitor: {
    minima: SeparationMinima;
    pairs: Map<number, PairState>;
    /** Positions at the previous measurement (NaN: not airborne then). */
    px: Float64Array;
    py: Float64Array;
    pz: Float64Array;
    prevAt: number;
  } | null;

  constructor(opts: SimFleetOptions = {}) {
    const named = typeof opts.scenario === "string" ? opts.scenario : undefined;
    const layout = typeof opts.scenario === "string" ? undefined : opts.scenario;
    const n = layout ? layout.length : (opts.drones ?? (named ? SCENARIO_DEFAULT_DRONES[named] : 5));
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`drones must be a positive integer, got ${n}`);
    const rate = opts.rateHz ?? 1;
    if (!(rate >= 1 && rate <= 10)) throw new RangeError(`rateHz must be within 1..10, got ${rate}`);
    const timeScale = opts.timeScale ?? 1;
    if (!(timeScale > 0 && Number.isFinite(timeScale))) throw new RangeError(`timeScale must be > 0, got ${timeScale}`);
    this.rateHz = rate;
    this.timeScale = timeScale;
    this.home = opts.home ?? { ...DEFAULT_HOME };
    this.physics = { ...DEFAULT_PHYSICS, ...opts.physics };
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLogger;
    const rand = seededRandom(opts.seed ?? 1);
    this.intents = opts.intents ?? true;
    this.stateUnknown = new Set(opts.stateUnknown ?? []);
    const specs = named ? scenarioDrones(named, n, opts.randomize ? rand : undefined) : layout;
    if (!specs && n > SECTOR_GRID_IN_FENCE ** 2) {
      this.log.warn("more simulated drones than sectors inside the default geofence: widen the fleet's geofence", {
        drones: n,
        half_side_m: Math.ceil(Math.ceil(Math.sqrt(n)) * SECTOR_M * 0.5),
      });
    }
    this.drones = specs ? specs.map((spec, i) => createScenarioDrone(i, n, spec)) : Array.from({ length: n }, (_, i) => createDrone(i, n, rand));
    const monitorOn = opts.monitorSeparation ?? opts.scenario !== undefined;
    this.monitor = monitorOn
      ? {
          minima: opts.separation ?? DEFAULT_SEPARATION,
          pairs: new Map(),
          px: new Float64Array(n).fill(Number.NaN),
          py: new Float64Array(n).fill(Number.NaN),
          pz: new Float64Array(n).fill(Number.NaN),
          prevAt: Number.NaN,
        }
      : null;
    this.drones.forEach((d, i) => this.indexOf.set(d.id, i));
    // Commands may arrive before start(): they step from construction time, not from the epoch.
    this.lastStepAt = new Float64Array(n).fill(this.now());
  }

  /**
   * Execute an operator command: bring the drone up to now, then apply it (`applyCommand`).
   * Answers at once (accepted or rejected); progress follows through `onMissionProgress`.
   */
  async execute(command: RelayCommand, signal: AbortSignal): Promise<CommandOutcome> {
    if (signal.aborted) return { ok: false, message: "aborted before execution" };
    const i = this.indexOf.get(command.drone_id);
    const d = i === undefined ? undefined : this.drones[i];
    if (i === undefined || !d) return { ok: false, message: "unknown drone" };
    const cmd = toSimCommand(command, this.home);
    if (typeof cmd === "string") return { ok: false, message: cmd };
    const now = this.now();
    const current = this.advance(i, now);
    if (this.ignoring.has(current.id)) {
      // Accepted and then ignored: an autopilot in another mode, a ground station that overrides.
      this.log.debug("sim command ignored", { command_id: command.command_id, drone_id: current.id, command: command.command });
      return { ok: true, message: "accepted" };
    }
    const r = applyCommand(current, cmd, this.physics);
    this.drones[i] = r.drone;
    this.report(current.id, r.events, now);
    // One line per execution, with the command_id: the chaos run (chaos/) counts these to prove
    // that no command ran twice, across relay restarts too.
    this.log.debug("sim command", { command_id: command.command_id, drone_id: current.id, command: command.command, ok: r.ok, message: r.message });
    return r.ok ? { ok: true, message: r.message } : { ok: false, message: r.message };
  }

  droneIds(): string[] {
    return this.drones.map((d) => d.id);
  }

  /**
   * Every airborne drone starts its route over from where it is, as drones do when a ground
   * station reloads their missions after a relay restart: a mission from its first waypoint, a
   * patrol from its first; what commands changed is forgotten (waypoints, holds), and the route
   * revision grows. Returning and landing drones carry on. `ids`: only these drones.
   */
  restartRoutes(ids?: readonly string[]): void {
    const now = this.now();
    const only = ids ? new Set(ids) : null;
    for (let i = 0; i < this.drones.length; i++) {
      if (only && !only.has(this.drones[i]!.id)) continue;
      this.drones[i] = restartedRoute(this.advance(i, now));
    }
  }

  /** From now on, `droneId` acknowledges every command and carries none out (or again does). */
  ignoreCommands(droneId: string, ignore = true): void {
    if (ignore) this.ignoring.add(droneId);
    else this.ignoring.delete(droneId);
  }

  /**
   * Send a drone somewhere from outside the edge (a ground-station operator): the same as a
   * modify_waypoint it accepts, without the edge knowing. Returns whether the drone took it.
   */
  redirect(droneId: string, target: Waypoint): boolean {
    const i = this.indexOf.get(droneId);
    if (i === undefined) return false;
    const now = this.now();
    const r = applyCommand(this.advance(i, now), { kind: "goto", target }, this.physics);
    this.drones[i] = r.drone;
    this.report(droneId, r.events, now);
    return r.ok;
  }

  /** Current state of every drone (copies), for tests and debugging. */
  snapshot(): SimDrone[] {
    return this.drones.map((d) => ({ ...d }));
  }

  /** Period between two samples of the same drone, ms. */
  get periodMs(): number {
    return 1000 / this.rateHz;
  }

  async start(onSample: (s: SourceSample) => void): Promise<void> {
    if (this.timer) throw new Error("SimFleet already started");
    this.onSample = onSample;
    const t0 = this.now();
    this.lastStepAt.fill(t0);
    this.cycleStart = t0;
    this.cursor = 0;
    // Tick often enough to honour each drone's slot (period/N) but no more than every 10 ms and no
    // less than every 50 ms: 100 wake-ups/s at most, each emitting only the drones now due.
    const tickMs = Math.min(50, Math.max(10, Math.floor(this.periodMs / this.drones.length)));
    this.timer = setInterval(() => this.emitDue(this.now()), tickMs);
    this.emitDue(t0);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.onSample = null;
  }

  /**
   * Step and emit every drone whose slot has come since the last call. Drone i's slot is
   * `cycleStart + i·period/N`. Called by the fleet timer; public so tests can drive it with a
   * fake clock. Returns how many samples were emitted.
   */
  emitDue(now: number): number {
    const n = this.drones.length;
    const period = this.periodMs;
    let emitted = 0;
    for (;;) {
      const elapsed = now - this.cycleStart;
      if (elapsed >= period) {
        emitted += this.emitRange(this.cursor, n, now);
        this.cycleStart += period;
        this.cursor = 0;
        // After a stall (a blocked event loop, a suspended laptop) skip the missed periods rather
        // than replaying them in a burst: each drone emits at most once per call.
        if (now - this.cycleStart >= period) {
          this.cycleStart = now - ((now - this.cycleStart) % period);
          break;
        }
        continue;
      }
      const due = Math.min(n, Math.floor((elapsed * n) / period) + 1);
      emitted += this.emitRange(this.cursor, due, now);
      this.cursor = Math.max(this.cursor, due);
      break;
    }
    if (this.monitor) this.measureSeparation(now);
    return emitted;
  }

  /**
   * Per pair of drones, the separation they actually flew since construction: least horizontal
   * distance (with the vertical distance at that instant) and every loss of separation (closer
   * than both minima at the same instant). Empty unless the monitor is on (it is with a scenario).
   * Measured at every timer tick (every drone stepped to the same instant), plus the exact
   * closest approach between two ticks assuming straight flight in between; only pairs that are
   * both airborne count (pads are 4 m apart).
   */
  separationReport(): PairSeparation[] {
    const m = this.monitor;
    if (!m) return [];
    const n = this.drones.length;
    const out: PairSeparation[] = [];
    for (const [k, p] of [...m.pairs].sort((a, b) => a[0] - b[0])) {
      const i = Math.floor(k / n);
      const j = k - i * n;
      out.push({
        drone_ids: [this.drones[i]!.id, this.drones[j]!.id],
        min_horizontal_m: p.minH,
        vertical_at_min_horizontal_m: p.vAtMinH,
        min_horizontal_within_vertical_m: Number.isFinite(p.minHWithinV) ? p.minHWithinV : null,
        losses: p.losses.map((l) => ({ ...l })),
      });
    }
    return out;
  }

  /** Step every drone to `now` and update the separation of every airborne pair. */
  private measureSeparation(now: number): void {
    const m = this.monitor!;
    if (now <= m.prevAt) return;
    const n = this.drones.length;
    const { horizontalM: H, verticalM: V } = m.minima;
    const x = new Float64Array(n);
    const y = new Float64Array(n);
    const z = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const d = (this.lastStepAt[i] ?? now) < now ? this.advance(i, now) : this.drones[i]!;
      const up = isAirborne(d);
      x[i] = up ? d.x : Number.NaN;
      y[i] = d.y;
      z[i] = d.alt;
    }
    const record = (p: PairState, h: number, v: number, at: number): void => {
      if (h < p.minH) {
        p.minH = h;
        p.vAtMinH = v;
      }
      if (v < V && h < p.minHWithinV) p.minHWithinV = h;
      if (h < H && v < V) {
        if (p.open) {
          p.open.to = at;
          if (h < p.open.horizontal_m) Object.assign(p.open, { horizontal_m: h, vertical_m: v });
        } else {
          p.open = { from: at, to: at, horizontal_m: h, vertical_m: v };
          p.losses.push(p.open);
        }
      }
    };
    const span = now - m.prevAt;
    for (let i = 0; i < n; i++) {
      if (Number.isNaN(x[i]!)) continue;
      for (let j = i + 1; j < n; j++) {
        if (Number.isNaN(x[j]!)) continue;
        const key = i * n + j;
        let p = m.pairs.get(key);
        if (!p) m.pairs.set(key, (p = { minH: Infinity, vAtMinH: Infinity, minHWithinV: Infinity, losses: [], open: null }));
        const rx1 = x[j]! - x[i]!;
        const ry1 = y[j]! - y[i]!;
        const rz1 = z[j]! - z[i]!;
        // Closest approach since the last measurement, if both were airborne then too.
        const rx0 = m.px[j]! - m.px[i]!;
        const ry0 = m.py[j]! - m.py[i]!;
        const rz0 = m.pz[j]! - m.pz[i]!;
        if (Number.isFinite(rx0)) {
          const dx = rx1 - rx0;
          const dy = ry1 - ry0;
          const q = dx * dx + dy * dy;
          const tau = q > 1e-12 ? Math.min(1, Math.max(0, -(rx0 * dx + ry0 * dy) / q)) : 1;
          if (tau > 0 && tau < 1) {
            record(p, Math.hypot(rx0 + dx * tau, ry0 + dy * tau), Math.abs(rz0 + (rz1 - rz0) * tau), m.prevAt + span * tau);
          }
        }
        const h = Math.hypot(rx1, ry1);
        const v = Math.abs(rz1);
        record(p, h, v, now);
        // A loss ends at the first measurement that is not one.
        if (!(h < H && v < V)) p.open = null;
      }
    }
    m.px.set(x);
    m.py.set(y);
    m.pz.set(z);
    m.prevAt = now;
  }

  private emitRange(from: number, to: number, now: number): number {
    const cb = this.onSample;
    let count = 0;
    for (let i = from; i < to; i++) {
      if (!this.drones[i]) continue;
      const next = this.advance(i, now);
      if (!cb) continue;
      try {
        cb(toSample(next, this.home, now, { intent: this.intents, stateKnown: !this.stateUnknown.has(next.id), physics: this.physics }));
        count++;
      } catch (err) {
        // A consumer bug must not stop the whole fleet's timer; report it, rarely.
        if (this.callbackErrors++ % 1000 === 0) {
          this.log.error("sim sample callback threw", { error: err, count: this.callbackErrors });
        }
      }
    }
    return count;
  }

  /** Step drone `i` from its last step to `now`, store it, report its mission events. */
  private advance(i: number, now: number): SimDrone {
    const d = this.drones[i]!;
    const last = this.lastStepAt[i] ?? now;
    const events: SimEvent[] = [];
    const next = stepDrone(d, (Math.max(0, now - last) / 1000) * this.timeScale, this.physics, events);
    this.drones[i] = next;
    this.lastStepAt[i] = now;
    this.report(d.id, events, now);
    return next;
  }

  private report(droneId: string, events: readonly SimEvent[], now: number): void {
    const cb = this.onMissionProgress;
    if (!cb || events.length === 0) return;
    for (const e of events) {
      try {
        cb({ ...e, drone_id: droneId, ts: Math.round(now) });
      } catch (err) {
        this.log.error("mission progress callback threw", { error: err });
      }
    }
  }
}

/**
 * Collision-avoidance coordination: predict where every airborne drone will be over the next
 * seconds, find pairs that will lose separation and drones about to leave the geofence or enter a
 * no-fly zone, choose commands that fix each case, and tell when a case is over.
 *
 * Where a drone will be is trajectory.ts's rule (a plan is flown at the drone's speed; without
 * one, dead reckoning on heading and speed; ~0 m/s hovers), the same one the waypoint safety
 * check uses, so a waypoint it accepts is not flagged here on the same data. "Airborne" is
 * drone.ts's rule.
 *
 * Pure functions on plain data (no runtime APIs): the fleet object calls `detectConflicts` at
 * least twice a second, so the pass is built to cost milliseconds for 1,000 drones:
 *
 * - Each drone's predicted track is sampled once per pass in a fixed-scale local frame (two
 *   multiplications per point) and stored in flat typed arrays.
 * - Broad phase: the horizon is cut into chunks of ~5 s; per chunk, each drone's swept bounding
 *   box (grown by half the separation minima) goes into a uniform grid whose cell size follows
 *   the mean box size. Only pairs sharing a cell, with overlapping boxes, in some chunk reach the
 *   narrow phase, and only for those chunks' intervals.
 * - Narrow phase: between two samples both drones move linearly, so "horizontal distance under
 *   horizontal_m" is a quadratic and "vertical distance under vertical_m" a linear condition in
 *   time; their overlap gives the exact first instant of conflict, not just the nearest sample.
 *
 * Resolution is generate-and-verify: every candidate command set is re-predicted against all
 * other drones and kept only if the conflict is gone and no new one appears.
 */
import type { FleetConfig, NoFlyZone } from "./fleet-config";
import {
  boundaryDistanceLocal,
  makeLocalFrame,
  moveToSideLocal,
  pointInPolygonLocal,
  type LatLon,
  type LatLonAlt,
  type LocalFrame,
  type LocalPoint,
  type LocalPolygon,
} from "./geo";
import type { CoordinationEventView, OVERRIDE_ACTIONS, RelayCommand, TelemetrySample, Waypoint } from "../protocol";
import { COORDINATION_EVENT_TYPES } from "../protocol";
import { isAirborne as airborneStatus } from "./drone";
import { checkPosition } from "./safety";
import {
  CLIMB_EXTRAPOLATION_S,
  LAND_DESCENT_MPS,
  PLAN_CLIMB_MPS,
  isMoving,
  landingLeg,
  legClimbMps,
  planSpeedMps,
  PREDICTION_HORIZON_S,
  newTrack,
  predictTrack,
  sampleTrack,
  separationWindowInto,
  type Track,
} from "./trajectory";

// ------------------------------------------------------------------------------------ types

/** What coordination needs to know about one drone: telemetry plus its remaining plan. It is a
 * `MotionState` (trajectory.ts), predicted by the same rule as the waypoint safety check. */
export type CoordinationDrone = Pick<
  TelemetrySample,
  "drone_id" | "lat" | "lon" | "alt_m" | "heading_deg" | "speed_mps" | "climb_mps" | "status" | "armed" | "state_known"
> & {
  /** Remaining planned waypoints in order; empty: dead reckoning on heading and speed. */
  path: readonly Waypoint[];
  /** Among drones without `right_of_way`, the higher number keeps its course. Default 0. */
  priority?: number;
  /** The drone is holding position for this many more seconds before it follows its plan. */
  hold_s?: number;
  /** Speed `path` is flown at while the drone is not yet moving (a reported intent's). */
  plan_speed_mps?: number;
  /** `path` is new to the drone: flown at `plan_speed_mps` (else cruise), not at the reported
   * ground speed of the leg it flew before (trajectory.ts). */
  plan_speed_only?: boolean;
  /** Rate of a landing at the end of `path` (trajectory.ts); set on the second prediction of a
   * landing at the slower bound. */
  descent_mps?: number;
  /** The edge is not sure the drone follows `path`: it is predicted by dead reckoning as well,
   * and a conflict of either prediction counts (see collision-avoidance.ts). */
  also_dead_reckoning?: boolean;
  /** The drone keeps its course whatever the other does, and is never sent a resolution. */
  right_of_way?: RightOfWay;
  /** The drone flies a mission: a new waypoint replaces the leg being flown, and the mission
   * goes on after it (the relay's documented behaviour); otherwise it stays at the waypoint. */
  on_mission?: boolean;
  /** The sample's seq and battery, when the caller has them (trust checks count samples). */
  seq?: number;
  battery_pct?: number;
  /** How old the sample is, seconds: the drone is predicted from where it was then, so a late
   * sample (a slow link, a relay back after a gap) is not taken for where the drone is now. */
  age_s?: number;
  /** When the sample arrived (edge clock, ms); the fleet object turns it into `age_s`. */
  received_at?: number;
  /** A resolution command on its way (applyResolution): the drone goes on as it is this long. */
  lead_s?: number;
};

/**
 * Why a drone has the right of way: it cannot manoeuvre (an emergency, a landing, a drone on the
 * ground about to take off: a hold is refused there and a waypoint would launch it), must not be
 * delayed (returning, or at critical battery: relays refuse new waypoints then), or waits for an
 * operator (held by an operator's override).
 * Such a drone refuses or must not get resolution commands, so the other drone moves.
 */
export const RIGHT_OF_WAY = ["emergency", "landing", "on_ground", "returning", "low_battery", "operator_hold"] as const;
export type RightOfWay = (typeof RIGHT_OF_WAY)[number];

/** Conflict types are the protocol's coordination event types. */
export const CONFLICT_TYPES = COORDINATION_EVENT_TYPES;
export type ConflictType = CoordinationEventView["event_type"];

/** A predicted loss of separation (two drones) or a predicted zone breach (one drone). */
export type Conflict = {
  /** Stable while the situation lasts: `a|b` (ids sorted), `id|@geofence`, `id|@no_fly:<zone id>`.
   * Drone ids never contain `|` or `@`, so the forms cannot collide. */
  key: string;
  event_type: ConflictType;
  /** Sorted. */
  drone_ids: string[];
  /** Seconds from now to the first instant of conflict (0: already in conflict). */
  time_to_conflict_s: number;
  /** Pairs: least horizontal distance while within the vertical minimum. Zones: horizontal
   * distance now to the zone's edge (0 when already across). */
  min_horizontal_m: number;
  /** Pairs: least vertical distance while within the horizontal minimum. Zones: vertical distance
   * now to the breached altitude range (0 when the zone applies at the drone's altitude). */
  min_vertical_m: number;
  /** Pairs: midpoint of the two drones at their closest approach. Zones: the breach point. */
  at: LatLonAlt;
  /** The `now` of the detection pass. */
  detected_at: number;
  /** No-fly conflicts: which zone. */
  zone_id?: string;
};

/** Input of one detection pass. */
export type DetectInput = {
  drones: readonly CoordinationDrone[];
  config: FleetConfig;
  /** Prediction horizon, seconds. Default 30. */
  horizonS?: number;
  /** Sampling step, seconds. Default 1. Between samples motion is treated as linear. */
  stepS?: number;
  /** Time of the pass (ms since the epoch), copied into `detected_at`. */
  now: number;
  /** `all_pairs` is the O(n²) reference for tests and benchmarks; the default uses the grid. */
  index?: "grid" | "all_pairs";
};

/** What a resolution does: an event's strategy, except the operator's "dismissed". */
export type Strategy = Exclude<CoordinationEventView["strategy"], "dismissed">;
/** Strategies an operator may ask for (`coordination_override` without `dismiss`). */
export type OverrideStrategy = Exclude<(typeof OVERRIDE_ACTIONS)[number], "dismiss">;

type RelayCommandOf<C extends RelayCommand["command"]> = Extract<RelayCommand, { command: C }>;
/** Replace the drone's plan with one waypoint (as the command desk does on `modify_waypoint`). */
export type WaypointCommand = Pick<RelayCommandOf<"modify_waypoint">, "drone_id" | "command" | "new_waypoint"> & { reason: string };
/** Hold position for `duration_s`, then resume the plan. */
export type HoldCommand = Pick<RelayCommandOf<"hold">, "drone_id" | "command" | "duration_s"> & { reason: string };

/** The commands that fix one conflict. */
export type Resolution = {
  strategy: Strategy;
  commands: WaypointCommand[] | HoldCommand[];
  /** Whether re-prediction with these commands applied shows the conflict gone and no new one.
   * False for an operator override that cannot be verified, a last-resort hold, or no commands
   * at all because no drone may be commanded (then `reason` says why). */
  verified: boolean;
  /** Why nothing verified could be chosen, for the operator's alert. */
  reason?: string;
};

/** What `chooseResolution` must not choose: whole drones (`id`) or one strategy of a drone
 * (`id:strategy`), e.g. after a drone refused a command or ignored a plan. */
export type Exclusions = ReadonlySet<string>;

/** Options shared by resolution and resolution checks. */
export type CoordinationOptions = { horizonS?: number; stepS?: number };

// -------------------------------------------------------------------------------- constants

export const DEFAULT_HORIZON_S = PREDICTION_HORIZON_S;
export const DEFAULT_STEP_S = 1;
/** `isResolved` looks this far ahead: long enough to see a pair close in again right away, short
 * enough that a resolution is confirmed within a few seconds. */
export const RESOLVED_HORIZON_S = 10;
/** How long a resolution takes to reach the drone and take effect after a pass, seconds (edge →
 * relay → autopilot); resolutions are verified with the drone carrying on as it is until then. */
export const RESOLUTION_LEAD_S = 0.5;
/** Added to every separation a resolution creates, metres: keeps new plans off the exact limit. */
export const SAFETY_MARGIN_M = 5;
/** Resolutions are verified against the minima grown by these factors (33 m / 12 m by default):
 * the drone takes the command a few hundred milliseconds late, and real tracks wander, so a plan
 * that only just clears the minima would not clear them in the air. */
export const VERIFY_BUFFER = { horizontal: 1.1, vertical: 1.2 } as const;
/** Re-exported: the prediction rule lives in trajectory.ts. */
export { CLIMB_EXTRAPOLATION_S };
/** Below this horizontal speed a drone counts as hovering when classifying a conflict. */
const HOVER_SPEED_MPS = 1;
/** Samples older than this are extrapolated this far only: beyond it a prediction from the
 * sample says little, and the caller should treat the drone as unknown (stale). */
const MAX_SAMPLE_AGE_S = 5;
/** At most this many intervals per track: bounds the work of a pass whatever the input. */
const MAX_INTERVALS = 600;
/** Broad-phase chunk length. Shorter chunks give tighter boxes but more grid insertions. */
const CHUNK_TARGET_S = 5;
/** Chunk masks live in 32-bit integers. */
const MAX_CHUNKS = 31;
const ALL_CHUNKS = -1;
/** Grid coordinates are clamped to ±2^20 cells so keys stay exact doubles; clamping merges far
 * cells, which costs speed only, never correctness (the mapping stays monotone). */
const GRID_CLAMP = 1 << 20;
/** An unverified resolution is sent only if the conflicts it leaves start at least this far
 * ahead, seconds: time for the next pass to resolve them. */
const MIN_LEAD_FOR_NEXT_S = 8;
/** Time between two detection passes, seconds: a stop must win at least that much to be sent. */
const DETECT_PASS_S = 0.5;
/** Hold durations tried, shortest first, seconds. */
const HOLD_STEPS_S = [5, 10, 15, 20, 30, 45, 60] as const;
/** Resolution re-predicts this much past a hold, so resuming does not walk into the conflict. */
const RESUME_WINDOW_S = 15;
const DEG = Math.PI / 180;

// ---------------------------------------------------------------------------- prepared config

type Zone = {
  zone: NoFlyZone;
  poly: LocalPolygon;
  minX: number;
  maxX: number;
  minY: number;
  maxY: number;
  floor: number;
  ceiling: number;
};
/** The config's polygons projected once into the frame at home. */
type Prepared = { frame: LocalFrame; home: LatLon; fence: LocalPolygon; zones: Zone[] };

// Configs are replaced, never mutated, so caching by identity is safe; it spares re-projecting
// the polygons on every pass.
const preparedCache = new WeakMap<FleetConfig, Prepared>();

function prepare(config: FleetConfig): Prepared {
  let p = preparedCache.get(config);
  if (p) return p;
  const frame = makeLocalFrame(config.home);
  const project = (ring: readonly LatLon[]): LocalPolygon => ring.map((v) => ({ x_m: frame.x(v.lon), y_m: frame.y(v.lat) }));
  const zones = config.no_fly_zones.map((zone): Zone => {
    const poly = project(zone.polygon);
    return {
      zone,
      poly,
      minX: Math.min(...poly.map((v) => v.x_m)),
      maxX: Math.max(...poly.map((v) => v.x_m)),
      minY: Math.min(...poly.map((v) => v.y_m)),
      maxY: Math.max(...poly.map((v) => v.y_m)),
      floor: zone.floor_m ?? Number.NEGATIVE_INFINITY,
      ceiling: zone.ceiling_m ?? Number.POSITIVE_INFINITY,
    };
  });
  p = { frame, home: config.home, fence: project(config.geofence), zones };
  preparedCache.set(config, p);
  return p;
}

function toLatLon(prep: Prepared, x: number, y: number): LatLon {
  return prep.frame.toLatLon(x, y);
}

// ---------------------------------------------------------------------------------- tracks

/**
 * Sampled tracks: row r holds samples 0..K at `times`, in flat arrays. Row i < drones.length is
 * drone i's prediction; rows after those are further predictions (`otherPredictions`: dead
 * reckoning of a drone the edge is unsure about, a landing's slower descent), `owner[r]` naming
 * the drone (-1: a row no longer used).
 */
type Tracks = {
  n: number;
  K: number;
  stride: number;
  times: Float64Array;
  X: Float64Array;
  Y: Float64Array;
  Z: Float64Array;
  owner: Int32Array;
  /** The drone as row r predicts it (its plan, or one of `otherPredictions`). */
  row: CoordinationDrone[];
  /** How far (horizontally, vertically) the predicted track strays from the straight line
   * between two samples, per row and interval (r * stride + k): a waypoint between two samples
   * is a corner the samples cut. Detection widens the minima by it there, so a drone turning at a
   * waypoint between samples is not taken to miss a drone it passes at the corner. */
  devH: Float32Array;
  devV: Float32Array;
  /** The largest of those per row (boxes of the broad phase grow by it). */
  maxDevH: Float32Array;
  maxDevV: Float32Array;
};

function timeline(horizonS: number, stepS: number): Float64Array {
  const horizon = Number.isFinite(horizonS) && horizonS > 0 ? horizonS : DEFAULT_HORIZON_S;
  let step = Number.isFinite(stepS) && stepS > 0 ? stepS : DEFAULT_STEP_S;
  // A tiny step would make the pass unbounded; widen it instead.
  if (horizon / step > MAX_INTERVALS) step = horizon / MAX_INTERVALS;
  const K = Math.max(1, Math.ceil(horizon / step - 1e-9));
  const times = new Float64Array(K + 1);
  for (let k = 0; k <= K; k++) times[k] = Math.min(k * step, horizon);
  return times;
}

/** Intervals of `times` that cover `windowS`. */
function intervalsFor(times: Float64Array, windowS: number): number {
  const K = times.length - 1;
  for (let k = 1; k <= K; k++) if (times[k]! >= windowS - 1e-9) return k;
  return K;
}

/**
 * Whether a drone on the ground may take off within the horizon: armed (its motors may start
 * turning any moment), or with a plan, which for a grounded drone is its own word (collision-
 * avoidance.ts gives it only a reported intent, e.g. a dock's scheduled take-off: a hold on the
 * pad, then the climb). Such a drone is predicted like an airborne one: along its plan, or, armed
 * without one, climbing straight up at PLAN_CLIMB_MPS (`asPredicted`). Any other grounded drone
 * is parked and left out.
 */
export function mayTakeOff(d: CoordinationDrone): boolean {
  return !airborneStatus(d) && (d.path.length > 0 || (d.armed && d.state_known !== false));
}

/** In the picture: airborne (drone.ts) or about to take off, and placeable (a position with
 * non-finite numbers cannot be predicted). */
function isAirborne(d: CoordinationDrone): boolean {
  return (airborneStatus(d) || mayTakeOff(d)) && Number.isFinite(d.lat) && Number.isFinite(d.lon) && Number.isFinite(d.alt_m);
}

/** The drone as it is predicted: one on the ground keeps its course (it can be neither held nor
 * sent a waypoint without launching it), and one armed there without a plan climbs. */
function asPredicted(d: CoordinationDrone): CoordinationDrone {
  if (airborneStatus(d)) return d;
  const climb = d.path.length === 0 ? { climb_mps: Math.max(d.climb_mps ?? 0, PLAN_CLIMB_MPS) } : {};
  return { ...d, ...climb, right_of_way: d.right_of_way ?? "on_ground" };
}

/** The drone as dead reckoning sees it: no plan, no hold. */
function deadReckoned(d: CoordinationDrone): CoordinationDrone {
  return { ...d, path: [], hold_s: 0 };
}

/**
 * Further predictions of a drone, each a conflict of which counts as one of the drone's: dead
 * reckoning while the edge is unsure of its plan (it would differ from the plan), and a landing
 * at the slower bound of a descent (LAND_DESCENT_MPS) when the plan's own would be faster.
 */
function otherPredictions(d: CoordinationDrone, prep: Prepared, cruise: number): CoordinationDrone[] {
  const out: CoordinationDrone[] = [];
  if (d.also_dead_reckoning === true && (d.path.length > 0 || (d.hold_s !== undefined && d.hold_s > 0))) out.push(deadReckoned(d));
  if (d.descent_mps === undefined && legClimbMps(d, cruise) > LAND_DESCENT_MPS + 0.01 && landingLeg(d, prep.frame)) out.push({ ...d, descent_mps: LAND_DESCENT_MPS });
  return out;
}

/** Scratch of row predictions (`predictRow`'s knots and shifted instants): a pass predicts up to
 * a thousand rows, a planner hundreds more. */
let scratchKnots: Track = newTrack(16);
let scratchTimes = new Float64Array(128);

/** Arrays a caller fills pass after pass (`buildTracks`' `arena`), kept with room to grow. */
type RowArena = { tracks: Tracks | null };
/** The detection pass's: one pass over 1,000 drones fills ~1 MB of rows. */
const passArena: RowArena = { tracks: null };

/** Second rows (`otherPredictions`): `variants[j]` is another prediction of drone `extra[j]`. */
type SecondRows = { extra: number[]; variants: CoordinationDrone[] };

/** Drones predicted per step where a planner is built in steps (`ResolutionPlanner.build`). */
const BUILD_STEP_DRONES = 128;

function* secondRows(drones: readonly CoordinationDrone[], prep: Prepared, cruise: number): Steps<SecondRows> {
  const extra: number[] = [];
  const variants: CoordinationDrone[] = [];
  for (let i = 0; i < drones.length; i++) {
    if (i > 0 && i % BUILD_STEP_DRONES === 0) yield;
    for (const v of otherPredictions(drones[i]!, prep, cruise)) {
      extra.push(i);
      variants.push(v);
    }
  }
  return { extra, variants };
}

/** Tracks of `drones` (row i = drone i), plus second rows for unsure drones when `second` (true:
 * computed here; or given, from `secondRows`).
 * `lazy`: rows are laid out but not predicted (the planner predicts a row when it needs it).
 * `arena`: predicted rows go into its arrays (replaced by ones a quarter larger when too small),
 * so the result is valid only until the arena's next use. */
function buildTracks(drones: readonly CoordinationDrone[], prep: Prepared, cruise: number, times: Float64Array, second: boolean | SecondRows = true, lazy = false, arena: RowArena | null = null): Tracks {
  return run(trackSteps(drones, prep, cruise, times, second, lazy, arena));
}

/** `buildTracks` in steps of BUILD_STEP_DRONES rows (a stepped detection pass). */
function* trackSteps(drones: readonly CoordinationDrone[], prep: Prepared, cruise: number, times: Float64Array, second: boolean | SecondRows, lazy: boolean, arena: RowArena | null): Steps<Tracks> {
  const { extra, variants } = second === true ? yield* secondRows(drones, prep, cruise) : second === false ? { extra: [], variants: [] } : second;
  const n = drones.length + extra.length;
  const stride = times.length;
  const had = arena?.tracks;
  // Lazy rows need fresh arrays: a row reads as zeros until it is predicted.
  const fits = !lazy && had !== undefined && had !== null && had.owner.length >= n && had.X.length >= n * stride;
  const rows = arena ? Math.ceil(n * 1.25) + 8 : n;
  const tr: Tracks = {
    n,
    K: stride - 1,
    stride,
    times,
    X: fits ? had.X : new Float64Array(rows * stride),
    Y: fits ? had.Y : new Float64Array(rows * stride),
    Z: fits ? had.Z : new Float64Array(rows * stride),
    owner: fits ? had.owner : new Int32Array(rows),
    row: [...drones, ...variants],
    devH: fits ? had.devH : new Float32Array(rows * stride),
    devV: fits ? had.devV : new Float32Array(rows * stride),
    maxDevH: fits ? had.maxDevH : new Float32Array(rows),
    maxDevV: fits ? had.maxDevV : new Float32Array(rows),
  };
  if (arena) arena.tracks = tr;
  const scratch = () => {
    if (scratchTimes.length < stride) scratchTimes = new Float64Array(stride);
    return scratchTimes.subarray(0, stride);
  };
  let shifted = scratch();
  for (let r = 0; r < n; r++) {
    if (!lazy && r > 0 && r % BUILD_STEP_DRONES === 0) {
      yield;
      // Another caller between two steps may have replaced the scratch.
      shifted = scratch();
    }
    const i = r < drones.length ? r : extra[r - drones.length]!;
    tr.owner[r] = i;
    if (lazy) continue;
    scratchKnots = predictRow(tr, r, tr.row[r]!, prep, cruise, scratchKnots, shifted);
  }
  return tr;
}

/** Predict `d` into row r: from its sample's instant, sampled at the timeline's instants from
 * now (shifted by the sample's age). */
function predictRow(tr: Tracks, r: number, d: CoordinationDrone, prep: Prepared, cruise: number, knots?: Track, shifted?: Float64Array): Track {
  const times = tr.times;
  const age = d.age_s !== undefined && d.age_s > 0 && Number.isFinite(d.age_s) ? Math.min(d.age_s, MAX_SAMPLE_AGE_S) : 0;
  const out = predictTrack(d, prep.frame, cruise, times[times.length - 1]! + age, knots);
  let at: Float64Array = times;
  if (age !== 0) {
    at = shifted && shifted.length === times.length ? shifted : new Float64Array(times.length);
    for (let k = 0; k < times.length; k++) at[k] = times[k]! + age;
  }
  const o = r * tr.stride;
  sampleTrack(out, at, tr.X, tr.Y, tr.Z, o);
  // Corners between samples (see Tracks.devH).
  tr.devH.fill(0, o, o + tr.stride);
  tr.devV.fill(0, o, o + tr.stride);
  let mh = 0;
  let mv = 0;
  let k = 0;
  for (let j = 1; j < out.n - 1; j++) {
    const tj = out.ts[j]!;
    while (k + 1 < at.length && at[k + 1]! <= tj) k++;
    if (k + 1 >= at.length || tj <= at[k]!) continue;
    const g = (tj - at[k]!) / (at[k + 1]! - at[k]!);
    const dh = Math.hypot(out.xs[j]! - (tr.X[o + k]! + (tr.X[o + k + 1]! - tr.X[o + k]!) * g), out.ys[j]! - (tr.Y[o + k]! + (tr.Y[o + k + 1]! - tr.Y[o + k]!) * g));
    const dv = Math.abs(out.zs[j]! - (tr.Z[o + k]! + (tr.Z[o + k + 1]! - tr.Z[o + k]!) * g));
    if (dh > tr.devH[o + k]!) tr.devH[o + k] = dh;
    if (dv > tr.devV[o + k]!) tr.devV[o + k] = dv;
    if (dh > mh) mh = dh;
    if (dv > mv) mv = dv;
  }
  tr.maxDevH[r] = mh;
  tr.maxDevV[r] = mv;
  return out;
}

/** Re-predict row r as `d` (a drone whose plan changed). */
function repredictRow(tr: Tracks, r: number, d: CoordinationDrone, prep: Prepared, cruise: number): void {
  predictRow(tr, r, d, prep, cruise);
}

// ---------------------------------------------------------------------------- narrow phase

type PairHit = {
  /** First instant of conflict, seconds. */
  t: number;
  /** Interval where the conflict starts (for classification). */
  k: number;
  /** Last instant of conflict seen, seconds. */
  tEnd: number;
  minH: number;
  minV: number;
  /** Where the least horizontal distance happens: interval and fraction. */
  kMin: number;
  tauMin: number;
  /** With a profile (resolution checks): per interval, the least horizontal and vertical distance
   * while in conflict there (Infinity: not in conflict in that interval). */
  hk: Float32Array | null;
  vk: Float32Array | null;
};

/** `narrow`'s window (lo, hi, tau) of the interval it looks at. */
const windowScratch = new Float64Array(3);

/**
 * Exact loss of separation between row `ia` of A and row `ib` of B (same timeline) over
 * intervals [0, kEnd), restricted to the chunks set in `mask` (chunk = k / C). Within an interval
 * both move linearly, so the set of instants under both minima is the overlap of one quadratic
 * and one linear inequality's solution intervals.
 */
function narrow(A: Tracks, ia: number, B: Tracks, ib: number, H: number, V: number, kEnd: number, mask: number, C: number, profile = false): PairHit | null {
  const oa = ia * A.stride;
  const ob = ib * B.stride;
  const times = A.times;
  // The hit is kept in locals and made an object once, at the end: a pass narrows thousands of
  // pairs, and a field written per interval costs an allocation per write.
  let first = -1;
  let t = 0;
  let tEnd = 0;
  let minH = 0;
  let minV = 0;
  let kMin = 0;
  let tauMin = 0;
  let hk: Float32Array | null = null;
  let vk: Float32Array | null = null;
  for (let k = 0; k < kEnd; k++) {
    if (mask !== ALL_CHUNKS && ((mask >>> ((k / C) | 0)) & 1) === 0) continue;
    const rz0 = B.Z[ob + k]! - A.Z[oa + k]!;
    const dz = B.Z[ob + k + 1]! - A.Z[oa + k + 1]! - rz0;
    const rx0 = B.X[ob + k]! - A.X[oa + k]!;
    const ry0 = B.Y[ob + k]! - A.Y[oa + k]!;
    const dx = B.X[ob + k + 1]! - A.X[oa + k + 1]! - rx0;
    const dy = B.Y[ob + k + 1]! - A.Y[oa + k + 1]! - ry0;
    if (!separationWindowInto(rx0, ry0, rz0, dx, dy, dz, H + A.devH[oa + k]! + B.devH[ob + k]!, V + A.devV[oa + k]! + B.devV[ob + k]!, windowScratch)) continue;
    const lo = windowScratch[0]!;
    const hi = windowScratch[1]!;
    const tau = windowScratch[2]!;
    const L = times[k + 1]! - times[k]!;
    const h = Math.hypot(rx0 + dx * tau, ry0 + dy * tau);
    const zl = rz0 + dz * lo;
    const zh = rz0 + dz * hi;
    const v = zl * zh <= 0 ? 0 : Math.min(Math.abs(zl), Math.abs(zh));
    tEnd = times[k]! + hi * L;
    if (first < 0) {
      first = k;
      t = times[k]! + lo * L;
      minH = h;
      minV = v;
      kMin = k;
      tauMin = tau;
      if (profile) {
        hk = new Float32Array(kEnd).fill(Infinity);
        vk = new Float32Array(kEnd).fill(Infinity);
      }
    } else {
      if (h < minH) {
        minH = h;
        kMin = k;
        tauMin = tau;
      }
      if (v < minV) minV = v;
    }
    if (hk) {
      hk[k] = h;
      vk![k] = v;
    }
  }
  return first < 0 ? null : { t, k: first, tEnd, minH, minV, kMin, tauMin, hk, vk };
}

/** Velocity (x, y, z) of row `i` over interval k, m/s. */
function velocity(T: Tracks, i: number, k: number, out: number[]): void {
  const o = i * T.stride + k;
  const L = T.times[k + 1]! - T.times[k]!;
  out[0] = (T.X[o + 1]! - T.X[o]!) / L;
  out[1] = (T.Y[o + 1]! - T.Y[o]!) / L;
  out[2] = (T.Z[o + 1]! - T.Z[o]!) / L;
}

/** Encounter angles (degrees between the courses) that separate the types. */
const HEAD_ON_MIN_DEG = 135;
const SAME_COURSE_MAX_DEG = 45;

/**
 * The type of an encounter, from the geometry of the predicted encounter itself: the two courses
 * over the interval of closest approach (where the drones actually meet, not where they are now:
 * a drone about to turn onto a head-on leg is head-on), and how the gap closes.
 * - converging: one drone hovers, or the gap closes mostly vertically (a climb or descent onto
 *   the other);
 * - head_on: courses more than 135° apart;
 * - overtaking: courses within 45° and the one behind closing on the one ahead;
 * - crossing: everything between.
 */
function classify(A: Tracks, ia: number, B: Tracks, ib: number, hit: PairHit): ConflictType {
  const va = [0, 0, 0];
  const vb = [0, 0, 0];
  // The interval of closest approach; when a drone hovers there (it reached its last waypoint),
  // the interval where the conflict starts says how they came together.
  let k = hit.kMin;
  velocity(A, ia, k, va);
  velocity(B, ib, k, vb);
  if ((Math.hypot(va[0]!, va[1]!) < HOVER_SPEED_MPS || Math.hypot(vb[0]!, vb[1]!) < HOVER_SPEED_MPS) && hit.k !== k) {
    k = hit.k;
    velocity(A, ia, k, va);
    velocity(B, ib, k, vb);
  }
  const sa = Math.hypot(va[0]!, va[1]!);
  const sb = Math.hypot(vb[0]!, vb[1]!);
  if (sa < HOVER_SPEED_MPS || sb < HOVER_SPEED_MPS) return "converging";
  const rvx = vb[0]! - va[0]!;
  const rvy = vb[1]! - va[1]!;
  const rvz = vb[2]! - va[2]!;
  const oa = ia * A.stride + hit.k;
  const ob = ib * B.stride + hit.k;
  const rx = B.X[ob]! - A.X[oa]!;
  const ry = B.Y[ob]! - A.Y[oa]!;
  const rz = B.Z[ob]! - A.Z[oa]!;
  const range = Math.hypot(rx, ry);
  // Rate at which the horizontal gap shrinks (positive: closing), and the vertical one.
  const closingH = range > 1e-6 ? -(rx * rvx + ry * rvy) / range : Math.hypot(rvx, rvy);
  const closingV = Math.abs(rz) > 1e-6 ? -(rz * rvz) / Math.abs(rz) : 0;
  const cos = Math.max(-1, Math.min(1, (va[0]! * vb[0]! + va[1]! * vb[1]!) / (sa * sb)));
  const angle = Math.acos(cos) / DEG;
  if (angle > HEAD_ON_MIN_DEG) return "head_on";
  if (closingV > 0.5 && closingV > 2 * Math.max(closingH, 0)) return "converging";
  if (angle < SAME_COURSE_MAX_DEG) return closingH > 0.1 ? "overtaking" : "converging";
  return "crossing";
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

function pairConflict(
  prep: Prepared,
  A: Tracks,
  ia: number,
  idA: string,
  B: Tracks,
  ib: number,
  idB: string,
  hit: PairHit,
  now: number,
): Conflict {
  const k = hit.kMin;
  const tau = hit.tauMin;
  const oa = ia * A.stride + k;
  const ob = ib * B.stride + k;
  const lerp = (arr: Float64Array, o: number) => arr[o]! + (arr[o + 1]! - arr[o]!) * tau;
  const x = (lerp(A.X, oa) + lerp(B.X, ob)) / 2;
  const y = (lerp(A.Y, oa) + lerp(B.Y, ob)) / 2;
  const z = (lerp(A.Z, oa) + lerp(B.Z, ob)) / 2;
  return {
    key: pairKey(idA, idB),
    event_type: classify(A, ia, B, ib, hit),
    drone_ids: idA < idB ? [idA, idB] : [idB, idA],
    time_to_conflict_s: hit.t,
    min_horizontal_m: hit.minH,
    min_vertical_m: hit.minV,
    at: { ...toLatLon(prep, x, y), alt_m: z },
    detected_at: now,
  };
}

// ---------------------------------------------------------------------------- broad phase

/** Candidate pairs of the broad phase: rows `i[p] < j[p]` and the mask of the chunks where their
 * swept boxes overlap, for p < `count`, in the order they were found. */
type PairList = { count: number; i: Int32Array<ArrayBuffer>; j: Int32Array<ArrayBuffer>; mask: Int32Array<ArrayBuffer> };

/**
 * Scratch of the broad phase, grown as needed and kept from pass to pass: a pass over 1,000
 * drones inserts thousands of boxes into cells, and maps and arrays per cell were most of its
 * time and garbage. Cells and pairs live in open-addressing tables of typed arrays.
 */
const broad = {
  box: new Float64Array(0),
  /** Per row: the cell range its box covers (x0, x1, y0, y1). */
  cells: new Int32Array(0),
  /** Per cell slot: its coordinates, and the first and last of its entries (-1: empty slot). */
  slotX: new Int32Array(0),
  slotY: new Int32Array(0),
  head: new Int32Array(0),
  tail: new Int32Array(0),
  /** Slots in the order their cells were first used. */
  used: new Int32Array(0),
  /** Per entry (a row's box in a cell): the row, and the next entry of the same cell. */
  entryRow: new Int32Array(0),
  next: new Int32Array(0),
  bucket: new Int32Array(0),
  /** Pair table: 1 + the pair's index in `pairs`, 0 empty. */
  pairSlot: new Int32Array(0),
  pairs: { count: 0, i: new Int32Array(0), j: new Int32Array(0), mask: new Int32Array(0) } as PairList,
};

function grown(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (a.length >= need) return a;
  const b = new Int32Array(Math.max(need, a.length * 2, 64));
  b.set(a);
  return b;
}

/** Table size for `n` keys at a load of at most a half: a power of two, at least 16. */
function tableSize(n: number): number {
  let size = 16;
  while (size < 2 * n) size *= 2;
  return size;
}

function cellHash(cx: number, cy: number, mask: number): number {
  return (Math.imul(cx, 0x9e3779b1) ^ Math.imul(cy, 0x85ebca77)) & mask;
}

/** Add chunk `bit` to pair (i, j), i < j, recording the pair when it is new. */
function addPair(i: number, j: number, bit: number): void {
  const P = broad.pairs;
  if (2 * (P.count + 1) > broad.pairSlot.length) {
    // Rehash into a table twice the size.
    broad.pairSlot = new Int32Array(Math.max(64, broad.pairSlot.length * 2));
    const m = broad.pairSlot.length - 1;
    for (let p = 0; p < P.count; p++) {
      let h = cellHash(P.i[p]!, P.j[p]!, m);
      while (broad.pairSlot[h] !== 0) h = (h + 1) & m;
      broad.pairSlot[h] = p + 1;
    }
  }
  const table = broad.pairSlot;
  const m = table.length - 1;
  let h = cellHash(i, j, m);
  for (;;) {
    const e = table[h]!;
    if (e === 0) break;
    if (P.i[e - 1] === i && P.j[e - 1] === j) {
      P.mask[e - 1]! |= bit;
      return;
    }
    h = (h + 1) & m;
  }
  const p = P.count++;
  P.i = grown(P.i, P.count);
  P.j = grown(P.j, P.count);
  P.mask = grown(P.mask, P.count);
  P.i[p] = i;
  P.j[p] = j;
  P.mask[p] = bit;
  table[h] = p + 1;
}

/**
 * Candidate pairs of rows of two different drones from the chunked grid, with the mask of the
 * chunks where their swept boxes overlap. Two points closer than H horizontally and V vertically lie in boxes grown by H/2 and
 * V/2 that overlap, so no conflict is missed. The list is the broad phase's scratch: valid until
 * the next call.
 */
function gridCandidates(tr: Tracks, H: number, V: number, kEnd: number, C: number): PairList {
  const n = tr.n;
  if (broad.box.length < n * 6) broad.box = new Float64Array(n * 6);
  const box = broad.box;
  broad.cells = grown(broad.cells, n * 4);
  const cells = broad.cells;
  broad.pairs.count = 0;
  broad.pairSlot = broad.pairSlot.length >= tableSize(4 * n) ? broad.pairSlot.fill(0) : new Int32Array(tableSize(4 * n));
  broad.bucket = grown(broad.bucket, n);
  const bucket = broad.bucket;
  const chunks = Math.ceil(kEnd / C);
  for (let c = 0; c < chunks; c++) {
    const k0 = c * C;
    const k1 = Math.min((c + 1) * C, kEnd);
    let extent = 0;
    for (let i = 0; i < n; i++) {
      const b = i * 6;
      trackBox(tr, i, k0, k1, box, b);
      extent += box[b + 1]! - box[b]! + (box[b + 3]! - box[b + 2]!) + 2 * H;
      box[b] = box[b]! - H / 2;
      box[b + 1] = box[b + 1]! + H / 2;
      box[b + 2] = box[b + 2]! - H / 2;
      box[b + 3] = box[b + 3]! + H / 2;
      box[b + 4] = box[b + 4]! - V / 2;
      box[b + 5] = box[b + 5]! + V / 2;
    }
    // Cells about the size of a typical box: each box touches ~4 cells, and a cell holds only
    // drones that are genuinely near each other.
    const cell = Math.max(H, 1, extent / (2 * Math.max(n, 1)));
    const cellOf = (v: number) => {
      const q = Math.floor(v / cell);
      return q < -GRID_CLAMP ? -GRID_CLAMP : q > GRID_CLAMP ? GRID_CLAMP : q;
    };
    let entries = 0;
    for (let i = 0; i < n; i++) {
      const b = i * 6;
      const c4 = i * 4;
      cells[c4] = cellOf(box[b]!);
      cells[c4 + 1] = cellOf(box[b + 1]!);
      cells[c4 + 2] = cellOf(box[b + 2]!);
      cells[c4 + 3] = cellOf(box[b + 3]!);
      entries += (cells[c4 + 1]! - cells[c4]! + 1) * (cells[c4 + 3]! - cells[c4 + 2]! + 1);
    }
    const size = tableSize(entries);
    if (broad.head.length < size) {
      broad.slotX = new Int32Array(size);
      broad.slotY = new Int32Array(size);
      broad.head = new Int32Array(size);
      broad.tail = new Int32Array(size);
    }
    const mask = size - 1;
    const { slotX, slotY, head, tail } = broad;
    head.fill(-1, 0, size);
    broad.used = grown(broad.used, entries);
    broad.entryRow = grown(broad.entryRow, entries);
    broad.next = grown(broad.next, entries);
    const { used, entryRow, next } = broad;
    let slots = 0;
    let e = 0;
    for (let i = 0; i < n; i++) {
      const cx0 = cells[i * 4]!;
      const cx1 = cells[i * 4 + 1]!;
      const cy0 = cells[i * 4 + 2]!;
      const cy1 = cells[i * 4 + 3]!;
      for (let cx = cx0; cx <= cx1; cx++) {
        for (let cy = cy0; cy <= cy1; cy++) {
          let h = cellHash(cx, cy, mask);
          while (head[h] !== -1 && (slotX[h] !== cx || slotY[h] !== cy)) h = (h + 1) & mask;
          entryRow[e] = i;
          next[e] = -1;
          if (head[h] === -1) {
            slotX[h] = cx;
            slotY[h] = cy;
            head[h] = e;
            used[slots++] = h;
          } else next[tail[h]!] = e;
          tail[h] = e++;
        }
      }
    }
    const bit = 1 << c;
    for (let u = 0; u < slots; u++) {
      const h = used[u]!;
      const cx = slotX[h]!;
      const cy = slotY[h]!;
      let len = 0;
      for (let q = head[h]!; q !== -1; q = next[q]!) bucket[len++] = entryRow[q]!;
      for (let a = 0; a < len; a++) {
        const i = bucket[a]!;
        const bi = i * 6;
        for (let q = a + 1; q < len; q++) {
          const j = bucket[q]!;
          const bj = j * 6;
          if (box[bi]! > box[bj + 1]! || box[bj]! > box[bi + 1]!) continue;
          if (box[bi + 2]! > box[bj + 3]! || box[bj + 2]! > box[bi + 3]!) continue;
          if (box[bi + 4]! > box[bj + 5]! || box[bj + 4]! > box[bi + 5]!) continue;
          // A pair sharing several cells is kept only in the cell holding the lower corner of
          // its boxes' intersection (cellOf is monotone: the larger of the two boxes' first
          // cells): one visit per pair per chunk.
          if (Math.max(cells[i * 4]!, cells[j * 4]!) !== cx || Math.max(cells[i * 4 + 2]!, cells[j * 4 + 2]!) !== cy) continue;
          // Two predictions of one drone are not a pair (an unsure drone's plan and dead
          // reckoning overlap by nature).
          if (tr.owner[i] === tr.owner[j]) continue;
          if (i < j) addPair(i, j, bit);
          else addPair(j, i, bit);
        }
      }
    }
  }
  return broad.pairs;
}

// ---------------------------------------------------------------------------- zones

type ZoneHit = { key: string; type: ConflictType; zone: Zone | null; t: number; x: number; y: number; z: number; minH: number; minV: number };

/** Crossing parameters u ∈ [0, 1] of segment p0→p1 with every polygon edge. */
function edgeCrossings(px: number, py: number, rx: number, ry: number, poly: LocalPolygon, out: number[]): void {
  for (let e = 0, f = poly.length - 1; e < poly.length; f = e++) {
    const a = poly[f]!;
    const b = poly[e]!;
    const sx = b.x_m - a.x_m;
    const sy = b.y_m - a.y_m;
    const denom = rx * sy - ry * sx;
    // Parallel edges: the midpoint probes in firstEntry still see any change of side.
    if (Math.abs(denom) < 1e-12) continue;
    const qx = a.x_m - px;
    const qy = a.y_m - py;
    const u = (qx * sy - qy * sx) / denom;
    const w = (qx * ry - qy * rx) / denom;
    if (u >= 0 && u <= 1 && w >= 0 && w <= 1) out.push(u);
  }
}

/**
 * First instant the track enters a region defined by a polygon side and an altitude range. In
 * each interval the region can change only where the segment crosses an edge or an altitude
 * level, so probing those parameters and the midpoints between them finds the exact entry.
 */
function firstEntry(
  tr: Tracks,
  i: number,
  kEnd: number,
  poly: LocalPolygon,
  zLevels: readonly number[],
  inRegion: (x: number, y: number, z: number) => boolean,
  segmentMayEnter: (x0: number, x1: number, y0: number, y1: number) => boolean,
): { t: number; x: number; y: number; z: number } | null {
  const o = i * tr.stride;
  const cands: number[] = [];
  for (let k = 0; k < kEnd; k++) {
    const x0 = tr.X[o + k]!;
    const y0 = tr.Y[o + k]!;
    const z0 = tr.Z[o + k]!;
    const rx = tr.X[o + k + 1]! - x0;
    const ry = tr.Y[o + k + 1]! - y0;
    const rz = tr.Z[o + k + 1]! - z0;
    if (!segmentMayEnter(Math.min(x0, x0 + rx), Math.max(x0, x0 + rx), Math.min(y0, y0 + ry), Math.max(y0, y0 + ry))) continue;
    cands.length = 0;
    cands.push(0, 1);
    edgeCrossings(x0, y0, rx, ry, poly, cands);
    for (const level of zLevels) {
      if (Number.isFinite(level) && (z0 - level) * (z0 + rz - level) < 0) cands.push((level - z0) / rz);
    }
    cands.sort((p, q) => p - q);
    const L = tr.times[k + 1]! - tr.times[k]!;
    for (let c = 0; c < cands.length; c++) {
      const u = cands[c]!;
      const next = cands[c + 1];
      const probe = (v: number) => inRegion(x0 + rx * v, y0 + ry * v, z0 + rz * v);
      if (probe(u) || (next !== undefined && next > u && probe((u + next) / 2))) {
        return { t: tr.times[k]! + u * L, x: x0 + rx * u, y: y0 + ry * u, z: z0 + rz * u };
      }
    }
  }
  return null;
}

/** Whether samples 0..kEnd of the row at offset `o` all lie closer than `r` to (x0, y0), by
 * `Math.hypot` as the fence test has always measured it. Squared distances decide the clear
 * cases, with a margin far above their rounding; only a sample within a billionth of `r` is
 * measured by `Math.hypot`, which is slow and, in this loop over every drone, was most of a
 * pass's garbage. */
function withinRadius(tr: Tracks, o: number, kEnd: number, x0: number, y0: number, r: number): boolean {
  const clear2 = r * r * (1 - 1e-9);
  for (let k = 0; k <= kEnd; k++) {
    const dx = tr.X[o + k]! - x0;
    const dy = tr.Y[o + k]! - y0;
    if (dx * dx + dy * dy < clear2) continue;
    if (!(Math.hypot(dx, dy) < r)) return false;
  }
  return true;
}

/** Geofence exits (including climbing through the ceiling) and no-fly entries of row i. */
function zoneHits(prep: Prepared, config: FleetConfig, tr: Tracks, i: number, id: string, kEnd: number): ZoneHit[] {
  const hits: ZoneHit[] = [];
  const o = i * tr.stride;
  const x0 = tr.X[o]!;
  const y0 = tr.Y[o]!;
  const z0 = tr.Z[o]!;
  let zMin = Infinity;
  let zMax = -Infinity;
  let bx0 = Infinity;
  let bx1 = -Infinity;
  let by0 = Infinity;
  let by1 = -Infinity;
  for (let k = 0; k <= kEnd; k++) {
    const x = tr.X[o + k]!;
    const y = tr.Y[o + k]!;
    const z = tr.Z[o + k]!;
    zMin = Math.min(zMin, z);
    zMax = Math.max(zMax, z);
    bx0 = Math.min(bx0, x);
    bx1 = Math.max(bx1, x);
    by0 = Math.min(by0, y);
    by1 = Math.max(by1, y);
  }

  const fence = prep.fence;
  const ceiling = config.ceiling_m;
  if (fence.length >= 3) {
    const p0: LocalPoint = { x_m: x0, y_m: y0 };
    const inside0 = pointInPolygonLocal(p0, fence);
    const edge0 = boundaryDistanceLocal(x0, y0, fence);
    // Cheap common case: the whole track stays within a circle that the fence contains.
    const surelyInside = inside0 && zMax <= ceiling && withinRadius(tr, o, kEnd, x0, y0, edge0);
    if (!surelyInside) {
      const e = firstEntry(
        tr,
        i,
        kEnd,
        fence,
        [ceiling],
        (x, y, z) => z > ceiling || !pointInPolygonLocal({ x_m: x, y_m: y }, fence),
        () => true,
      );
      if (e) {
        const horizontalBreach = !pointInPolygonLocal({ x_m: e.x, y_m: e.y }, fence) || (e.t === 0 && !inside0);
        hits.push({
          key: `${id}|@geofence`,
          type: "geofence_proximity",
          zone: null,
          t: e.t,
          x: e.x,
          y: e.y,
          z: e.z,
          minH: inside0 ? edge0 : 0,
          minV: horizontalBreach ? 0 : Math.max(0, ceiling - z0),
        });
      }
    }
  }

  for (const zone of prep.zones) {
    if (zone.poly.length < 3) continue;
    if (bx1 < zone.minX || bx0 > zone.maxX || by1 < zone.minY || by0 > zone.maxY) continue;
    if (zMax < zone.floor || zMin > zone.ceiling) continue;
    const e = firstEntry(
      tr,
      i,
      kEnd,
      zone.poly,
      [zone.floor, zone.ceiling],
      (x, y, z) => z >= zone.floor && z <= zone.ceiling && pointInPolygonLocal({ x_m: x, y_m: y }, zone.poly),
      (sx0, sx1, sy0, sy1) => !(sx1 < zone.minX || sx0 > zone.maxX || sy1 < zone.minY || sy0 > zone.maxY),
    );
    if (!e) continue;
    const p0: LocalPoint = { x_m: x0, y_m: y0 };
    hits.push({
      key: `${id}|@no_fly:${zone.zone.id}`,
      type: "no_fly_proximity",
      zone,
      t: e.t,
      x: e.x,
      y: e.y,
      z: e.z,
      minH: pointInPolygonLocal(p0, zone.poly) ? 0 : boundaryDistanceLocal(x0, y0, zone.poly),
      minV: z0 < zone.floor ? zone.floor - z0 : z0 > zone.ceiling ? z0 - zone.ceiling : 0,
    });
  }
  return hits;
}

function zoneConflict(prep: Prepared, id: string, h: ZoneHit, now: number): Conflict {
  const c: Conflict = {
    key: h.key,
    event_type: h.type,
    drone_ids: [id],
    time_to_conflict_s: h.t,
    min_horizontal_m: h.minH,
    min_vertical_m: h.minV,
    at: { ...toLatLon(prep, h.x, h.y), alt_m: h.z },
    detected_at: now,
  };
  if (h.zone) c.zone_id = h.zone.zone.id;
  return c;
}

// ---------------------------------------------------------------------------- detection

function byTimeThenKey(a: Conflict, b: Conflict): number {
  return a.time_to_conflict_s - b.time_to_conflict_s || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

/** `detectConflicts` with the number of pairs that reached the narrow phase (for benchmarks). */
/** What a detection found; `pairsChecked` counts the pairs that reached the narrow phase. */
export type Detection = { conflicts: Conflict[]; pairsChecked: number };

/** Pairs the narrow phase checks per step, and rows checked against zones per step, where a
 * detection is stepped (`detectSteps`): about a millisecond each at a thousand drones. */
const DETECT_STEP_PAIRS = 1024;
const ZONE_STEP_ROWS = 256;

/** One detection (`detectConflicts`) with the pass's scratch, for benchmarks and tests. */
export function detectWithStats(input: DetectInput): Detection {
  return run(detectSteps(input));
}

/**
 * `detectConflicts` in steps (the fleet object's pass runs it across turns when a turn's time is
 * up): BUILD_STEP_DRONES rows predicted, the broad phase, DETECT_STEP_PAIRS narrow checks or
 * ZONE_STEP_ROWS zone checks per step. It works on the input it was given (its picture) and on
 * scratch kept for the pass (rows, candidate pairs): only one stepped detection may be unfinished
 * at a time; one given up is never resumed. `arena` null: fresh arrays (a detection that may run
 * while a pass's steps are unfinished).
 */
export function* detectSteps(input: DetectInput, arena: RowArena | null = passArena): Steps<Detection> {
  const { config } = input;
  const prep = prepare(config);
  const H = config.separation.horizontal_m;
  const V = config.separation.vertical_m;
  const airborne = input.drones.filter(isAirborne).map(asPredicted);
  const times = timeline(input.horizonS ?? DEFAULT_HORIZON_S, input.stepS ?? DEFAULT_STEP_S);
  const tr = yield* trackSteps(airborne, prep, config.cruise_speed_mps, times, true, false, arena);
  const K = tr.K;
  let pairsChecked = 0;
  // One conflict per key: a drone with two predictions (plan and dead reckoning) may meet another
  // in both; the earliest counts (ties: the closer, then the lower rows, so the grid and the
  // all-pairs reference agree).
  const byKey = new Map<string, { c: Conflict; rank: number }>();
  const keep = (c: Conflict, rank: number) => {
    const had = byKey.get(c.key);
    if (
      !had ||
      c.time_to_conflict_s < had.c.time_to_conflict_s ||
      (c.time_to_conflict_s === had.c.time_to_conflict_s && (c.min_horizontal_m < had.c.min_horizontal_m || (c.min_horizontal_m === had.c.min_horizontal_m && rank < had.rank)))
    ) {
      byKey.set(c.key, { c, rank });
    }
  };
  const emit = (i: number, j: number, hit: PairHit | null) => {
    if (!hit) return;
    const oi = tr.owner[i]!;
    const oj = tr.owner[j]!;
    if (oi < 0 || oj < 0) return;
    keep(pairConflict(prep, tr, i, airborne[oi]!.drone_id, tr, j, airborne[oj]!.drone_id, hit, input.now), Math.min(i, j) * tr.n + Math.max(i, j));
  };
  if (input.index === "all_pairs") {
    for (let i = 0; i < tr.n; i++) {
      for (let j = i + 1; j < tr.n; j++) {
        if (tr.owner[i] === tr.owner[j]) continue;
        pairsChecked++;
        emit(i, j, narrow(tr, i, tr, j, H, V, K, ALL_CHUNKS, 1));
      }
    }
  } else {
    if (tr.n > BUILD_STEP_DRONES) yield;
    const chunks = Math.min(MAX_CHUNKS, Math.max(1, Math.ceil(times[K]! / CHUNK_TARGET_S)));
    const C = Math.ceil(K / chunks);
    const found = gridCandidates(tr, H, V, K, C);
    // The broad phase's list is scratch that any detection overwrites: a stepped one keeps a copy.
    const stepped = found.count > DETECT_STEP_PAIRS;
    const cands = stepped ? { count: found.count, i: found.i.slice(0, found.count), j: found.j.slice(0, found.count), mask: found.mask.slice(0, found.count) } : found;
    pairsChecked = cands.count;
    for (let p = 0; p < cands.count; p++) {
      if (p > 0 && p % DETECT_STEP_PAIRS === 0) yield;
      emit(cands.i[p]!, cands.j[p]!, narrow(tr, cands.i[p]!, tr, cands.j[p]!, H, V, K, cands.mask[p]!, C));
    }
  }
  for (let i = 0; i < tr.n; i++) {
    if (i > 0 && i % ZONE_STEP_ROWS === 0) yield;
    const id = airborne[tr.owner[i]!]!.drone_id;
    for (const h of zoneHits(prep, config, tr, i, id, K)) keep(zoneConflict(prep, id, h, input.now), i);
  }
  const conflicts = [...byKey.values()].map((x) => x.c);
  conflicts.sort(byTimeThenKey);
  return { conflicts, pairsChecked };
}

/**
 * Predicted conflicts over the horizon, earliest first: pairs that will be closer than both
 * separation minima at the same instant (typed by relative heading), and drones whose track
 * leaves the geofence (or climbs through the ceiling) or enters a no-fly zone. Grounded drones
 * (disarmed, or idle/landed/charging) are ignored unless they may take off (`mayTakeOff`).
 *
 * Cost: O(n·K) to predict, O(n·chunks) grid insertions, then O(K) per nearby pair; all-pairs
 * work only happens when every drone is near every other.
 */
export function detectConflicts(input: DetectInput): Conflict[] {
  return run(detectSteps(input, null)).conflicts;
}

// ---------------------------------------------------------------------------- plan checks

/** What a drone's reported motion says of a plan: it follows it, contradicts it, or cannot tell
 * (it hovers while the plan says fly: it may be accelerating, or may have stopped). */
export type PlanAgreement = "agree" | "disagree" | "unknown";
/** A moving drone whose course is further than this from the bearing to its plan's next
 * waypoint contradicts the plan, degrees. Wide enough for a drone rounding a waypoint. */
export const PLAN_HEADING_TOLERANCE_DEG = 60;
/** Waypoints closer than this horizontally count as reached (or as a climb or descent in place). */
const PLAN_ARRIVED_M = 5;
/** A leg that asks for at least this vertical speed is checked against the reported one, m/s. */
const PLAN_CLIMB_CHECK_MPS = 0.5;
/** A drone climbing or descending this much faster than its leg asks for contradicts it, m/s
 * (well above the noise of a level leg, and a landing's slower descent is never flagged). */
const PLAN_CLIMB_EXCESS_MPS = 1.5;

/**
 * Whether the drone's reported motion agrees with `path` (after `hold_s` of hovering), in the
 * fleet's frame. Heading is compared with the bearing to the first waypoint not yet reached; a
 * drone that moves during a hold, or moves while the plan is empty (hold where it is),
 * contradicts it.
 */
export function planAgreement(
  d: Pick<CoordinationDrone, "lat" | "lon" | "alt_m" | "heading_deg" | "speed_mps" | "climb_mps">,
  path: readonly LatLonAlt[],
  hold_s: number | undefined,
  config: FleetConfig,
): PlanAgreement {
  const moving = d.speed_mps >= HOVER_SPEED_MPS;
  if (hold_s !== undefined && hold_s > 0) return moving ? "disagree" : "agree";
  const f = prepare(config).frame;
  const x = f.x(d.lon);
  const y = f.y(d.lat);
  for (let i = 0; i < path.length; i++) {
    const wp = path[i]!;
    const dx = f.x(wp.lon) - x;
    const dy = f.y(wp.lat) - y;
    const dh = Math.hypot(dx, dy);
    const dz = wp.alt_m - d.alt_m;
    // At the waypoint being flown to: where the plan says, whichever way it is turning (its
    // course still points along the leg it is finishing), or slowing down at the last one.
    if (i === 0 && dh <= PLAN_ARRIVED_M && Math.abs(dz) <= PLAN_ARRIVED_M) return "agree";
    if (dh <= PLAN_ARRIVED_M && Math.abs(dz) <= PLAN_ARRIVED_M) continue;
    // The climb or descent the leg asks for (trajectory.ts's straight 3D leg), against the one
    // reported: a drone told to climb out of a conflict that stays level does not follow.
    const speed = Math.max(d.speed_mps, HOVER_SPEED_MPS);
    const wantVz = dz / Math.max(dh / speed, Math.abs(dz) / PLAN_CLIMB_MPS, 1e-9);
    if (d.climb_mps !== undefined && Math.abs(wantVz) >= PLAN_CLIMB_CHECK_MPS && d.climb_mps * Math.sign(wantVz) < Math.abs(wantVz) / 4) return "disagree";
    // And one climbing or descending much faster than the leg does (a return that climbs to its
    // floor first, an altitude change the plan does not show): its altitude soon leaves the plan's.
    if (d.climb_mps !== undefined && Math.abs(d.climb_mps) > Math.abs(wantVz) + PLAN_CLIMB_EXCESS_MPS) return "disagree";
    if (dh <= PLAN_ARRIVED_M) return "agree";
    if (!moving) return "unknown";
    const bearing = Math.atan2(dx, dy) / DEG;
    // Signed difference folded into [-180, 180).
    const diff = ((((d.heading_deg - bearing) % 360) + 540) % 360) - 180;
    return Math.abs(diff) <= PLAN_HEADING_TOLERANCE_DEG ? "agree" : "disagree";
  }
  // Nothing left to fly: the plan says hover.
  if (d.climb_mps !== undefined && Math.abs(d.climb_mps) > PLAN_CLIMB_EXCESS_MPS) return "disagree";
  return moving ? (path.length === 0 ? "disagree" : "unknown") : "agree";
}

// ---------------------------------------------------------------------------- resolution plans

/**
 * The drones as they would be with `resolution` applied: `modify_waypoint` replaces the plan with
 * the one waypoint (what the command desk records on ack), or for a drone on a mission only the
 * leg being flown (the mission goes on after it); `hold` keeps the plan and delays it. Used to
 * verify resolutions, and by callers to re-run detection on the resolved plan.
 */
export function applyResolution(drones: readonly CoordinationDrone[], resolution: Pick<Resolution, "commands">, takesEffect: "late" | "at_once" = "late"): CoordinationDrone[] {
  const byId = new Map<string, WaypointCommand | HoldCommand>();
  for (const c of resolution.commands) byId.set(c.drone_id, c);
  return drones.map((d) => {
    const c = byId.get(d.drone_id);
    if (!c) return d;
    // The drone is now predicted flying the command, not by dead reckoning as well, from when the
    // command reaches it: its sample's age plus the way to the drone (`late`), or the moment it
    // leaves the edge (`at_once`: a fast link; the drone turns sooner, which can be worse).
    const lead_s = (d.age_s ?? 0) + (takesEffect === "late" ? RESOLUTION_LEAD_S : 0);
    if (c.command === "hold") return { ...d, hold_s: c.duration_s, also_dead_reckoning: false, lead_s };
    const path = d.on_mission && d.path.length > 1 ? [c.new_waypoint, ...d.path.slice(1)] : [c.new_waypoint];
    // A new leg: flown at the drone's own speed (its intent's, else cruise), whatever its speed on
    // the leg it is leaving (a slow climb says nothing of a long level leg; `subjectsOf` checks
    // the reported speed as well).
    return { ...d, path, hold_s: 0, also_dead_reckoning: false, plan_speed_only: true, lead_s };
  });
}

type Candidate = { strategy: Strategy; commands: WaypointCommand[] | HoldCommand[]; windowS: number };

/** What resolution needs about the whole fleet: built once per planner, shared by the conflicts
 * it resolves, and updated as resolutions are committed. */
type Base = {
  config: FleetConfig;
  prep: Prepared;
  H: number;
  V: number;
  horizonS: number;
  /** Longest verification window (the longest hold plus resuming). */
  longest: number;
  airborne: CoordinationDrone[];
  index: Map<string, number>;
  /** Tracks of every airborne drone (and second predictions) over the longest window, each row
   * predicted when first needed (`ensureRow`): a resolution looks at the drones near it only. */
  base: Tracks;
  ready: Uint8Array;
  /** Per-row box over the whole base track (x0, x1, y0, y1, z0, z1), once the row is ready. */
  boxes: Float64Array;
  /** Per-row box that surely contains the row's track, known without predicting it: the drone's
   * position, every waypoint of its plan, and how far it can go otherwise. */
  coarse: Float64Array;
};

/** A conflict of the involved drones before any change: first instant (s), least horizontal and
 * vertical distances, and (pairs) those per interval (see PairHit.hk). */
type Baseline = { t: number; h: number; v: number; hk: Float32Array | null; vk: Float32Array | null };

/** Everything resolving one conflict needs. */
type Ctx = Base & {
  conflict: Conflict;
  /** Conflicts of the involved drones before any change (key → first instant, s, and the least
   * horizontal and vertical distances; zones: 0): these may persist, but not come sooner nor get
   * closer; others may not appear. */
  baseline: Map<string, Baseline>;
  /** The best unverified candidate seen so far (see `score`), for when none verifies. */
  best: { cand: Candidate; score: number } | null;
};

/**
 * A resolution being worked out, one step at a time: each step is one candidate's re-prediction
 * (the unit of work the caller's clock is checked between). The resolving functions are
 * generators that yield before each candidate; `run` drives one to its end.
 */
export type Steps<T> = Generator<void, T, void>;

/** Drive steps to their end. */
export function run<T>(g: Steps<T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/** Bounding box (x0, x1, y0, y1, z0, z1) of row i over samples k0..k1, into out[at..at+5]. */
function trackBox(tr: Tracks, i: number, k0: number, k1: number, out: Float64Array, at: number): void {
  const o = i * tr.stride;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  let z0 = Infinity;
  let z1 = -Infinity;
  for (let k = k0; k <= k1; k++) {
    const x = tr.X[o + k]!;
    const y = tr.Y[o + k]!;
    const z = tr.Z[o + k]!;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
    if (z < z0) z0 = z;
    if (z > z1) z1 = z;
  }
  // Grown by the corners the samples cut, so the broad phase keeps every pair narrow() would hit.
  const gh = tr.maxDevH[i]!;
  const gv = tr.maxDevV[i]!;
  out[at] = x0 - gh;
  out[at + 1] = x1 + gh;
  out[at + 2] = y0 - gh;
  out[at + 3] = y1 + gh;
  out[at + 4] = z0 - gv;
  out[at + 5] = z1 + gv;
}

/**
 * Conflicts of `subjects` (changed or involved drones) against everyone, within `windowS`.
 * Returns key → the pair hit (pairs) or null (zones). `second`: whether the subjects' own second
 * predictions count (yes for the baseline; no for a subject given a command, which is predicted
 * flying that command).
 */
function conflictsOf(ctx: Ctx, subjects: readonly CoordinationDrone[], windowS: number, second: boolean): Map<string, PairHit | null> {
  const out = new Map<string, PairHit | null>();
  const tr = buildTracks(subjects, ctx.prep, ctx.config.cruise_speed_mps, ctx.base.times, second);
  const kEnd = intervalsFor(ctx.base.times, windowS);
  const { H, V } = ctx;
  const own = new Float64Array(6);
  const ids = new Set(subjects.map((s) => s.drone_id));
  const B = ctx.base;
  const bx = ctx.boxes;
  const cb = ctx.coarse;
  for (let s = 0; s < tr.n; s++) {
    const sid = subjects[tr.owner[s]!]!.drone_id;
    trackBox(tr, s, 0, kEnd, own, 0);
    for (let r = 0; r < B.n; r++) {
      const o = B.owner[r]!;
      if (o < 0) continue;
      const other = ctx.airborne[o]!;
      if (ids.has(other.drone_id)) continue;
      const b = r * 6;
      if (own[0]! - H > cb[b + 1]! || cb[b]! > own[1]! + H) continue;
      if (own[2]! - H > cb[b + 3]! || cb[b + 2]! > own[3]! + H) continue;
      if (own[4]! - V > cb[b + 5]! || cb[b + 4]! > own[5]! + V) continue;
      ensureRow(ctx, r);
      if (own[0]! - H > bx[b + 1]! || bx[b]! > own[1]! + H) continue;
      if (own[2]! - H > bx[b + 3]! || bx[b + 2]! > own[3]! + H) continue;
      if (own[4]! - V > bx[b + 5]! || bx[b + 4]! > own[5]! + V) continue;
      const hit = narrow(tr, s, B, r, H, V, kEnd, ALL_CHUNKS, 1, true);
      if (hit) keepWorst(out, pairKey(sid, other.drone_id), hit);
    }
    for (let q = s + 1; q < tr.n; q++) {
      // Two predictions of the same drone (see subjectsOf) are not a pair.
      const qid = subjects[tr.owner[q]!]!.drone_id;
      if (qid === sid) continue;
      const hit = narrow(tr, s, tr, q, H, V, kEnd, ALL_CHUNKS, 1, true);
      if (hit) keepWorst(out, pairKey(sid, qid), hit);
    }
    for (const z of zoneHits(ctx.prep, ctx.config, tr, s, sid, kEnd)) out.set(z.key, null);
  }
  return out;
}

/** Two predictions of a pair (a subject's command taking effect at once and late, a drone's plan
 * and its dead reckoning) count as one conflict at its worst: the earliest start, the latest end,
 * and per interval the least distances of either. */
function keepWorst(out: Map<string, PairHit | null>, key: string, hit: PairHit): void {
  const had = out.get(key);
  if (!had) {
    out.set(key, hit);
    return;
  }
  const w: PairHit = hit.t < had.t ? { ...hit } : { ...had };
  const other = hit.t < had.t ? had : hit;
  w.tEnd = Math.max(had.tEnd, hit.tEnd);
  if (other.minH < w.minH) {
    w.minH = other.minH;
    w.kMin = other.kMin;
    w.tauMin = other.tauMin;
  }
  w.minV = Math.min(w.minV, other.minV);
  if (w.hk && w.vk && other.hk && other.vk) {
    const hk = new Float32Array(w.hk);
    const vk = new Float32Array(w.vk);
    for (let k = 0; k < hk.length && k < other.hk.length; k++) {
      if (other.hk[k]! < hk[k]!) hk[k] = other.hk[k]!;
      if (other.vk[k]! < vk[k]!) vk[k] = other.vk[k]!;
    }
    w.hk = hk;
    w.vk = vk;
  }
  out.set(key, w);
}

/** Whether the conflict under resolution is already happening now (it cannot vanish from t=0). */
function happeningNow(ctx: Ctx): boolean {
  return ctx.conflict.time_to_conflict_s <= 1e-9;
}

/** The commanded drones with `cand` applied, each predicted flying its command only, twice:
 * taking effect at once and RESOLUTION_LEAD_S later (a third time at its reported speed, when a
 * new leg would have it fly at another). When the command reaches the drone is not
 * known, and either can be the worse (a turn begun early cuts the corner towards a third drone;
 * one begun late flies on towards the other), so a candidate must work both ways. */
function subjectsOf(ctx: Base, cand: Pick<Candidate, "commands">): CoordinationDrone[] {
  const involved = new Set(cand.commands.map((c) => c.drone_id));
  const mine = ctx.airborne.filter((d) => involved.has(d.drone_id));
  const late = applyResolution(mine, cand, "late");
  const out = [...late, ...applyResolution(mine, cand, "at_once")];
  // A drone moving at another speed than it will fly its new leg may take a while to change it:
  // that too.
  const cruise = ctx.config.cruise_speed_mps;
  for (const d of late) if (d.plan_speed_only && isMoving(d.speed_mps) && Math.abs(d.speed_mps - planSpeedMps(d, cruise)) > 1) out.push({ ...d, plan_speed_only: false });
  return out;
}

/** Whether `cand` fixes the conflict without causing a new one. */
function verify(ctx: Ctx, cand: Candidate): boolean {
  return score(ctx, cand) === Infinity;
}

/**
 * How good `cand` is: Infinity when it fixes the conflict and causes no new one nor makes an
 * existing one sooner (verified); otherwise, if it fixes the conflict, the earliest instant of the
 * conflicts it leaves or causes (later is less bad: there is time to resolve those next); -1 when
 * it does not fix the conflict. The best unverified candidate is remembered in `ctx.best`.
 */
function score(ctx: Ctx, cand: Candidate): number {
  const subjects = subjectsOf(ctx, cand);
  const found = conflictsOf(ctx, subjects, cand.windowS, false);
  let worst = Infinity;
  for (const [key, hit] of found) {
    if (key === ctx.conflict.key) {
      if (!happeningNow(ctx)) return -1;
      // Already in conflict: the plan must end it well before the window closes.
      if (hit) {
        if (hit.tEnd > cand.windowS - DEFAULT_STEP_S) return -1;
      } else if (!leavesViolation(ctx, subjects, cand.windowS)) {
        return -1;
      }
      continue;
    }
    const before = ctx.baseline.get(key);
    const t = hit ? hit.t : 0;
    // A conflict that was there already may stay, unless the change brings it forward or closer.
    if (before !== undefined && t >= before.t - DEFAULT_STEP_S / 2 && (!hit || noCloser(ctx, hit, before))) continue;
    worst = Math.min(worst, t);
  }
  if (worst !== Infinity && (!ctx.best || worst > ctx.best.score)) ctx.best = { cand, score: worst };
  return worst;
}

/**
 * Whether a conflict that was there before the change (`before`) is no closer with it (`hit`):
 * compared moment by moment where the baseline has that pair in conflict too (within a step
 * either side: a change may shift an encounter a little), so a near miss now is not made a real
 * loss now because the same pair meets more closely half a minute later; an encounter the change
 * moved to a moment the baseline has none is compared with the baseline's closest. Either way a
 * near miss of the grown minima must not become a real conflict.
 */
function noCloser(ctx: Ctx, hit: PairHit, before: Baseline): boolean {
  if (!hit.hk || !hit.vk || !before.hk || !before.vk) return hit.minH >= before.h - 2 && hit.minV >= before.v - 1 && !(becomesReal(ctx, hit) && !becomesReal(ctx, before));
  const Hr = ctx.config.separation.horizontal_m;
  const Vr = ctx.config.separation.vertical_m;
  const realBefore = becomesReal(ctx, before);
  const n = before.hk.length;
  for (let k = 0; k < hit.hk.length; k++) {
    const h = hit.hk[k]!;
    if (!(h < Infinity)) continue;
    const v = hit.vk[k]!;
    let bh = Infinity;
    let bv = Infinity;
    for (let j = Math.max(0, k - 1); j <= k + 1 && j < n; j++) {
      if (before.hk[j]! < bh) bh = before.hk[j]!;
      if (before.vk[j]! < bv) bv = before.vk[j]!;
    }
    const real = h < Hr && v < Vr;
    if (bh < Infinity) {
      if (h < bh - 2 || v < bv - 1 || (real && !(bh < Hr && bv < Vr))) return false;
    } else if (h < before.h - 2 || v < before.v - 1 || (real && !realBefore)) return false;
  }
  return true;
}

/** Whether a conflict of the grown minima also breaks the real ones (roughly: both of its least
 * distances under them). */
function becomesReal(ctx: Ctx, h: { minH: number; minV: number } | { h: number; v: number }): boolean {
  const [dh, dv] = "minH" in h ? [h.minH, h.minV] : [h.h, h.v];
  return dh < ctx.config.separation.horizontal_m && dv < ctx.config.separation.vertical_m;
}

/** For a zone breach happening now: whether the subject ends the window out of the zone. */
function leavesViolation(ctx: Ctx, subjects: readonly CoordinationDrone[], windowS: number): boolean {
  const ds = subjects.filter((s) => ctx.conflict.drone_ids.includes(s.drone_id));
  if (ds.length === 0) return false;
  const k = intervalsFor(ctx.base.times, windowS);
  return ds.every((d) => {
    const tr = buildTracks([d], ctx.prep, ctx.config.cruise_speed_mps, ctx.base.times, false);
    const p = { x_m: tr.X[k]!, y_m: tr.Y[k]! };
    const z = tr.Z[k]!;
    if (ctx.conflict.event_type === "geofence_proximity") {
      return pointInPolygonLocal(p, ctx.prep.fence) && z <= ctx.config.ceiling_m;
    }
    const zone = ctx.prep.zones.find((zz) => zz.zone.id === ctx.conflict.zone_id);
    return !zone || !(z >= zone.floor && z <= zone.ceiling && pointInPolygonLocal(p, zone.poly));
  });
}

function positionOk(wp: Waypoint, config: FleetConfig): boolean {
  // The same position rules the command desk applies to every modify_waypoint.
  return checkPosition(wp, config, { suggest: false }).ok;
}

function clampAlt(alt: number, config: FleetConfig): number {
  return Math.min(config.ceiling_m, Math.max(config.floor_m, alt));
}

/** Horizontal unit direction a drone is travelling in, and how far it means to go. */
function travel(ctx: Ctx, d: CoordinationDrone): { x: number; y: number; ux: number; uy: number; dist: number } {
  const f = ctx.prep.frame;
  const x = f.x(d.lon);
  const y = f.y(d.lat);
  const next = d.path[0];
  if (next) {
    const dx = f.x(next.lon) - x;
    const dy = f.y(next.lat) - y;
    const dist = Math.hypot(dx, dy);
    if (dist > 1) return { x, y, ux: dx / dist, uy: dy / dist, dist };
  }
  const h = d.heading_deg * DEG;
  const moving = d.speed_mps >= HOVER_SPEED_MPS;
  return { x, y, ux: Math.sin(h), uy: Math.cos(h), dist: moving && !next ? d.speed_mps * ctx.horizonS : 0 };
}

function waypointAt(ctx: Ctx, x: number, y: number, alt: number): Waypoint {
  return { ...toLatLon(ctx.prep, x, y), alt_m: alt };
}

/** Lowest and highest altitude of every prediction of drone `id` over the horizon. */
function altitudeRange(ctx: Ctx, id: string): { lo: number; hi: number } {
  const j = ctx.index.get(id)!;
  const kEnd = intervalsFor(ctx.base.times, ctx.horizonS);
  let lo = Infinity;
  let hi = -Infinity;
  for (let r = 0; r < ctx.base.n; r++) {
    if (ctx.base.owner[r] !== j) continue;
    ensureRow(ctx, r);
    const o = r * ctx.base.stride;
    for (let k = 0; k <= kEnd; k++) {
      lo = Math.min(lo, ctx.base.Z[o + k]!);
      hi = Math.max(hi, ctx.base.Z[o + k]!);
    }
  }
  return { lo, hi };
}

/** `mover` climbs above or descends below everything `other` does over the horizon, by
 * vertical_m + margin, keeping as much of its course as the verification allows. */
function* verticalCandidates(ctx: Ctx, mover: CoordinationDrone, other: CoordinationDrone): Generator<Candidate> {
  const range = altitudeRange(ctx, other.drone_id);
  const gap = ctx.V + SAFETY_MARGIN_M;
  const up = range.hi + gap;
  const down = range.lo - gap;
  const alts = (mover.alt_m >= other.alt_m ? [up, down] : [down, up]).filter(
    (a) => a <= ctx.config.ceiling_m && a >= ctx.config.floor_m,
  );
  const t = travel(ctx, mover);
  for (const alt of alts) {
    // Furthest first: a waypoint on the course keeps progress; nearer ones climb more steeply
    // (the prediction interpolates altitude along the leg).
    for (const f of [1, 0.5, 0.25, 0.1, 0]) {
      const wp = waypointAt(ctx, t.x + t.ux * t.dist * f, t.y + t.uy * t.dist * f, alt);
      if (!positionOk(wp, ctx.config)) continue;
      const verb = alt > mover.alt_m ? "climb" : "descend";
      yield {
        strategy: "vertical_separation",
        windowS: ctx.horizonS,
        commands: [
          {
            drone_id: mover.drone_id,
            command: "modify_waypoint",
            new_waypoint: wp,
            reason: `coordination ${ctx.conflict.key}: ${verb} to ${alt.toFixed(0)} m for vertical separation from ${other.drone_id}`,
          },
        ],
      };
    }
  }
}

function* holdCandidates(ctx: Ctx, holders: readonly CoordinationDrone[], why: string): Generator<Candidate> {
  if (holders.length === 0) return;
  for (const duration_s of HOLD_STEPS_S) {
    yield {
      strategy: "hold",
      windowS: Math.max(ctx.horizonS, duration_s + RESUME_WINDOW_S),
      commands: holders.map((d) => ({
        drone_id: d.drone_id,
        command: "hold" as const,
        duration_s,
        reason: `coordination ${ctx.conflict.key}: hold ${duration_s} s ${why}`,
      })),
    };
  }
}

/** `mover` sidesteps: its next waypoint (or where it would be at the conflict) moved
 * perpendicular to its course by horizontal_m + margin, away from `other` first. */
function* lateralCandidates(ctx: Ctx, mover: CoordinationDrone, other: CoordinationDrone): Generator<Candidate> {
  const t = travel(ctx, mover);
  const f = ctx.prep.frame;
  const rx = f.x(other.lon) - t.x;
  const ry = f.y(other.lat) - t.y;
  // Other drone on the left (or dead ahead): step right, as the rules of the air have it.
  const leftOfUs = t.ux * ry - t.uy * rx >= 0;
  const right = { x: t.uy, y: -t.ux };
  const sides = leftOfUs ? [1, -1] : [-1, 1];
  const j = ctx.index.get(mover.drone_id)!;
  ensureRow(ctx, j);
  const kc = Math.min(ctx.base.K, Math.round(ctx.conflict.time_to_conflict_s / (ctx.base.times[1]! - ctx.base.times[0]!)));
  const anchors = [
    { x: t.x + t.ux * t.dist, y: t.y + t.uy * t.dist },
    { x: ctx.base.X[j * ctx.base.stride + kc]!, y: ctx.base.Y[j * ctx.base.stride + kc]! },
  ];
  const alt = clampAlt(mover.path[0]?.alt_m ?? mover.alt_m, ctx.config);
  for (const m of [1, 2, 3]) {
    const off = m * (ctx.H + SAFETY_MARGIN_M);
    for (const side of sides) {
      for (const a of anchors) {
        const wp = waypointAt(ctx, a.x + right.x * side * off, a.y + right.y * side * off, alt);
        if (!positionOk(wp, ctx.config)) continue;
        yield {
          strategy: "lateral_reroute",
          windowS: ctx.horizonS,
          commands: [
            {
              drone_id: mover.drone_id,
              command: "modify_waypoint",
              new_waypoint: wp,
              reason: `coordination ${ctx.conflict.key}: sidestep ${off.toFixed(0)} m ${side > 0 ? "right" : "left"} of course to pass ${other.drone_id}`,
            },
          ],
        };
      }
    }
  }
}

/** A waypoint a safe distance back inside the geofence / outside the no-fly zone, from the
 * breach point (or from where the drone is, if it is already across). */
function* returnCandidates(ctx: Ctx, d: CoordinationDrone): Generator<Candidate> {
  const c = ctx.conflict;
  const geofence = c.event_type === "geofence_proximity";
  const zone = geofence ? null : ctx.prep.zones.find((z) => z.zone.id === c.zone_id);
  const poly = geofence ? ctx.prep.fence : zone?.poly;
  if (!poly) return;
  const f = ctx.prep.frame;
  const from = c.time_to_conflict_s <= 1e-9 ? d : c.at;
  const base: LocalPoint = { x_m: f.x(from.lon), y_m: f.y(from.lat) };
  // Keep off the ceiling by the margin too, in case the breach was a climb.
  const alt = Math.max(ctx.config.floor_m, Math.min(d.alt_m, ctx.config.ceiling_m - SAFETY_MARGIN_M));
  for (const scale of [1, 2, 4]) {
    const p = moveToSideLocal(base, poly, geofence, scale * (ctx.H + SAFETY_MARGIN_M));
    if (!p) continue;
    const wp = waypointAt(ctx, p.x_m, p.y_m, alt);
    if (!positionOk(wp, ctx.config)) continue;
    yield {
      strategy: "return_inside",
      windowS: ctx.horizonS,
      commands: [
        {
          drone_id: d.drone_id,
          command: "modify_waypoint",
          new_waypoint: wp,
          reason: geofence
            ? `coordination ${c.key}: stay ${(scale * (ctx.H + SAFETY_MARGIN_M)).toFixed(0)} m inside the geofence`
            : `coordination ${c.key}: stay ${(scale * (ctx.H + SAFETY_MARGIN_M)).toFixed(0)} m clear of no-fly zone ${c.zone_id ?? ""}`,
        },
      ],
    };
  }
}

function* firstVerified(ctx: Ctx, gens: Iterable<Candidate>[]): Steps<Candidate | null> {
  for (const g of gens)
    for (const c of g) {
      yield;
      if (verify(ctx, c)) return c;
    }
  return null;
}

function firstOf(gens: Iterable<Candidate>[]): Candidate | null {
  for (const g of gens) for (const c of g) return c;
  return null;
}

/** The planner's picture, in steps of BUILD_STEP_DRONES drones (a thousand drones: ~5 ms in
 * Node, 15–20 ms in a loaded workerd). */
function* buildBase(drones: readonly CoordinationDrone[], config: FleetConfig, opts: CoordinationOptions): Steps<Base> {
  const horizonS = opts.horizonS && opts.horizonS > 0 ? opts.horizonS : DEFAULT_HORIZON_S;
  const prep = prepare(config);
  const airborne = drones.filter(isAirborne).map(asPredicted);
  // Long enough for the longest hold plus resuming.
  const longest = Math.max(horizonS, HOLD_STEPS_S[HOLD_STEPS_S.length - 1]! + RESUME_WINDOW_S);
  const times = timeline(longest, opts.stepS ?? DEFAULT_STEP_S);
  const second = yield* secondRows(airborne, prep, config.cruise_speed_mps);
  if (airborne.length > BUILD_STEP_DRONES) yield;
  const base = buildTracks(airborne, prep, config.cruise_speed_mps, times, second, true);
  const coarse = new Float64Array(base.n * 6);
  const horizon = times[times.length - 1]!;
  for (let r = 0; r < base.n; r++) {
    if (r > 0 && r % BUILD_STEP_DRONES === 0) yield;
    coarseBox(base.row[r]!, prep, config.cruise_speed_mps, horizon, coarse, r * 6);
  }
  return {
    config,
    prep,
    H: config.separation.horizontal_m * VERIFY_BUFFER.horizontal,
    V: config.separation.vertical_m * VERIFY_BUFFER.vertical,
    horizonS,
    longest,
    airborne,
    index: new Map(airborne.map((d, i) => [d.drone_id, i])),
    base,
    ready: new Uint8Array(base.n),
    boxes: new Float64Array(base.n * 6),
    coarse,
  };
}

/** A box (x0, x1, y0, y1, z0, z1) that holds `d`'s whole predicted track up to `horizon`
 * (trajectory.ts's rule), without predicting it: its plan's waypoints, or how far its heading and
 * speed take it, the climb for CLIMB_EXTRAPOLATION_S, a command on its way (`lead_s`: the drone
 * goes on as it is until then, outside its plan's box), and 1 m slack. */
function coarseBox(d: CoordinationDrone, prep: Prepared, cruise: number, horizon: number, out: Float64Array, at: number): void {
  const f = prep.frame;
  const age = d.age_s !== undefined && d.age_s > 0 && Number.isFinite(d.age_s) ? Math.min(d.age_s, MAX_SAMPLE_AGE_S) : 0;
  const lead = d.lead_s !== undefined && d.lead_s > 0 ? Math.min(d.lead_s, CLIMB_EXTRAPOLATION_S) : 0;
  const speed = Math.abs(d.speed_mps ?? 0);
  const climbRate = Math.abs(d.climb_mps ?? 0);
  let x0 = f.x(d.lon);
  let y0 = f.y(d.lat);
  let z0 = d.alt_m;
  let x1 = x0;
  let y1 = y0;
  let z1 = z0;
  // With a plan the drone moves on its own only while a command is on its way; without one it
  // is dead-reckoned over the horizon (and the lead before a hold).
  const reach = speed * (d.path.length > 0 ? lead : horizon + age + lead);
  const climb = climbRate * (d.path.length > 0 ? lead : CLIMB_EXTRAPOLATION_S + age + lead);
  x0 -= reach;
  x1 += reach;
  y0 -= reach;
  y1 += reach;
  z0 -= climb;
  z1 += climb;
  for (const w of d.path) {
    const x = f.x(w.lon);
    const y = f.y(w.lat);
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
    if (w.alt_m < z0) z0 = w.alt_m;
    if (w.alt_m > z1) z1 = w.alt_m;
  }
  out[at] = x0 - 1;
  out[at + 1] = x1 + 1;
  out[at + 2] = y0 - 1;
  out[at + 3] = y1 + 1;
  out[at + 4] = z0 - 1;
  out[at + 5] = z1 + 1;
}

/** The box coarseBox gives `d` (for tests: it must hold every knot of the drone's predicted track). */
export function coarseBoxFor(d: CoordinationDrone, config: FleetConfig, horizonS: number): Float64Array {
  const out = new Float64Array(6);
  coarseBox(d, prepare(config), config.cruise_speed_mps, horizonS, out, 0);
  return out;
}

/** Predict row r of the planner's base now, if it is not yet. */
function ensureRow(b: Base, r: number): void {
  if (b.ready[r]) return;
  const d = b.base.row[r]!;
  if (scratchTimes.length < b.base.stride) scratchTimes = new Float64Array(b.base.stride);
  // Exactly one row's worth of instants: predictRow samples as many as it is given.
  scratchKnots = predictRow(b.base, r, d, b.prep, b.config.cruise_speed_mps, scratchKnots, scratchTimes.subarray(0, b.base.stride));
  trackBox(b.base, r, 0, b.base.K, b.boxes, r * 6);
  b.ready[r] = 1;
}

function contextFor(b: Base, conflict: Conflict): Ctx {
  const ctx: Ctx = { ...b, conflict, baseline: new Map(), best: null };
  const involved = b.airborne.filter((d) => conflict.drone_ids.includes(d.drone_id));
  // Predicted as candidates predict them (by their plans, not a second time by dead reckoning),
  // so that "the change made it worse" compares like with like.
  for (const [key, hit] of conflictsOf(ctx, involved, b.longest, false)) {
    ctx.baseline.set(key, hit ? { t: hit.t, h: hit.minH, v: hit.minV, hk: hit.hk, vk: hit.vk } : { t: 0, h: 0, v: 0, hk: null, vk: null });
  }
  return ctx;
}

/** The drone that gives way: one without right of way before one with it, then lower priority,
 * then at equal priority the larger id. */
function yielderFirst(a: CoordinationDrone, b: CoordinationDrone): [CoordinationDrone, CoordinationDrone] {
  const ra = urgency(a);
  const rb = urgency(b);
  if (ra !== rb) return ra < rb ? [a, b] : [b, a];
  const pa = a.priority ?? 0;
  const pb = b.priority ?? 0;
  if (pa !== pb) return pa < pb ? [a, b] : [b, a];
  return a.drone_id > b.drone_id ? [a, b] : [b, a];
}

/** How strongly a drone keeps its course: 0 without right of way, then by RIGHT_OF_WAY's order
 * reversed (an emergency outranks everything). */
function urgency(d: CoordinationDrone): number {
  return d.right_of_way ? RIGHT_OF_WAY.length - RIGHT_OF_WAY.indexOf(d.right_of_way) : 0;
}

/** Right of way that still accepts a hold when the other drone's right is stronger: a returning
 * drone can loiter for a few seconds (relays refuse it new waypoints, not a hold); one that
 * lands or is in an emergency cannot. */
const MAY_HOLD_WHEN_OUTRANKED: ReadonlySet<RightOfWay> = new Set<RightOfWay>(["returning", "low_battery"]);

/** Options of one `choose`: the operator's strategy, what must not be chosen, and why (for the
 * reason given when nothing can be). */
export type ChooseOptions = { override?: OverrideStrategy; exclude?: Exclusions; why?: ReadonlyMap<string, string> };

/**
 * Resolution over one fleet picture, for several conflicts in a row: the fleet's tracks are
 * predicted once (the expensive part: ~1,000 drones × 76 samples), each `choose` only adds what
 * its conflict needs, and `commit` makes a chosen resolution part of the picture, so the next
 * conflict is resolved around it (two resolutions never send two drones to the same new
 * altitude). The fleet object builds one per detection pass, and only when something needs it.
 */
export class ResolutionPlanner {
  private readonly b: Base;

  /** `base`: a picture `build` made in steps (then `drones` and `config` are not read). */
  constructor(drones: readonly CoordinationDrone[], config: FleetConfig, opts: CoordinationOptions = {}, base?: Base) {
    this.b = base ?? run(buildBase(drones, config, opts));
  }

  /** The constructor as steps (BUILD_STEP_DRONES drones each), to be driven across turns as
   * `steps` is: the planner is the same. */
  static *build(drones: readonly CoordinationDrone[], config: FleetConfig, opts: CoordinationOptions = {}): Steps<ResolutionPlanner> {
    const base = yield* buildBase(drones, config, opts);
    return new ResolutionPlanner(drones, config, opts, base);
  }

  /** The airborne drones as the planner now sees them (committed resolutions applied). */
  drones(): readonly CoordinationDrone[] {
    return this.b.airborne;
  }

  /** See `chooseResolution`. */
  choose(conflict: Conflict, opts: ChooseOptions = {}): Resolution {
    return run(this.steps(conflict, opts));
  }

  /**
   * `choose`, or null when `overBudget` says so before one of the candidates is verified: the
   * caller's time is up, and the conflict waits for a later pass. What it would choose with the
   * time is what `choose` chooses; stopping changes nothing in the picture.
   */
  chooseWithin(conflict: Conflict, opts: ChooseOptions, overBudget: () => boolean): Resolution | null {
    const g = this.steps(conflict, opts);
    for (;;) {
      const r = g.next();
      if (r.done) return r.value;
      if (overBudget()) return null;
    }
  }

  /**
   * `choose` as steps (one per candidate re-predicted), to be driven across turns: what it
   * returns at its end is what `choose` returns, as long as nothing is committed to this planner
   * while it runs. Nothing is computed before the first `next()`.
   */
  *steps(conflict: Conflict, opts: ChooseOptions = {}): Steps<Resolution> {
    return yield* choose(contextFor(this.b, conflict), opts);
  }

  /** Make `r`'s commands part of the picture. */
  commit(r: Pick<Resolution, "commands">): void {
    const b = this.b;
    if (r.commands.length === 0) return;
    // The picture keeps one prediction per drone: the command taking effect late (as verified).
    const involved = new Set(r.commands.map((c) => c.drone_id));
    const changed = applyResolution(b.airborne.filter((d) => involved.has(d.drone_id)), r, "late");
    for (const d of changed) {
      const i = b.index.get(d.drone_id);
      if (i === undefined) continue;
      b.airborne[i] = d;
      b.base.row[i] = d;
      repredictRow(b.base, i, d, b.prep, b.config.cruise_speed_mps);
      trackBox(b.base, i, 0, b.base.K, b.boxes, i * 6);
      b.ready[i] = 1;
      coarseBox(d, b.prep, b.config.cruise_speed_mps, b.base.times[b.base.K]!, b.coarse, i * 6);
      // A commanded drone is predicted flying its command only.
      for (let r2 = b.airborne.length; r2 < b.base.n; r2++) if (b.base.owner[r2] === i) b.base.owner[r2] = -1;
    }
  }
}

/** Who may be commanded, and with which strategies. */
function allowed(d: CoordinationDrone, exclude: Exclusions | undefined, strategy?: Strategy): boolean {
  if (d.right_of_way) return false;
  if (!exclude) return true;
  if (exclude.has(d.drone_id)) return false;
  return strategy === undefined || !exclude.has(`${d.drone_id}:${strategy}`);
}

function whyNot(ds: readonly CoordinationDrone[], exclude: Exclusions | undefined, why: ReadonlyMap<string, string> | undefined): string {
  return ds
    .map((d) =>
      d.right_of_way
        ? `${d.drone_id} has the right of way (${d.right_of_way.replace("_", " ")})`
        : exclude?.has(d.drone_id)
          ? `${d.drone_id} may not be commanded (${why?.get(d.drone_id) ?? "excluded"})`
          : `no resolution for ${d.drone_id} verifies`,
    )
    .join("; ");
}

function* choose(ctx: Ctx, opts: ChooseOptions): Steps<Resolution> {
  const { override, exclude } = opts;
  const whyNot_ = (ds: readonly CoordinationDrone[]) => whyNot(ds, exclude, opts.why);
  const conflict = ctx.conflict;
  const involved = conflict.drone_ids.map((id) => ctx.airborne[ctx.index.get(id) ?? -1]);
  if (involved.length === 0 || involved.some((d) => d === undefined)) return { strategy: "hold", commands: [], verified: true };
  const done = (c: Candidate, verified: boolean, reason?: string): Resolution => ({
    strategy: c.strategy,
    commands: c.commands,
    verified,
    ...(reason ? { reason } : {}),
  });
  const nothing = (ds: readonly CoordinationDrone[]): Resolution => ({ strategy: "hold", commands: [], verified: false, reason: whyNot_(ds) });
  const only = (s: Strategy, d: CoordinationDrone, g: () => Iterable<Candidate>): Iterable<Candidate> => (allowed(d, exclude, s) ? g() : []);

  if (involved.length === 1) {
    const d = involved[0]!;
    const ret = () => only("return_inside", d, () => returnCandidates(ctx, d));
    const hold = () => only("hold", d, () => holdCandidates(ctx, [d], "short of the zone"));
    const order = override === "hold" ? [hold(), ret()] : [ret(), hold()];
    const ok = yield* firstVerified(ctx, order);
    if (ok) return done(ok, true);
    const fallback = firstOf(override === "hold" ? [hold(), ret()] : [ret(), hold()]);
    return fallback ? done(fallback, false, whyNot_([d])) : nothing([d]);
  }

  const [y, k] = yielderFirst(involved[0]!, involved[1]!);
  const gen: Record<OverrideStrategy, (m: CoordinationDrone, o: CoordinationDrone) => Iterable<Candidate>> = {
    vertical_separation: (m, o) => only("vertical_separation", m, () => verticalCandidates(ctx, m, o)),
    hold: (m, o) => only("hold", m, () => holdCandidates(ctx, [m], `while ${o.drone_id} passes`)),
    lateral_reroute: (m, o) => only("lateral_reroute", m, () => lateralCandidates(ctx, m, o)),
  };
  if (override) {
    const ok = yield* firstVerified(ctx, [gen[override](y, k), gen[override](k, y)]);
    if (ok) return done(ok, true);
    const any = firstOf([gen[override](y, k), gen[override](k, y)]);
    if (any) return done(any, false, "the operator's strategy could not be verified");
  }
  const holders = [y, k].filter((d) => allowed(d, exclude, "hold"));
  const order = (): Iterable<Candidate>[] => [
    gen.vertical_separation(y, k),
    gen.hold(y, k),
    gen.lateral_reroute(y, k),
    gen.vertical_separation(k, y),
    gen.hold(k, y),
    gen.lateral_reroute(k, y),
    holders.length === 2 ? holdCandidates(ctx, holders, "until the conflict clears") : [],
  ];
  const ok = yield* firstVerified(ctx, order());
  if (ok) return done(ok, true);
  // Nothing fixes it without a new conflict: the candidate whose remaining conflicts come
  // latest, when there is time to resolve those next (a stop in another drone's path is worse).
  if (ctx.best && ctx.best.score >= MIN_LEAD_FOR_NEXT_S) {
    return done(ctx.best.cand, false, `the best resolution leaves another conflict in ${ctx.best.score.toFixed(0)} s, to be resolved next`);
  }
  // Both have the right of way: the less urgent one holds if it can (two drones returning home
  // across each other's path: one loiters a few seconds rather than both carry on).
  if (y.right_of_way && k.right_of_way && MAY_HOLD_WHEN_OUTRANKED.has(y.right_of_way) && urgency(y) <= urgency(k) && !exclude?.has(y.drone_id) && !exclude?.has(`${y.drone_id}:hold`)) {
    const why = `while ${k.drone_id} (${k.right_of_way.replace("_", " ")}) passes; both have the right of way`;
    // Only a hold shown to work: an unverified one may stop it in a third drone's way.
    const held = yield* firstVerified(ctx, [holdCandidates(ctx, [y], why)]);
    if (held) return done(held, true);
  }
  // Nothing keeps the grown minima (the pair is already inside them, or about to be): the same
  // candidates against the minima themselves, the margin given up rather than the separation.
  const strict = strictContext(ctx);
  const fine = yield* firstVerified(strict, order());
  if (fine) return done(fine, false, `${whyNot_([y, k])}; the resolution keeps the separation minima only without the margin`);
  // Stopping what may be stopped is the least bad thing left, when it is less bad than carrying
  // on: a stop can freeze a drone in a third one's way, or short of the minima, so each stop is
  // re-predicted and only one that puts the first loss of separation later than no command does
  // is sent.
  const stops = [holders, ...holders.map((d) => [d])].filter((hs) => hs.length > 0);
  const last = yield* leastHarm(strict, stops.map((hs) => holdCandidates(ctx, hs, hs.length === 2 ? "until the conflict clears" : "until the conflict clears (the other drone cannot be moved)")));
  if (last) return done(last, false, whyNot_([y, k]));
  const r = nothing([y, k]);
  return holders.length > 0 ? { ...r, reason: `${r.reason}; stopping would bring a loss of separation sooner` } : r;
}

/** `ctx` with the real separation minima instead of the grown ones, and its own baseline. */
function strictContext(ctx: Ctx): Ctx {
  return contextFor({ ...ctx, H: ctx.config.separation.horizontal_m, V: ctx.config.separation.vertical_m }, ctx.conflict);
}

/** Stop durations the least-harm choice looks at (the shortest first), and how much shallower
 * (in shares of the minima) a loss it cannot move later must become for a stop to be sent. */
const LEAST_HARM_HOLDS = 3;
const LEAST_HARM_DEPTH = 0.05;

/**
 * Of hold candidates that cannot be shown to work, the one whose first loss of separation (any
 * pair of the held drones, or the conflict itself) comes latest, or as soon but shallower, if that
 * beats no command (later by more than a pass, or clearly shallower); null otherwise. `ctx`
 * carries the real minima.
 */
function* leastHarm(ctx: Ctx, gens: Iterable<Candidate>[]): Steps<Candidate | null> {
  // The first loss (seconds) and how deep the worst one goes: the larger of its least horizontal
  // and vertical distances as shares of the minima (1: at the limit, 0: a collision).
  const harm = (found: Map<string, PairHit | null>) => {
    let t = Infinity;
    let depth = 1;
    for (const hit of found.values()) {
      t = Math.min(t, hit ? hit.t : 0);
      depth = Math.min(depth, hit ? Math.max(hit.minH / ctx.H, hit.minV / ctx.V) : 0);
    }
    return { t, depth };
  };
  const better = (a: { t: number; depth: number }, b: { t: number; depth: number }) =>
    a.t > b.t + DETECT_PASS_S || (a.t >= b.t - 0.1 && a.depth > b.depth + LEAST_HARM_DEPTH);
  // No command: the involved drones as they are, both predictions of an unsure one counting; and
  // by their plans alone. A stop is sent only if it beats both: one that helps only if the drone
  // is not doing what it says (dead reckoning on a sample taken in a turn) freezes it in the way
  // of a drone it would have passed.
  const involved = ctx.airborne.filter((d) => ctx.conflict.drone_ids.includes(d.drone_id));
  const none = harm(conflictsOf(ctx, involved, ctx.horizonS, true));
  const byPlan = harm(conflictsOf(ctx, involved, ctx.horizonS, false));
  let best: { cand: Candidate; h: { t: number; depth: number } } | null = null;
  for (const g of gens) {
    let n = 0;
    for (const cand of g) {
      if (n++ >= LEAST_HARM_HOLDS) break;
      yield;
      const h = harm(conflictsOf(ctx, subjectsOf(ctx, cand), cand.windowS, false));
      if (!best || better(h, best.h)) best = { cand, h };
    }
  }
  return best && better(best.h, none) && !better(byPlan, best.h) && byPlan.t < Infinity ? best.cand : null;
}

/**
 * Commands that fix `conflict`, verified by re-predicting every drone with them applied (each
 * drone the edge is unsure about by both its predictions).
 *
 * Pairs, by default: the yielding drone (one without right of way before one with it; then lower
 * priority; at equal priority the larger id) climbs or descends clear of the other by
 * vertical_m + 5 m within floor/ceiling; failing that (no room, or it would not work) it holds;
 * then it sidesteps; then the same for the other drone; last, both hold (`verified: false` if
 * even that cannot be shown to work). Zone breaches: `return_inside`, else hold. `override` puts
 * the operator's strategy first; if none of its candidates verifies, its first valid candidate is
 * returned with `verified: false` (the operator decided), and only when it has no valid candidate
 * at all does the default apply.
 *
 * A drone with `right_of_way`, or excluded by `exclude`, is never commanded (nor with an excluded
 * strategy): the other drone moves; when no drone may move the result has no commands, `verified:
 * false` and a `reason` for the operator.
 *
 * Every new waypoint passes the command desk's position rules (geofence, no-fly, floor/ceiling).
 * Grounded or unknown drones need no command: the result is then an empty hold.
 */
export function chooseResolution(
  conflict: Conflict,
  drones: readonly CoordinationDrone[],
  config: FleetConfig,
  override?: OverrideStrategy,
  opts: CoordinationOptions & { exclude?: Exclusions } = {},
): Resolution {
  return new ResolutionPlanner(drones, config, opts).choose(conflict, { ...(override ? { override } : {}), ...(opts.exclude ? { exclude: opts.exclude } : {}) });
}

// ---------------------------------------------------------------------------- resolution check

/** What a conflict key names. */
export type ParsedConflictKey =
  | { kind: "pair"; drone_ids: [string, string] }
  | { kind: "geofence"; drone_id: string }
  | { kind: "no_fly"; drone_id: string; zone_id: string };

/** Split a `Conflict.key` into its parts, or null if it is not one. */
export function parseConflictKey(key: string): ParsedConflictKey | null {
  const bar = key.indexOf("|");
  if (bar <= 0 || bar === key.length - 1) return null;
  const a = key.slice(0, bar);
  const rest = key.slice(bar + 1);
  if (rest === "@geofence") return { kind: "geofence", drone_id: a };
  if (rest.startsWith("@no_fly:")) return { kind: "no_fly", drone_id: a, zone_id: rest.slice("@no_fly:".length) };
  if (rest.includes("|") || rest.startsWith("@")) return null;
  return { kind: "pair", drone_ids: [a, rest] };
}

/**
 * Whether the conflict named by `conflictKey` is over: the drones are within limits now and no
 * conflict of that key is predicted within a short horizon (10 s by default). A grounded drone
 * that is not about to take off (`mayTakeOff`) ends its conflicts; a drone missing from `drones` (no telemetry) does not, because nothing is
 * known about where it is.
 */
export function isResolved(
  conflictKey: string,
  drones: readonly CoordinationDrone[],
  config: FleetConfig,
  opts: CoordinationOptions = {},
): boolean {
  const parsed = parseConflictKey(conflictKey);
  if (!parsed) return false;
  const ids = parsed.kind === "pair" ? parsed.drone_ids : [parsed.drone_id];
  const involved: CoordinationDrone[] = [];
  for (const id of ids) {
    const d = drones.find((x) => x.drone_id === id);
    if (!d) return false;
    if (!isAirborne(d)) return true;
    involved.push(asPredicted(d));
  }
  const found = detectConflicts({
    drones: involved,
    config,
    horizonS: opts.horizonS ?? RESOLVED_HORIZON_S,
    stepS: opts.stepS ?? DEFAULT_STEP_S,
    now: 0,
  });
  return !found.some((c) => c.key === conflictKey);
}

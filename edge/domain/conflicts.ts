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
  makeLocalFrame,
  moveToSideLocal,
  nearestOnBoundaryLocal,
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
  PREDICTION_HORIZON_S,
  newTrack,
  predictTrack,
  sampleTrack,
  separationWindow,
  type Track,
} from "./trajectory";

// ------------------------------------------------------------------------------------ types

/** What coordination needs to know about one drone: telemetry plus its remaining plan. It is a
 * `MotionState` (trajectory.ts), predicted by the same rule as the waypoint safety check. */
export type CoordinationDrone = Pick<
  TelemetrySample,
  "drone_id" | "lat" | "lon" | "alt_m" | "heading_deg" | "speed_mps" | "climb_mps" | "status" | "armed"
> & {
  /** Remaining planned waypoints in order; empty: dead reckoning on heading and speed. */
  path: readonly Waypoint[];
  /** Right of way: the higher number keeps its course. Default 0. */
  priority?: number;
  /** The drone is holding position for this many more seconds before it follows its plan. */
  hold_s?: number;
};

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
   * False only for an operator override that cannot be verified, or a last-resort hold. */
  verified: boolean;
};

/** Options shared by resolution and resolution checks. */
export type CoordinationOptions = { horizonS?: number; stepS?: number };

// -------------------------------------------------------------------------------- constants

export const DEFAULT_HORIZON_S = PREDICTION_HORIZON_S;
export const DEFAULT_STEP_S = 1;
/** `isResolved` looks this far ahead: long enough to see a pair close in again right away, short
 * enough that a resolution is confirmed within a few seconds. */
export const RESOLVED_HORIZON_S = 10;
/** Added to every separation a resolution creates, metres: keeps new plans off the exact limit. */
export const SAFETY_MARGIN_M = 5;
/** Re-exported: the prediction rule lives in trajectory.ts. */
export { CLIMB_EXTRAPOLATION_S };
/** Below this horizontal speed a drone counts as hovering when classifying a conflict. */
const HOVER_SPEED_MPS = 1;
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
const GRID_SPAN = 2 * GRID_CLAMP + 1;
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

/** Sampled tracks of n drones: row i holds samples 0..K at `times`, in flat arrays. */
type Tracks = { n: number; K: number; stride: number; times: Float64Array; X: Float64Array; Y: Float64Array; Z: Float64Array };

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

/** Airborne (drone.ts) and placeable: a position with non-finite numbers cannot be predicted. */
function isAirborne(d: CoordinationDrone): boolean {
  return (
    airborneStatus(d) &&
    Number.isFinite(d.lat) &&
    Number.isFinite(d.lon) &&
    Number.isFinite(d.alt_m)
  );
}

function buildTracks(drones: readonly CoordinationDrone[], prep: Prepared, cruise: number, times: Float64Array): Tracks {
  const n = drones.length;
  const stride = times.length;
  const tr: Tracks = {
    n,
    K: stride - 1,
    stride,
    times,
    X: new Float64Array(n * stride),
    Y: new Float64Array(n * stride),
    Z: new Float64Array(n * stride),
  };
  // One scratch track for all drones: a pass predicts up to 1,000 of them.
  let knots: Track = newTrack(8);
  const horizon = times[times.length - 1]!;
  for (let i = 0; i < n; i++) {
    knots = predictTrack(drones[i]!, prep.frame, cruise, horizon, knots);
    sampleTrack(knots, times, tr.X, tr.Y, tr.Z, i * stride);
  }
  return tr;
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
};

/**
 * Exact loss of separation between row `ia` of A and row `ib` of B (same timeline) over
 * intervals [0, kEnd), restricted to the chunks set in `mask` (chunk = k / C). Within an interval
 * both move linearly, so the set of instants under both minima is the overlap of one quadratic
 * and one linear inequality's solution intervals.
 */
function narrow(A: Tracks, ia: number, B: Tracks, ib: number, H: number, V: number, kEnd: number, mask: number, C: number): PairHit | null {
  const oa = ia * A.stride;
  const ob = ib * B.stride;
  const times = A.times;
  let hit: PairHit | null = null;
  for (let k = 0; k < kEnd; k++) {
    if (mask !== ALL_CHUNKS && ((mask >>> ((k / C) | 0)) & 1) === 0) continue;
    const rz0 = B.Z[ob + k]! - A.Z[oa + k]!;
    const dz = B.Z[ob + k + 1]! - A.Z[oa + k + 1]! - rz0;
    const rx0 = B.X[ob + k]! - A.X[oa + k]!;
    const ry0 = B.Y[ob + k]! - A.Y[oa + k]!;
    const dx = B.X[ob + k + 1]! - A.X[oa + k + 1]! - rx0;
    const dy = B.Y[ob + k + 1]! - A.Y[oa + k + 1]! - ry0;
    const w = separationWindow(rx0, ry0, rz0, dx, dy, dz, H, V);
    if (!w) continue;
    const { lo, hi, tau } = w;
    const L = times[k + 1]! - times[k]!;
    const h = Math.hypot(rx0 + dx * tau, ry0 + dy * tau);
    const zl = rz0 + dz * lo;
    const zh = rz0 + dz * hi;
    const v = zl * zh <= 0 ? 0 : Math.min(Math.abs(zl), Math.abs(zh));
    const tEnd = times[k]! + hi * L;
    if (!hit) {
      hit = { t: times[k]! + lo * L, k, tEnd, minH: h, minV: v, kMin: k, tauMin: tau };
    } else {
      hit.tEnd = tEnd;
      if (h < hit.minH) {
        hit.minH = h;
        hit.kMin = k;
        hit.tauMin = tau;
      }
      if (v < hit.minV) hit.minV = v;
    }
  }
  return hit;
}

/** Relative heading decides the type; a hovering drone or a purely vertical closure converges. */
function classify(A: Tracks, ia: number, B: Tracks, ib: number, k: number): ConflictType {
  const oa = ia * A.stride + k;
  const ob = ib * B.stride + k;
  const L = A.times[k + 1]! - A.times[k]!;
  const vax = (A.X[oa + 1]! - A.X[oa]!) / L;
  const vay = (A.Y[oa + 1]! - A.Y[oa]!) / L;
  const vbx = (B.X[ob + 1]! - B.X[ob]!) / L;
  const vby = (B.Y[ob + 1]! - B.Y[ob]!) / L;
  const sa = Math.hypot(vax, vay);
  const sb = Math.hypot(vbx, vby);
  if (sa < HOVER_SPEED_MPS || sb < HOVER_SPEED_MPS) return "converging";
  const cos = Math.max(-1, Math.min(1, (vax * vbx + vay * vby) / (sa * sb)));
  const angle = Math.acos(cos) / DEG;
  if (angle > 150) return "head_on";
  if (angle < 30) {
    // Same direction: one catching up on the other is overtaking; otherwise the closure is
    // vertical (one climbing or descending onto the other).
    const rx = B.X[ob]! - A.X[oa]!;
    const ry = B.Y[ob]! - A.Y[oa]!;
    const closing = rx * (vbx - vax) + ry * (vby - vay) < 0 && Math.hypot(vbx - vax, vby - vay) > 0.1;
    return closing ? "overtaking" : "converging";
  }
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
    event_type: classify(A, ia, B, ib, hit.k),
    drone_ids: idA < idB ? [idA, idB] : [idB, idA],
    time_to_conflict_s: hit.t,
    min_horizontal_m: hit.minH,
    min_vertical_m: hit.minV,
    at: { ...toLatLon(prep, x, y), alt_m: z },
    detected_at: now,
  };
}

// ---------------------------------------------------------------------------- broad phase

/**
 * Candidate pairs from the chunked grid: pair index (i * n + j, i < j) → mask of the chunks where
 * their swept boxes overlap. Two points closer than H horizontally and V vertically lie in boxes
 * grown by H/2 and V/2 that overlap, so no conflict is missed.
 */
function gridCandidates(tr: Tracks, H: number, V: number, kEnd: number, C: number): Map<number, number> {
  const n = tr.n;
  const out = new Map<number, number>();
  const box = new Float64Array(n * 6);
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
      const c = Math.floor(v / cell);
      return c < -GRID_CLAMP ? -GRID_CLAMP : c > GRID_CLAMP ? GRID_CLAMP : c;
    };
    const grid = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const b = i * 6;
      const cx0 = cellOf(box[b]!);
      const cx1 = cellOf(box[b + 1]!);
      const cy0 = cellOf(box[b + 2]!);
      const cy1 = cellOf(box[b + 3]!);
      for (let cx = cx0; cx <= cx1; cx++) {
        for (let cy = cy0; cy <= cy1; cy++) {
          const key = (cx + GRID_CLAMP) * GRID_SPAN + (cy + GRID_CLAMP);
          const bucket = grid.get(key);
          if (bucket) bucket.push(i);
          else grid.set(key, [i]);
        }
      }
    }
    const bit = 1 << c;
    for (const [key, bucket] of grid) {
      for (let a = 0; a < bucket.length; a++) {
        const i = bucket[a]!;
        const bi = i * 6;
        for (let q = a + 1; q < bucket.length; q++) {
          const j = bucket[q]!;
          const bj = j * 6;
          if (box[bi]! > box[bj + 1]! || box[bj]! > box[bi + 1]!) continue;
          if (box[bi + 2]! > box[bj + 3]! || box[bj + 2]! > box[bi + 3]!) continue;
          if (box[bi + 4]! > box[bj + 5]! || box[bj + 4]! > box[bi + 5]!) continue;
          // A pair sharing several cells is kept only in the cell holding the lower corner of
          // its boxes' intersection: one visit per pair per chunk, no set needed.
          const rx = cellOf(Math.max(box[bi]!, box[bj]!));
          const ry = cellOf(Math.max(box[bi + 2]!, box[bj + 2]!));
          if ((rx + GRID_CLAMP) * GRID_SPAN + (ry + GRID_CLAMP) !== key) continue;
          const pk = i < j ? i * n + j : j * n + i;
          out.set(pk, (out.get(pk) ?? 0) | bit);
        }
      }
    }
  }
  return out;
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

/** Geofence exits (including climbing through the ceiling) and no-fly entries of row i. */
function zoneHits(prep: Prepared, config: FleetConfig, tr: Tracks, i: number, id: string, kEnd: number): ZoneHit[] {
  const hits: ZoneHit[] = [];
  const o = i * tr.stride;
  const x0 = tr.X[o]!;
  const y0 = tr.Y[o]!;
  const z0 = tr.Z[o]!;
  let reach = 0;
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
    reach = Math.max(reach, Math.hypot(x - x0, y - y0));
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
    const edge0 = nearestOnBoundaryLocal(p0, fence).distance_m;
    // Cheap common case: the whole track stays within a circle that the fence contains.
    const surelyInside = inside0 && edge0 > reach && zMax <= ceiling;
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
      minH: pointInPolygonLocal(p0, zone.poly) ? 0 : nearestOnBoundaryLocal(p0, zone.poly).distance_m,
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
export function detectWithStats(input: DetectInput): { conflicts: Conflict[]; pairsChecked: number } {
  const { config } = input;
  const prep = prepare(config);
  const H = config.separation.horizontal_m;
  const V = config.separation.vertical_m;
  const airborne = input.drones.filter(isAirborne);
  const times = timeline(input.horizonS ?? DEFAULT_HORIZON_S, input.stepS ?? DEFAULT_STEP_S);
  const tr = buildTracks(airborne, prep, config.cruise_speed_mps, times);
  const K = tr.K;
  const conflicts: Conflict[] = [];
  let pairsChecked = 0;

  const emit = (i: number, j: number, hit: PairHit | null) => {
    if (hit) conflicts.push(pairConflict(prep, tr, i, airborne[i]!.drone_id, tr, j, airborne[j]!.drone_id, hit, input.now));
  };
  if (input.index === "all_pairs") {
    for (let i = 0; i < tr.n; i++) {
      for (let j = i + 1; j < tr.n; j++) {
        pairsChecked++;
        emit(i, j, narrow(tr, i, tr, j, H, V, K, ALL_CHUNKS, 1));
      }
    }
  } else {
    const chunks = Math.min(MAX_CHUNKS, Math.max(1, Math.ceil(times[K]! / CHUNK_TARGET_S)));
    const C = Math.ceil(K / chunks);
    const cands = gridCandidates(tr, H, V, K, C);
    pairsChecked = cands.size;
    for (const [pk, mask] of cands) {
      const i = Math.floor(pk / tr.n);
      emit(i, pk - i * tr.n, narrow(tr, i, tr, pk - i * tr.n, H, V, K, mask, C));
    }
  }
  for (let i = 0; i < tr.n; i++) {
    const id = airborne[i]!.drone_id;
    for (const h of zoneHits(prep, config, tr, i, id, K)) conflicts.push(zoneConflict(prep, id, h, input.now));
  }
  conflicts.sort(byTimeThenKey);
  return { conflicts, pairsChecked };
}

/**
 * Predicted conflicts over the horizon, earliest first: pairs that will be closer than both
 * separation minima at the same instant (typed by relative heading), and drones whose track
 * leaves the geofence (or climbs through the ceiling) or enters a no-fly zone. Grounded drones
 * (disarmed, or idle/landed/charging) are ignored.
 *
 * Cost: O(n·K) to predict, O(n·chunks) grid insertions, then O(K) per nearby pair; all-pairs
 * work only happens when every drone is near every other.
 */
export function detectConflicts(input: DetectInput): Conflict[] {
  return detectWithStats(input).conflicts;
}

// ---------------------------------------------------------------------------- resolution plans

/**
 * The drones as they would be with `resolution` applied: `modify_waypoint` replaces the plan with
 * the one waypoint (what the command desk records on ack); `hold` keeps the plan and delays it.
 * Used to verify resolutions, and by callers to re-run detection on the resolved plan.
 */
export function applyResolution(drones: readonly CoordinationDrone[], resolution: Pick<Resolution, "commands">): CoordinationDrone[] {
  const byId = new Map<string, WaypointCommand | HoldCommand>();
  for (const c of resolution.commands) byId.set(c.drone_id, c);
  return drones.map((d) => {
    const c = byId.get(d.drone_id);
    if (!c) return d;
    if (c.command === "hold") return { ...d, hold_s: c.duration_s };
    return { ...d, path: [c.new_waypoint], hold_s: 0 };
  });
}

type Candidate = { strategy: Strategy; commands: WaypointCommand[] | HoldCommand[]; windowS: number };

/** Everything resolution needs, computed once per `chooseResolution` call. */
type Ctx = {
  config: FleetConfig;
  prep: Prepared;
  H: number;
  V: number;
  horizonS: number;
  airborne: CoordinationDrone[];
  index: Map<string, number>;
  /** Tracks of every airborne drone over the longest verification window. */
  base: Tracks;
  /** Per-drone box over the whole base track (x0, x1, y0, y1, z0, z1). */
  boxes: Float64Array;
  conflict: Conflict;
  /** Conflict keys of the involved drones before any change: these may persist, others may not
   * appear. */
  baseline: Set<string>;
};

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
  out[at] = x0;
  out[at + 1] = x1;
  out[at + 2] = y0;
  out[at + 3] = y1;
  out[at + 4] = z0;
  out[at + 5] = z1;
}

/** Conflicts of `subjects` (changed or involved drones) against everyone, within `windowS`.
 * Returns key → the pair hit (pairs) or null (zones). */
function conflictsOf(ctx: Ctx, subjects: readonly CoordinationDrone[], windowS: number): Map<string, PairHit | null> {
  const out = new Map<string, PairHit | null>();
  const tr = buildTracks(subjects, ctx.prep, ctx.config.cruise_speed_mps, ctx.base.times);
  const kEnd = intervalsFor(ctx.base.times, windowS);
  const { H, V } = ctx;
  const own = new Float64Array(6);
  const ids = new Set(subjects.map((s) => s.drone_id));
  for (let s = 0; s < subjects.length; s++) {
    const sid = subjects[s]!.drone_id;
    trackBox(tr, s, 0, kEnd, own, 0);
    for (let j = 0; j < ctx.airborne.length; j++) {
      const other = ctx.airborne[j]!;
      if (ids.has(other.drone_id)) continue;
      const b = j * 6;
      const bx = ctx.boxes;
      if (own[0]! - H > bx[b + 1]! || bx[b]! > own[1]! + H) continue;
      if (own[2]! - H > bx[b + 3]! || bx[b + 2]! > own[3]! + H) continue;
      if (own[4]! - V > bx[b + 5]! || bx[b + 4]! > own[5]! + V) continue;
      const hit = narrow(tr, s, ctx.base, j, H, V, kEnd, ALL_CHUNKS, 1);
      if (hit) out.set(pairKey(sid, other.drone_id), hit);
    }
    for (let q = s + 1; q < subjects.length; q++) {
      const hit = narrow(tr, s, tr, q, H, V, kEnd, ALL_CHUNKS, 1);
      if (hit) out.set(pairKey(sid, subjects[q]!.drone_id), hit);
    }
    for (const z of zoneHits(ctx.prep, ctx.config, tr, s, sid, kEnd)) out.set(z.key, null);
  }
  return out;
}

/** Whether the conflict under resolution is already happening now (it cannot vanish from t=0). */
function happeningNow(ctx: Ctx): boolean {
  return ctx.conflict.time_to_conflict_s <= 1e-9;
}

/** Whether `cand` fixes the conflict without causing a new one. */
function verify(ctx: Ctx, cand: Candidate): boolean {
  const involved = new Set(cand.commands.map((c) => c.drone_id));
  const subjects = applyResolution(
    ctx.airborne.filter((d) => involved.has(d.drone_id)),
    cand,
  );
  const found = conflictsOf(ctx, subjects, cand.windowS);
  for (const [key, hit] of found) {
    if (key === ctx.conflict.key) {
      if (!happeningNow(ctx)) return false;
      // Already in conflict: the plan must end it well before the window closes.
      if (hit) {
        if (hit.tEnd > cand.windowS - DEFAULT_STEP_S) return false;
      } else if (!leavesViolation(ctx, subjects, cand.windowS)) {
        return false;
      }
      continue;
    }
    if (!ctx.baseline.has(key)) return false;
  }
  return true;
}

/** For a zone breach happening now: whether the subject ends the window out of the zone. */
function leavesViolation(ctx: Ctx, subjects: readonly CoordinationDrone[], windowS: number): boolean {
  const d = subjects.find((s) => ctx.conflict.drone_ids.includes(s.drone_id));
  if (!d) return false;
  const tr = buildTracks([d], ctx.prep, ctx.config.cruise_speed_mps, ctx.base.times);
  const k = intervalsFor(ctx.base.times, windowS);
  const p = { x_m: tr.X[k]!, y_m: tr.Y[k]! };
  const z = tr.Z[k]!;
  if (ctx.conflict.event_type === "geofence_proximity") {
    return pointInPolygonLocal(p, ctx.prep.fence) && z <= ctx.config.ceiling_m;
  }
  const zone = ctx.prep.zones.find((zz) => zz.zone.id === ctx.conflict.zone_id);
  return !zone || !(z >= zone.floor && z <= zone.ceiling && pointInPolygonLocal(p, zone.poly));
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

function altitudeRange(ctx: Ctx, id: string): { lo: number; hi: number } {
  const j = ctx.index.get(id)!;
  const o = j * ctx.base.stride;
  const kEnd = intervalsFor(ctx.base.times, ctx.horizonS);
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k <= kEnd; k++) {
    lo = Math.min(lo, ctx.base.Z[o + k]!);
    hi = Math.max(hi, ctx.base.Z[o + k]!);
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

function firstVerified(ctx: Ctx, gens: Iterable<Candidate>[]): Candidate | null {
  for (const g of gens) for (const c of g) if (verify(ctx, c)) return c;
  return null;
}

function firstOf(gens: Iterable<Candidate>[]): Candidate | null {
  for (const g of gens) for (const c of g) return c;
  return null;
}

function buildCtx(conflict: Conflict, drones: readonly CoordinationDrone[], config: FleetConfig, opts: CoordinationOptions): Ctx {
  const horizonS = opts.horizonS && opts.horizonS > 0 ? opts.horizonS : DEFAULT_HORIZON_S;
  const prep = prepare(config);
  const airborne = drones.filter(isAirborne);
  // Long enough for the longest hold plus resuming.
  const longest = Math.max(horizonS, HOLD_STEPS_S[HOLD_STEPS_S.length - 1]! + RESUME_WINDOW_S);
  const times = timeline(longest, opts.stepS ?? DEFAULT_STEP_S);
  const base = buildTracks(airborne, prep, config.cruise_speed_mps, times);
  const boxes = new Float64Array(airborne.length * 6);
  for (let i = 0; i < airborne.length; i++) trackBox(base, i, 0, base.K, boxes, i * 6);
  const ctx: Ctx = {
    config,
    prep,
    H: config.separation.horizontal_m,
    V: config.separation.vertical_m,
    horizonS,
    airborne,
    index: new Map(airborne.map((d, i) => [d.drone_id, i])),
    base,
    boxes,
    conflict,
    baseline: new Set(),
  };
  const involved = airborne.filter((d) => conflict.drone_ids.includes(d.drone_id));
  ctx.baseline = new Set(conflictsOf(ctx, involved, longest).keys());
  return ctx;
}

/** The drone that gives way: lower priority, or at equal priority the larger id. */
function yielderFirst(a: CoordinationDrone, b: CoordinationDrone): [CoordinationDrone, CoordinationDrone] {
  const pa = a.priority ?? 0;
  const pb = b.priority ?? 0;
  if (pa !== pb) return pa < pb ? [a, b] : [b, a];
  return a.drone_id > b.drone_id ? [a, b] : [b, a];
}

/**
 * Commands that fix `conflict`, verified by re-predicting every drone with them applied.
 *
 * Pairs, by default: the yielding drone (lower priority; at equal priority the larger id) climbs
 * or descends clear of the other by vertical_m + 5 m within floor/ceiling; failing that (no
 * room, or it would not work) it holds; then it sidesteps; then the same for the other drone;
 * last, both hold (`verified: false` if even that cannot be shown to work). Zone breaches:
 * `return_inside`, else hold. `override` puts the operator's strategy first; if none of its
 * candidates verifies, its first valid candidate is returned with `verified: false` (the
 * operator decided), and only when it has no valid candidate at all does the default apply.
 *
 * Every new waypoint passes the command desk's position rules (geofence, no-fly, floor/ceiling).
 * Grounded or unknown drones need no command: the result is then an empty hold.
 */
export function chooseResolution(
  conflict: Conflict,
  drones: readonly CoordinationDrone[],
  config: FleetConfig,
  override?: OverrideStrategy,
  opts: CoordinationOptions = {},
): Resolution {
  const ctx = buildCtx(conflict, drones, config, opts);
  const involved = conflict.drone_ids.map((id) => ctx.airborne[ctx.index.get(id) ?? -1]);
  if (involved.length === 0 || involved.some((d) => d === undefined)) return { strategy: "hold", commands: [], verified: true };
  const done = (c: Candidate, verified: boolean): Resolution => ({ strategy: c.strategy, commands: c.commands, verified });

  if (involved.length === 1) {
    const d = involved[0]!;
    const ret = () => returnCandidates(ctx, d);
    const hold = () => holdCandidates(ctx, [d], "short of the zone");
    const order = override === "hold" ? [hold(), ret()] : [ret(), hold()];
    const ok = firstVerified(ctx, order);
    if (ok) return done(ok, true);
    const fallback = firstOf(override === "hold" ? [hold()] : [ret(), hold()]);
    return done(fallback!, false);
  }

  const [y, k] = yielderFirst(involved[0]!, involved[1]!);
  const gen: Record<OverrideStrategy, (m: CoordinationDrone, o: CoordinationDrone) => Iterable<Candidate>> = {
    vertical_separation: (m, o) => verticalCandidates(ctx, m, o),
    hold: (m, o) => holdCandidates(ctx, [m], `while ${o.drone_id} passes`),
    lateral_reroute: (m, o) => lateralCandidates(ctx, m, o),
  };
  if (override) {
    const ok = firstVerified(ctx, [gen[override](y, k), gen[override](k, y)]);
    if (ok) return done(ok, true);
    const any = firstOf([gen[override](y, k), gen[override](k, y)]);
    if (any) return done(any, false);
  }
  const order: Iterable<Candidate>[] = [
    gen.vertical_separation(y, k),
    gen.hold(y, k),
    gen.lateral_reroute(y, k),
    gen.vertical_separation(k, y),
    gen.hold(k, y),
    gen.lateral_reroute(k, y),
    holdCandidates(ctx, [y, k], "until the conflict clears"),
  ];
  const ok = firstVerified(ctx, order);
  if (ok) return done(ok, true);
  // Stopping both is the least bad thing left: it freezes the separation they have now.
  return done(firstOf([holdCandidates(ctx, [y, k], "until the conflict clears")])!, false);
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
 * ends its conflicts; a drone missing from `drones` (no telemetry) does not, because nothing is
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
    involved.push(d);
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

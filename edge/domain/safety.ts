/**
 * Safety validation of a new waypoint for one drone, before any command reaches the relay.
 *
 * Rules run in a fixed order and the first failure wins, so a rejection always names one stable
 * `rule` code. Every rejection carries `alternative_suggestions`, and every suggestion has itself
 * passed the full validation (it is repaired rule by rule until it does, or dropped): an operator
 * who clicks a suggestion must never be rejected again.
 *
 * The separation rule predicts every drone with trajectory.ts, the model conflict detection
 * uses, and looks at least as far ahead as detection does.
 *
 * Pure and synchronous: takes the config and a snapshot of the other drones, returns data.
 */
import type { FleetConfig, NoFlyZone } from "./fleet-config";
import type { DroneRecord } from "./live-state";
import {
  crossingCandidatesLocal,
  fromLocal,
  makeLocalFrame,
  nearestOnBoundaryLocal,
  pointInPolygonLocal,
  polygonToLocal,
  toLocal,
  type LatLon,
  type LatLonAlt,
  type LocalFrame,
  type LocalPoint,
  type LocalPolygon,
} from "./geo";
import {
  CLIMB_EXTRAPOLATION_S,
  isMoving,
  PREDICTION_HORIZON_S,
  predictTrack,
  positionAt,
  separationWindow,
  type MotionState,
  type Track,
} from "./trajectory";

/** Rule codes in the order they are checked. Stable: clients switch on them. */
export const SAFETY_RULES = [
  "invalid_coordinates",
  "altitude_ceiling",
  "altitude_floor",
  "geofence",
  "no_fly_zone",
  "battery",
  "separation",
] as const;
export type SafetyRule = (typeof SAFETY_RULES)[number];
/** The rules `checkPosition` covers: those that depend on the point alone. */
export type PositionRule = Extract<
  SafetyRule,
  "invalid_coordinates" | "altitude_ceiling" | "altitude_floor" | "geofence" | "no_fly_zone"
>;

export type Suggestion = LatLonAlt & { reason: string };
export type SafetyResult =
  | { ok: true; checks: string[] }
  | { ok: false; rule: SafetyRule; message: string; alternative_suggestions: Suggestion[] };

/** The drone being commanded, at its current position. Its ground speed, when given, is the
 * speed it is predicted to fly to the target at (trajectory.ts; absent or ~0: cruise speed). */
export type CommandedDrone = {
  drone_id: string;
  lat: number;
  lon: number;
  alt_m: number;
  battery_pct: number;
  speed_mps?: number;
};
/** Another drone: where it is, how it moves and the waypoints it still has to fly, predicted by
 * the rule of trajectory.ts (the collision detector's drones fit this type as they are). */
export type OtherDrone = MotionState & { drone_id: string };
export type WaypointCheckInput = {
  drone: CommandedDrone;
  target: LatLonAlt;
  config: FleetConfig;
  others: readonly OtherDrone[];
  /** Seconds the drone will hold at the target: costs hover energy and extends the separation
   * window (capped at the horizon). Default 0. */
  hold_s?: number;
};

/** Samples for the separation check are this far apart (seconds; between samples the check is
 * exact, as detection's is)… */
export const SEPARATION_STEP_S = 0.5;
/** …and cover at most this long (seconds): beyond it, plans change anyway. */
export const SEPARATION_HORIZON_S = 120;
/** Clearance added to every suggested move, metres: keeps suggestions off the exact limit. */
export const SUGGESTION_MARGIN_M = 5;
/** Most suggestions returned with one rejection. */
export const MAX_SUGGESTIONS = 3;
/** Most full validations spent on suggestion candidates per call. With 1,000 other drones one
 * validation costs a tenth of a millisecond or more (a target far off reaches more drones to
 * predict), and the fleet object must not stall on suggestions. */
export const MAX_CANDIDATE_EVALUATIONS = 24;
/** Further full validations for the last-resort ring search when nothing else worked. */
const RING_SEARCH_EVALUATIONS = 12;

// ----------------------------------------------------------------------------- prepared config

/** Polygons projected once per config, in the plane at home. */
type Prepared = {
  home: LatLon;
  geofence: LocalPolygon;
  zones: { zone: NoFlyZone; poly: LocalPolygon }[];
};
// Configs are treated as immutable values (a write replaces the object), so caching by identity
// is safe and spares re-projecting the polygons on every check.
const prepared = new WeakMap<FleetConfig, Prepared>();

function prepare(config: FleetConfig): Prepared {
  let p = prepared.get(config);
  if (!p) {
    p = {
      home: config.home,
      geofence: polygonToLocal(config.home, config.geofence),
      zones: config.no_fly_zones.map((zone) => ({ zone, poly: polygonToLocal(config.home, zone.polygon) })),
    };
    prepared.set(config, p);
  }
  return p;
}

// ----------------------------------------------------------------------------- position rules

export type PositionCheck =
  | { ok: true }
  | {
      ok: false;
      rule: PositionRule;
      message: string;
      zone_id?: string;
      /** Nearby points that pass `checkPosition` (position rules only: no battery/separation). */
      alternative_suggestions: Suggestion[];
    };
type PositionFailure = { ok: false; rule: PositionRule; message: string; zone_id?: string };

const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

/** Whether lat/lon/alt are finite numbers with lat/lon within WGS84 ranges. A missing altitude
 * is invalid: it would otherwise slip past both altitude comparisons. */
export function validCoordinates(p: { lat: unknown; lon: unknown; alt_m: unknown }): boolean {
  const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  return (
    finite(p.lat) &&
    finite(p.lon) &&
    finite(p.alt_m) &&
    p.lat >= -90 &&
    p.lat <= 90 &&
    p.lon >= -180 &&
    p.lon <= 180
  );
}

/**
 * The rules that depend on the point alone: coordinates, ceiling, floor, geofence, no-fly zones
 * (a zone applies only between its own floor_m and ceiling_m when given). Also used by the
 * collision-avoidance work to vet avoidance points; pass `{ suggest: false }` there to skip
 * computing suggestions on failure.
 */
export function checkPosition(
  point: LatLonAlt,
  config: FleetConfig,
  opts: { suggest?: boolean } = {},
): PositionCheck {
  const f = positionFailure(point, config);
  if (!f) return { ok: true };
  const ctx: Ctx = {
    config,
    drone: null,
    others: [],
    hold_s: 0,
    full: false,
    traffic: null,
    budget: MAX_CANDIDATE_EVALUATIONS,
  };
  return { ...f, alternative_suggestions: opts.suggest === false ? [] : suggest(ctx, point, f) };
}

function positionFailure(point: LatLonAlt, config: FleetConfig): PositionFailure | null {
  if (!validCoordinates(point)) {
    return {
      ok: false,
      rule: "invalid_coordinates",
      message:
        "coordinates must be finite with lat in [-90, 90] and lon in [-180, 180] " +
        `(got lat ${fmt(point.lat, 6)}, lon ${fmt(point.lon, 6)}, alt ${fmt(point.alt_m, 1)})`,
    };
  }
  if (point.alt_m > config.ceiling_m) {
    return {
      ok: false,
      rule: "altitude_ceiling",
      message: `altitude ${fmt(point.alt_m, 1)} m is above the ${config.ceiling_m} m ceiling`,
    };
  }
  if (point.alt_m < config.floor_m) {
    return {
      ok: false,
      rule: "altitude_floor",
      message: `altitude ${fmt(point.alt_m, 1)} m is below the ${config.floor_m} m floor`,
    };
  }
  const prep = prepare(config);
  const local = toLocal(prep.home, point);
  if (!pointInPolygonLocal(local, prep.geofence)) {
    const d = nearestOnBoundaryLocal(local, prep.geofence).distance_m;
    return { ok: false, rule: "geofence", message: `point is outside the geofence, ${fmt(d)} m beyond its edge` };
  }
  for (const { zone, poly } of prep.zones) {
    if (!zoneAppliesAt(zone, point.alt_m)) continue;
    if (pointInPolygonLocal(local, poly)) {
      return {
        ok: false,
        rule: "no_fly_zone",
        message: `point is inside no-fly zone "${zone.name}" (${zone.id})${bandText(zone)}`,
        zone_id: zone.id,
      };
    }
  }
  return null;
}

function zoneAppliesAt(zone: NoFlyZone, alt_m: number): boolean {
  return (zone.floor_m === undefined || alt_m >= zone.floor_m) && (zone.ceiling_m === undefined || alt_m <= zone.ceiling_m);
}

function bandText(zone: NoFlyZone): string {
  if (zone.floor_m === undefined && zone.ceiling_m === undefined) return "";
  return `, which applies from ${zone.floor_m ?? 0} m to ${zone.ceiling_m === undefined ? "any height" : `${zone.ceiling_m} m`}`;
}

// ----------------------------------------------------------------------------- battery

/** Battery percentage points to fly `distance_m` under the config's energy model. */
export function flightEnergyPct(distance_m: number, config: FleetConfig): number {
  return (distance_m / 1000) * config.energy.pct_per_km;
}

/** Battery percentage points to hover for `seconds`. */
export function hoverEnergyPct(seconds: number, config: FleetConfig): number {
  return (seconds / 60) * config.energy.pct_per_min_hover;
}

/**
 * Battery left after flying from `from` to `target`, holding `hold_s` there and flying back to
 * land at home (altitude 0). Distances are straight 3D lines: climbing costs like cruising.
 */
export function batteryAfterReturnPct(
  from: LatLonAlt,
  battery_pct: number,
  target: LatLonAlt,
  config: FleetConfig,
  hold_s = 0,
): { out_pct: number; back_pct: number; hover_pct: number; remaining_pct: number } {
  const home = { lat: config.home.lat, lon: config.home.lon, alt_m: 0 };
  const out_pct = flightEnergyPct(dist3(from, target), config);
  const back_pct = flightEnergyPct(dist3(target, home), config);
  const hover_pct = hoverEnergyPct(hold_s, config);
  return { out_pct, back_pct, hover_pct, remaining_pct: battery_pct - out_pct - hover_pct - back_pct };
}

function dist3(a: LatLonAlt, b: LatLonAlt): number {
  const d = toLocal(a, b);
  return Math.hypot(d.x_m, d.y_m, b.alt_m - a.alt_m);
}

// ----------------------------------------------------------------------------- separation

/** The first predicted loss of separation. */
export type SeparationConflict = {
  other_id: string;
  /** Seconds from now. */
  t_s: number;
  horizontal_m: number;
  vertical_m: number;
  /** Where the commanded drone would be, and the other drone's altitude, at that instant. */
  at: LatLonAlt;
  other_alt_m: number;
  /** How far along its flight to the target the commanded drone is then (0–1). */
  fraction: number;
};

/** Another drone's predicted track in the plane at the commanded drone, and its bounding box. */
type TimedPath = {
  id: string;
  other: OtherDrone;
  /** Predicted when a scan first needs it (`trackOf`): most drones are far from every target. */
  track: Track | null;
  /** x0, x1, y0, y1, z0, z1: the track's own box once it is predicted, until then one that
   * surely holds it (`reachBox`). */
  box: [number, number, number, number, number, number];
};

/** What the separation rule reads of a drone the fleet object holds. */
export type TrafficSource = Pick<DroneRecord, "sample" | "link">;

/**
 * The other drones a command is checked against: every live, armed drone but `exclude`, with the
 * plan the edge knows it flies (`planOf`: the command desk's record of acknowledged commands).
 */
export function trafficOf(drones: Iterable<TrafficSource>, exclude: string, planOf: (droneId: string) => readonly LatLonAlt[]): OtherDrone[] {
  const out: OtherDrone[] = [];
  for (const d of drones) {
    if (d.sample.drone_id === exclude || d.link !== "live" || !d.sample.armed) continue;
    // Heading and climb too: a drone without a plan is dead-reckoned (trajectory.ts).
    const { drone_id, lat, lon, alt_m, heading_deg, speed_mps, climb_mps } = d.sample;
    out.push({ drone_id, lat, lon, alt_m, heading_deg, speed_mps, ...(climb_mps !== undefined ? { climb_mps } : {}), path: planOf(drone_id) });
  }
  return out;
}

/** Where the commanded drone starts: its position and, if known, its ground speed. */
export type TrafficOrigin = LatLonAlt & { speed_mps?: number };

/** The other drones placed once per validation (the commanded drone's position is the origin
 * and does not change while candidates are tried). */
export type PreparedTraffic = { origin: TrafficOrigin; frame: LocalFrame; cruise_mps: number; paths: TimedPath[] };

/**
 * The other drones for repeated separation scans from `origin`. Each is predicted only once a
 * scan's swept box reaches the box its motion cannot leave (`reachBox`), which is the same
 * answer as predicting every one up front (`prepareTrafficReference`, kept for the tests).
 */
export function prepareTraffic(
  origin: TrafficOrigin,
  others: readonly OtherDrone[],
  config: FleetConfig,
  self_id?: string,
): PreparedTraffic {
  const frame = makeLocalFrame(origin);
  const traffic: PreparedTraffic = { origin, frame, cruise_mps: config.cruise_speed_mps, paths: [] };
  for (const other of others) {
    if (other.drone_id === self_id) continue;
    const path: TimedPath = { id: other.drone_id, other, track: null, box: [0, 0, 0, 0, 0, 0] };
    // A drone whose numbers could make its track non-finite is predicted now: it is left out
    // when they do (see trackOf), and how many are left counts in the answer.
    if (!reachBox(other, frame, traffic.cruise_mps, path.box) && !trackOf(traffic, path)) continue;
    traffic.paths.push(path);
  }
  return traffic;
}

/** `prepareTraffic` as it was before predictions became lazy: every track up front. For the
 * tests, which compare the two. */
export function prepareTrafficReference(
  origin: TrafficOrigin,
  others: readonly OtherDrone[],
  config: FleetConfig,
  self_id?: string,
): PreparedTraffic {
  const frame = makeLocalFrame(origin);
  const traffic: PreparedTraffic = { origin, frame, cruise_mps: config.cruise_speed_mps, paths: [] };
  for (const other of others) {
    if (other.drone_id === self_id) continue;
    const path: TimedPath = { id: other.drone_id, other, track: null, box: [0, 0, 0, 0, 0, 0] };
    if (trackOf(traffic, path)) traffic.paths.push(path);
  }
  return traffic;
}

/**
 * Predict `path`'s track and set its box to the track's own. False when the track has
 * non-finite numbers: such a drone cannot be placed, and leaving it out keeps NaN out of the
 * scan (telemetry and plans are validated upstream, so this is only defensive).
 */
function trackOf(traffic: PreparedTraffic, path: TimedPath): boolean {
  const track = predictTrack(path.other, traffic.frame, traffic.cruise_mps, SEPARATION_HORIZON_S);
  const box = path.box;
  box[0] = Infinity;
  box[1] = -Infinity;
  box[2] = Infinity;
  box[3] = -Infinity;
  box[4] = Infinity;
  box[5] = -Infinity;
  let finite = true;
  for (let i = 0; i < track.n; i++) {
    const x = track.xs[i]!;
    const y = track.ys[i]!;
    const z = track.zs[i]!;
    finite &&= Number.isFinite(x) && Number.isFinite(y) && Number.isFinite(z) && Number.isFinite(track.ts[i]!);
    box[0] = Math.min(box[0], x);
    box[1] = Math.max(box[1], x);
    box[2] = Math.min(box[2], y);
    box[3] = Math.max(box[3], y);
    box[4] = Math.min(box[4], z);
    box[5] = Math.max(box[5], z);
  }
  path.track = track;
  return finite;
}

/** Numbers beyond this (metres, seconds) are not bounded here: such a drone is predicted. */
const REACH_LIMIT = 1e9;
/** Slack on every side of a reach box, metres: covers rounding in the prediction's arithmetic. */
const REACH_SLACK_M = 1;

const plain = (v: number | undefined, lo = -REACH_LIMIT) => v === undefined || (Number.isFinite(v) && v >= lo && v <= REACH_LIMIT);

/**
 * Into `out`, a box (x0, x1, y0, y1, z0, z1) that holds every knot of `d`'s track from
 * `predictTrack` over the separation horizon, without predicting it. A track is a polyline
 * through its knots, so its positions lie in their box: the drone's position; where it gets to
 * while a command is on its way (at most CLIMB_EXTRAPOLATION_S at its heading, speed and climb);
 * then its plan's waypoints, or, without a plan, dead reckoning over the horizon (climbing for
 * CLIMB_EXTRAPOLATION_S). Returns false, with `out` unset, for a drone whose numbers are not all
 * finite and moderate, or a cruise speed that could make a leg's time overflow: for those the
 * track is predicted instead.
 */
function reachBox(d: OtherDrone, frame: LocalFrame, cruise_mps: number, out: TimedPath["box"]): boolean {
  if (!(cruise_mps >= 0.01) || !plain(d.lat) || !plain(d.lon) || !plain(d.alt_m) || !plain(d.speed_mps) || !plain(d.heading_deg) || !plain(d.climb_mps)) return false;
  if (!plain(d.hold_s) || !plain(d.lead_s) || !plain(d.plan_speed_mps) || !(d.descent_mps === undefined || d.descent_mps <= 0 || plain(d.descent_mps, 0.01))) return false;
  const x = frame.x(d.lon);
  const y = frame.y(d.lat);
  let x0 = x;
  let x1 = x;
  let y0 = y;
  let y1 = y;
  let z0 = d.alt_m;
  let z1 = d.alt_m;
  for (const w of d.path) {
    if (!plain(w.lat) || !plain(w.lon) || !plain(w.alt_m)) return false;
    const wx = frame.x(w.lon);
    const wy = frame.y(w.lat);
    if (wx < x0) x0 = wx;
    if (wx > x1) x1 = wx;
    if (wy < y0) y0 = wy;
    if (wy > y1) y1 = wy;
    if (w.alt_m < z0) z0 = w.alt_m;
    if (w.alt_m > z1) z1 = w.alt_m;
  }
  const speed = isMoving(d.speed_mps) ? d.speed_mps! : 0;
  const climb = Math.abs(d.climb_mps ?? 0);
  const lead = d.lead_s !== undefined && d.lead_s > 0 ? Math.min(d.lead_s, CLIMB_EXTRAPOLATION_S) : 0;
  // With a plan the drone moves on its own only while a command is on its way; without one it
  // is dead-reckoned over the whole horizon (trajectory.ts).
  const goesOnS = d.path.length > 0 ? lead : lead + Math.max(SEPARATION_HORIZON_S, CLIMB_EXTRAPOLATION_S);
  const climbsS = d.path.length > 0 ? lead : lead + CLIMB_EXTRAPOLATION_S;
  const h = speed * goesOnS + REACH_SLACK_M;
  const v = climb * climbsS + REACH_SLACK_M;
  out[0] = Math.min(x0, x - h);
  out[1] = Math.max(x1, x + h);
  out[2] = Math.min(y0, y - h);
  out[3] = Math.max(y1, y + h);
  out[4] = Math.min(z0, d.alt_m - v);
  out[5] = Math.max(z1, d.alt_m + v);
  return out.every((b) => Math.abs(b) < REACH_LIMIT);
}

/**
 * Predict the first loss of separation if `drone` flies straight to `target` and stays there,
 * while every other drone moves as trajectory.ts predicts (its plan, else dead reckoning on its
 * heading and speed). The commanded drone flies at its ground speed (cruise when it is not
 * moving), like every planned drone. The scan covers the flight plus `hold_s`, and never less
 * than conflict detection's horizon: a drone parked at the target after a short hop is still
 * there when the next detection pass looks 30 s ahead; at most 120 s. Positions are compared
 * every 0.5 s and exactly in between. Separation is lost when, at one instant, both the
 * horizontal distance is under `separation.horizontal_m` and the vertical under
 * `separation.vertical_m`.
 *
 * A pair already inside the minima now (two drones parked on the same pad) is not a new
 * conflict this command causes: it is tolerated while the two are not closing in, and checked
 * normally once they have separated.
 */
export function findSeparationConflict(
  drone: TrafficOrigin,
  target: LatLonAlt,
  others: readonly OtherDrone[],
  config: FleetConfig,
  self_id?: string,
  hold_s = 0,
): { conflict: SeparationConflict | null; closest_m: number; considered: number } {
  return scanSeparation(prepareTraffic(drone, others, config, self_id), target, config, hold_s);
}

/** `findSeparationConflict` against traffic prepared once. */
export function scanSeparation(
  traffic: PreparedTraffic,
  target: LatLonAlt,
  config: FleetConfig,
  hold_s = 0,
): { conflict: SeparationConflict | null; closest_m: number; considered: number } {
  const H = config.separation.horizontal_m;
  const V = config.separation.vertical_m;
  const origin = traffic.origin;
  const own = predictTrack(
    { lat: origin.lat, lon: origin.lon, alt_m: origin.alt_m, ...(origin.speed_mps !== undefined ? { speed_mps: origin.speed_mps } : {}), path: [target] },
    traffic.frame,
    config.cruise_speed_mps,
    SEPARATION_HORIZON_S,
  );
  const ex = own.xs[own.n - 1]!;
  const ey = own.ys[own.n - 1]!;
  const z0 = origin.alt_m;
  const arrive_s = own.ts[own.n - 1]!;
  const horizon = Math.min(Math.max(arrive_s + Math.max(0, hold_s), PREDICTION_HORIZON_S), SEPARATION_HORIZON_S);
  const steps = Math.ceil(horizon / SEPARATION_STEP_S - 1e-9);
  // Our swept box grown by the minima: a path whose box misses it can never come close.
  const minX = Math.min(0, ex) - H;
  const maxX = Math.max(0, ex) + H;
  const minY = Math.min(0, ey) - H;
  const maxY = Math.max(0, ey) + H;
  const minZ = Math.min(z0, target.alt_m) - V;
  const maxZ = Math.max(z0, target.alt_m) + V;

  const H2 = H * H;
  const o = [0, 0, 0];
  const q = [0, 0, 0];
  let best: SeparationConflict | null = null;
  let closest2 = Number.POSITIVE_INFINITY;
  const conflictAt = (id: string, t: number, hx: number, hy: number, v: number, oz: number, pz: number): SeparationConflict => ({
    other_id: id,
    t_s: t,
    horizontal_m: Math.hypot(hx, hy),
    vertical_m: Math.abs(v),
    at: { ...fromLocal(origin, { x_m: o[0]!, y_m: o[1]! }), alt_m: oz },
    other_alt_m: pz,
    fraction: arrive_s > 0 ? Math.min(t / arrive_s, 1) : 1,
  });
  for (const path of traffic.paths) {
    const b = path.box;
    if (b[1] < minX || b[0] > maxX || b[3] < minY || b[2] > maxY || b[5] < minZ || b[4] > maxZ) continue;
    if (!path.track) {
      // Its reach box touches ours: predict it, and look again with the track's own box.
      trackOf(traffic, path);
      if (b[1] < minX || b[0] > maxX || b[3] < minY || b[2] > maxY || b[5] < minZ || b[4] > maxZ) continue;
    }
    const tr = path.track!;
    const n = tr.n;
    // Spatial necessary condition: some leg of its track must pass within H of our track.
    let near = false;
    for (let i = 0; i < n && !near; i++) {
      const j = i + 1 < n ? i + 1 : i;
      near = segSegDist2(0, 0, ex, ey, tr.xs[i]!, tr.ys[i]!, tr.xs[j]!, tr.ys[j]!) < H2;
    }
    if (!near) continue;
    let hint = 0;
    let ownHint = 0;
    let wasInside = true; // "inside the minima ever since t = 0": see the doc comment
    let prevD2 = Number.NaN; // NaN: nothing to compare with at t = 0, so "not closing"
    let prev: { t: number; hx: number; hy: number; v: number } | null = null;
    for (let k = 0; k <= steps; k++) {
      const t = Math.min(k * SEPARATION_STEP_S, horizon);
      if (best && t >= best.t_s) break; // an earlier conflict is already known
      ownHint = positionAt(own, t, o, ownHint);
      hint = positionAt(tr, t, q, hint);
      // Squared distances: this loop runs up to 241 times per nearby drone per candidate.
      const hx = o[0]! - q[0]!;
      const hy = o[1]! - q[1]!;
      const vz = o[2]! - q[2]!;
      const v = Math.abs(vz);
      const h2 = hx * hx + hy * hy;
      const d2 = h2 + v * v;
      if (d2 < closest2) closest2 = d2;
      const inside = h2 < H2 && v < V;
      const closing = d2 < prevD2 - 1e-6;
      prevD2 = d2;
      if (!inside && prev && !wasInside) {
        // Outside at both samples: between them both move linearly, so a brief pass inside the
        // minima (a fast crossing) is found exactly, as conflict detection finds it.
        const w = separationWindow(prev.hx, prev.hy, prev.v, hx - prev.hx, hy - prev.hy, vz - prev.v, H, V);
        if (w) {
          const tc = prev.t + (t - prev.t) * w.lo;
          ownHint = positionAt(own, tc, o, 0);
          positionAt(tr, tc, q, 0);
          best = conflictAt(path.id, tc, o[0]! - q[0]!, o[1]! - q[1]!, o[2]! - q[2]!, o[2]!, q[2]!);
          break;
        }
      }
      prev = { t, hx, hy, v: vz };
      if (!inside) wasInside = false;
      else if (!wasInside || closing) {
        best = conflictAt(path.id, t, hx, hy, vz, o[2]!, q[2]!);
        break;
      }
    }
  }
  return { conflict: best, closest_m: Math.sqrt(closest2), considered: traffic.paths.length };
}

/** Squared distance from (px, py) to segment a–b. */
function pointSegDist2(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  const x = ax + t * dx - px;
  const y = ay + t * dy - py;
  return x * x + y * y;
}

/** Squared distance between segments a–b and c–d in the plane (0 when they cross). Scalar
 * arguments: called per leg of every nearby drone, so no objects are allocated. */
function segSegDist2(
  ax: number, ay: number, bx: number, by: number,
  cx: number, cy: number, dx: number, dy: number,
): number {
  const o1 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
  const o2 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax);
  const o3 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx);
  const o4 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx);
  if (((o1 > 0 && o2 < 0) || (o1 < 0 && o2 > 0)) && ((o3 > 0 && o4 < 0) || (o3 < 0 && o4 > 0))) return 0;
  return Math.min(
    pointSegDist2(ax, ay, cx, cy, dx, dy),
    pointSegDist2(bx, by, cx, cy, dx, dy),
    pointSegDist2(cx, cy, ax, ay, bx, by),
    pointSegDist2(dx, dy, ax, ay, bx, by),
  );
}

// ----------------------------------------------------------------------------- validation

/** What a validation runs against. `full: false` evaluates the position rules only (for
 * `checkPosition`), and then there is no drone. */
type Ctx = {
  drone: CommandedDrone | null;
  config: FleetConfig;
  others: readonly OtherDrone[];
  hold_s: number;
  full: boolean;
  /** The others projected at the drone, built on first use and shared by every candidate. */
  traffic: PreparedTraffic | null;
  /** Full evaluations of suggestion candidates still allowed (see MAX_CANDIDATE_EVALUATIONS). */
  budget: number;
};
type Failure = {
  ok: false;
  rule: SafetyRule;
  message: string;
  zone_id?: string;
  conflict?: SeparationConflict;
};
type Evaluation = { ok: true; checks: string[] } | Failure;

/**
 * Validate a new waypoint for `drone`. Rules in order: invalid_coordinates, altitude_ceiling,
 * altitude_floor, geofence, no_fly_zone, battery (there and back home with the reserve left),
 * separation (time-aware against the other drones' planned paths). On rejection, up to three
 * alternative suggestions, each of which passes this same validation.
 */
export function validateWaypoint(input: WaypointCheckInput): SafetyResult {
  const ctx: Ctx = {
    drone: input.drone,
    config: input.config,
    others: input.others,
    hold_s: Number.isFinite(input.hold_s) ? Math.max(0, input.hold_s ?? 0) : 0,
    full: true,
    traffic: null,
    budget: MAX_CANDIDATE_EVALUATIONS,
  };
  const r = evaluate(ctx, input.target);
  if (r.ok) return r;
  return { ok: false, rule: r.rule, message: r.message, alternative_suggestions: suggest(ctx, input.target, r) };
}

function evaluate(ctx: Ctx, target: LatLonAlt): Evaluation {
  const { drone, config } = ctx;
  if (!ctx.full || !drone) return positionFailure(target, config) ?? { ok: true, checks: [] };
  if (!validCoordinates(drone)) {
    return {
      ok: false,
      rule: "invalid_coordinates",
      message:
        `drone ${drone.drone_id} has no valid position ` +
        `(lat ${fmt(drone.lat, 6)}, lon ${fmt(drone.lon, 6)}, alt ${fmt(drone.alt_m, 1)})`,
    };
  }
  const pos = positionFailure(target, config);
  if (pos) return pos;
  const checks = [
    "coordinates valid",
    `altitude ${fmt(target.alt_m, 1)} m within ${config.floor_m}–${config.ceiling_m} m`,
    "inside the geofence",
    `clear of ${config.no_fly_zones.length} no-fly zone${config.no_fly_zones.length === 1 ? "" : "s"}`,
  ];

  if (!Number.isFinite(drone.battery_pct)) {
    return { ok: false, rule: "battery", message: `drone ${drone.drone_id} battery level is unknown` };
  }
  const b = batteryAfterReturnPct(drone, drone.battery_pct, target, config, ctx.hold_s);
  const reserve = config.battery_reserve_pct;
  if (b.remaining_pct < reserve) {
    const hover = b.hover_pct > 0 ? ` − ${b.hover_pct.toFixed(1)} % holding` : "";
    return {
      ok: false,
      rule: "battery",
      message:
        `battery ${drone.battery_pct.toFixed(1)} % − ${b.out_pct.toFixed(1)} % to the point${hover} − ` +
        `${b.back_pct.toFixed(1)} % back home leaves ${b.remaining_pct.toFixed(1)} %, below the ${reserve} % reserve`,
    };
  }
  checks.push(`battery on return ${b.remaining_pct.toFixed(1)} % ≥ ${reserve} % reserve`);

  ctx.traffic ??= prepareTraffic(drone, ctx.others, config, drone.drone_id);
  const sep = scanSeparation(ctx.traffic, target, config, ctx.hold_s);
  if (sep.conflict) {
    const c = sep.conflict;
    return {
      ok: false,
      rule: "separation",
      message:
        `loss of separation with drone ${c.other_id} in ${c.t_s.toFixed(1)} s: ${c.horizontal_m.toFixed(0)} m horizontal, ` +
        `${c.vertical_m.toFixed(0)} m vertical (minima ${config.separation.horizontal_m} m / ${config.separation.vertical_m} m)`,
      conflict: c,
    };
  }
  checks.push(
    sep.considered === 0
      ? "separation: no other drones"
      : `separation kept from ${sep.considered} drone${sep.considered === 1 ? "" : "s"}` +
          (Number.isFinite(sep.closest_m) ? ` (closest ${sep.closest_m.toFixed(0)} m)` : ""),
  );
  return { ok: true, checks };
}

// ----------------------------------------------------------------------------- suggestions

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/** Round to ~1 cm and 0.1 m so what is validated is exactly what is sent. */
function point(lat: number, lon: number, alt_m: number, reason: string): Suggestion {
  return {
    lat: Math.round(lat * 1e7) / 1e7,
    lon: Math.round(lon * 1e7) / 1e7,
    alt_m: Math.round(alt_m * 10) / 10,
    reason,
  };
}

/** An altitude inside the fleet's band, a little off the limits. */
function bandAlt(config: FleetConfig, alt: number): number {
  const lo = Math.min(config.floor_m + 1, config.ceiling_m);
  const hi = Math.max(config.ceiling_m - 1, config.floor_m);
  return clamp(Number.isFinite(alt) ? alt : lo, lo, hi);
}

/** Boundary crossings worth offering: the nearest, and others not much further (a geofence
 * corner 1.5 km away is no alternative to a point 200 m away). Sorted nearest first already. */
function nearby(p: LocalPoint, cands: LocalPoint[]): LocalPoint[] {
  const d = (c: LocalPoint) => Math.hypot(c.x_m - p.x_m, c.y_m - p.y_m);
  const limit = cands[0] ? 2 * d(cands[0]) + 50 : 0;
  return cands.filter((c) => d(c) <= limit);
}

/** Candidate fixes for one failure of `p`, most natural first. Not yet validated. */
function fixesFor(ctx: Ctx, p: LatLonAlt, f: Failure): Suggestion[] {
  const { config, drone } = ctx;
  const M = SUGGESTION_MARGIN_M;
  switch (f.rule) {
    case "invalid_coordinates": {
      const out: Suggestion[] = [];
      if (Number.isFinite(p.lat) && Number.isFinite(p.lon)) {
        const alt = bandAlt(config, p.alt_m);
        out.push(point(clamp(p.lat, -90, 90), clamp(p.lon, -180, 180), alt, "coordinates clamped into range"));
      }
      if (drone && validCoordinates(drone)) {
        const alt = bandAlt(config, Number.isFinite(p.alt_m) ? p.alt_m : drone.alt_m);
        out.push(point(drone.lat, drone.lon, alt, "hold at the current position"));
      }
      out.push(point(config.home.lat, config.home.lon, bandAlt(config, drone?.alt_m ?? p.alt_m), "return over home"));
      return out;
    }
    // Rounded inwards: `point` keeps 0.1 m, and a ceiling of 120.05 must not become 120.1.
    case "altitude_ceiling":
      return [point(p.lat, p.lon, Math.floor(config.ceiling_m * 10) / 10, `at the ${config.ceiling_m} m ceiling`)];
    case "altitude_floor":
      return [point(p.lat, p.lon, Math.ceil(config.floor_m * 10) / 10, `at the ${config.floor_m} m floor`)];
    case "geofence": {
      const prep = prepare(config);
      const local = toLocal(prep.home, p);
      return nearby(local, crossingCandidatesLocal(local, prep.geofence, true, M)).map((c, i) => {
        const ll = fromLocal(prep.home, c);
        return point(ll.lat, ll.lon, p.alt_m, `${i === 0 ? "nearest point" : "point"} ${M} m inside the geofence`);
      });
    }
    case "no_fly_zone": {
      const prep = prepare(config);
      const z = prep.zones.find((x) => x.zone.id === f.zone_id);
      if (!z) return [];
      const local = toLocal(prep.home, p);
      const sideways = nearby(local, crossingCandidatesLocal(local, z.poly, false, M)).map((c) => {
        const ll = fromLocal(prep.home, c);
        return point(ll.lat, ll.lon, p.alt_m, `just outside no-fly zone "${z.zone.name}"`);
      });
      const vertical: Suggestion[] = [];
      if (z.zone.ceiling_m !== undefined && z.zone.ceiling_m + M <= config.ceiling_m) {
        vertical.push(point(p.lat, p.lon, z.zone.ceiling_m + M, `above no-fly zone "${z.zone.name}"`));
      }
      if (z.zone.floor_m !== undefined && z.zone.floor_m - M >= config.floor_m) {
        vertical.push(point(p.lat, p.lon, z.zone.floor_m - M, `below no-fly zone "${z.zone.name}"`));
      }
      // The nearest way out sideways, then over or under a zone with a band, then other sides.
      return [...sideways.slice(0, 1), ...vertical, ...sideways.slice(1)];
    }
    case "battery":
      return batteryFix(ctx, p);
    case "separation":
      return separationFixes(ctx, p, f.conflict);
  }
}

/** The furthest point on the straight line drone → p that still returns home with the reserve.
 * Bisection assumes the cost grows along the line, which holds unless home lies ahead on it; the
 * result is re-validated anyway. */
function batteryFix(ctx: Ctx, p: LatLonAlt): Suggestion[] {
  const { drone, config } = ctx;
  if (!drone || !Number.isFinite(drone.battery_pct) || !validCoordinates(drone)) return [];
  const d: LatLonAlt = { lat: drone.lat, lon: drone.lon, alt_m: drone.alt_m };
  const off = toLocal(d, p);
  const at = (f: number): LatLonAlt => ({
    ...fromLocal(d, { x_m: off.x_m * f, y_m: off.y_m * f }),
    alt_m: d.alt_m + (p.alt_m - d.alt_m) * f,
  });
  const keeps = (f: number) =>
    batteryAfterReturnPct(d, drone.battery_pct, at(f), config, ctx.hold_s).remaining_pct >= config.battery_reserve_pct;
  const out: Suggestion[] = [];
  if (keeps(0)) {
    let lo = 0;
    let hi = 1;
    for (let i = 0; i < 30; i++) {
      const mid = (lo + hi) / 2;
      if (keeps(mid)) lo = mid;
      else hi = mid;
    }
    const total = Math.hypot(off.x_m, off.y_m, p.alt_m - d.alt_m);
    // Back off 2 m so rounding cannot tip the suggestion over the reserve.
    const f = total > 0 ? Math.max(0, lo - 2 / total) : 0;
    if (f > 0) {
      const q = at(f);
      const why =
        `furthest point toward the target that keeps the ${config.battery_reserve_pct} % reserve ` +
        `(${Math.round(f * 100)} % of the way)`;
      out.push(point(q.lat, q.lon, bandAlt(config, q.alt_m), why));
    }
  }
  out.push(point(config.home.lat, config.home.lon, bandAlt(config, Math.min(drone.alt_m, p.alt_m)), "return over home"));
  return out;
}

/** Raise or lower the point clear of the conflicting drone, or shift it sideways. */
function separationFixes(ctx: Ctx, p: LatLonAlt, c: SeparationConflict | undefined): Suggestion[] {
  const { config, drone } = ctx;
  const H = config.separation.horizontal_m;
  const V = config.separation.vertical_m;
  const M = SUGGESTION_MARGIN_M;
  const out: Suggestion[] = [];
  const alts = new Set<number>();
  const addAlt = (alt: number, why: string) => {
    if (alt < config.floor_m || alt > config.ceiling_m) return;
    const key = Math.round(alt * 10);
    if (alts.has(key)) return;
    alts.add(key);
    out.push(point(p.lat, p.lon, alt, why));
  };
  const who = c ? `drone ${c.other_id}` : "other drones";
  if (c) {
    // The climb is spread over the whole flight, so to be V + M clear at the moment of conflict
    // (a fraction f of the way) the target must change by 1/f as much.
    const z0 = drone && Number.isFinite(drone.alt_m) ? drone.alt_m : p.alt_m;
    const f = Math.max(c.fraction, 0.05);
    const above = z0 + (c.other_alt_m + V + M - z0) / f;
    const below = z0 + (c.other_alt_m - V - M - z0) / f;
    if (f < 1) {
      addAlt(Math.ceil(above), `climb to ${Math.ceil(above)} m to pass ${V + M} m above ${who}`);
      addAlt(Math.floor(below), `descend to ${Math.floor(below)} m to pass ${V + M} m below ${who}`);
    }
    addAlt(c.other_alt_m + V + M, `raised to pass ${V + M} m above ${who}`);
    addAlt(c.other_alt_m - V - M, `lowered to pass ${V + M} m below ${who}`);
  }
  addAlt(p.alt_m + V + M, `raised ${V + M} m to keep separation from ${who}`);
  addAlt(p.alt_m - V - M, `lowered ${V + M} m to keep separation from ${who}`);
  // Sideways: perpendicular to the flight direction, both sides, growing distances.
  if (drone && validCoordinates(drone)) {
    const dir = toLocal(drone, p);
    let ux = dir.x_m;
    let uy = dir.y_m;
    const len = Math.hypot(ux, uy);
    if (len > 1e-6) {
      ux /= len;
      uy /= len;
    } else {
      ux = 1;
      uy = 0;
    }
    for (const k of [1, 2, 4]) {
      const s = (H + M) * k;
      for (const side of [1, -1]) {
        const ll = fromLocal(p, { x_m: -uy * s * side, y_m: ux * s * side });
        out.push(point(ll.lat, ll.lon, p.alt_m, `offset ${s.toFixed(0)} m sideways to keep separation from ${who}`));
      }
    }
  }
  return out;
}


/** Alternatives a failure's fixes branch into when repairing: enough to get round a zone that
 * straddles the geofence, few enough that the search stays small (≤ 40 position checks). */
const REPAIR_BRANCHING = 3;
const REPAIR_DEPTH = 3;

/**
 * Position-valid variants of `start`, nearest to it first: a small breadth-first search through
 * the position fixes (clamp the altitude, step inside the geofence, step out of a zone, …). The
 * search is exhaustive to a shallow depth rather than greedy because the nearest fix for one rule
 * can break another (the nearest way out of a zone that straddles the geofence leaves the
 * geofence) while a slightly longer one satisfies both. Only cheap position rules run here.
 */
function positionRepairs(ctx: Ctx, start: Suggestion, max: number): Suggestion[] {
  const found: { s: Suggestion; d: number }[] = [];
  let frontier: Suggestion[] = [start];
  for (let depth = 0; depth <= REPAIR_DEPTH && frontier.length > 0; depth++) {
    const next: Suggestion[] = [];
    for (const cand of frontier) {
      const f = positionFailure(cand, ctx.config);
      if (!f) {
        const d = validCoordinates(start) ? dist3(start, cand) : depth;
        if (!found.some((x) => x.s.lat === cand.lat && x.s.lon === cand.lon && x.s.alt_m === cand.alt_m)) {
          found.push({ s: cand, d });
        }
        continue;
      }
      if (depth === REPAIR_DEPTH) continue;
      for (const fix of fixesFor(ctx, cand, f).slice(0, REPAIR_BRANCHING)) {
        next.push({ ...fix, reason: `${cand.reason}; ${fix.reason}` });
      }
    }
    frontier = next;
  }
  found.sort((a, b) => a.d - b.d);
  return found.slice(0, max).map((x) => x.s);
}

/** Full validation of a candidate within the call's budget; null once the budget is spent. */
function evaluateCandidate(ctx: Ctx, p: LatLonAlt): Evaluation | null {
  if (ctx.budget <= 0) return null;
  ctx.budget--;
  return evaluate(ctx, p);
}

/**
 * A fully valid variant of `start`, or null: its position repairs are validated in full, and a
 * battery or separation failure of one of them is fixed once more (`depth`), within the budget.
 */
function repair(ctx: Ctx, start: Suggestion, depth = 1): Suggestion | null {
  for (const q of positionRepairs(ctx, start, 2)) {
    const r = evaluateCandidate(ctx, q);
    if (!r) return null;
    if (r.ok) return q;
    if (depth > 0 && (r.rule === "battery" || r.rule === "separation")) {
      for (const fix of fixesFor(ctx, q, r).slice(0, REPAIR_BRANCHING)) {
        const x = repair(ctx, { ...fix, reason: `${q.reason}; ${fix.reason}` }, depth - 1);
        if (x) return x;
      }
    }
  }
  return null;
}

/** Valid alternatives for a rejected target: rule-specific fixes (each repaired until valid),
 * then, if none survive, the nearest valid point on rings around the target. */
function suggest(ctx: Ctx, target: LatLonAlt, failure: Failure): Suggestion[] {
  const out: Suggestion[] = [];
  // Without a valid drone position nothing can be checked for battery or separation.
  if (ctx.full && !(ctx.drone && validCoordinates(ctx.drone) && Number.isFinite(ctx.drone.battery_pct))) return out;
  const seen = (s: Suggestion) =>
    out.some((o) => Math.abs(o.alt_m - s.alt_m) < 0.5 && Math.abs(o.lat - s.lat) < 1e-5 && Math.abs(o.lon - s.lon) < 1e-5);
  for (const cand of fixesFor(ctx, target, failure)) {
    if (out.length >= MAX_SUGGESTIONS || ctx.budget <= 0) break;
    const ok = repair(ctx, cand);
    if (ok && !seen(ok)) out.push(ok);
  }
  if (out.length === 0 && validCoordinates(target)) {
    ctx.budget = RING_SEARCH_EVALUATIONS;
    const ring = ringSearch(ctx, target);
    if (ring) out.push(ring);
  }
  return out;
}

/** Last resort: the nearest valid point on rings of growing radius around the target, at an
 * altitude inside the band. Bounded: 7 rings × 12 bearings. */
function ringSearch(ctx: Ctx, target: LatLonAlt): Suggestion | null {
  const alt = bandAlt(ctx.config, target.alt_m);
  for (const r of [10, 25, 50, 100, 200, 400, 800]) {
    for (let i = 0; i < 12; i++) {
      const b = (i * Math.PI) / 6;
      const local: LocalPoint = { x_m: r * Math.sin(b), y_m: r * Math.cos(b) };
      const ll = fromLocal(target, local);
      const cand = point(ll.lat, ll.lon, alt, `nearest valid point found ${r} m from the target`);
      // Position rules are cheap; only candidates that pass them cost a full validation.
      if (positionFailure(cand, ctx.config) !== null) continue;
      const r2 = evaluateCandidate(ctx, cand);
      if (!r2) return null;
      if (r2.ok) return cand;
    }
  }
  return null;
}

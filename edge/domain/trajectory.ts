/**
 * The one model of where a drone will be: the waypoint safety check (safety.ts) and conflict
 * detection and resolution (conflicts.ts) both predict every drone with `predictTrack`, so a
 * waypoint the safety check accepts is not flagged by the next detection pass on the same data.
 *
 * The rule, for a drone at its reported position:
 * 0. A command on its way (`lead_s`, set when a resolution is verified): for that long the drone
 *    goes on as it is (heading, speed, climb), then does what follows from where it got to.
 * 1. Holding (`hold_s` > 0, from a hold command): it stays where it is for that long, then does
 *    what follows.
 * 2. With a plan (remaining waypoints): it flies them in order in straight 3D legs and hovers at
 *    the last waypoint. Its speed is the reported ground speed, or, when it reports less than
 *    MIN_MOVING_SPEED_MPS (a drone turning at a waypoint or just commanded is momentarily slow),
 *    or when the plan is new to the drone (`plan_speed_only`: its speed is the last leg's), the
 *    plan's own speed (a reported intent's target speed), else the fleet's cruise speed. A
 *    leg takes as long as its horizontal part at that speed or its vertical part at
 *    PLAN_CLIMB_MPS, whichever is longer; the climb is capped by the plan's own speed only when
 *    that speed is the plan's (a landing's descent rate), never by a reported ground speed (the
 *    horizontal part of a steep leg's motion). After a steep first leg (STEEP_LEG_SHARE) the
 *    reported ground speed says nothing of the legs to come: they are flown at the plan's own
 *    speed, else cruise.
 *    Which plan a drone has (its reported intent, the edge's record of acknowledged commands, or
 *    none) is the caller's choice: collision-avoidance.ts decides and checks it.
 * 3. Without a plan: dead reckoning. It keeps its reported heading and ground speed over the
 *    whole horizon, and its climb rate for CLIMB_EXTRAPOLATION_S, then levels off (projecting a
 *    take-off's climb over 30 s would send it through the ceiling). A drone reporting less than
 *    MIN_MOVING_SPEED_MPS hovers: at that speed the heading is noise. A drone that reports no
 *    heading or speed at all (a caller without telemetry) hovers too.
 *
 * A track is a timed polyline in a local frame (x east, y north, z up, metres): between knots
 * the drone moves linearly, after the last one it stays there. Callers sample it at their own
 * instants (`sampleTrack`, `positionAt`); `separationWindow` is the exact "both minima broken"
 * test between two samples that both callers use.
 *
 * Pure functions on plain data: no runtime APIs.
 */
import type { LatLonAlt, LocalFrame } from "./geo";

/** What the predictor needs to know about one drone. Telemetry samples and the collision
 * detector's drones fit it as they are. */
export type MotionState = {
  lat: number;
  lon: number;
  /** Metres above home. */
  alt_m: number;
  /** Course over ground, degrees clockwise from north; used only without a plan. */
  heading_deg?: number;
  /** Ground speed, m/s. */
  speed_mps?: number;
  /** Vertical speed, positive up; used only without a plan. */
  climb_mps?: number;
  /** Remaining planned waypoints in order; empty: dead reckoning. */
  path: readonly LatLonAlt[];
  /** Holding position for this many more seconds before doing the above. */
  hold_s?: number;
  /** Speed the plan is flown at while the drone reports less than MIN_MOVING_SPEED_MPS (a
   * reported intent's target speed); default: the fleet's cruise speed. */
  plan_speed_mps?: number;
  /** Seconds the drone carries on as it is (heading, speed, climb) before the hold and plan
   * apply: a command on its way to the drone takes effect that much later. */
  lead_s?: number;
  /** The plan is new to the drone (a command on its way, a waypoint it has just rounded, a route
   * just replaced): its reported ground speed is that of the leg it flew before, which says
   * nothing of these legs; they are flown at the plan's own speed, else cruise. */
  plan_speed_only?: boolean;
  /** Rate of the plan's landing (`landingLeg`), m/s; default as any other leg's climb. */
  descent_mps?: number;
};

/** Below this ground speed a drone counts as not moving: it hovers, or flies its plan at cruise. */
export const MIN_MOVING_SPEED_MPS = 0.5;
/** Fastest climb or descent a drone is assumed to fly a plan's leg at, m/s (PX4's and
 * ArduPilot's multirotor defaults are 3 m/s up, 1–1.5 m/s down; the faster bound errs on
 * arriving early). A leg takes as long as its horizontal part at the plan's speed or its
 * vertical part at this rate (at most the plan's speed), whichever is longer. */
export const PLAN_CLIMB_MPS = 3;
/** A first leg whose vertical part takes at least this share of its horizontal part (at the
 * reported speed) is steep: the drone's ground speed is then held down by its climb, and the
 * legs after it are flown at the plan's own speed (an intent's, else cruise). */
const STEEP_LEG_SHARE = 0.8;
/** The slower bound of a landing's descent before touchdown, m/s (PX4's MPC_Z_V_AUTO_DN,
 * ArduPilot's WPNAV_SPEED_DN and the simulator's default): a landing is predicted at both bounds
 * (conflicts.ts), since which is the worse depends on who flies where above the pad. */
export const LAND_DESCENT_MPS = 1.5;
/** A last leg ending this close horizontally to where it starts, and this much lower, is a
 * landing (straight down onto the pad), metres. */
const LANDING_LEG_M = 5;

/**
 * Whether the plan ends in a landing: its last leg straight down (within LANDING_LEG_M
 * horizontally) by more than LANDING_LEG_M. `frame` places the waypoints.
 */
export function landingLeg(d: Pick<MotionState, "lat" | "lon" | "alt_m" | "path">, frame: LocalFrame): boolean {
  const n = d.path.length;
  if (n === 0) return false;
  const to = d.path[n - 1]!;
  const from = n > 1 ? d.path[n - 2]! : d;
  return from.alt_m - to.alt_m > LANDING_LEG_M && Math.hypot(frame.x(to.lon) - frame.x(from.lon), frame.y(to.lat) - frame.y(from.lat)) <= LANDING_LEG_M;
}

/** The climb or descent rate `predictTrack` flies `d`'s legs at, m/s (see the rule above). */
export function legClimbMps(d: Pick<MotionState, "speed_mps" | "plan_speed_mps" | "plan_speed_only">, cruise_mps: number): number {
  return isMoving(d.speed_mps) && !d.plan_speed_only ? PLAN_CLIMB_MPS : Math.min(PLAN_CLIMB_MPS, planSpeedMps(d, cruise_mps));
}

/** How long a drone without a plan is assumed to keep its current climb rate, seconds. */
export const CLIMB_EXTRAPOLATION_S = 5;
/** How far ahead conflict detection looks, seconds; the safety check looks at least this far. */
export const PREDICTION_HORIZON_S = 30;

/** Knots of a predicted track; only the first `n` entries of the arrays are used. */
export type Track = { n: number; ts: Float64Array; xs: Float64Array; ys: Float64Array; zs: Float64Array };

const DEG = Math.PI / 180;

/** Whether a reported ground speed means the drone is moving. */
export function isMoving(speed_mps: number | undefined): boolean {
  return speed_mps !== undefined && speed_mps > MIN_MOVING_SPEED_MPS;
}

/** The speed a drone flies its plan at: its ground speed if moving, else the plan's own speed
 * (a reported intent's), else the cruise speed. */
export function planSpeedMps(d: Pick<MotionState, "speed_mps" | "plan_speed_mps" | "plan_speed_only">, cruise_mps: number): number {
  if (isMoving(d.speed_mps) && !d.plan_speed_only) return d.speed_mps!;
  return isMoving(d.plan_speed_mps) ? d.plan_speed_mps! : cruise_mps;
}

/** An empty track with room for `capacity` knots. */
export function newTrack(capacity: number): Track {
  return {
    n: 0,
    ts: new Float64Array(capacity),
    xs: new Float64Array(capacity),
    ys: new Float64Array(capacity),
    zs: new Float64Array(capacity),
  };
}

function push(tr: Track, t: number, x: number, y: number, z: number): void {
  const i = tr.n++;
  tr.ts[i] = t;
  tr.xs[i] = x;
  tr.ys[i] = y;
  tr.zs[i] = z;
}

/**
 * `d`'s predicted track in `frame` up to `horizon_s` (see the rule above). `out` is reused when it
 * has room (hot loops predict 1,000 drones per pass), otherwise a new track is returned.
 */
export function predictTrack(d: MotionState, frame: LocalFrame, cruise_mps: number, horizon_s: number, out?: Track): Track {
  const need = d.path.length + 4;
  const tr = out && out.ts.length >= need + 1 ? out : newTrack(need + 1);
  tr.n = 0;
  const moving = isMoving(d.speed_mps) && d.heading_deg !== undefined && Number.isFinite(d.heading_deg);
  const h = moving ? d.heading_deg! * DEG : 0;
  const vx = moving ? d.speed_mps! * Math.sin(h) : 0;
  const vy = moving ? d.speed_mps! * Math.cos(h) : 0;
  const vz = d.climb_mps !== undefined && Number.isFinite(d.climb_mps) ? d.climb_mps : 0;
  let x0 = frame.x(d.lon);
  let y0 = frame.y(d.lat);
  let z0 = d.alt_m;
  push(tr, 0, x0, y0, z0);
  // A command still on its way: the drone goes on as it is until it takes effect.
  const lead = (d.path.length > 0 || (d.hold_s ?? 0) > 0) && d.lead_s !== undefined && d.lead_s > 0 ? Math.min(d.lead_s, CLIMB_EXTRAPOLATION_S) : 0;
  if (lead > 0) {
    x0 += vx * lead;
    y0 += vy * lead;
    z0 += vz * lead;
    push(tr, lead, x0, y0, z0);
  }
  const hold = d.hold_s !== undefined && d.hold_s > 0 ? lead + d.hold_s : 0;
  if (hold > 0) push(tr, hold, x0, y0, z0);
  if (d.path.length > 0) {
    // The reported ground speed is the horizontal part of the motion: it caps nothing vertical,
    // and on a leg the climb rate limits (a steep leg) it says nothing of the legs after it.
    const reported = isMoving(d.speed_mps) && !d.plan_speed_only;
    const own = isMoving(d.plan_speed_mps) ? d.plan_speed_mps! : cruise_mps;
    let speed = planSpeedMps(d, cruise_mps);
    let t = Math.max(hold, lead);
    const lands = d.descent_mps !== undefined && d.descent_mps > 0 && landingLeg(d, frame);
    let ax = x0;
    let ay = y0;
    let az = z0;
    for (let i = 0; i < d.path.length; i++) {
      const wp = d.path[i]!;
      const bx = frame.x(wp.lon);
      const by = frame.y(wp.lat);
      const bz = wp.alt_m;
      const horizontal = Math.hypot(bx - ax, by - ay) / speed;
      const climb = reported ? PLAN_CLIMB_MPS : Math.min(PLAN_CLIMB_MPS, speed);
      const vertical = Math.abs(bz - az) / (lands && i === d.path.length - 1 ? d.descent_mps! : climb);
      t += Math.max(horizontal, vertical);
      push(tr, t, bx, by, bz);
      if (i === 0 && reported && vertical >= STEEP_LEG_SHARE * horizontal && vertical > 0) speed = own;
      ax = bx;
      ay = by;
      az = bz;
    }
    return tr;
  }
  if (vx === 0 && vy === 0 && vz === 0) return tr;
  const tLevel = CLIMB_EXTRAPOLATION_S;
  push(tr, hold + tLevel, x0 + vx * tLevel, y0 + vy * tLevel, z0 + vz * tLevel);
  const tEnd = Math.max(horizon_s - hold, tLevel);
  if (tEnd > tLevel && (vx !== 0 || vy !== 0)) push(tr, hold + tEnd, x0 + vx * tEnd, y0 + vy * tEnd, z0 + vz * tLevel);
  return tr;
}

/** Index of the knot at or before `t` (0 before the start), starting the search at `from`. */
function knotBefore(tr: Track, t: number, from = 0): number {
  let i = from;
  while (i + 1 < tr.n && tr.ts[i + 1]! <= t) i++;
  return i;
}

/** Write the track's position at `t` into `out` (an array of 3: x, y, z). `hint` is a knot index
 * at or before `t` from an earlier call with a smaller `t`; the new one is returned. */
export function positionAt(tr: Track, t: number, out: Float64Array | number[], hint = 0): number {
  const i = knotBefore(tr, t, hint);
  if (i + 1 >= tr.n || t <= tr.ts[i]!) {
    out[0] = tr.xs[i]!;
    out[1] = tr.ys[i]!;
    out[2] = tr.zs[i]!;
    return i;
  }
  const span = tr.ts[i + 1]! - tr.ts[i]!;
  const g = span > 0 ? (t - tr.ts[i]!) / span : 1;
  out[0] = tr.xs[i]! + (tr.xs[i + 1]! - tr.xs[i]!) * g;
  out[1] = tr.ys[i]! + (tr.ys[i + 1]! - tr.ys[i]!) * g;
  out[2] = tr.zs[i]! + (tr.zs[i + 1]! - tr.zs[i]!) * g;
  return i;
}

/** Sample the track at increasing `times` into X/Y/Z from offset `off`. */
export function sampleTrack(tr: Track, times: ArrayLike<number>, X: Float64Array, Y: Float64Array, Z: Float64Array, off: number): void {
  const p = [0, 0, 0];
  let hint = 0;
  for (let k = 0; k < times.length; k++) {
    hint = positionAt(tr, times[k]!, p, hint);
    X[off + k] = p[0]!;
    Y[off + k] = p[1]!;
    Z[off + k] = p[2]!;
  }
}

/**
 * Where, within one interval over which two drones both move linearly, they are closer than
 * `H` horizontally and `V` vertically at the same instant. Inputs are the relative position at the
 * start (rx0, ry0, rz0) and its change over the interval (dx, dy, dz). Returns the window [lo, hi]
 * as fractions of the interval and `tau`, the instant in it of least horizontal distance, or null.
 * "Horizontal under H" is a quadratic and "vertical under V" a linear condition in time, so the
 * window is exact, not the nearest sample.
 */
export function separationWindow(
  rx0: number,
  ry0: number,
  rz0: number,
  dx: number,
  dy: number,
  dz: number,
  H: number,
  V: number,
): { lo: number; hi: number; tau: number } | null {
  const w = new Float64Array(3);
  return separationWindowInto(rx0, ry0, rz0, dx, dy, dz, H, V, w) ? { lo: w[0]!, hi: w[1]!, tau: w[2]! } : null;
}

/** `separationWindow` into `out` (lo, hi, tau), for loops over thousands of intervals a pass
 * that should not allocate; false where it returns null. */
export function separationWindowInto(
  rx0: number,
  ry0: number,
  rz0: number,
  dx: number,
  dy: number,
  dz: number,
  H: number,
  V: number,
  out: Float64Array,
): boolean {
  let lo = 0;
  let hi = 1;
  if (Math.abs(dz) < 1e-12) {
    if (!(Math.abs(rz0) < V)) return false;
  } else {
    const a = (-V - rz0) / dz;
    const b = (V - rz0) / dz;
    // Not a destructuring swap: that allocates an array, and this runs for every interval.
    const z1 = a > b ? b : a;
    const z2 = a > b ? a : b;
    if (z1 > lo) lo = z1;
    if (z2 < hi) hi = z2;
    if (lo >= hi) return false;
  }
  const qa = dx * dx + dy * dy;
  const qb = 2 * (rx0 * dx + ry0 * dy);
  const qc = rx0 * rx0 + ry0 * ry0 - H * H;
  if (qa < 1e-12) {
    if (!(qc < 0)) return false;
  } else {
    const disc = qb * qb - 4 * qa * qc;
    if (disc <= 0) return false;
    const sq = Math.sqrt(disc);
    const r1 = (-qb - sq) / (2 * qa);
    const r2 = (-qb + sq) / (2 * qa);
    if (r1 > lo) lo = r1;
    if (r2 < hi) hi = r2;
    if (lo >= hi) return false;
  }
  let tau = qa < 1e-12 ? lo : -qb / (2 * qa);
  tau = tau < lo ? lo : tau > hi ? hi : tau;
  out[0] = lo;
  out[1] = hi;
  out[2] = tau;
  return true;
}

/**
 * A simulated fleet of multirotors, standing in for ROS 2 on a laptop, in CI and in benchmarks.
 *
 * Each drone flies its own patrol loop near home, drains its battery with flight, returns to its
 * own pad below 25 %, lands, charges to ~95 % and takes off again, so dashboards, analytics and
 * coordination see every status in DRONE_STATUSES except `emergency` (reserved for commands).
 *
 * Cost model: one timer for the whole fleet. Drone i is due at `i/N` of each publish period, so
 * 1,000 drones at 1 Hz spread over the second instead of firing in the same millisecond, and a
 * drone's physics advances only when it is due (O(N) per period, nothing per idle tick).
 * The physics step is a pure function (`stepDrone`), tested without timers.
 */
import { compassDeg, toLatLon, type LatLon } from "./geo";
import { silentLogger, type Logger } from "./log";
import type { DroneSource, DroneStatus, SourceSample } from "./source";

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
};

/** PX4 flight mode names, as MAVROS reports them. */
export const SIM_MODES = {
  takeoff: "AUTO.TAKEOFF",
  mission: "AUTO.MISSION",
  loiter: "AUTO.LOITER",
  rtl: "AUTO.RTL",
  land: "AUTO.LAND",
} as const;

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
}

const ARRIVE_M = 0.5;
const MIN_ALT = 30;
const MAX_ALT = 80;
/** Waypoints stay within this radius of home, so every position stays well within ~1 km. */
const ROUTE_RADIUS_M = 480;
/** Longest physics sub-step; large `timeScale`s are integrated in these slices. */
const MAX_SUBSTEP_S = 1;

/**
 * Advance one drone by `dtS` simulated seconds. Pure: returns a new state, never mutates `d`.
 * Long steps are integrated in ≤1 s slices so waypoints, the RTL threshold and landing are never
 * stepped over, whatever the time scale.
 */
export function stepDrone(d: SimDrone, dtS: number, physics: SimPhysics = DEFAULT_PHYSICS): SimDrone {
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
    substep(s, dt, physics);
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

/** One slice of the phase machine; mutates the copy `stepDrone` owns. */
function substep(s: SimDrone, dt: number, p: SimPhysics): void {
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
      const target = currentWaypoint(s).alt;
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
        s.status = "returning";
        s.mode = SIM_MODES.rtl;
        s.holdS = 0;
        return;
      }
      if (s.mode === SIM_MODES.loiter) {
        drain(s, p, dt, 0, 0);
        s.holdS -= dt;
        if (s.holdS <= 0) s.mode = SIM_MODES.mission;
        return;
      }
      const wp = currentWaypoint(s);
      const moved = moveHorizontal(s, wp.x, wp.y, s.cruiseMps * dt);
      const climbed = moveVertical(s, wp.alt, p.climbMps * dt);
      drain(s, p, dt, moved, climbed);
      if (Math.hypot(wp.x - s.x, wp.y - s.y) < ARRIVE_M && Math.abs(wp.alt - s.alt) < ARRIVE_M) {
        s.wp = (s.wp + 1) % s.route.length;
        if (s.wp === 0) {
          // End of a lap: hover a moment, as survey patrols do before the next pass.
          s.mode = SIM_MODES.loiter;
          s.holdS = p.loiterSeconds;
        }
      }
      return;
    }
    case "returning": {
      // RTL keeps its altitude (every patrol altitude is above the 30 m return floor).
      const moved = moveHorizontal(s, s.pad.x, s.pad.y, s.cruiseMps * dt);
      const climbed = s.alt < MIN_ALT ? moveVertical(s, MIN_ALT, p.climbMps * dt) : 0;
      drain(s, p, dt, moved, climbed);
      if (Math.hypot(s.pad.x - s.x, s.pad.y - s.y) < ARRIVE_M) {
        s.status = "landing";
        s.mode = SIM_MODES.land;
      }
      return;
    }
    case "landing": {
      moveVertical(s, 0, p.descentMps * dt);
      drain(s, p, dt, 0, 0);
      if (s.alt <= 1e-6) {
        s.alt = 0;
        s.status = "landed";
        s.armed = false;
        s.holdS = p.settleSeconds;
      }
      return;
    }
    case "emergency":
      // Not produced by the simulation itself; a later command issue drives it.
      return;
    default: {
      const never: never = s.status;
      throw new Error(`unhandled status ${String(never)}`);
    }
  }
}

function takeOff(s: SimDrone): void {
  s.status = "taking_off";
  s.mode = SIM_MODES.takeoff;
  s.armed = true;
  s.holdS = 0;
}

function currentWaypoint(s: SimDrone): Waypoint {
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

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/**
 * The wire sample for a drone. Values are rounded (1e-7° ≈ 1 cm, centimetres, 0.1 %) because
 * more digits are noise that only makes every relay frame longer.
 */
export function toSample(d: SimDrone, home: LatLon, ts: number): SourceSample {
  const { lat, lon } = toLatLon(home, d.x, d.y);
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
    armed: d.armed,
    mode: d.mode,
    status: d.status,
  };
}

/** mulberry32: a tiny seeded PRNG, so a given seed always builds the same fleet. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GOLDEN_ANGLE = Math.PI * (3 - Math.sqrt(5));
const PAD_SPACING_M = 4;

/**
 * Build drone `i` of `n`. Patrol loops are polygons of 3–6 corners around a centre placed on a
 * golden-angle spiral, so loops fan out around home instead of stacking on one circle; each drone
 * has its own altitude band and speed. Pads sit on a 4 m grid so landings never share a spot.
 */
export function createDrone(i: number, n: number, rand: () => number): SimDrone {
  const angle = i * GOLDEN_ANGLE + rand() * 0.3;
  const centreDist = 60 + rand() * 240;
  const cx = Math.sin(angle) * centreDist;
  const cy = Math.cos(angle) * centreDist;
  // Corners sit at 0.8–1.2 × radius from the centre; keep the farthest inside ROUTE_RADIUS_M.
  const radius = 60 + rand() * Math.min(120, (ROUTE_RADIUS_M - centreDist) / 1.2 - 60);
  const corners = 3 + Math.floor(rand() * 4);
  const baseAlt = 35 + rand() * 40;
  const rot = rand() * 2 * Math.PI;
  const route: Waypoint[] = [];
  for (let k = 0; k < corners; k++) {
    const a = rot + (2 * Math.PI * k) / corners + (rand() - 0.5) * 0.4;
    const r = radius * (0.8 + rand() * 0.4);
    route.push({
      x: cx + Math.sin(a) * r,
      y: cy + Math.cos(a) * r,
      alt: Math.min(MAX_ALT, Math.max(MIN_ALT, baseAlt + (rand() - 0.5) * 10)),
    });
  }
  const side = Math.ceil(Math.sqrt(n));
  const pad = {
    x: ((i % side) - (side - 1) / 2) * PAD_SPACING_M,
    y: (Math.floor(i / side) - (side - 1) / 2) * PAD_SPACING_M,
  };
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

export interface SimFleetOptions {
  /** Number of drones, ids `drone_0`..`drone_{N-1}`. Default 5. */
  drones?: number;
  /** Samples per drone per second, 1–10. Default 1. */
  rateHz?: number;
  /** PRNG seed: the same seed builds the same routes and starting states. Default 1. */
  seed?: number;
  /** Home point (local origin). Default PX4 SITL's Zurich home, 47.3977, 8.5456. */
  home?: LatLon;
  /** Simulated seconds per real second (e.g. 60 in tests so batteries drain in seconds). Default 1. */
  timeScale?: number;
  physics?: Partial<SimPhysics>;
  /** Clock for timestamps and physics, ms. Default Date.now. */
  now?: () => number;
  log?: Logger;
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
  private onSample: ((s: SourceSample) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private cycleStart = 0;
  private cursor = 0;
  private callbackErrors = 0;

  constructor(opts: SimFleetOptions = {}) {
    const n = opts.drones ?? 5;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`drones must be a positive integer, got ${n}`);
    const rate = opts.rateHz ?? 1;
    if (!(rate >= 1 && rate <= 10)) throw new RangeError(`rateHz must be within 1..10, got ${rate}`);
    const timeScale = opts.timeScale ?? 1;
    if (!(timeScale > 0 && Number.isFinite(timeScale))) throw new RangeError(`timeScale must be > 0, got ${timeScale}`);
    this.rateHz = rate;
    this.timeScale = timeScale;
    this.home = opts.home ?? { lat: 47.3977, lon: 8.5456 };
    this.physics = { ...DEFAULT_PHYSICS, ...opts.physics };
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLogger;
    const rand = seededRandom(opts.seed ?? 1);
    this.drones = Array.from({ length: n }, (_, i) => createDrone(i, n, rand));
    this.lastStepAt = new Float64Array(n);
  }

  droneIds(): string[] {
    return this.drones.map((d) => d.id);
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
    return emitted;
  }

  private emitRange(from: number, to: number, now: number): number {
    const cb = this.onSample;
    let count = 0;
    for (let i = from; i < to; i++) {
      const d = this.drones[i];
      if (!d) continue;
      const last = this.lastStepAt[i] ?? now;
      const next = stepDrone(d, ((now - last) / 1000) * this.timeScale, this.physics);
      this.drones[i] = next;
      this.lastStepAt[i] = now;
      if (!cb) continue;
      try {
        cb(toSample(next, this.home, now));
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
}

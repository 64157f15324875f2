/**
 * Simulator conflict scenarios (`npm run relay -- --source sim --scenario NAME [--drones N]`):
 * drones placed on paths that lose separation (30 m horizontal / 10 m vertical, the edge's
 * defaults) unless the edge's collision avoidance intervenes. For tests and demos.
 *
 * Every drone starts airborne (flying, armed, full battery) on a straight out-and-back leg in the
 * local frame centred on home (all within ±1,000 m of home, altitudes 40–70 m) and simply keeps
 * flying it: nothing here avoids anything. Only the edge's resolution commands (modify_waypoint,
 * hold) keep the drones apart, so a test can tell whether they did.
 *
 * - head_on: two drones 400 m apart on the same line at 50 m, 10 m/s each, flying at each other:
 *   separation lost ~18.5 s after start, closest (0 m) at 20 s.
 * - crossing: two drones 200 m from a common point on perpendicular lines (east- and
 *   north-bound), 10 m/s, same altitude: lost at ~17.9 s, both at the crossing point at 20 s.
 * - overtaking: a 14 m/s drone 240 m behind a 4 m/s one on the same track and altitude: lost at
 *   21 s.
 * - swarm (default 12 drones): a ring of radius 260–320 m around home, every drone flying
 *   through the common area near home at 8–12 m/s to the far side of the ring. Altitudes cycle
 *   through three bands 15 m apart (40, 55, 70 m), so drones of different bands pass safely and
 *   several same-band pairs conflict 20–40 s after start.
 *
 * With `--drones N` the pair scenarios fly ⌊N/2⌋ copies of their pair, 250 m apart (crossing
 * pairs along the diagonal, so one pair never meets another's drone at the same time), and an odd
 * drone flies the first half of one more pair, alone.
 */
import type { Waypoint } from "./sim";

export const SCENARIO_NAMES = ["head_on", "crossing", "overtaking", "swarm"] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export function isScenarioName(v: string): v is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(v);
}

/** Drones a scenario flies when --drones is not given. */
export const SCENARIO_DEFAULT_DRONES: Record<ScenarioName, number> = { head_on: 2, crossing: 2, overtaking: 2, swarm: 12 };

/** Most drones a scenario can place inside the default ±1,500 m geofence with room to spare. */
export const SCENARIO_MAX_DRONES: Record<ScenarioName, number> = { head_on: 14, crossing: 14, overtaking: 14, swarm: 60 };

/** Where one scenario drone starts and what it flies. */
export interface ScenarioDrone {
  /** Start position, local metres (east, north, up). */
  start: Waypoint;
  /** Out-and-back leg: flies to route[0] first, then route[1], then loops. */
  route: [Waypoint, Waypoint];
  cruiseMps: number;
}

/** Altitude of the pair scenarios, metres above home. */
const PAIR_ALT = 50;
const PAIR_SPACING_M = 250;
/** Half-length of the out-and-back legs: ends stay 500 m inside the default geofence. */
const LEG_M = 500;
const SWARM_BANDS = [40, 55, 70] as const;

/** Lateral offset of pair k: 0, +1, -1, +2, -2, … spacings. */
function pairOffset(k: number): number {
  const step = Math.ceil(k / 2);
  return (k % 2 === 1 ? 1 : -1) * step * PAIR_SPACING_M;
}

function leg(x0: number, y0: number, ux: number, uy: number, alt: number): [Waypoint, Waypoint] {
  return [
    { x: x0 + ux * LEG_M, y: y0 + uy * LEG_M, alt },
    { x: x0 - ux * LEG_M, y: y0 - uy * LEG_M, alt },
  ];
}

/** One pair of the pair scenarios, at offset `o` from the first. */
function pair(name: Exclude<ScenarioName, "swarm">, o: number): [ScenarioDrone, ScenarioDrone] {
  const alt = PAIR_ALT;
  switch (name) {
    case "head_on":
      // Legs centred on the meeting point, so each drone flies 700 m on before turning back.
      return [
        { start: { x: -200, y: o, alt }, route: leg(0, o, 1, 0, alt), cruiseMps: 10 },
        { start: { x: 200, y: o, alt }, route: leg(0, o, -1, 0, alt), cruiseMps: 10 },
      ];
    case "crossing":
      return [
        { start: { x: o - 200, y: o, alt }, route: leg(o, o, 1, 0, alt), cruiseMps: 10 },
        { start: { x: o, y: o - 200, alt }, route: leg(o, o, 0, 1, alt), cruiseMps: 10 },
      ];
    case "overtaking":
      return [
        { start: { x: -300, y: o, alt }, route: leg(0, o, 1, 0, alt), cruiseMps: 14 },
        { start: { x: -60, y: o, alt }, route: leg(0, o, 1, 0, alt), cruiseMps: 4 },
      ];
    default: {
      const never: never = name;
      throw new Error(`unknown pair scenario ${String(never)}`);
    }
  }
}

/** Drone i of n in the swarm: on the ring, flying through the common area to the far side. */
function swarmDrone(i: number, n: number): ScenarioDrone {
  const radius = Math.max(260, 8 * n);
  const a = (2 * Math.PI * i) / n;
  const r = radius + 20 * (i % 4);
  const ux = Math.sin(a);
  const uy = Math.cos(a);
  const alt = SWARM_BANDS[i % SWARM_BANDS.length]!;
  // Aim a little beside home (±10 m), so lines meet in a small common area, not in one point.
  const side = ((i % 5) - 2) * 5;
  const cx = -uy * side;
  const cy = ux * side;
  const far = r + 200;
  return {
    start: { x: cx + ux * r, y: cy + uy * r, alt },
    route: [
      { x: cx - ux * far, y: cy - uy * far, alt },
      { x: cx + ux * far, y: cy + uy * far, alt },
    ],
    cruiseMps: 8 + (i % 5),
  };
}

/**
 * The drones of scenario `name` with `n` drones (see the module comment). With `rand`, each
 * layout is perturbed so that every seed flies another variant of the same encounter: starts move
 * up to ±30 m along their legs, speeds change by up to ±15 % and altitudes by up to ±3 m (the
 * two drones of a pair alike, but for 1 m), so a conflicting pair still conflicts and drones of
 * different swarm bands still pass (11 m or more apart).
 */
export function scenarioDrones(name: ScenarioName, n: number, rand?: () => number): ScenarioDrone[] {
  const max = SCENARIO_MAX_DRONES[name];
  if (!Number.isInteger(n) || n < 1 || n > max) throw new RangeError(`scenario ${name} flies 1..${max} drones, got ${n}`);
  const jitter = (k: number) => (rand ? (rand() * 2 - 1) * k : 0);
  if (name === "swarm") return Array.from({ length: n }, (_, i) => swarmDrone(i, n)).map((d) => (rand ? perturb(d, jitter(30), 1 + jitter(0.15), jitter(2)) : d));
  const out: ScenarioDrone[] = [];
  for (let k = 0; out.length < n; k++) {
    // One perturbation per pair (both drones shift alike), so each pair still meets; the
    // altitudes differ by at most 2 m, well within the vertical minimum.
    const [along, speed, alt] = [jitter(30), 1 + jitter(0.15), jitter(2)];
    out.push(...pair(name, pairOffset(k)).map((d) => (rand ? perturb(d, along, speed, alt + jitter(1)) : d)));
  }
  return out.slice(0, n);
}

function perturb(d: ScenarioDrone, along: number, speed: number, dAlt: number): ScenarioDrone {
  const target = d.route[0];
  const dx = target.x - d.start.x;
  const dy = target.y - d.start.y;
  const len = Math.hypot(dx, dy) || 1;
  const shift = (w: Waypoint): Waypoint => ({ ...w, alt: w.alt + dAlt });
  return {
    start: { x: d.start.x + (dx / len) * along, y: d.start.y + (dy / len) * along, alt: d.start.alt + dAlt },
    route: [shift(d.route[0]), shift(d.route[1])],
    cruiseMps: d.cruiseMps * speed,
  };
}

/**
 * The parallel-tracks control: two drones flying the same way side by side, `gapM` apart
 * (default 50 m) at the same altitude. No conflict: used by tests that expect no event.
 */
export function parallelDrones(gapM = 50): ScenarioDrone[] {
  const alt = PAIR_ALT;
  return [
    { start: { x: -300, y: 0, alt }, route: leg(0, 0, 1, 0, alt), cruiseMps: 10 },
    { start: { x: -300, y: gapM, alt }, route: leg(0, gapM, 1, 0, alt), cruiseMps: 10 },
  ];
}

/**
 * Detection's broad phase (a chunked grid in open-addressing tables) and the arrays a pass keeps
 * for the next one must not change what a pass finds: over random crowded fleets with the edge
 * cases (pairs exactly at the separation minima, climbing, landing, planless, unsure plans, late
 * samples, inferred state, take-offs), the grid finds what checking every pair finds, and a pass
 * finds the same whatever passes ran before it.
 */
import { describe, expect, it } from "vitest";
import { detectConflicts, detectWithStats, type CoordinationDrone } from "../../edge/domain/conflicts";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import { boundaryDistanceLocal, fromLocal, makeLocalFrame, nearestOnBoundaryLocal, pointInPolygonLocal, type LatLonAlt, type LocalPolygon } from "../../edge/domain/geo";
import { seededRandom } from "../../edge/domain/random";
import { patrolScenario } from "../fixtures/fleets";

const config = defaultFleetConfig(); // 30 m / 10 m, fence ±1500 m, ceiling 120 m
const H = config.separation.horizontal_m;
const V = config.separation.vertical_m;
const frame = makeLocalFrame(config.home);
const at = (east: number, north: number, alt: number): LatLonAlt => ({ ...fromLocal(config.home, { x_m: east, y_m: north }), alt_m: alt });

type Rand = () => number;
const between = (r: Rand, lo: number, hi: number) => lo + (hi - lo) * r();
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** `n` drones crowded into a square of `side` metres (some near the fence), each of one kind. */
function crowdedFleet(r: Rand, n: number, side: number): CoordinationDrone[] {
  const cx = between(r, -1500 + side / 2, 1500 - side / 2);
  const cy = between(r, -1500 + side / 2, 1500 - side / 2);
  const drones: CoordinationDrone[] = [];
  const base = (id: string, x: number, y: number, z: number): CoordinationDrone => ({
    drone_id: id, ...at(x, y, z), heading_deg: between(r, 0, 360), speed_mps: between(r, 0, 15), climb_mps: 0, status: "flying", armed: true, path: [],
  });
  for (let i = 0; i < n; i++) {
    const id = `d${String(i).padStart(3, "0")}`;
    const x = cx + between(r, -side / 2, side / 2);
    const y = cy + between(r, -side / 2, side / 2);
    const z = between(r, 20, 110);
    const d = base(id, x, y, z);
    const wp = () => at(x + between(r, -400, 400), y + between(r, -400, 400), between(r, 20, 110));
    const prev = drones[drones.length - 1];
    switch (pick(r, ["dead_reckoning", "hover", "plan", "unsure", "climbing", "landing", "late", "inferred", "take_off", "pad", "edge_h", "edge_v", "hold"] as const)) {
      case "dead_reckoning":
        d.climb_mps = r() < 0.5 ? 0 : between(r, -3, 3);
        break;
      case "hover":
        d.speed_mps = 0;
        break;
      case "plan":
        d.path = Array.from({ length: 1 + Math.floor(r() * 3) }, wp);
        break;
      case "unsure":
        d.path = [wp()];
        d.also_dead_reckoning = true;
        d.plan_speed_only = r() < 0.5;
        break;
      case "climbing":
        d.climb_mps = between(r, 1, 4);
        d.path = r() < 0.5 ? [] : [{ ...wp(), alt_m: 115 }];
        break;
      case "landing": {
        const over = at(x + between(r, -3, 3), y + between(r, -3, 3), z);
        d.path = [over, { ...over, alt_m: 0 }];
        d.status = pick(r, ["flying", "landing", "returning"]);
        break;
      }
      case "late":
        d.age_s = pick(r, [0.5, 2, 5, 9]);
        break;
      case "inferred":
        // No state topic: airborne only by what it does (drone.ts).
        d.state_known = false;
        d.status = "idle";
        d.armed = false;
        d.alt_m = pick(r, [2, 3.5, 30]);
        d.speed_mps = pick(r, [0, 0.9, 1.5, 6]);
        break;
      case "take_off":
        d.status = "idle";
        d.alt_m = 0;
        d.speed_mps = 0;
        d.path = r() < 0.5 ? [] : [at(x, y, 40), wp()];
        d.hold_s = r() < 0.5 ? between(r, 0, 20) : 0;
        break;
      case "pad":
        // Parked: never in the picture.
        d.status = "landed";
        d.armed = false;
        d.alt_m = 0;
        d.speed_mps = 0;
        break;
      case "edge_h":
        // Hovering exactly at (or a hair inside or outside) the horizontal minimum of the last one.
        if (prev) Object.assign(d, { lat: prev.lat, lon: prev.lon + pick(r, [H, H - 1e-7, H + 1e-7]) / frame.lon_m, alt_m: prev.alt_m, speed_mps: 0 });
        break;
      case "edge_v":
        if (prev) Object.assign(d, { lat: prev.lat, lon: prev.lon, alt_m: prev.alt_m + pick(r, [V, -V, V - 1e-7]), speed_mps: 0 });
        break;
      case "hold":
        d.path = [wp()];
        d.hold_s = between(r, 0, 30);
        break;
    }
    d.priority = Math.floor(r() * 3);
    drones.push(d);
  }
  return drones;
}

describe("detection's grid index and kept arrays", () => {
  it("the grid finds exactly what checking every pair finds, over 120 random crowded fleets", () => {
    const r = seededRandom(4242);
    let found = 0;
    for (let c = 0; c < 120; c++) {
      const drones = crowdedFleet(r, 20 + Math.floor(r() * 250), pick(r, [150, 400, 1200, 2900]));
      const opts = { drones, config, now: 1000, ...(r() < 0.3 ? { horizonS: pick(r, [10, 47, 75]), stepS: pick(r, [0.5, 0.7, 1, 2]) } : {}) };
      const grid = detectConflicts(opts);
      expect(grid, `fleet ${c}`).toEqual(detectConflicts({ ...opts, index: "all_pairs" }));
      found += grid.length;
    }
    expect(found).toBeGreaterThan(1000);
  });

  it("a pass finds the same whatever passes ran before it (larger, smaller, other horizons)", () => {
    const r = seededRandom(99);
    const fleets = [crowdedFleet(r, 150, 400), crowdedFleet(r, 400, 1200), crowdedFleet(r, 30, 150), patrolScenario(1000, 5).drones];
    const first = fleets.map((drones) => detectWithStats({ drones, config, now: 0 }));
    // Again in another order, with passes of other sizes and horizons in between.
    for (const k of [3, 1, 0, 2, 0, 3]) {
      detectConflicts({ drones: fleets[(k + 1) % fleets.length]!, config, now: 0, horizonS: 10 });
      expect(detectWithStats({ drones: fleets[k]!, config, now: 0 })).toEqual(first[k]);
    }
    expect(first.every((f) => f.conflicts.length > 0)).toBe(true);
  });

  it("geofence exits: every dead-reckoned drone whose sampled track leaves the fence, and no other", () => {
    // The reference, straight from the rule: the fence is convex, so a track leaves it exactly
    // when one of its samples (every second over the horizon) is outside.
    const fence: LocalPolygon = config.geofence.map((v) => ({ x_m: frame.x(v.lon), y_m: frame.y(v.lat) }));
    const r = seededRandom(7);
    let exits = 0;
    for (let c = 0; c < 40; c++) {
      const drones: CoordinationDrone[] = [];
      for (let i = 0; i < 60; i++) {
        // Headed for the fence from within a minute's flight of it.
        const speed = between(r, 1, 20);
        const side = pick(r, [-1, 1]);
        const x = side * (1500 - between(r, 0, speed * 40));
        const y = between(r, -1400, 1400);
        drones.push({ drone_id: `g${i}`, ...at(x, y, 60), heading_deg: side > 0 ? between(r, 20, 160) : between(r, 200, 340), speed_mps: speed, climb_mps: 0, status: "flying", armed: true, path: [] });
      }
      const found = new Set(detectConflicts({ drones, config, now: 0 }).filter((k) => k.event_type === "geofence_proximity").map((k) => k.drone_ids[0]));
      for (const d of drones) {
        const h = (d.heading_deg * Math.PI) / 180;
        let leaves = false;
        for (let t = 0; t <= 30; t++) {
          const p = { x_m: frame.x(d.lon) + d.speed_mps * Math.sin(h) * t, y_m: frame.y(d.lat) + d.speed_mps * Math.cos(h) * t };
          leaves ||= !pointInPolygonLocal(p, fence);
        }
        expect(found.has(d.drone_id), `fleet ${c}, ${d.drone_id}`).toBe(leaves);
        if (leaves) exits++;
      }
    }
    expect(exits).toBeGreaterThan(300);
    expect(exits).toBeLessThan(40 * 60 - 300);
  });

  it("boundaryDistanceLocal is nearestOnBoundaryLocal's distance, to the last bit", () => {
    const r = seededRandom(11);
    for (let c = 0; c < 2000; c++) {
      const poly: LocalPolygon = Array.from({ length: 3 + Math.floor(r() * 6) }, () => ({ x_m: between(r, -2000, 2000), y_m: between(r, -2000, 2000) }));
      const p = pick(r, [{ x_m: between(r, -3000, 3000), y_m: between(r, -3000, 3000) }, poly[0]!, { x_m: (poly[0]!.x_m + poly[1]!.x_m) / 2, y_m: (poly[0]!.y_m + poly[1]!.y_m) / 2 }]);
      expect(boundaryDistanceLocal(p.x_m, p.y_m, poly)).toBe(nearestOnBoundaryLocal(p, poly).distance_m);
    }
  });
});

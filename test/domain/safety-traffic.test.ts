/**
 * The separation rule predicts another drone only once a scan's swept box reaches the box that
 * drone cannot leave (`prepareTraffic`); before, it predicted every drone up front
 * (`prepareTrafficReference`). Over many random fleets, the two must give the same answer to every
 * scan, in the order a validation and its suggestions run them (one prepared traffic, many
 * targets), including the edges: drones exactly at the separation minima, climbing, landing,
 * holding, with a command on its way, planless, and drones with non-finite numbers.
 */
import { describe, expect, it } from "vitest";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import { fromLocal, type LatLonAlt } from "../../edge/domain/geo";
import { seededRandom } from "../../edge/domain/random";
import { prepareTraffic, prepareTrafficReference, scanSeparation, SEPARATION_HORIZON_S, trafficOf, type OtherDrone, type TrafficOrigin } from "../../edge/domain/safety";
import type { TelemetrySample } from "../../edge/protocol";

const config = defaultFleetConfig(); // 30 m / 10 m, fence ±1500 m
const H = config.separation.horizontal_m;
const V = config.separation.vertical_m;
const at = (east: number, north: number, alt: number): LatLonAlt => ({ ...fromLocal(config.home, { x_m: east, y_m: north }), alt_m: alt });

type Rand = () => number;
const between = (r: Rand, lo: number, hi: number) => lo + (hi - lo) * r();
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** A drone somewhere in the fence, of one of the kinds the fleet object sees. Positions are
 * metres from home; `own` is the commanded drone's start and target, for drones placed at the
 * edges of its path. */
function randomOther(r: Rand, id: string, own: { x: number; y: number; z: number; tx: number; ty: number; tz: number }): OtherDrone {
  const x = between(r, -1500, 1500);
  const y = between(r, -1500, 1500);
  const z = between(r, 0, 120);
  const heading = between(r, 0, 360);
  const wp = () => at(between(r, -1500, 1500), between(r, -1500, 1500), between(r, 5, 120));
  const path = (n: number) => Array.from({ length: n }, wp);
  // The edge cases come one at a time, so that some scans find no conflict.
  const kind = r() < 0.85 ? pick(r, ["hover", "dead_reckoning", "plan", "take_off", "landing", "hold", "non_finite"] as const) : pick(r, ["lead", "edge_h", "edge_v", "reach"] as const);
  switch (kind) {
    case "hover":
      return { drone_id: id, ...at(x, y, z), heading_deg: 0, speed_mps: 0, climb_mps: 0, path: [] };
    case "dead_reckoning":
      return { drone_id: id, ...at(x, y, z), heading_deg: heading, speed_mps: pick(r, [0.4, 0.5, 0.51, between(r, 1, 20)]), ...(r() < 0.5 ? { climb_mps: between(r, -4, 4) } : {}), path: [] };
    case "plan":
      return {
        drone_id: id,
        ...at(x, y, z),
        heading_deg: heading,
        ...(r() < 0.8 ? { speed_mps: between(r, 0, 15) } : {}),
        ...(r() < 0.3 ? { plan_speed_mps: between(r, 0, 15) } : {}),
        ...(r() < 0.3 ? { plan_speed_only: true } : {}),
        path: path(1 + Math.floor(r() * 4)),
      };
    case "take_off":
      // Armed on the pad: climbing where it stands (conflicts.ts asPredicted), or its announced route.
      return { drone_id: id, ...at(x, y, 0), heading_deg: 0, speed_mps: 0, climb_mps: 3, path: r() < 0.5 ? [] : [at(x, y, 40), wp()] };
    case "landing": {
      const over = at(x + between(r, -4, 4), y + between(r, -4, 4), z);
      return { drone_id: id, ...at(x, y, z), heading_deg: heading, speed_mps: between(r, 0, 10), path: [over, { ...over, alt_m: 0 }], ...(r() < 0.5 ? { descent_mps: pick(r, [1.5, 0.005, 0]) } : {}) };
    }
    case "hold":
      return { drone_id: id, ...at(x, y, z), heading_deg: heading, speed_mps: between(r, 0, 12), climb_mps: between(r, -3, 3), hold_s: between(r, 0, 40), path: r() < 0.5 ? [] : path(2) };
    case "lead": {
      // A command on its way, the drone heading for our path meanwhile: its lead leg reaches
      // further than its plan, which leads away.
      const ax = own.tx + between(r, -60, 60);
      const ay = own.ty + between(r, -60, 60);
      const speed = between(r, 5, 20);
      const lead = between(r, 0, 7);
      const bx = ax - speed * lead * Math.sin((heading * Math.PI) / 180);
      const by = ay - speed * lead * Math.cos((heading * Math.PI) / 180);
      return { drone_id: id, ...at(bx, by, own.tz + between(r, -12, 12)), heading_deg: heading, speed_mps: speed, climb_mps: between(r, -3, 3), lead_s: lead, path: [at(bx - (ax - bx), by - (ay - by), own.tz)] };
    }
    case "edge_h": {
      // Hovering exactly the horizontal minimum from our start or target, at our altitude.
      const [ex, ey, ez] = r() < 0.5 ? [own.x, own.y, own.z] : [own.tx, own.ty, own.tz];
      const a = between(r, 0, 2 * Math.PI);
      const d = pick(r, [H, H - 1e-9, H + 1e-9, H + 1]);
      return { drone_id: id, ...at(ex + d * Math.sin(a), ey + d * Math.cos(a), ez), speed_mps: 0, path: [] };
    }
    case "edge_v": {
      const [ex, ey, ez] = r() < 0.5 ? [own.x, own.y, own.z] : [own.tx, own.ty, own.tz];
      return { drone_id: id, ...at(ex + between(r, -H, H), ey + between(r, -H, H), ez + pick(r, [V, -V, V + 1e-9, V + 1])), speed_mps: 0, path: [] };
    }
    case "reach": {
      // Dead reckoning straight at our target from just about as far as it flies in the horizon.
      const speed = between(r, 2, 12);
      const d = speed * SEPARATION_HORIZON_S + H + between(r, -3, 3);
      const a = between(r, 0, 2 * Math.PI);
      const bearing = ((a * 180) / Math.PI + 180) % 360;
      return { drone_id: id, ...at(own.tx + d * Math.sin(a), own.ty + d * Math.cos(a), own.tz), heading_deg: bearing, speed_mps: speed, climb_mps: 0, path: [] };
    }
    case "non_finite": {
      const base: OtherDrone = { drone_id: id, ...at(x, y, z), heading_deg: heading, speed_mps: 8, climb_mps: 1, path: r() < 0.5 ? [] : path(2) };
      const broken = pick(r, ["lat", "alt", "speed", "heading", "climb", "hold", "lead", "waypoint", "huge"] as const);
      if (broken === "lat") return { ...base, lat: Number.NaN };
      if (broken === "alt") return { ...base, alt_m: Number.POSITIVE_INFINITY };
      if (broken === "speed") return { ...base, speed_mps: Number.POSITIVE_INFINITY };
      if (broken === "heading") return { ...base, heading_deg: Number.NaN };
      if (broken === "climb") return { ...base, climb_mps: Number.NaN };
      if (broken === "hold") return { ...base, hold_s: Number.POSITIVE_INFINITY };
      if (broken === "lead") return { ...base, lead_s: Number.NaN };
      if (broken === "huge") return { ...base, speed_mps: 1e300 };
      return { ...base, path: [{ ...wp(), alt_m: Number.NaN }] };
    }
  }
}

describe("prepareTraffic: drones predicted only when a scan reaches them", () => {
  it("answers every scan as predicting every drone up front does, over 400 random fleets", () => {
    const r = seededRandom(20261202);
    let conflicts = 0;
    let clear = 0;
    let skipped = 0;
    let total = 0;
    for (let c = 0; c < 400; c++) {
      const own = { x: between(r, -1200, 1200), y: between(r, -1200, 1200), z: between(r, 5, 120), tx: 0, ty: 0, tz: 0 };
      const far = r() < 0.2;
      own.tx = own.x + between(r, far ? -1500 : -100, far ? 1500 : 100);
      own.ty = own.y + between(r, far ? -1500 : -100, far ? 1500 : 100);
      own.tz = between(r, 5, 120);
      const origin: TrafficOrigin = { ...at(own.x, own.y, own.z), ...(r() < 0.7 ? { speed_mps: pick(r, [0, 0.5, between(r, 1, 15)]) } : {}) };
      const others = Array.from({ length: 10 + Math.floor(r() * 110) }, (_, i) => randomOther(r, `o${i}`, own));
      // The commanded drone is among the drones the desk passes and is skipped by id.
      others.push({ drone_id: "self", ...at(own.x, own.y, own.z), path: [] });
      const lazy = prepareTraffic(origin, others, config, "self");
      const reference = prepareTrafficReference(origin, others, config, "self");
      // The first target, then what suggestions try: moved up, down, sideways, far.
      const targets = [at(own.tx, own.ty, own.tz), at(own.tx, own.ty, own.tz + 15), at(own.tx, own.ty, own.tz - 15), at(own.tx + 35, own.ty, own.tz), at(own.tx, own.ty - 140, own.tz), at(0, 0, 40)];
      for (const target of targets) {
        const hold_s = pick(r, [0, 0, 30, 200]);
        const a = scanSeparation(lazy, target, config, hold_s);
        const b = scanSeparation(reference, target, config, hold_s);
        expect(a, `case ${c}, target ${JSON.stringify(target)}`).toEqual(b);
        if (a.conflict) conflicts++;
        else clear++;
      }
      skipped += lazy.paths.filter((p) => p.track === null).length;
      total += lazy.paths.length;
    }
    // The fleets exercise both answers, and many drones are never predicted (most drones of a real
    // fleet, which is not crowded round the commanded one).
    expect(conflicts).toBeGreaterThan(300);
    expect(clear).toBeGreaterThan(300);
    expect(skipped).toBeGreaterThan(total / 3);
  });

  it("trafficOf: the live, armed drones but the commanded one, each with its plan", () => {
    const sample = (id: string, over: Partial<TelemetrySample> = {}): TelemetrySample => ({
      drone_id: id, seq: 1, ts: 0, ...at(0, 0, 50), heading_deg: 90, speed_mps: 3, battery_pct: 80, armed: true, mode: "AUTO", status: "flying", ...over,
    });
    const plan = [at(100, 0, 50)];
    const out = trafficOf(
      [
        { sample: sample("a", { climb_mps: 1 }), link: "live" },
        { sample: sample("b"), link: "stale" },
        { sample: sample("c", { armed: false }), link: "live" },
        { sample: sample("me"), link: "live" },
        { sample: sample("e"), link: "live" },
      ],
      "me",
      (id) => (id === "a" ? plan : []),
    );
    expect(out).toEqual([
      { drone_id: "a", ...at(0, 0, 50), heading_deg: 90, speed_mps: 3, climb_mps: 1, path: plan },
      { drone_id: "e", ...at(0, 0, 50), heading_deg: 90, speed_mps: 3, path: [] },
    ]);
  });
});

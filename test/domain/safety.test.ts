import { describe, expect, it } from "vitest";
import { parseFleetConfig, type FleetConfig } from "../../edge/domain/fleet-config";
import { distanceToPolygonEdgeM, fromLocal, planarDistanceM, pointInPolygon, toLocal, type LatLonAlt } from "../../edge/domain/geo";
import {
  checkPosition,
  findSeparationConflict,
  validateWaypoint,
  type CommandedDrone,
  type OtherDrone,
  type SafetyResult,
  type WaypointCheckInput,
} from "../../edge/domain/safety";

const HOME = { lat: 47.3977, lon: 8.5456 };
/** A point `east`/`north` metres from home at `alt` metres. */
const at = (east: number, north: number, alt: number): LatLonAlt => ({ ...fromLocal(HOME, { x_m: east, y_m: north }), alt_m: alt });

function config(extra: Record<string, unknown> = {}): FleetConfig {
  const r = parseFleetConfig({
    no_fly_zones: [
      // A 200 m square from 300 to 500 m east, 300 to 500 m north, at every height.
      { id: "stadium", name: "Stadium", polygon: [at(300, 300, 0), at(500, 300, 0), at(500, 500, 0), at(300, 500, 0)] },
      // A zone up to 60 m only, west of home.
      { id: "hospital", name: "Hospital", polygon: [at(-500, -100, 0), at(-300, -100, 0), at(-300, 100, 0), at(-500, 100, 0)], ceiling_m: 60 },
    ],
    ...extra,
  });
  if (!r.ok) throw new Error(r.errors.join("; "));
  return r.config;
}
const CFG = config();
const drone = (over: Partial<CommandedDrone> = {}): CommandedDrone => ({ drone_id: "d1", ...at(0, 0, 50), battery_pct: 90, ...over });

function check(target: LatLonAlt, over: Partial<WaypointCheckInput> = {}): SafetyResult {
  return validateWaypoint({ drone: drone(), target, config: CFG, others: [], ...over });
}

/** The rejection's rule, after asserting every suggestion passes the same validation. */
function rejectedWith(r: SafetyResult, input: Partial<WaypointCheckInput> = {}): string {
  if (r.ok) throw new Error("expected a rejection");
  expect(r.alternative_suggestions.length, `${r.rule}: ${r.message}`).toBeGreaterThan(0);
  for (const s of r.alternative_suggestions) {
    expect(s.reason.length).toBeGreaterThan(0);
    const again = check({ lat: s.lat, lon: s.lon, alt_m: s.alt_m }, input);
    expect(again.ok, `suggestion ${JSON.stringify(s)} → ${JSON.stringify(again)}`).toBe(true);
  }
  return r.rule;
}

describe("validateWaypoint: each rule", () => {
  it("accepts a valid waypoint and lists the checks", () => {
    const r = check(at(200, -100, 60));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.checks.join(" | ")).toMatch(/geofence.*no-fly.*battery.*separation/);
  });

  it.each([
    ["NaN lat", { ...at(0, 0, 50), lat: Number.NaN }],
    ["Infinity lon", { ...at(0, 0, 50), lon: Number.POSITIVE_INFINITY }],
    ["NaN alt", { ...at(0, 0, 50), alt_m: Number.NaN }],
    ["lat 91", { ...at(0, 0, 50), lat: 91 }],
    ["lat -90.5", { ...at(0, 0, 50), lat: -90.5 }],
    ["lon 181", { ...at(0, 0, 50), lon: 181 }],
    ["lon -180.1", { ...at(0, 0, 50), lon: -180.1 }],
  ])("invalid_coordinates: %s", (_name, target) => {
    expect(rejectedWith(check(target))).toBe("invalid_coordinates");
  });

  it("altitude_ceiling suggests the same point at the ceiling", () => {
    const r = check(at(100, 100, 150));
    expect(rejectedWith(r)).toBe("altitude_ceiling");
    if (r.ok) return;
    const s = r.alternative_suggestions[0]!;
    expect(s.alt_m).toBe(120);
    expect(planarDistanceM(s, at(100, 100, 0))).toBeLessThan(0.05);
  });

  it("altitude_floor suggests the same point at the floor", () => {
    const r = check(at(100, 100, 2));
    expect(rejectedWith(r)).toBe("altitude_floor");
    if (!r.ok) expect(r.alternative_suggestions[0]?.alt_m).toBe(5);
  });

  it("geofence suggests the nearest point a few metres inside", () => {
    const r = check(at(1700, 0, 50));
    expect(rejectedWith(r)).toBe("geofence");
    if (r.ok) return;
    const s = r.alternative_suggestions[0]!;
    expect(pointInPolygon(s, CFG.geofence)).toBe(true);
    const d = distanceToPolygonEdgeM(s, CFG.geofence);
    expect(d).toBeGreaterThan(2);
    expect(d).toBeLessThan(10);
    expect(Math.abs(toLocal(HOME, s).y_m)).toBeLessThan(1);
  });

  it("out of the geofence and over the ceiling: the suggestion fixes both", () => {
    const r = check(at(1700, 1700, 400));
    expect(rejectedWith(r)).toBe("altitude_ceiling");
  });

  it("no_fly_zone suggests a point just outside the zone", () => {
    const r = check(at(480, 400, 50));
    expect(rejectedWith(r)).toBe("no_fly_zone");
    if (r.ok) return;
    expect(r.message).toMatch(/Stadium/);
    const s = r.alternative_suggestions[0]!;
    expect(Math.abs(toLocal(HOME, s).x_m - 505)).toBeLessThan(1);
  });

  it("no_fly_zone honours the zone's ceiling and suggests passing above it", () => {
    expect(check(at(-400, 0, 80)).ok).toBe(true);
    const r = check(at(-400, 0, 40));
    expect(rejectedWith(r)).toBe("no_fly_zone");
    if (!r.ok) expect(r.alternative_suggestions.some((s) => s.alt_m === 65 && /above/.test(s.reason))).toBe(true);
  });

  it("a zone straddling the geofence: the suggestion is inside the fence and outside the zone", () => {
    const straddle = config({
      no_fly_zones: [{ id: "edge", name: "Edge", polygon: [at(1300, -200, 0), at(1600, -200, 0), at(1600, 200, 0), at(1300, 200, 0)] }],
    });
    const input = { config: straddle };
    const r = check(at(1700, 0, 50), input);
    expect(rejectedWith(r, input)).toBe("geofence");
    if (r.ok) return;
    // The nearest way: west of the zone (~1295 m east) or north of it, not 1.5 km away at a corner.
    const l = toLocal(HOME, r.alternative_suggestions[0]!);
    expect(Math.hypot(l.x_m - 1700, l.y_m)).toBeLessThan(450);
  });

  it("a drone without a valid position is rejected, without suggestions", () => {
    const r = check(at(100, 100, 50), { drone: drone({ lat: Number.NaN }) });
    expect(r).toMatchObject({ ok: false, rule: "invalid_coordinates", alternative_suggestions: [] });
  });

  it("battery: rejects with the numbers and suggests the furthest reachable point", () => {
    const input = { drone: drone({ battery_pct: 32 }) };
    const r = check(at(1400, 1400, 100), input);
    expect(rejectedWith(r, input)).toBe("battery");
    if (r.ok) return;
    expect(r.message).toMatch(/battery 32\.0 % − \d+\.\d % to the point − \d+\.\d % back home leaves \d+\.\d %, below the 20 % reserve/);
    const furthest = r.alternative_suggestions.find((s) => /furthest/.test(s.reason));
    expect(furthest).toBeDefined();
    // Along the line toward the target, not somewhere else.
    const l = toLocal(HOME, furthest!);
    expect(Math.abs(l.x_m - l.y_m)).toBeLessThan(1);
    expect(l.x_m).toBeGreaterThan(100);
  });

  it("battery: holding at the target costs hover energy", () => {
    expect(check(at(500, -500, 50), { drone: drone({ battery_pct: 30 }) }).ok).toBe(true);
    const r = check(at(500, -500, 50), { drone: drone({ battery_pct: 30 }), hold_s: 600 });
    expect(!r.ok && r.rule).toBe("battery");
  });
});

describe("validateWaypoint: separation over time", () => {
  // Our drone flies 600 m east at 50 m, 10 m/s: 60 s.
  const target = at(600, 0, 50);

  it("rejects a head-on path and suggests points that keep separation", () => {
    const others: OtherDrone[] = [{ drone_id: "d2", ...at(600, 0, 50), speed_mps: 10, path: [at(0, 0, 50)] }];
    const r = check(target, { others });
    expect(rejectedWith(r, { others })).toBe("separation");
    if (r.ok) return;
    expect(r.message).toMatch(/d2 in 2\d\.\d s/);
  });

  it("accepts a parallel path 50 m away", () => {
    const others: OtherDrone[] = [{ drone_id: "d2", ...at(0, 50, 50), speed_mps: 10, path: [at(600, 50, 50)] }];
    expect(check(target, { others }).ok).toBe(true);
  });

  it("accepts a path that crosses ours at a different time, rejects the same path in time", () => {
    // Crosses x = 300 (reached by us at 30 s) heading south at 10 m/s.
    const crossing = (start_north: number): OtherDrone[] => [
      { drone_id: "d2", ...at(300, start_north, 50), speed_mps: 10, path: [at(300, start_north - 2000, 50)] },
    ];
    expect(check(target, { others: crossing(1000) }).ok).toBe(true); // there at 100 s
    const r = check(target, { others: crossing(300) }); // there at 30 s
    expect(!r.ok && r.rule).toBe("separation");
  });

  it("accepts crossing with enough vertical separation", () => {
    const others: OtherDrone[] = [{ drone_id: "d2", ...at(600, 0, 70), speed_mps: 10, path: [at(0, 0, 70)] }];
    expect(check(target, { others }).ok).toBe(true);
  });

  it("a stationary drone on the path, a drone using cruise speed, and the commanded drone itself", () => {
    const hovering: OtherDrone[] = [{ drone_id: "d2", ...at(300, 10, 55), path: [] }];
    expect(!check(target, { others: hovering }).ok).toBe(true);
    // No speed given: flies its path at cruise (10 m/s), reaching us head-on.
    const noSpeed: OtherDrone[] = [{ drone_id: "d2", ...at(600, 0, 50), path: [at(0, 0, 50)] }];
    expect(!check(target, { others: noSpeed }).ok).toBe(true);
    const self: OtherDrone[] = [{ drone_id: "d1", ...at(300, 0, 50), path: [] }];
    expect(check(target, { others: self }).ok).toBe(true);
  });

  it("tolerates drones already close (same pad) while they are not closing in", () => {
    const onPad = { drone: drone({ ...at(0, 0, 0) }) };
    const parked: OtherDrone[] = [{ drone_id: "d2", ...at(5, 0, 0), path: [] }];
    expect(check(at(0, 0, 40), { ...onPad, others: parked }).ok).toBe(true);
    // Flying straight at the parked drone is a conflict.
    const r = check(at(200, 0, 0.5), { ...onPad, others: parked, config: config({ floor_m: 0 }) });
    expect(!r.ok && r.rule).toBe("separation");
  });

  it("findSeparationConflict reports where and when", () => {
    const others: OtherDrone[] = [{ drone_id: "d2", ...at(600, 0, 50), speed_mps: 10, path: [at(0, 0, 50)] }];
    const { conflict } = findSeparationConflict(drone(), target, others, CFG, "d1");
    expect(conflict?.other_id).toBe("d2");
    expect(conflict!.t_s).toBeGreaterThan(25);
    expect(conflict!.t_s).toBeLessThan(30);
    expect(conflict!.horizontal_m).toBeLessThan(30);
  });
});

describe("checkPosition", () => {
  it("checks position rules only and suggests valid positions", () => {
    expect(checkPosition(at(0, 0, 50), CFG)).toEqual({ ok: true });
    for (const [p, rule] of [
      [{ ...at(0, 0, 50), lat: Number.NaN }, "invalid_coordinates"],
      [at(0, 0, 121), "altitude_ceiling"],
      [at(0, 0, 4), "altitude_floor"],
      [at(-1600, 0, 50), "geofence"],
      [at(400, 400, 50), "no_fly_zone"],
    ] as const) {
      const r = checkPosition(p, CFG);
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.rule).toBe(rule);
      expect(r.alternative_suggestions.length).toBeGreaterThan(0);
      for (const s of r.alternative_suggestions) expect(checkPosition(s, CFG).ok).toBe(true);
      expect(checkPosition(p, CFG, { suggest: false })).toMatchObject({ rule, alternative_suggestions: [] });
    }
  });
});

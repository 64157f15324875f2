import { describe, expect, it } from "vitest";
import {
  applyResolution,
  chooseResolution,
  detectConflicts,
  detectSteps,
  detectWithStats,
  isResolved,
  parseConflictKey,
  planAgreement,
  ResolutionPlanner,
  type Conflict,
  type CoordinationDrone,
  type WaypointCommand,
} from "../../edge/domain/conflicts";
import { defaultFleetConfig, type FleetConfig } from "../../edge/domain/fleet-config";
import { makeLocalFrame, type LatLon } from "../../edge/domain/geo";
import { detectionBenchmark, patrolScenario } from "../fixtures/fleets";
import { checkPosition } from "../../edge/domain/safety";
import { PLAN_CLIMB_MPS } from "../../edge/domain/trajectory";

// Scenarios are laid out in metres east/north of home, in the same fixed-scale frame the module
// predicts in, so expected times follow from plain kinematics.
const config = defaultFleetConfig(); // separation 30 m / 10 m, floor 5, ceiling 120, fence ±1500 m
const frame = makeLocalFrame(config.home);
const at = (x: number, y: number): LatLon => ({
  lat: config.home.lat + y / frame.lat_m,
  lon: config.home.lon + x / frame.lon_m,
});
const local = (p: LatLon) => ({ x: frame.x(p.lon), y: frame.y(p.lat) });

function drone(id: string, x: number, y: number, alt: number, heading: number, speed: number, extra: Partial<CoordinationDrone> = {}): CoordinationDrone {
  return { drone_id: id, ...at(x, y), alt_m: alt, heading_deg: heading, speed_mps: speed, status: "flying", armed: true, path: [], ...extra };
}

function detect(drones: CoordinationDrone[], cfg: FleetConfig = config): Conflict[] {
  return detectConflicts({ drones, config: cfg, now: 1_000 });
}

const headOn = () => [drone("a", -200, 0, 50, 90, 10), drone("b", 200, 0, 50, 270, 10)];
const crossing = () => [drone("a", -200, 0, 50, 90, 10), drone("b", 0, -200, 50, 0, 10)];

describe("detectConflicts: encounter types", () => {
  it("head-on: closing at 20 m/s from 400 m, inside 30 m after 18.5 s", () => {
    const [c, ...rest] = detect(headOn());
    expect(rest).toEqual([]);
    expect(c).toMatchObject({ key: "a|b", event_type: "head_on", drone_ids: ["a", "b"], detected_at: 1_000 });
    expect(c!.time_to_conflict_s).toBeCloseTo(18.5, 3);
    expect(c!.min_horizontal_m).toBeLessThan(1);
    expect(c!.min_vertical_m).toBe(0);
    const p = local(c!.at);
    expect(Math.hypot(p.x, p.y)).toBeLessThan(1);
    expect(c!.at.alt_m).toBeCloseTo(50, 6);
  });

  it("crossing at right angles: 200 m each from the crossing point", () => {
    const [c, ...rest] = detect(crossing());
    expect(rest).toEqual([]);
    expect(c!.event_type).toBe("crossing");
    // Inside 30 m when √2·(200 − 10t) < 30.
    expect(c!.time_to_conflict_s).toBeCloseTo(20 - 30 / Math.SQRT2 / 10, 3);
  });

  it("overtaking: 15 m/s behind 5 m/s on the same course, 150 m apart", () => {
    const [c] = detect([drone("fast", 0, 0, 50, 90, 15), drone("slow", 150, 0, 50, 90, 5)]);
    expect(c!.event_type).toBe("overtaking");
    expect(c!.time_to_conflict_s).toBeCloseTo(12, 3);
  });

  it("converging: a drone flying at a hovering one, and a drone descending onto another", () => {
    const [c] = detect([drone("hover", 0, 0, 50, 0, 0), drone("mover", -200, 0, 50, 90, 10)]);
    expect(c!.event_type).toBe("converging");
    expect(c!.time_to_conflict_s).toBeCloseTo(17, 3);

    // A climb or descent is projected for 5 s only (CLIMB_EXTRAPOLATION_S): 65 m at -2 m/s
    // comes within 10 m of the drone at 50 m after 2.5 s.
    const [v] = detect([drone("top", 0, 0, 65, 0, 0, { climb_mps: -2 }), drone("low", 10, 0, 50, 0, 0)]);
    expect(v!.event_type).toBe("converging");
    expect(v!.time_to_conflict_s).toBeCloseTo(2.5, 3);
    // From 80 m the same descent levels off at 70 m: no conflict.
    expect(detect([drone("top", 0, 0, 80, 0, 0, { climb_mps: -2 }), drone("low", 10, 0, 50, 0, 0)])).toEqual([]);
    expect(v!.min_horizontal_m).toBeCloseTo(10, 3);
  });

  it("follows planned paths, not just headings", () => {
    // Heading says north, but the plan turns east along y = 0 into a drone coming west.
    const a = drone("a", -200, 0, 50, 0, 10, { path: [{ ...at(100, 0), alt_m: 50 }] });
    const b = drone("b", 200, 0, 50, 270, 10);
    const [c] = detect([a, b]);
    expect(c!.event_type).toBe("head_on");
    expect(c!.time_to_conflict_s).toBeCloseTo(18.5, 3);
  });

  it("an already lost separation is reported at t = 0", () => {
    const [c] = detect([drone("a", 0, 0, 50, 0, 0), drone("b", 10, 0, 55, 0, 0)]);
    expect(c!.time_to_conflict_s).toBe(0);
  });
});

describe("detectConflicts: what must not raise anything", () => {
  it("parallel tracks 50 m apart (separation 30 m), same or opposite direction", () => {
    expect(detect([drone("a", -200, 0, 50, 90, 10), drone("b", 200, 50, 50, 270, 10)])).toEqual([]);
    expect(detect([drone("a", -200, 0, 50, 90, 10), drone("b", -200, 50, 50, 90, 10)])).toEqual([]);
  });

  it("the same track 20 m apart vertically (vertical minimum 10 m)", () => {
    expect(detect([drone("a", -200, 0, 50, 90, 10), drone("b", 200, 0, 70, 270, 10)])).toEqual([]);
  });

  it("grounded drones: parked ones (disarmed, idle, landed or charging, no plan) are ignored", () => {
    const flying = drone("f", 0, 0, 0, 0, 0);
    for (const g of [
      drone("g", 5, 0, 0, 0, 0, { armed: false }),
      drone("g", 5, 0, 0, 0, 0, { status: "idle", armed: false }),
      drone("g", 5, 0, 0, 0, 0, { status: "landed", armed: false }),
      drone("g", 5, 0, 0, 0, 0, { status: "charging", armed: false }),
    ]) {
      expect(detect([flying, g])).toEqual([]);
    }
    // Both airborne at the same spot: a conflict, so the cases above were ignored, not missed.
    expect(detect([flying, drone("g", 5, 0, 0, 0, 0)])).toHaveLength(1);
  });

  it("grounded drones about to take off: armed (climbing where they stand), or announcing it", () => {
    // A drone hovering 12 m up, 10 m from a pad: clear of a drone standing there (12 m > 10 m).
    const hover = drone("f", 0, 0, 12, 0, 0);
    const pad = (extra: Partial<CoordinationDrone>) => drone("g", 10, 0, 0, 0, 0, { status: "idle", armed: false, ...extra });
    expect(detect([hover, pad({})])).toEqual([]);
    // Armed on the pad: its motors may start any moment; predicted climbing at 3 m/s.
    const armed = detect([hover, pad({ armed: true })]);
    expect(armed).toHaveLength(1);
    expect(armed[0]!.time_to_conflict_s).toBeCloseTo(2 / PLAN_CLIMB_MPS, 1);
    // Disarmed, charging, with its own intent: 8 s on the pad, then the climb to 60 m.
    const announced = detect([hover, pad({ status: "charging", path: [{ ...at(10, 0), alt_m: 60 }], hold_s: 8, plan_speed_mps: 10 })]);
    expect(announced).toHaveLength(1);
    expect(announced[0]!.time_to_conflict_s).toBeCloseTo(8 + 2 / PLAN_CLIMB_MPS, 1);
    // It keeps its course (a hold is refused on the ground, a waypoint would launch it): the
    // hovering drone moves.
    const r = chooseResolution(announced[0]!, [hover, pad({ status: "charging", path: [{ ...at(10, 0), alt_m: 60 }], hold_s: 8, plan_speed_mps: 10 })], config);
    expect(r.commands.length).toBeGreaterThan(0);
    expect(r.commands.every((c) => c.drone_id === "f")).toBe(true);
  });

  it("beyond the horizon", () => {
    expect(detect([drone("a", -400, 0, 50, 90, 5), drone("b", 400, 0, 50, 270, 5)])).toEqual([]);
  });
});

describe("detectConflicts: geofence and no-fly zones", () => {
  it("flags a drone heading out of the geofence within the horizon", () => {
    const [c, ...rest] = detect([drone("out", 1400, 0, 50, 90, 10)]);
    expect(rest).toEqual([]);
    expect(c).toMatchObject({ key: "out|@geofence", event_type: "geofence_proximity", drone_ids: ["out"] });
    // The default fence is 1500 m east of home (to ~0.1 %).
    expect(c!.time_to_conflict_s).toBeCloseTo(10, 0);
    expect(c!.min_horizontal_m).toBeCloseTo(100, -1);
    expect(local(c!.at).x).toBeCloseTo(1500, -1);
  });

  it("flags a planned waypoint beyond the fence and a climb through the ceiling", () => {
    const viaPath = drone("p", 1300, 0, 50, 0, 10, { path: [{ ...at(1700, 0), alt_m: 50 }] });
    expect(detect([viaPath]).map((c) => c.key)).toEqual(["p|@geofence"]);
    // Climbs are projected 5 s ahead: from 112 m at 2 m/s the 120 m ceiling is reached at 4 s,
    // while a take-off climbing from 100 m raises nothing.
    expect(detect([drone("up", 0, 0, 100, 0, 0, { climb_mps: 2 })])).toEqual([]);
    const climbing = drone("up", 0, 0, 112, 0, 0, { climb_mps: 2 });
    const [c] = detect([climbing]);
    expect(c!.event_type).toBe("geofence_proximity");
    expect(c!.time_to_conflict_s).toBeCloseTo(4, 3);
    expect(c!.min_vertical_m).toBeCloseTo(8, 3);
  });

  it("flags entry into a no-fly zone, respecting the zone's altitude band", () => {
    const zoneCfg: FleetConfig = {
      ...config,
      no_fly_zones: [{ id: "z1", name: "Stadium", polygon: [at(500, -100), at(700, -100), at(700, 100), at(500, 100)], ceiling_m: 80 }],
    };
    const [c] = detect([drone("n", 300, 0, 50, 90, 10)], zoneCfg);
    expect(c).toMatchObject({ key: "n|@no_fly:z1", event_type: "no_fly_proximity", zone_id: "z1" });
    expect(c!.time_to_conflict_s).toBeCloseTo(20, 1);
    // Above the zone's ceiling the same course is fine.
    expect(detect([drone("n", 300, 0, 90, 90, 10)], zoneCfg)).toEqual([]);
    // Starting inside: at t = 0.
    expect(detect([drone("n", 600, 0, 50, 0, 0)], zoneCfg)[0]!.time_to_conflict_s).toBe(0);
  });
});

describe("detectConflicts: grid index", () => {
  it("gives the same conflicts as the all-pairs reference on 300 random drones", () => {
    for (const seed of [7, 8, 9]) {
      const { drones, config: cfg } = patrolScenario(300, seed);
      const grid = detectConflicts({ drones, config: cfg, now: 0 });
      const all = detectConflicts({ drones, config: cfg, now: 0, index: "all_pairs" });
      expect(grid.length).toBeGreaterThan(5);
      expect(grid).toEqual(all);
    }
  });

  it("also with another horizon and step", () => {
    const { drones, config: cfg } = patrolScenario(300, 11);
    const opts = { drones, config: cfg, now: 0, horizonS: 47, stepS: 0.7 };
    expect(detectConflicts(opts)).toEqual(detectConflicts({ ...opts, index: "all_pairs" }));
  });

  it("in steps: the same conflicts, unharmed by other detections between its steps; a small fleet in one step", () => {
    // 1,000 drones, 200 of them unsure of a far-off plan (predicted both ways): ~1,200 rows.
    const { drones, config: cfg } = patrolScenario(1000, 42);
    for (const d of drones.filter((x) => x.status === "flying").slice(0, 200)) Object.assign(d, { path: [{ ...at(600, -600), alt_m: 60 }], also_dead_reckoning: true });
    const whole = detectWithStats({ drones, config: cfg, now: 0 });
    const g = detectSteps({ drones, config: cfg, now: 0 });
    // Between steps, what may run in the fleet object meanwhile: an override's or a close check's
    // detection over a few drones, and one over another fleet of hundreds (other rows, other pairs).
    const other = patrolScenario(300, 9);
    let steps = 0;
    let r = g.next();
    for (; !r.done; r = g.next()) {
      steps++;
      expect(detect(headOn())).toHaveLength(1);
      if (steps % 3 === 0) expect(detectConflicts({ drones: other.drones, config: other.config, now: 0 }).length).toBeGreaterThan(5);
    }
    expect(steps).toBeGreaterThan(10);
    expect(r.value.pairsChecked).toBe(whole.pairsChecked);
    expect(r.value.conflicts).toEqual(whole.conflicts);
    expect(whole.conflicts.length).toBeGreaterThan(100);
    // Under BUILD_STEP_DRONES rows and DETECT_STEP_PAIRS pairs: no step to wait for.
    const small = patrolScenario(100, 3);
    const one = detectSteps({ drones: small.drones, config: small.config, now: 0 }).next();
    expect(one.done).toBe(true);
    expect(one.value).toEqual(detectWithStats({ drones: small.drones, config: small.config, now: 0 }));
  });

  it("detectionBenchmark runs one pass and reports what it did", () => {
    const r = detectionBenchmark(200);
    expect(r.ms).toBeGreaterThanOrEqual(0);
    expect(r.pairsChecked).toBeGreaterThan(0);
    expect(r.pairsChecked).toBeLessThan((200 * 199) / 2);
    expect(r.conflicts).toBeGreaterThan(0);
  });
});

/** Every new waypoint passes the command desk's position rules. */
function expectWaypointsValid(commands: readonly { command: string }[], cfg: FleetConfig): void {
  for (const c of commands) {
    if (c.command !== "modify_waypoint") continue;
    const wp = (c as WaypointCommand).new_waypoint;
    expect(checkPosition(wp, cfg, { suggest: false }).ok).toBe(true);
    expect(wp.alt_m).toBeGreaterThanOrEqual(cfg.floor_m);
    expect(wp.alt_m).toBeLessThanOrEqual(cfg.ceiling_m);
  }
}

describe("chooseResolution", () => {
  it("head-on: the larger id changes altitude by at least vertical_m + 5 m, and the conflict is gone", () => {
    const drones = headOn();
    const [c] = detect(drones);
    const r = chooseResolution(c!, drones, config);
    expect(r.strategy).toBe("vertical_separation");
    expect(r.verified).toBe(true);
    expect(r.commands).toHaveLength(1);
    const cmd = r.commands[0] as WaypointCommand;
    expect(cmd.drone_id).toBe("b");
    expect(cmd.command).toBe("modify_waypoint");
    expect(Math.abs(cmd.new_waypoint.alt_m - 50)).toBeGreaterThanOrEqual(15);
    expect(cmd.reason).toContain("a|b");
    expectWaypointsValid(r.commands, config);

    const resolved = applyResolution(drones, r);
    expect(detect(resolved).map((x) => x.key)).not.toContain("a|b");
    expect(isResolved("a|b", drones, config, { horizonS: 30 })).toBe(false);
    expect(isResolved("a|b", resolved, config, { horizonS: 30 })).toBe(true);
  });

  it("the lower-priority drone yields", () => {
    const drones = headOn().map((d) => ({ ...d, priority: d.drone_id === "a" ? 0 : 2 }));
    const r = chooseResolution(detect(drones)[0]!, drones, config);
    expect(r.commands.map((c) => c.drone_id)).toEqual(["a"]);
  });

  it("crossing with no vertical room: the yielder holds, and the pair no longer conflicts", () => {
    const tight: FleetConfig = { ...config, floor_m: 40, ceiling_m: 60 };
    const drones = crossing();
    const [c] = detect(drones, tight);
    const r = chooseResolution(c!, drones, tight);
    expect(r.strategy).toBe("hold");
    expect(r.verified).toBe(true);
    expect(r.commands).toHaveLength(1);
    expect(r.commands[0]).toMatchObject({ drone_id: "b", command: "hold" });
    const resolved = applyResolution(drones, r);
    expect(detect(resolved, tight)).toEqual([]);
  });

  it("an override to lateral_reroute sidesteps by more than the horizontal minimum", () => {
    const drones = headOn();
    const [c] = detect(drones);
    const r = chooseResolution(c!, drones, config, "lateral_reroute");
    expect(r.strategy).toBe("lateral_reroute");
    expect(r.verified).toBe(true);
    const cmd = r.commands[0] as WaypointCommand;
    expect(cmd.command).toBe("modify_waypoint");
    expect(cmd.new_waypoint.alt_m).toBe(50);
    // Off the shared course (y = 0) by at least horizontal_m.
    expect(Math.abs(local(cmd.new_waypoint).y)).toBeGreaterThanOrEqual(30);
    expectWaypointsValid(r.commands, config);
    expect(detect(applyResolution(drones, r))).toEqual([]);
  });

  it("an override to hold holds", () => {
    const drones = crossing();
    const r = chooseResolution(detect(drones)[0]!, drones, config, "hold");
    expect(r.strategy).toBe("hold");
    expect(r.commands[0]!.command).toBe("hold");
  });

  it("geofence: return_inside to a point inside the fence, and the breach is no longer predicted", () => {
    const drones = [drone("out", 1400, 0, 50, 90, 10)];
    const [c] = detect(drones);
    const r = chooseResolution(c!, drones, config);
    expect(r.strategy).toBe("return_inside");
    expect(r.verified).toBe(true);
    expectWaypointsValid(r.commands, config);
    expect(local((r.commands[0] as WaypointCommand).new_waypoint).x).toBeLessThan(1500 - 30);
    const resolved = applyResolution(drones, r);
    expect(detect(resolved)).toEqual([]);
    expect(isResolved("out|@geofence", resolved, config)).toBe(true);
  });

  it("no-fly zone: a waypoint outside the zone", () => {
    const zoneCfg: FleetConfig = {
      ...config,
      no_fly_zones: [{ id: "z1", name: "Stadium", polygon: [at(500, -100), at(700, -100), at(700, 100), at(500, 100)] }],
    };
    const drones = [drone("n", 300, 0, 50, 90, 10)];
    const r = chooseResolution(detect(drones, zoneCfg)[0]!, drones, zoneCfg);
    expect(r.strategy).toBe("return_inside");
    expect(r.verified).toBe(true);
    expectWaypointsValid(r.commands, zoneCfg);
    expect(detect(applyResolution(drones, r), zoneCfg)).toEqual([]);
  });

  it("in a dense random fleet, each resolution keeps limits and clears its conflict", () => {
    const { drones, config: cfg } = patrolScenario(300, 7);
    const conflicts = detectConflicts({ drones, config: cfg, now: 0 }).filter((c) => c.time_to_conflict_s > 0).slice(0, 12);
    expect(conflicts.length).toBeGreaterThan(5);
    let verified = 0;
    for (const c of conflicts) {
      const r = chooseResolution(c, drones, cfg);
      expectWaypointsValid(r.commands, cfg);
      if (!r.verified) continue;
      verified++;
      const after = detectConflicts({ drones: applyResolution(drones, r), config: cfg, now: 0 });
      expect(after.map((x) => x.key)).not.toContain(c.key);
    }
    expect(verified).toBe(conflicts.length);
  });
});

describe("isResolved and keys", () => {
  it("parses keys", () => {
    expect(parseConflictKey("a|b")).toEqual({ kind: "pair", drone_ids: ["a", "b"] });
    expect(parseConflictKey("a|@geofence")).toEqual({ kind: "geofence", drone_id: "a" });
    expect(parseConflictKey("a|@no_fly:z|1")).toEqual({ kind: "no_fly", drone_id: "a", zone_id: "z|1" });
    expect(parseConflictKey("nonsense")).toBeNull();
  });

  it("a grounded drone ends its conflicts; a missing one does not", () => {
    const [a, b] = headOn();
    expect(isResolved("a|b", [a!, { ...b!, status: "landed" }], config, { horizonS: 30 })).toBe(true);
    expect(isResolved("a|b", [a!], config)).toBe(false);
  });

  it("looks only a short horizon ahead by default", () => {
    // The head-on pair conflicts in 18.5 s: not within the default 10 s.
    expect(isResolved("a|b", headOn(), config)).toBe(true);
    expect(isResolved("a|b", [drone("a", 0, 0, 50, 0, 0), drone("b", 10, 0, 50, 0, 0)], config)).toBe(false);
  });
});

// ------------------------------------------------------------------ issue 14: field conditions

describe("classification from the geometry of the predicted encounter", () => {
  const type = (a: CoordinationDrone, b: CoordinationDrone) => detect([a, b])[0]?.event_type;

  it("head-on: courses more than 135° apart where they meet", () => {
    expect(type(drone("a", -200, 0, 50, 90, 10), drone("b", 200, 35, 50, 260, 10))).toBe("head_on");
    // A drone that turns onto the reciprocal course before they meet is head-on, not crossing.
    const turning = drone("a", -150, -100, 50, 0, 10, { path: [{ ...at(-150, 0), alt_m: 50 }, { ...at(300, 0), alt_m: 50 }] });
    expect(type(turning, drone("b", 150, 0, 50, 270, 10))).toBe("head_on");
  });

  it("crossing: courses between 45° and 135° apart", () => {
    expect(type(drone("a", -200, 0, 50, 90, 10), drone("b", -100, -173.2, 50, 30, 10))).toBe("crossing");
    expect(type(drone("a", -200, 0, 50, 90, 10), drone("b", 100, -173.2, 50, 330, 10))).toBe("crossing");
  });

  it("overtaking: within 45°, the one behind closing; also when the chaser turns onto the course", () => {
    expect(type(drone("fast", 0, 0, 50, 80, 15), drone("slow", 150, 20, 50, 95, 5))).toBe("overtaking");
    const chaser = drone("a", 0, -100, 50, 0, 15, { path: [{ ...at(0, 0), alt_m: 50 }, { ...at(600, 0), alt_m: 50 }] });
    const ahead = drone("b", 60, 0, 50, 90, 4, { path: [{ ...at(600, 0), alt_m: 50 }] });
    expect(type(chaser, ahead)).toBe("overtaking");
  });

  it("converging: one hovers, or the gap closes vertically on the same course", () => {
    expect(type(drone("h", 0, 0, 50, 0, 0), drone("m", -200, 0, 50, 90, 10))).toBe("converging");
    // Same course, same speed, one descending onto the other.
    expect(type(drone("top", 0, 0, 62, 90, 10, { climb_mps: -2 }), drone("low", 10, 0, 50, 90, 10))).toBe("converging");
  });
});

describe("what detection knows of a drone", () => {
  it("checks both predictions of a drone it is unsure about, and reports a conflict in either", () => {
    // a's plan turns it away north at once; its heading and speed say it keeps flying east.
    const plan = [{ ...at(-190, 300), alt_m: 50 }];
    const a = drone("a", -200, 0, 50, 90, 10, { path: plan });
    const b = drone("b", 200, 0, 50, 270, 10);
    expect(detect([a, b])).toEqual([]);
    const [c, ...rest] = detect([{ ...a, also_dead_reckoning: true }, b]);
    expect(rest).toEqual([]);
    expect(c).toMatchObject({ key: "a|b", event_type: "head_on" });
    expect(c!.time_to_conflict_s).toBeCloseTo(18.5, 3);
  });

  it("takes a drone of unknown state for airborne when altitude or speed says it flies", () => {
    const unknown = { armed: false, status: "idle" as const, state_known: false };
    const other = drone("b", 200, 0, 50, 270, 10);
    expect(detect([drone("a", -200, 0, 50, 90, 10, unknown), other])).toHaveLength(1);
    // The same placeholders with a known state mean a grounded drone, and so does an unknown one
    // standing still at home level.
    expect(detect([drone("a", -200, 0, 50, 90, 10, { armed: false, status: "idle" }), other])).toEqual([]);
    expect(detect([drone("a", 195, 0, 0, 0, 0, unknown), drone("c", 200, 0, 2, 0, 0)])).toEqual([]);
  });

  it("predicts a late sample from when it was taken: 2 s old is 2 s further along", () => {
    const fresh = detect(headOn())[0]!;
    const [a, b] = headOn();
    const late = detect([{ ...a!, age_s: 2 }, b!])[0]!;
    expect(late.time_to_conflict_s).toBeCloseTo(fresh.time_to_conflict_s - 1, 3);
  });

  it("does not let a corner between two samples hide a conflict", () => {
    // a turns back at (0, 0) half a second from now; b hovers 28.5 m beyond the corner. Both
    // samples (t = 0 and t = 1) are over 33 m from b; the corner itself is 28.5 m.
    const a = drone("a", -7, 0, 50, 90, 14, { path: [{ ...at(0, 0), alt_m: 50 }, { ...at(-100, -100), alt_m: 50 }] });
    const b = drone("b", 28.5, 0, 50, 0, 0);
    const [c] = detect([a, b]);
    expect(c).toMatchObject({ key: "a|b" });
    expect(c!.time_to_conflict_s).toBeLessThan(1);
  });
});

describe("planAgreement: does the drone fly its plan?", () => {
  const plan = [{ ...at(300, 0), alt_m: 50 }];
  it("agrees when the course points at the next waypoint, disagrees when it does not", () => {
    expect(planAgreement(drone("a", 0, 0, 50, 95, 10), plan, 0, config)).toBe("agree");
    expect(planAgreement(drone("a", 0, 0, 50, 200, 10), plan, 0, config)).toBe("disagree");
    // Hovering while the plan says fly: cannot tell (accelerating, or stopped).
    expect(planAgreement(drone("a", 0, 0, 50, 0, 0), plan, 0, config)).toBe("unknown");
    // Holding: agrees while it hovers; moving contradicts a hold, and an empty plan.
    expect(planAgreement(drone("a", 0, 0, 50, 0, 0), plan, 5, config)).toBe("agree");
    expect(planAgreement(drone("a", 0, 0, 50, 90, 10), plan, 5, config)).toBe("disagree");
    expect(planAgreement(drone("a", 0, 0, 50, 90, 10), [], 0, config)).toBe("disagree");
  });

  it("checks the climb the leg asks for: a drone told to climb that stays level disagrees", () => {
    const climb = [{ ...at(60, 0), alt_m: 70 }];
    expect(planAgreement(drone("a", 0, 0, 50, 90, 10, { climb_mps: 0 }), climb, 0, config)).toBe("disagree");
    expect(planAgreement(drone("a", 0, 0, 50, 90, 10, { climb_mps: 2.5 }), climb, 0, config)).toBe("agree");
  });
});

describe("right of way and exclusions", () => {
  it("a landing or emergency drone is never commanded: the other drone moves", () => {
    for (const row of ["landing", "emergency", "returning", "low_battery", "operator_hold"] as const) {
      // a (the smaller id) would keep its course anyway; give b the right of way instead.
      const drones = [drone("a", -200, 0, 50, 90, 10), drone("b", 200, 0, 50, 270, 10, { right_of_way: row })];
      const r = chooseResolution(detect(drones)[0]!, drones, config);
      expect(r.verified, row).toBe(true);
      expect(r.commands.map((c) => c.drone_id), row).toEqual(["a"]);
    }
  });

  it("when both have the right of way, a returning drone holds for a landing one, if that works", () => {
    const lander = drone("a", 0, 0, 40, 0, 0, { right_of_way: "landing", climb_mps: -1.5, plan_speed_mps: 1.5, path: [{ ...at(0, 0), alt_m: 0 }] });
    const home = drone("b", -80, 0, 40, 90, 10, { right_of_way: "returning", path: [{ ...at(150, 0), alt_m: 40 }] });
    const c = detect([lander, home])[0]!;
    const r = chooseResolution(c, [lander, home], config);
    expect(r).toMatchObject({ strategy: "hold", verified: true });
    expect(r.commands.map((x) => x.drone_id)).toEqual(["b"]);
    // Two landing drones: nothing may be sent, and the reason says why.
    const both = [lander, { ...home, right_of_way: "landing" as const }];
    const none = chooseResolution(c, both, config);
    expect(none.commands).toEqual([]);
    expect(none.verified).toBe(false);
    expect(none.reason).toMatch(/right of way \(landing\)/);
  });

  it("excluded drones and strategies are not used; the other drone or another strategy is", () => {
    const drones = headOn();
    const c = detect(drones)[0]!;
    const other = chooseResolution(c, drones, config, undefined, { exclude: new Set(["b"]) });
    expect(other.commands.map((x) => x.drone_id)).toEqual(["a"]);
    const noClimb = chooseResolution(c, drones, config, undefined, { exclude: new Set(["b:vertical_separation"]) });
    expect(noClimb.commands.map((x) => x.drone_id)).toEqual(["b"]);
    expect(noClimb.strategy).not.toBe("vertical_separation");
    const nobody = chooseResolution(c, drones, config, undefined, { exclude: new Set(["a", "b"]) });
    expect(nobody).toMatchObject({ commands: [], verified: false });
  });

  it("a planner resolves conflicts that share a drone around each other's commitments", () => {
    // b meets a head-on and c crossing; after b's resolution, c's must not send anyone into b.
    const drones = [drone("a", -250, 0, 50, 90, 10), drone("b", 250, 0, 50, 270, 10), drone("c", 0, -250, 50, 0, 10)];
    const planner = new ResolutionPlanner(drones, config);
    for (const c of detect(drones)) {
      const r = planner.choose(c);
      if (r.verified) planner.commit(r);
    }
    expect(detect(applyAll(drones, planner.drones()))).toEqual([]);
  });
});

/** The drones as the planner sees them after its commits. */
function applyAll(drones: CoordinationDrone[], planned: readonly CoordinationDrone[]): CoordinationDrone[] {
  return drones.map((d) => planned.find((p) => p.drone_id === d.drone_id) ?? d);
}

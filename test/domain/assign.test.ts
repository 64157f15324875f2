import { describe, expect, it } from "vitest";
import { rankCandidates, type AssignDrone, type Candidate, type RankInput } from "../../edge/domain/assign";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import { fromLocal, type LatLonAlt } from "../../edge/domain/geo";
import { rankBenchmarkCase } from "../fixtures/fleets";

const CFG = defaultFleetConfig();
const HOME = CFG.home;
const at = (east: number, north: number, alt: number): LatLonAlt => ({ ...fromLocal(HOME, { x_m: east, y_m: north }), alt_m: alt });
const NOW = 1_700_000_000_000;

function drone(id: string, east: number, north: number, over: Partial<AssignDrone> = {}): AssignDrone {
  return { drone_id: id, ...at(east, north, 30), battery_pct: 90, status: "idle", armed: true, link: "live", busy: false, ...over };
}
const mission = (over: Partial<RankInput["mission"]> = {}): RankInput["mission"] => ({
  waypoints: [at(500, 0, 50), at(500, 500, 50)],
  priority: "normal",
  ...over,
});
function rank(drones: AssignDrone[], over: Partial<RankInput> = {}): Candidate[] {
  return rankCandidates({ drones, mission: mission(), config: CFG, now: NOW, ...over });
}
const ids = (cs: Candidate[]) => cs.map((c) => c.drone_id);
const byId = (cs: Candidate[], id: string) => cs.find((c) => c.drone_id === id)!;

describe("rankCandidates", () => {
  it("ranks nearer drones higher, with ETA and battery reasons", () => {
    const r = rank([drone("far", -900, 0), drone("near", 400, 0), drone("mid", 0, 0)]);
    expect(ids(r)).toEqual(["near", "mid", "far"]);
    const near = r[0]!;
    expect(near.eligible).toBe(true);
    // 100 m horizontally and 20 m up at 10 m/s.
    expect(near.eta_s).toBeCloseTo(Math.hypot(100, 20) / 10, 0);
    expect(near.reasons).toContain(`eta ${Math.round(near.eta_s)} s`);
    expect(near.reasons).toContain(`battery after ${Math.round(near.battery_after_pct)} %`);
    expect(near.score).toBeGreaterThan(r[1]!.score);
  });

  it("ranks a fuller battery higher at the same place", () => {
    const r = rank([drone("low", 0, 0, { battery_pct: 50 }), drone("full", 0, 0, { battery_pct: 100 })]);
    expect(ids(r)).toEqual(["full", "low"]);
    // Battery after = battery − 5 %/km × (approach + route + return).
    const km = (Math.hypot(500, 20) + 500 + Math.hypot(Math.hypot(500, 500), 50)) / 1000;
    expect(r[0]!.battery_after_pct).toBeCloseTo(100 - 5 * km, 0);
  });

  it("excludes stale, emergency, landing, low-battery and busy drones, with reasons", () => {
    const r = rank([
      drone("ok", 0, 0),
      drone("stale", 0, 0, { link: "stale" }),
      drone("emergency", 0, 0, { status: "emergency" }),
      drone("landing", 0, 0, { status: "landing" }),
      drone("empty", 0, 0, { battery_pct: 22 }),
      drone("busy", 0, 0, { busy: true, busy_priority: "normal" }),
      drone("busy-unknown", 0, 0, { busy: true }),
    ]);
    expect(r[0]).toMatchObject({ drone_id: "ok", eligible: true });
    for (const c of r.slice(1)) {
      expect(c.eligible, c.drone_id).toBe(false);
      expect(c.score).toBe(0);
    }
    expect(byId(r, "stale").reasons).toContain("link stale");
    expect(byId(r, "emergency").reasons).toContain("status emergency");
    expect(byId(r, "landing").reasons).toContain("status landing");
    expect(byId(r, "empty").reasons).toContain("below the 20 % reserve");
    expect(byId(r, "busy").reasons).toContain("busy with a normal-priority mission");
    expect(byId(r, "busy-unknown").reasons).toContain("busy with a normal-priority mission");
  });

  it("lets a higher-priority mission take a drone from a lower one, penalised", () => {
    const drones = [drone("busy-low", 0, 0, { busy: true, busy_priority: "low" }), drone("free", 0, 0)];
    const r = rank(drones, { mission: mission({ priority: "high" }) });
    expect(ids(r)).toEqual(["free", "busy-low"]);
    expect(byId(r, "busy-low").eligible).toBe(true);
    expect(byId(r, "busy-low").reasons.join(" ")).toMatch(/interrupt a low-priority mission: penalised/);
    expect(rank([drones[0]!], { mission: mission({ priority: "low" }) })[0]!.eligible).toBe(false);
  });

  it("allows a charging drone with enough battery, penalised; not one below the reserve", () => {
    const r = rank([drone("charging", 0, 0, { status: "charging" }), drone("idle", 0, 0)]);
    expect(ids(r)).toEqual(["idle", "charging"]);
    expect(byId(r, "charging")).toMatchObject({ eligible: true });
    expect(byId(r, "charging").reasons).toContain("charging: penalised");
    const low = rank([drone("charging", 0, 0, { status: "charging", battery_pct: 15 })])[0]!;
    expect(low.eligible).toBe(false);
  });

  it("honours the deadline: a drone that would finish late is ineligible with the delay", () => {
    // Route 500 m = 50 s. "near" reaches the first waypoint in ~10 s, "far" in ~140 s.
    const deadline = NOW + 100_000;
    const r = rank([drone("far", -900, 0), drone("near", 400, 0)], { mission: mission({ deadline }) });
    expect(byId(r, "near").eligible).toBe(true);
    const far = byId(r, "far");
    expect(far.eligible).toBe(false);
    const reason = far.reasons.find((x) => x.startsWith("misses deadline by"));
    const lateS = Number(/by (\d+) s$/.exec(reason ?? "")?.[1]);
    // ETA ~142 s + 50 s of route, 100 s allowed.
    expect(Math.abs(lateS - (far.eta_s + 50 - 100))).toBeLessThanOrEqual(1);
  });

  it("breaks ties by fairness: fewer missions today wins", () => {
    const drones = [drone("a", 0, 0), drone("b", 0, 0), drone("c", 0, 0)];
    const r = rank(drones, { assignedCounts: { a: 3, b: 1 } });
    expect(ids(r)).toEqual(["c", "b", "a"]);
    expect(r[2]!.reasons).toContain("3 missions today");
  });

  it("is deterministic on full ties and handles an empty mission", () => {
    expect(ids(rank([drone("b", 0, 0), drone("a", 0, 0)]))).toEqual(["a", "b"]);
    const r = rank([drone("a", 0, 0)], { mission: mission({ waypoints: [] }) });
    expect(r[0]).toMatchObject({ eligible: false, reasons: ["mission has no waypoints"] });
  });

  it("ranks the 1,000-drone benchmark case: eligible first, scores non-increasing", () => {
    const bench = rankBenchmarkCase(CFG, 1000);
    const r = bench.run();
    expect(r).toHaveLength(1000);
    expect(new Set(ids(r)).size).toBe(1000);
    let seenIneligible = false;
    for (let i = 1; i < r.length; i++) {
      if (!r[i]!.eligible) seenIneligible = true;
      else expect(seenIneligible).toBe(false);
      if (r[i]!.eligible) expect(r[i]!.score).toBeLessThanOrEqual(r[i - 1]!.score);
    }
    expect(r.filter((c) => c.eligible).length).toBeGreaterThan(100);
  });
});

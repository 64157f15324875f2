/**
 * Simulator conflict scenarios (relay/sources/sim/scenarios.ts) and the sim's separation monitor, on a fake
 * clock. Left alone, every scenario really loses separation (so a test that sees none with the
 * edge in the loop proves the edge did something); parallel tracks do not. Then the edge's own
 * collision avoidance is put in the loop against the real flight model (bench/lib/separation.ts:
 * the Coordinator with the fleet object's ingest, ledger and command desk modelled around it):
 * each scenario is detected, resolved and flown without a loss of separation, and so are the
 * hard cases, each across 20 random seeds: a relay restart mid-flight, a plan the drone ignores,
 * an emergency landing in another drone's path, a drone without a state topic, and waypoint
 * changes made outside the edge.
 */
import { describe, expect, it } from "vitest";
import { flyAirspace, separationSuite, type AirspaceCase, type AirspaceResult } from "../../bench/lib/separation";
import { DRONE_COMMANDS_MAX_PER_MIN } from "../../edge/fleet/collision-avoidance";
import { parseRelayArgs } from "../../relay/config";
import { parallelDrones, SCENARIO_MAX_DRONES, SCENARIO_NAMES, scenarioDrones, type ScenarioDrone, type ScenarioName } from "../../relay/sources/sim/scenarios";
import { SimFleet, type PairSeparation } from "../../relay/sources/sim/sim";
import type { SourceSample } from "../../relay/sources/source";

const HOME = { lat: 47.3977, lon: 8.5456 };
const T0 = 1_700_000_000_000;

/** A scenario fleet on a fake clock, driven by emitDue every `tickMs` (never started). */
function fakeFleet(scenario: ScenarioName | readonly ScenarioDrone[], drones?: number) {
  let clock = T0;
  const samples = new Map<string, SourceSample>();
  const fleet = new SimFleet({ scenario, ...(drones ? { drones } : {}), rateHz: 5, home: HOME, now: () => clock });
  // emitDue hands samples to the start() callback; set it without starting the timer.
  (fleet as unknown as { onSample: (s: SourceSample) => void }).onSample = (s) => samples.set(s.drone_id, s);
  const run = (seconds: number, tickMs = 50, each?: () => void) => {
    for (let t = 0; t < seconds * 1000; t += tickMs) {
      clock += tickMs;
      fleet.emitDue(clock);
      each?.();
    }
  };
  return { fleet, samples, run, now: () => clock };
}

const lostPairs = (r: PairSeparation[]) => r.filter((p) => p.losses.length > 0);
const firstLossS = (p: PairSeparation) => (p.losses[0]!.from - T0) / 1000;

describe("conflict scenarios, left alone", () => {
  const expected: Record<Exclude<ScenarioName, "swarm">, [number, number]> = {
    head_on: [15, 25],
    crossing: [15, 25],
    overtaking: [15, 25],
  };
  for (const [name, [from, to]] of Object.entries(expected) as [Exclude<ScenarioName, "swarm">, [number, number]][]) {
    it(`${name}: the pair loses separation ${from}–${to} s after start and passes within metres`, () => {
      const { fleet, run } = fakeFleet(name);
      expect(fleet.droneIds()).toEqual(["drone_0", "drone_1"]);
      run(40);
      const [pair, ...rest] = fleet.separationReport();
      expect(rest).toEqual([]);
      expect(pair!.losses.length).toBeGreaterThan(0);
      expect(firstLossS(pair!)).toBeGreaterThanOrEqual(from);
      expect(firstLossS(pair!)).toBeLessThanOrEqual(to);
      expect(pair!.min_horizontal_m).toBeLessThan(5);
      expect(pair!.vertical_at_min_horizontal_m).toBeLessThan(1);
    });
  }

  it("swarm: 12 drones by default, several same-altitude pairs lose separation 20–40 s after start", () => {
    const { fleet, run } = fakeFleet("swarm");
    expect(fleet.droneIds()).toHaveLength(12);
    run(45);
    const lost = lostPairs(fleet.separationReport());
    expect(lost.length).toBeGreaterThanOrEqual(4);
    for (const p of lost) {
      expect(firstLossS(p)).toBeGreaterThan(15);
      expect(firstLossS(p)).toBeLessThan(40);
    }
    // Bands 15 m apart: only drones of the same band ever lose separation.
    const alt = new Map(fleet.snapshot().map((d) => [d.id, d.alt]));
    for (const p of lost) expect(alt.get(p.drone_ids[0])).toBe(alt.get(p.drone_ids[1]));
  });

  it("parallel tracks 50 m apart never lose separation", () => {
    const { fleet, run } = fakeFleet(parallelDrones(50));
    run(60);
    const [pair] = fleet.separationReport();
    expect(pair!.losses).toEqual([]);
    expect(pair!.min_horizontal_m).toBeCloseTo(50, 3);
    expect(pair!.min_horizontal_within_vertical_m).toBeCloseTo(50, 3);
  });

  it("--drones N copies the pair 250 m apart: each pair conflicts, pairs never meet each other", () => {
    for (const name of ["head_on", "crossing", "overtaking"] as const) {
      const { fleet, run } = fakeFleet(name, 7);
      expect(fleet.droneIds()).toHaveLength(7);
      run(40);
      const lost = lostPairs(fleet.separationReport()).map((p) => p.drone_ids.join("-"));
      expect(lost.sort(), name).toEqual(["drone_0-drone_1", "drone_2-drone_3", "drone_4-drone_5"]);
    }
  });

  it("places every drone airborne inside the default geofence, 30–80 m, and keeps it there", () => {
    for (const name of SCENARIO_NAMES) {
      const { fleet, run } = fakeFleet(name, SCENARIO_MAX_DRONES[name]);
      const check = () => {
        for (const d of fleet.snapshot()) {
          expect(d.status).toBe("flying");
          expect(d.armed).toBe(true);
          expect(Math.max(Math.abs(d.x), Math.abs(d.y)), `${name} ${d.id}`).toBeLessThan(1_100);
          expect(d.alt).toBeGreaterThanOrEqual(30);
          expect(d.alt).toBeLessThanOrEqual(80);
        }
      };
      check();
      run(120, 250, undefined);
      check();
    }
    expect(() => scenarioDrones("head_on", SCENARIO_MAX_DRONES.head_on + 1)).toThrow(RangeError);
    expect(() => new SimFleet({ scenario: "swarm", drones: 61 })).toThrow(RangeError);
  });

  it("measures the exact closest approach between coarse ticks", () => {
    // One measurement a second: the drones are never sampled together near the middle, yet the
    // report sees them pass at 0 m.
    const { fleet, run } = fakeFleet("head_on");
    run(30, 1000);
    const [pair] = fleet.separationReport();
    expect(pair!.min_horizontal_m).toBeLessThan(0.5);
    expect(pair!.losses).toHaveLength(1);
    expect(pair!.losses[0]!.to - pair!.losses[0]!.from).toBeGreaterThan(1000);
  });

  it("without a scenario the fleet is the patrol fleet and the monitor is off", () => {
    const plain = new SimFleet({ drones: 5, seed: 1 });
    expect(plain.separationReport()).toEqual([]);
    expect(plain.snapshot().some((d) => d.route.length > 2)).toBe(true);
    const monitored = new SimFleet({ drones: 5, seed: 1, monitorSeparation: true });
    expect(monitored.snapshot()).toEqual(plain.snapshot());
  });
});

describe("--scenario flag", () => {
  const deps = { env: {}, readFile: () => "", defaultRelayId: "r1" };
  const base = ["--edge", "http://127.0.0.1:8787", "--fleet", "f1", "--token", "t"];
  it("selects a scenario with its own default drone count", () => {
    const a = parseRelayArgs([...base, "--source", "sim", "--scenario", "head_on"], deps);
    expect(a).toMatchObject({ kind: "ok", config: { scenario: "head_on", drones: 2 } });
    const b = parseRelayArgs([...base, "--source", "sim", "--scenario", "swarm"], deps);
    expect(b).toMatchObject({ kind: "ok", config: { scenario: "swarm", drones: 12 } });
    const c = parseRelayArgs([...base, "--source", "sim", "--scenario", "swarm", "--drones", "20"], deps);
    expect(c).toMatchObject({ kind: "ok", config: { scenario: "swarm", drones: 20 } });
    const none = parseRelayArgs([...base, "--source", "sim"], deps);
    expect(none).toMatchObject({ kind: "ok", config: { scenario: undefined, drones: 5 } });
  });
  it("rejects unknown scenarios and scenarios for ros2", () => {
    expect(parseRelayArgs([...base, "--source", "sim", "--scenario", "loop"], deps)).toMatchObject({ kind: "error", message: expect.stringContaining("--scenario must be one of") });
    expect(parseRelayArgs([...base, "--source", "ros2", "--scenario", "head_on"], deps)).toMatchObject({ kind: "error", message: expect.stringContaining("--source sim") });
  });
});

// ------------------------------------------------------------ the edge's coordinator in the loop

const coordinatorCommands = (r: AirspaceResult) => r.commands.filter((c) => c.by.startsWith("coordinator:"));
/** Every loss of separation, for a readable failure. */
const losses = (r: AirspaceResult) => r.lossList.map((l) => `${r.name} seed ${r.seed}: ${l.pair.join("-")} at ${l.from.toFixed(1)} s, ${l.horizontal_m.toFixed(1)} m / ${l.vertical_m.toFixed(1)} m`);
const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);
const PAIRS = ["head_on", "crossing", "overtaking"] as const;

describe("conflict scenarios with the edge's coordinator in the loop", () => {
  for (const name of SCENARIO_NAMES) {
    it(`${name}: detected, resolved by commands the sim accepts, separation kept`, async () => {
      const r = await flyAirspace({ name, scenario: name, seed: 1, seconds: 60, avoidance: true });
      const cmds = coordinatorCommands(r);
      expect(cmds.length).toBeGreaterThan(0);
      expect(cmds.every((c) => c.status === "acked")).toBe(true);
      if (name !== "swarm") {
        expect(r.events[0]).toMatchObject({ event_type: name, drone_ids: ["drone_0", "drone_1"], status: "resolved" });
      } else {
        expect(r.events.filter((e) => e.drone_ids.length >= 2).length).toBeGreaterThanOrEqual(4);
      }
      expect(r.events.every((e) => e.status === "resolved")).toBe(true);
      expect(losses(r)).toEqual([]);
      // And the drones did not simply stop: everyone is still flying.
      for (const d of r.fleet.snapshot()) expect(d.status).toBe("flying");
      // Commanded waypoints stay inside the default geofence.
      for (const d of r.fleet.snapshot()) {
        if (d.task?.kind !== "goto") continue;
        expect(Math.max(Math.abs(d.task.target.x), Math.abs(d.task.target.y))).toBeLessThan(1_500);
      }
    });
  }
});

describe("separation holds in the hard cases, across 20 random seeds", () => {
  /** Fly `make(seed)` for every seed; return the results and every loss. */
  async function acrossSeeds(make: (seed: number) => AirspaceCase): Promise<{ runs: AirspaceResult[]; lost: string[] }> {
    const runs: AirspaceResult[] = [];
    for (const seed of SEEDS) runs.push(await flyAirspace(make(seed)));
    return { runs, lost: runs.flatMap(losses) };
  }

  it("a relay restart mid-scenario: the drones start their routes over, the edge drops its stored plans", async () => {
    const names = [...SCENARIO_NAMES];
    const { runs, lost } = await acrossSeeds((seed) => ({
      name: `${names[seed % names.length]!}, relay restart`,
      scenario: names[seed % names.length]!,
      seed,
      seconds: 45,
      avoidance: true,
      restartsAtS: [6 + (seed % 7) * 2],
    }));
    expect(lost).toEqual([]);
    // The control: the same restarts without collision avoidance lose separation.
    const control = await flyAirspace({ name: "control", scenario: "head_on", seed: 3, seconds: 45, avoidance: false, restartsAtS: [12] });
    expect(control.losses).toBeGreaterThan(0);
    // Commands lost in the restart end (timeout or refused), and no event is left open past its conflict.
    for (const r of runs) for (const e of r.events) if (e.status === "resolved") expect(e.first_command_at).not.toBeNull();
  });

  it("a plan the drone ignores: it acknowledges the resolution, flies on, and the other drone is moved", async () => {
    const { runs, lost } = await acrossSeeds((seed) => ({
      name: `${PAIRS[seed % 3]!}, drone_1 ignores commands${seed % 2 ? "" : ", no intents"}`,
      scenario: PAIRS[seed % 3]!,
      seed,
      seconds: 45,
      avoidance: true,
      ignoring: ["drone_1"],
      // Without intents only the drone's motion shows it ignores the plan (the edge's record of
      // the acknowledged command says otherwise); with them, its unchanged intent does too.
      intents: seed % 2 === 1,
    }));
    expect(lost).toEqual([]);
    for (const r of runs) {
      // drone_1 (the larger id) yields first, acknowledges, ignores; then drone_0 gets a command.
      const cmds = coordinatorCommands(r);
      expect(cmds.some((c) => c.drone_id === "drone_0" && c.status === "acked"), r.name).toBe(true);
    }
  });

  it("an emergency-landing drone in another's path: the other moves, the landing drone gets nothing", async () => {
    const { runs, lost } = await acrossSeeds((seed) => ({
      name: `${PAIRS[seed % 3]!}, drone_0 emergency lands`,
      scenario: PAIRS[seed % 3]!,
      seed,
      seconds: 45,
      avoidance: true,
      emergencyLands: [{ droneId: "drone_0", atS: 2 + (seed % 10) }],
    }));
    expect(lost).toEqual([]);
    for (const r of runs) {
      const landAt = r.commands.find((c) => c.command === "emergency_land")!.at;
      const toLander = coordinatorCommands(r).filter((c) => c.drone_id === "drone_0" && c.at > landAt + 300);
      expect(toLander, r.name).toEqual([]);
      // Nothing the edge sent was refused, and every event it resolved had an acknowledged command.
      expect(coordinatorCommands(r).filter((c) => c.status !== "acked"), r.name).toEqual([]);
    }
  });

  it("a drone without a state topic (armed and status unknown) is taken for airborne and avoided", async () => {
    const { runs, lost } = await acrossSeeds((seed) => ({
      name: `${PAIRS[seed % 3]!}, no state topic`,
      scenario: PAIRS[seed % 3]!,
      seed,
      seconds: 45,
      avoidance: true,
      // One drone, or both, report `armed: false, status: idle, state_known: false`.
      stateUnknown: seed % 2 ? ["drone_0"] : ["drone_0", "drone_1"],
    }));
    expect(lost).toEqual([]);
    for (const r of runs) expect(r.events.length, r.name).toBeGreaterThan(0);
  });

  it("random waypoint changes made outside the edge (a ground station redirects drones)", async () => {
    const { runs, lost } = await acrossSeeds((seed) => ({
      name: "swarm, redirects outside the edge",
      scenario: "swarm",
      seed,
      seconds: 40,
      avoidance: true,
      redirectEveryS: 3,
    }));
    expect(lost).toEqual([]);
    expect(runs.reduce((a, r) => a + r.redirects, 0)).toBeGreaterThan(100);
  });
});

describe("the patrol stress case, across 20 random seeds", () => {
  it("40 drones, an operator mission every 3 s, a ground-station waypoint change every 5 s, a relay restart: no loss of separation", async () => {
    // The stress case of the separation figure (bench/lib/separation.ts suiteCases, full scale):
    // the default sector layout (~120 drones/km²), plans changed through the edge and outside it.
    const runs: AirspaceResult[] = [];
    for (const seed of SEEDS) {
      runs.push(await flyAirspace({ name: "patrol 40, stress", drones: 40, seed, seconds: 120, avoidance: true, missionEveryS: 3, redirectEveryS: 5, restartsAtS: [48] }));
    }
    expect(runs.reduce((a, r) => a + r.redirects, 0)).toBeGreaterThan(400);
    expect(runs.every((r) => r.restarts === 1)).toBe(true);
    expect(runs.flatMap(losses)).toEqual([]);
    for (const r of runs) expect(r.maxCommandsPerDroneMinute, r.name).toBeLessThanOrEqual(DRONE_COMMANDS_MAX_PER_MIN);
  });
});

describe("the separation figure (small version of `npm run bench`'s)", () => {
  it("zero losses with avoidance on, losses with it off, over the scenario suite with restarts and random missions", async () => {
    const scale = { seconds: 40, patrolDrones: 24 };
    const on = await separationSuite([1, 2], true, scale);
    const off = await separationSuite([1, 2], false, scale);
    expect(on.losses).toBe(0);
    expect(off.losses).toBeGreaterThan(10);
    expect(on.closestM).toBeGreaterThan(25);
    expect(on.maxCommandsPerDroneMinute).toBeLessThanOrEqual(12);
  });
});

describe("1,000 simulated drones in the default layout", () => {
  it("few resolutions, a bounded number per drone and minute, no event left active past its conflict", async () => {
    let stale = 0;
    const r = await flyAirspace({
      name: "1,000 patrol",
      drones: 1000,
      seed: 1,
      seconds: 30,
      avoidance: true,
      monitor: false,
      rateHz: 1,
      onPass: (co, _fleet, t) => {
        // An event older than its conflict time: detected, its conflict moment has passed, and it
        // is still active (a pass later than that: one pass to see the pair apart).
        for (const e of co.activeEvents()) if (e.detected_at + e.time_to_conflict_s * 1000 + 1_000 < 1_700_000_000_000 + t * 1000) stale++;
      },
    });
    const cmds = coordinatorCommands(r);
    expect(r.droneMinutes).toBeGreaterThan(300);
    expect(cmds.length / r.droneMinutes).toBeLessThan(0.5);
    expect(r.maxCommandsPerDroneMinute).toBeLessThanOrEqual(DRONE_COMMANDS_MAX_PER_MIN);
    expect(stale).toBe(0);
    expect(r.saturated).toBe(false);
  });
});

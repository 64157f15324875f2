/**
 * Simulator conflict scenarios (relay/sources/sim/scenarios.ts) and the sim's separation monitor, on a fake
 * clock. Left alone, every scenario really loses separation (so a test that sees none with the
 * edge in the loop proves the edge did something); parallel tracks do not. Then the edge's own
 * Coordinator (pure apart from SQL, stubbed here) is put in the loop against the real flight
 * model: each scenario is detected, resolved, and flown without a loss of separation.
 */
import { describe, expect, it } from "vitest";
import { Coordinator, type CoordinationEvent } from "../../edge/fleet/collision-avoidance";
import type { CoordinationDrone } from "../../edge/domain/conflicts";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import type { RelayCommand, Waypoint } from "../../edge/protocol";
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

/** Just enough of SqlStorage for Coordinator.pass (inserts; no reads). */
const nullSql = { exec: () => Object.assign([][Symbol.iterator](), { toArray: () => [] }) } as unknown as SqlStorage;

/**
 * The fleet object's loop without workerd: samples become CoordinationDrones (plan set on ack, as
 * the command desk does; hold from the coordinator), a pass every 500 ms, commands reach the sim
 * 150 ms after they are issued.
 */
async function withCoordinator(scenario: ScenarioName, seconds: number) {
  const { fleet, samples, run, now } = fakeFleet(scenario);
  const config = defaultFleetConfig();
  const plans = new Map<string, Waypoint[]>();
  const pending: { at: number; cmd: RelayCommand }[] = [];
  const results: { at: number; drone_id: string; command: string; ok: boolean }[] = [];
  const events = new Map<string, CoordinationEvent>();
  const coordinator: Coordinator = new Coordinator(nullSql, {
    config: () => config,
    drones: () =>
      [...samples.values()].map((s): CoordinationDrone => {
        const hold = coordinator.holdFor(s.drone_id, now());
        return { ...s, path: plans.get(s.drone_id) ?? [], ...(hold !== undefined ? { hold_s: hold } : {}) };
      }),
    issue: (cmds) => {
      for (const c of cmds) {
        const { reason: _reason, ...rest } = c;
        pending.push({ at: now() + 150, cmd: { type: "command", command_id: `c${pending.length}`, ...rest } as unknown as RelayCommand });
      }
      return cmds.length;
    },
    changed: (e) => events.set(e.event_id, { ...e }),
  });
  let nextPass = now();
  for (let t = 0; t < seconds * 20; t++) {
    run(0.05);
    for (const p of pending.filter((x) => x.at <= now())) {
      pending.splice(pending.indexOf(p), 1);
      const r = await fleet.execute(p.cmd, new AbortController().signal);
      results.push({ at: now(), drone_id: p.cmd.drone_id, command: p.cmd.command, ok: r.ok });
      if (r.ok && p.cmd.command === "modify_waypoint") plans.set(p.cmd.drone_id, [p.cmd.new_waypoint]);
    }
    if (now() >= nextPass) {
      coordinator.pass(now());
      nextPass = now() + 500;
    }
  }
  return { fleet, events: [...events.values()], results };
}

describe("conflict scenarios with the edge's coordinator in the loop", () => {
  for (const name of SCENARIO_NAMES) {
    it(`${name}: detected, resolved by commands the sim accepts, separation kept`, async () => {
      const { fleet, events, results } = await withCoordinator(name, 60);
      expect(results.length).toBeGreaterThan(0);
      expect(results.every((r) => r.ok)).toBe(true);
      if (name !== "swarm") {
        expect(events[0]).toMatchObject({ event_type: name, drone_ids: ["drone_0", "drone_1"], status: "resolved" });
      } else {
        expect(events.filter((e) => e.drone_ids.length === 2).length).toBeGreaterThanOrEqual(4);
      }
      expect(events.every((e) => e.status === "resolved")).toBe(true);
      const firstCommand = Math.min(...results.map((r) => r.at));
      const report = fleet.separationReport();
      const after = report.flatMap((p) => p.losses.filter((l) => l.to >= firstCommand).map((l) => ({ pair: p.drone_ids, ...l })));
      expect(after).toEqual([]);
      // And the drones did not simply stop: everyone is still flying.
      for (const d of fleet.snapshot()) expect(d.status).toBe("flying");
      // Commanded waypoints stay inside the default geofence.
      for (const d of fleet.snapshot()) {
        if (d.task?.kind !== "goto") continue;
        expect(Math.max(Math.abs(d.task.target.x), Math.abs(d.task.target.y))).toBeLessThan(1_500);
      }
    });
  }
});

/**
 * A resolution may stop between candidates when the pass is over its time
 * (`ResolutionPlanner.chooseWithin`). Given the time it chooses what `choose` chooses; stopped,
 * it answers null and leaves the planner as it was, so the conflict is resolved by a later pass as
 * if nothing had happened. `steps` is the same work one candidate at a time, to be carried on
 * across turns: driven to its end, in any number of pieces, it chooses what `choose` chooses. The
 * fleet object's side is in coordination-fleet.test.ts.
 */
import { describe, expect, it } from "vitest";
import { detectConflicts, ResolutionPlanner, type ChooseOptions } from "../../edge/domain/conflicts";
import { patrolScenario } from "../fixtures/fleets";

describe("ResolutionPlanner.chooseWithin", () => {
  const { drones, config } = patrolScenario(400, 3);
  const conflicts = detectConflicts({ drones, config, now: 0 }).slice(0, 12);
  const options: ChooseOptions[] = [{}, { exclude: new Set([conflicts[0]!.drone_ids[0]!]) }, { override: "hold" }];

  it("chooses what choose chooses when it has the time, and null when it is stopped", () => {
    expect(conflicts.length).toBe(12);
    let stopped = 0;
    for (const c of conflicts) {
      for (const opts of options) {
        const expected = new ResolutionPlanner(drones, config).choose(c, opts);
        const planner = new ResolutionPlanner(drones, config);
        let checks = 0;
        expect(planner.chooseWithin(c, opts, () => (checks++, false))).toEqual(expected);
        // Stopped at every checkpoint it passes in turn: nothing, then, once it has all its time,
        // the same resolution; and the planner chooses as a fresh one would.
        for (let k = 0; k <= checks; k++) {
          let n = 0;
          const r = planner.chooseWithin(c, opts, () => n++ >= k);
          if (k < checks) {
            expect(r, `${c.key}, stopped at check ${k} of ${checks}`).toBeNull();
            stopped++;
          } else expect(r).toEqual(expected);
        }
        expect(planner.choose(c, opts)).toEqual(expected);
      }
    }
    expect(stopped).toBeGreaterThan(conflicts.length);
  });

  it("a stopped resolution leaves committed resolutions and later choices as they were", () => {
    const a = new ResolutionPlanner(drones, config);
    const b = new ResolutionPlanner(drones, config);
    for (const c of conflicts) {
      // b is stopped at its first check before every conflict, then given the time.
      expect(b.chooseWithin(c, {}, () => true)).toBeNull();
      const ra = a.choose(c);
      expect(b.choose(c)).toEqual(ra);
      a.commit(ra);
      b.commit(ra);
    }
    expect(b.drones()).toEqual(a.drones());
  });
});

describe("ResolutionPlanner.steps", () => {
  const { drones, config } = patrolScenario(400, 3);
  const conflicts = detectConflicts({ drones, config, now: 0 }).slice(0, 12);

  it("driven a step at a time, with other planners' work in between, ends in what choose chooses", () => {
    let steps = 0;
    for (const c of conflicts) {
      const expected = new ResolutionPlanner(drones, config).choose(c);
      const planner = new ResolutionPlanner(drones, config);
      const g = planner.steps(c);
      let r = g.next();
      while (!r.done) {
        steps++;
        // Another conflict resolved on another planner between two steps changes nothing here.
        new ResolutionPlanner(drones, config).choose(conflicts[(steps * 7) % conflicts.length]!);
        r = g.next();
      }
      expect(r.value, c.key).toEqual(expected);
    }
    // More steps than conflicts: some resolutions took several.
    expect(steps).toBeGreaterThan(conflicts.length);
  });
});

describe("ResolutionPlanner.build", () => {
  it("builds a thousand drones' planner in steps, and it chooses what a planner built at once chooses", () => {
    const { drones, config } = patrolScenario(1000, 42);
    // Unsure plans have second rows: the steps cover them too.
    for (const d of drones.slice(0, 300)) if (d.path.length) d.also_dead_reckoning = true;
    const conflicts = detectConflicts({ drones, config, now: 0 }).slice(0, 6);
    expect(conflicts.length).toBe(6);
    const g = ResolutionPlanner.build(drones, config);
    let steps = 0;
    let r = g.next();
    while (!r.done) {
      steps++;
      // Other work between steps (another planner's) changes nothing here.
      new ResolutionPlanner(drones, config).choose(conflicts[steps % conflicts.length]!);
      r = g.next();
    }
    // 128 drones a step: the second rows, then the boxes.
    expect(steps).toBeGreaterThanOrEqual(12);
    const built = r.value;
    const once = new ResolutionPlanner(drones, config);
    for (const c of conflicts) {
      const expected = once.choose(c);
      expect(built.choose(c), c.key).toEqual(expected);
      once.commit(expected);
      built.commit(expected);
    }
    expect(built.drones()).toEqual(once.drones());
  });

  it("a small fleet's planner is built in one step", () => {
    const { drones, config } = patrolScenario(100, 3);
    expect(ResolutionPlanner.build(drones, config).next().done).toBe(true);
  });
});

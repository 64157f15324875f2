import { afterEach, describe, expect, it, vi } from "vitest";
import { MissionProgress, TelemetrySample, TelemetryUpdate, type RelayCommand } from "../../edge/protocol";
import { offsetM, toLocal } from "../../edge/domain/geo";
import {
  DEFAULT_PHYSICS,
  SECTOR_M,
  SIM_MODES,
  SimFleet,
  applyCommand,
  createDrone,
  seededRandom,
  stepDrone,
  toSample,
  type SimDrone,
  type SimEvent,
} from "../../relay/sources/sim/sim";
import type { MissionProgressEvent, SourceSample } from "../../relay/sources/source";

const HOME = { lat: 47.3977, lon: 8.5456 };

/** A drone in a given phase, built from the real generator so routes and pads are realistic. */
function drone(patch: Partial<SimDrone> = {}, i = 0): SimDrone {
  return { ...createDrone(i, 10, seededRandom(42)), ...patch };
}

/** Step `d` for `seconds` in `dt` slices, returning every intermediate state. */
function run(d: SimDrone, seconds: number, dt = 0.5): SimDrone[] {
  const out: SimDrone[] = [];
  let s = d;
  for (let t = 0; t < seconds; t += dt) {
    s = stepDrone(s, dt);
    out.push(s);
  }
  return out;
}

describe("stepDrone (pure physics)", () => {
  it("does not mutate its input and is deterministic", () => {
    const d = drone({ status: "flying", mode: SIM_MODES.mission, armed: true, alt: 50, battery: 80 });
    const before = structuredClone(d);
    const a = stepDrone(d, 1);
    const b = stepDrone(d, 1);
    expect(d).toEqual(before);
    expect(a).toEqual(b);
  });

  it("drains the battery with flight, more when moving than when hovering", () => {
    const base = { status: "flying" as const, armed: true, alt: 50, battery: 80 };
    const cruising = stepDrone(drone({ ...base, mode: SIM_MODES.mission }), 10);
    const hovering = stepDrone(drone({ ...base, mode: SIM_MODES.loiter, holdS: 60 }), 10);
    expect(cruising.battery).toBeLessThan(80);
    expect(hovering.battery).toBeLessThan(80);
    expect(80 - cruising.battery).toBeGreaterThan(80 - hovering.battery);
    // Nothing drains on the pad.
    const idle = stepDrone(drone({ status: "idle", battery: 99, holdS: 100 }), 10);
    expect(idle.battery).toBe(99);
  });

  it("reports speed, climb and heading consistent with the motion", () => {
    const d = drone({ status: "flying", mode: SIM_MODES.mission, armed: true, alt: 30, battery: 90, x: 0, y: 0 });
    const n = stepDrone(d, 1);
    const dx = n.x - d.x;
    const dy = n.y - d.y;
    expect(Math.hypot(n.vx, n.vy)).toBeCloseTo(Math.hypot(dx, dy), 6);
    expect(Math.hypot(dx, dy)).toBeCloseTo(d.cruiseMps, 6);
    const expected = ((Math.atan2(dx, dy) * 180) / Math.PI + 360) % 360;
    expect(n.heading).toBeCloseTo(expected, 6);
    expect(n.vz).toBeCloseTo(n.alt - d.alt, 6);
    const s = toSample(n, HOME, 1);
    expect(s.speed_mps).toBeCloseTo(d.cruiseMps, 1);
  });

  it("returns to its pad below 25 %, lands and disarms", () => {
    const start = drone({ status: "flying", mode: SIM_MODES.mission, armed: true, alt: 60, battery: 25.2, x: 300, y: 200 });
    const states = run(start, 400);
    const rtl = states.findIndex((s) => s.status === "returning");
    expect(rtl).toBeGreaterThanOrEqual(0);
    expect(states[rtl]?.mode).toBe(SIM_MODES.rtl);
    expect(states[rtl]?.battery).toBeLessThan(25);
    const landing = states.findIndex((s) => s.status === "landing");
    expect(landing).toBeGreaterThan(rtl);
    expect(states[landing]?.mode).toBe(SIM_MODES.land);
    const landed = states.find((s) => s.status === "landed");
    expect(landed).toBeDefined();
    expect(landed?.alt).toBe(0);
    expect(landed?.armed).toBe(false);
    expect(landed?.x).toBeCloseTo(start.pad.x, 3);
    expect(landed?.y).toBeCloseTo(start.pad.y, 3);
    // Landing is a descent straight down over the pad (until the next take-off).
    const next = states.findIndex((s, i) => i > landing && s.status === "taking_off");
    for (const s of states.slice(landing, next === -1 ? undefined : next)) expect(Math.hypot(s.x - start.pad.x, s.y - start.pad.y)).toBeLessThan(1);
  });

  it("charges on the pad to ~95 %, then arms and takes off back onto its patrol", () => {
    const d = drone();
    const start = { ...d, x: d.pad.x, y: d.pad.y, alt: 0, status: "landed" as const, mode: SIM_MODES.land, armed: false, battery: 20, holdS: 3 };
    const states = run(start, 400);
    const charging = states.filter((s) => s.status === "charging");
    expect(charging.length).toBeGreaterThan(0);
    expect(charging.every((s) => !s.armed && s.alt === 0)).toBe(true);
    const takeoff = states.findIndex((s) => s.status === "taking_off");
    expect(takeoff).toBeGreaterThan(0);
    expect(states[takeoff]?.battery).toBeGreaterThanOrEqual(DEFAULT_PHYSICS.chargedPct);
    expect(states[takeoff]?.armed).toBe(true);
    expect(states.some((s) => s.status === "flying" && s.mode === SIM_MODES.mission)).toBe(true);
  });

  it("integrates long steps (large time scales) without skipping phases", () => {
    const start = drone({ status: "flying", mode: SIM_MODES.mission, armed: true, alt: 60, battery: 26, x: 200, y: 0 });
    const after = stepDrone(start, 600); // ten minutes in one call
    expect(["landed", "charging", "taking_off", "flying"]).toContain(after.status);
    expect(after.battery).toBeGreaterThan(0);
  });

  it("keeps a fleet within ~1 km of home over hours, cycling through every phase", () => {
    const rand = seededRandom(7);
    let fleet = Array.from({ length: 12 }, (_, i) => createDrone(i, 12, rand));
    const seen = new Set<string>();
    let maxDist = 0;
    for (let step = 0; step < 2 * 3600; step++) {
      fleet = fleet.map((d) => stepDrone(d, 1));
      for (const d of fleet) {
        seen.add(d.status);
        maxDist = Math.max(maxDist, Math.hypot(d.x, d.y));
        expect(d.alt).toBeGreaterThanOrEqual(0);
        expect(d.alt).toBeLessThanOrEqual(80.001);
        expect(d.battery).toBeGreaterThan(0);
      }
      if (step % 600 === 0) {
        for (const d of fleet) {
          const s = toSample(d, HOME, 1_700_000_000_000);
          expect(TelemetrySample.safeParse({ ...s, seq: 1 }).success).toBe(true);
          const local = toLocal(HOME, s);
          expect(Math.hypot(local.x_m, local.y_m)).toBeLessThan(1000);
        }
      }
    }
    expect(maxDist).toBeLessThan(520);
    for (const st of ["flying", "returning", "landing", "landed", "charging", "taking_off"]) expect(seen).toContain(st);
  });
});

describe("fleet generation", () => {
  it("is deterministic per seed and gives every drone its own route, altitudes 30–80 m", () => {
    const a = new SimFleet({ drones: 50, seed: 3 }).snapshot();
    const b = new SimFleet({ drones: 50, seed: 3 }).snapshot();
    const c = new SimFleet({ drones: 50, seed: 4 }).snapshot();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const routeKeys = new Set(a.map((d) => JSON.stringify(d.route)));
    expect(routeKeys.size).toBe(50);
    const centres = a.map((d) => {
      const n = d.route.length;
      return { x: d.route.reduce((s, w) => s + w.x, 0) / n, y: d.route.reduce((s, w) => s + w.y, 0) / n };
    });
    // Loops fan out around home instead of sharing one centre.
    const spread = Math.max(...centres.map((p) => p.x)) - Math.min(...centres.map((p) => p.x));
    expect(spread).toBeGreaterThan(300);
    for (const d of a) {
      expect(d.route.length).toBeGreaterThanOrEqual(3);
      for (const w of d.route) {
        expect(Math.hypot(w.x, w.y)).toBeLessThanOrEqual(500);
        expect(w.alt).toBeGreaterThanOrEqual(30);
        expect(w.alt).toBeLessThanOrEqual(80);
      }
    }
    // Every drone has its own pad.
    expect(new Set(a.map((d) => `${d.pad.x},${d.pad.y}`)).size).toBe(50);
    expect(a.map((d) => d.id).slice(0, 3)).toEqual(["drone_0", "drone_1", "drone_2"]);
  });

  it("rejects rates outside 1..10 Hz", () => {
    expect(() => new SimFleet({ rateHz: 0.5 })).toThrow(RangeError);
    expect(() => new SimFleet({ rateHz: 11 })).toThrow(RangeError);
    expect(() => new SimFleet({ drones: 0 })).toThrow(RangeError);
  });
});

describe("SimFleet emission (one timer for the fleet)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("staggers 1,000 drones at 1 Hz across the second, each once per period", async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000, toFake: ["setInterval", "clearInterval", "Date"] });
    const intervalSpy = vi.spyOn(globalThis, "setInterval");
    const fleet = new SimFleet({ drones: 1000, rateHz: 1 });
    const got: SourceSample[] = [];
    await fleet.start((s) => got.push(s));
    expect(intervalSpy).toHaveBeenCalledTimes(1);
    intervalSpy.mockRestore();
    const t0 = Date.now();
    vi.advanceTimersByTime(1000);
    await fleet.stop();
    const perDrone = new Map<string, number>();
    for (const s of got) perDrone.set(s.drone_id, (perDrone.get(s.drone_id) ?? 0) + 1);
    expect(perDrone.size).toBe(1000);
    // drone_0's slot opens each period, so at t0+1000 it is due again; nobody else is.
    expect(perDrone.get("drone_0")).toBe(2);
    perDrone.delete("drone_0");
    expect(Math.max(...perDrone.values())).toBe(1);
    const perMs = new Map<number, number>();
    for (const s of got) perMs.set(s.ts, (perMs.get(s.ts) ?? 0) + 1);
    // Spread over ~100 ticks of 10 ms rather than one burst.
    expect(perMs.size).toBeGreaterThanOrEqual(90);
    expect(Math.max(...perMs.values())).toBeLessThanOrEqual(15);
    expect(Math.max(...got.map((s) => s.ts)) - t0).toBeGreaterThan(900);
  });

  it("publishes at rateHz per drone and honours timeScale", async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000, toFake: ["setInterval", "clearInterval", "Date"] });
    const fast = new SimFleet({ drones: 20, rateHz: 10, timeScale: 60, seed: 5 });
    const slow = new SimFleet({ drones: 20, rateHz: 10, timeScale: 1, seed: 5 });
    const got: SourceSample[] = [];
    await fast.start((s) => got.push(s));
    await slow.start(() => {});
    vi.advanceTimersByTime(2000);
    await fast.stop();
    await slow.stop();
    const perDrone = got.filter((s) => s.drone_id === "drone_3").length;
    expect(perDrone).toBeGreaterThanOrEqual(19);
    expect(perDrone).toBeLessThanOrEqual(21);
    // Two real seconds at 60× are two simulated minutes: flying drones drain far more.
    const initial = new SimFleet({ drones: 20, seed: 5 }).snapshot();
    const drained = (f: SimFleet): number =>
      f.snapshot().reduce((sum, d, i) => {
        const d0 = initial[i];
        return d0 && d0.status === "flying" ? sum + d0.battery - d.battery : sum;
      }, 0);
    expect(drained(slow)).toBeGreaterThan(0);
    expect(drained(fast)).toBeGreaterThan(drained(slow) * 20);
  });

  it("skips missed periods after a stall instead of bursting", async () => {
    const t0 = 1_700_000_000_000;
    vi.useFakeTimers({ now: t0, toFake: ["setInterval", "clearInterval", "Date"] });
    const fleet = new SimFleet({ drones: 10, rateHz: 1 });
    const got: SourceSample[] = [];
    await fleet.start((s) => got.push(s));
    got.length = 0;
    vi.setSystemTime(t0 + 5_000); // the event loop was blocked for five seconds
    vi.advanceTimersByTime(50);
    await fleet.stop();
    const perDrone = new Map<string, number>();
    for (const s of got) perDrone.set(s.drone_id, (perDrone.get(s.drone_id) ?? 0) + 1);
    expect(Math.max(...perDrone.values())).toBe(1);
  });

  it("emits schema-valid samples on a real timer", async () => {
    const fleet = new SimFleet({ drones: 30, rateHz: 10 });
    const got: SourceSample[] = [];
    // Resolves at the 60th sample: every drone has reported at least once, on the real timer.
    const enough = new Promise<void>((resolve) => {
      void fleet.start((s) => {
        got.push(s);
        if (got.length === 60) resolve();
      });
    });
    await enough;
    await fleet.stop();
    expect(new Set(got.map((s) => s.drone_id)).size).toBe(30);
    for (const s of got) expect(TelemetrySample.safeParse({ ...s, seq: 0 }).success).toBe(true);
  });

  it("emits nothing after stop()", async () => {
    vi.useFakeTimers({ now: 1_700_000_000_000, toFake: ["setInterval", "clearInterval", "Date"] });
    const fleet = new SimFleet({ drones: 10, rateHz: 10 });
    const got: SourceSample[] = [];
    await fleet.start((s) => got.push(s));
    vi.advanceTimersByTime(1_000);
    expect(got.length).toBeGreaterThan(0);
    await fleet.stop();
    const n = got.length;
    vi.advanceTimersByTime(60_000); // a minute of timers, had any been left behind
    expect(got.length).toBe(n);
    expect(vi.getTimerCount()).toBe(0);
  });
});

// ---------------------------------------------------------------- operator commands

const signal = new AbortController().signal;
let cmdSeq = 0;
function cmd(droneId: string, body: Record<string, unknown> & { command: string }): RelayCommand {
  return { type: "command", command_id: `sim-cmd-${++cmdSeq}`, drone_id: droneId, timeout_ms: 4500, ...body } as RelayCommand;
}
/** WGS84 point `east`/`north` metres from HOME at `alt` m. */
const at = (east: number, north: number, alt: number) => ({ ...offsetM(HOME, east, north), alt_m: alt });

/** A fleet on a fake clock (never started: the test drives emitDue), with progress collected. */
function fakeFleet(opts: { drones?: number; seed?: number } = {}) {
  let clock = 1_700_000_000_000;
  const fleet = new SimFleet({ drones: opts.drones ?? 3, seed: opts.seed ?? 1, rateHz: 1, home: HOME, now: () => clock });
  const progress: MissionProgressEvent[] = [];
  fleet.onMissionProgress = (p) => progress.push(p);
  const byId = (id: string): SimDrone => fleet.snapshot().find((d) => d.id === id)!;
  /** Advance the clock by `seconds`, one emitDue per simulated second. */
  const advance = (seconds: number, until?: (d: SimDrone) => boolean, id = "drone_0"): number => {
    for (let t = 1; t <= seconds; t++) {
      clock += 1000;
      fleet.emitDue(clock);
      if (until?.(byId(id))) return t;
    }
    return -1;
  };
  return { fleet, progress, byId, advance, now: () => clock };
}

/** Put drone_0 into a given state through the pure functions' data (a test-only shortcut). */
function setDrone(fleet: SimFleet, patch: Partial<SimDrone>): void {
  const drones = (fleet as unknown as { drones: SimDrone[] }).drones;
  drones[0] = { ...drones[0]!, ...patch };
}

const FLYING: Partial<SimDrone> = { status: "flying", mode: SIM_MODES.mission, armed: true, alt: 50, battery: 90, x: 0, y: 0, holdS: 0 };

describe("SimFleet.execute (commands executed for real)", () => {
  it("modify_waypoint: acks at once, flies to the point at cruise speed, then loiters there", async () => {
    const { fleet, byId, advance, progress } = fakeFleet();
    setDrone(fleet, FLYING);
    const r = await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: at(200, -150, 40), modification_reason: "avoid crane" }), signal);
    expect(r).toEqual({ ok: true, message: "flying to the new waypoint" });
    expect(byId("drone_0").task).toMatchObject({ kind: "goto" });
    const d0 = byId("drone_0");
    const travel = Math.hypot(200, 150) / d0.cruiseMps;
    const arrivedAfter = advance(120, (d) => d.mode === SIM_MODES.loiter);
    expect(arrivedAfter).toBeGreaterThanOrEqual(Math.floor(travel));
    expect(arrivedAfter).toBeLessThanOrEqual(Math.ceil(travel) + 5); // the 10 m descent at 3 m/s overlaps
    advance(60); // and stays there, hovering
    const d = byId("drone_0");
    expect(d).toMatchObject({ status: "flying", mode: SIM_MODES.loiter, armed: true });
    expect(d.x).toBeCloseTo(200, 3);
    expect(d.y).toBeCloseTo(-150, 3);
    expect(d.alt).toBeCloseTo(40, 3);
    expect(progress).toEqual([]);
    const sample = toSample(d, HOME, 1);
    expect(sample.speed_mps).toBe(0);
  });

  it("modify_waypoint on the ground: rejected while charging below 30 %, takes off when the battery allows", async () => {
    const { fleet, byId, advance } = fakeFleet();
    const pad = byId("drone_0").pad;
    const ground = { x: pad.x, y: pad.y, alt: 0, armed: false, holdS: 0 };
    setDrone(fleet, { ...ground, status: "charging", mode: SIM_MODES.loiter, battery: 22 });
    const wp = at(100, 100, 35);
    const rejected = await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: wp, modification_reason: "" }), signal);
    expect(rejected).toEqual({ ok: false, message: expect.stringMatching(/battery 22\.0 % is below the 30 % needed to take off \(charging\)/) });
    expect(byId("drone_0").task).toBeNull();

    setDrone(fleet, { ...ground, status: "landed", mode: SIM_MODES.land, battery: 60, holdS: 3 });
    const ok = await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: wp, modification_reason: "" }), signal);
    expect(ok).toMatchObject({ ok: true, message: expect.stringMatching(/taking off/) });
    expect(byId("drone_0")).toMatchObject({ status: "taking_off", armed: true });
    advance(120, (d) => d.mode === SIM_MODES.loiter);
    expect(byId("drone_0")).toMatchObject({ status: "flying", mode: SIM_MODES.loiter });
    expect(Math.hypot(byId("drone_0").x - 100, byId("drone_0").y - 100)).toBeLessThan(0.5);

    expect(await fleet.execute(cmd("drone_99", { command: "hold", duration_s: 5 }), signal)).toEqual({ ok: false, message: "unknown drone" });
  });

  it("assign_mission: flies the waypoints in order, reporting active → completed, then returns to its pad", async () => {
    const { fleet, byId, advance, progress } = fakeFleet();
    setDrone(fleet, FLYING);
    const waypoints = [at(100, 0, 40), at(100, 100, 50), at(0, 100, 45)];
    const r = await fleet.execute(cmd("drone_0", { command: "assign_mission", mission_id: "m-7", waypoints, priority: "high" }), signal);
    expect(r).toEqual({ ok: true, message: "mission m-7 accepted: 3 waypoints" });
    expect(progress.map((p) => p.state)).toEqual(["active"]);
    advance(300, (d) => d.status === "returning");
    expect(progress.map((p) => [p.state, p.waypoint_index])).toEqual([
      ["active", 0],
      ["active", 1],
      ["active", 2],
      ["completed", 2],
    ]);
    for (const p of progress) {
      expect(MissionProgress.safeParse({ type: "mission_progress", ...p }).success).toBe(true);
      expect(p).toMatchObject({ mission_id: "m-7", drone_id: "drone_0" });
    }
    // Timestamps follow the fake clock and grow.
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.ts).toBeGreaterThan(progress[i - 1]!.ts);
    const d = byId("drone_0");
    expect(d.task).toBeNull();
    expect(Math.hypot(d.x, d.y - 100)).toBeLessThan(1); // returning starts at the last waypoint
    advance(300, (s) => s.status === "landed");
    expect(byId("drone_0")).toMatchObject({ status: "landed", armed: false, alt: 0 });
    expect(byId("drone_0").x).toBeCloseTo(d.pad.x, 3);
  });

  it("emergency_land: aborts the mission, descends in place at ~2 m/s, lands, disarms and stays down", async () => {
    const { fleet, byId, advance, progress } = fakeFleet();
    setDrone(fleet, { ...FLYING, alt: 60 });
    await fleet.execute(cmd("drone_0", { command: "assign_mission", mission_id: "m-8", waypoints: [at(300, 0, 60)], priority: "normal" }), signal);
    advance(3);
    const before = byId("drone_0");
    const r = await fleet.execute(cmd("drone_0", { command: "emergency_land", reason: "intruder aircraft" }), signal);
    expect(r).toMatchObject({ ok: true, message: "landing in place from 60.0 m" });
    expect(progress.at(-1)).toMatchObject({ mission_id: "m-8", state: "aborted", message: "emergency land: intruder aircraft" });
    expect(byId("drone_0")).toMatchObject({ status: "landing", mode: SIM_MODES.land });
    advance(5);
    expect(byId("drone_0").alt).toBeCloseTo(50, 1); // 2 m/s
    // Other commands are refused while it comes down; another emergency_land is fine.
    expect(await fleet.execute(cmd("drone_0", { command: "hold", duration_s: 10 }), signal)).toEqual({ ok: false, message: "emergency landing in progress" });
    expect((await fleet.execute(cmd("drone_0", { command: "emergency_land" }), signal)).ok).toBe(true);
    const touchdown = advance(60, (d) => d.status === "landed");
    expect(touchdown).toBeGreaterThanOrEqual(24);
    expect(touchdown).toBeLessThanOrEqual(26);
    const d = byId("drone_0");
    expect(d).toMatchObject({ status: "landed", armed: false, alt: 0, task: null });
    expect(d.x).toBeCloseTo(before.x, 6); // straight down
    expect(d.y).toBeCloseTo(before.y, 6);
    advance(600);
    expect(byId("drone_0")).toMatchObject({ status: "landed", armed: false }); // grounded until commanded
    expect(progress.filter((p) => p.state === "completed")).toEqual([]);
  });

  it("hold: loiters in place for duration_s, then resumes what it was doing; refused on the ground", async () => {
    const { fleet, byId, advance } = fakeFleet();
    setDrone(fleet, FLYING);
    await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: at(400, 0, 50), modification_reason: "" }), signal);
    advance(2);
    const x0 = byId("drone_0").x;
    expect(await fleet.execute(cmd("drone_0", { command: "hold", duration_s: 10 }), signal)).toEqual({ ok: true, message: "holding position for 10 s" });
    advance(9);
    expect(byId("drone_0")).toMatchObject({ status: "flying", mode: SIM_MODES.loiter });
    expect(byId("drone_0").x).toBeCloseTo(x0, 6);
    advance(3);
    expect(byId("drone_0").mode).toBe(SIM_MODES.mission);
    expect(byId("drone_0").x).toBeGreaterThan(x0 + 5);
    setDrone(fleet, { status: "charging", alt: 0, armed: false, battery: 50, task: null, pauseS: 0 });
    expect(await fleet.execute(cmd("drone_0", { command: "hold", duration_s: 10 }), signal)).toMatchObject({ ok: false, message: expect.stringMatching(/charging, not airborne/) });
  });

  it("applyCommand and stepDrone stay pure with tasks: inputs untouched, events returned", () => {
    const d = drone({ ...FLYING });
    const frozen = structuredClone(d);
    const r = applyCommand(d, { kind: "mission", missionId: "m-9", waypoints: [{ x: 5, y: 0, alt: 50 }, { x: 5, y: 5, alt: 50 }] });
    expect(d).toEqual(frozen);
    expect(r.events).toEqual([{ mission_id: "m-9", state: "active", waypoint_index: 0 }]);
    const withTask = structuredClone(r.drone);
    const events: SimEvent[] = [];
    const after = stepDrone(r.drone, 5, DEFAULT_PHYSICS, events);
    expect(r.drone).toEqual(withTask);
    expect(events.map((e) => [e.state, e.waypoint_index])).toEqual([
      ["active", 1],
      ["completed", 1],
    ]);
    expect(after.task).toBeNull();
    expect(["returning", "landing"]).toContain(after.status); // home is close to the last waypoint
    // A low battery on the way fails the mission and sends the drone home.
    const low = applyCommand(drone({ ...FLYING, battery: 25.01 }), { kind: "mission", missionId: "m-10", waypoints: [{ x: 900, y: 0, alt: 50 }] });
    const ev: SimEvent[] = [];
    let s = low.drone;
    for (let i = 0; i < 10 && s.status === "flying"; i++) s = stepDrone(s, 1, DEFAULT_PHYSICS, ev);
    expect(s.status).toBe("returning");
    expect(ev).toEqual([expect.objectContaining({ mission_id: "m-10", state: "failed", message: expect.stringMatching(/battery/) })]);
    // A returning drone below the threshold refuses new work.
    expect(applyCommand(s, { kind: "goto", target: { x: 0, y: 0, alt: 40 } })).toMatchObject({ ok: false, message: expect.stringMatching(/return threshold; returning home/) });
  });

  it("modify_waypoint during a mission moves the leg being flown; the mission goes on afterwards", () => {
    const start = applyCommand(drone({ ...FLYING }), { kind: "mission", missionId: "m-11", waypoints: [{ x: 50, y: 0, alt: 50 }, { x: 50, y: 50, alt: 50 }] }).drone;
    const r = applyCommand(start, { kind: "goto", target: { x: 0, y: 60, alt: 50 } });
    expect(r).toMatchObject({ ok: true, message: "mission m-11: waypoint 0 moved", events: [] });
    const events: SimEvent[] = [];
    let s = r.drone;
    for (let i = 0; i < 60 && s.status === "flying"; i++) s = stepDrone(s, 1, DEFAULT_PHYSICS, events);
    expect(events.map((e) => [e.state, e.waypoint_index])).toEqual([
      ["active", 1],
      ["completed", 1],
    ]);
  });
});

// ------------------------------------------------------------------ issue 14: intent, layout, field cases

describe("intent: what each sample says the drone is about to fly", () => {
  const localOf = (w: { lat: number; lon: number; alt_m: number }) => {
    const l = toLocal(HOME, w);
    return { x: Math.round(l.x_m), y: Math.round(l.y_m), alt: Math.round(w.alt_m) };
  };

  it("patrol: the loop from the waypoint being flown to, up to the lap's loiter; a commanded point; holds", async () => {
    const { fleet, byId } = fakeFleet();
    setDrone(fleet, FLYING);
    const d = byId("drone_0");
    const s = toSample(d, HOME, 1);
    expect(TelemetryUpdate.safeParse({ ...s, seq: 1 }).success).toBe(true);
    expect(s.intent).toMatchObject({ route_id: "patrol", revision: 0 });
    // The drone loiters at the lap's last corner before the next lap: the intent ends there (it
    // has one hold, at its start), so the edge sees it hover there rather than fly on.
    expect(s.intent!.waypoints.map(localOf)).toEqual(d.route.slice(d.wp).map((w) => ({ x: Math.round(w.x), y: Math.round(w.y), alt: Math.round(w.alt) })));
    // Loitering at the end of a lap: the hold, then the whole next lap.
    const loitering = toSample({ ...d, wp: 0, mode: SIM_MODES.loiter, holdS: 5 }, HOME, 1).intent!;
    expect(loitering).toMatchObject({ hold_s: 5 });
    expect(loitering.waypoints).toHaveLength(d.route.length);
    // Taking off: the climb over the pad to the route's altitude, then the route.
    const up = toSample({ ...d, status: "taking_off", mode: SIM_MODES.takeoff, x: d.pad.x, y: d.pad.y, alt: 5 }, HOME, 1).intent!;
    expect(localOf(up.waypoints[0]!)).toEqual({ x: Math.round(d.pad.x), y: Math.round(d.pad.y), alt: Math.round(d.route[d.wp]!.alt) });
    expect(up.waypoints.slice(1).map(localOf)).toEqual(s.intent!.waypoints.map(localOf));
    expect(up.speed_mps).toBe(d.cruiseMps);
    // A command replaces the route: a new revision, the point as the whole plan.
    await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: at(200, -150, 40), modification_reason: "test" }), signal);
    const g = toSample(byId("drone_0"), HOME, 2).intent!;
    expect(g).toMatchObject({ route_id: "goto", revision: 1 });
    expect(g.waypoints.map(localOf)).toEqual([{ x: 200, y: -150, alt: 40 }]);
    // A hold keeps the route and says how long it hovers first.
    await fleet.execute(cmd("drone_0", { command: "hold", duration_s: 12 }), signal);
    expect(toSample(byId("drone_0"), HOME, 3).intent).toMatchObject({ route_id: "goto", revision: 1, hold_s: 12 });
  });

  it("return home and landing: to the pad, then down at the descent rate; none on the ground", () => {
    const d = createDrone(0, 4, seededRandom(3));
    const rtl = toSample({ ...d, ...FLYING, status: "returning", x: 200, y: 0 }, HOME, 1).intent!;
    expect(rtl.route_id).toBe("rtl");
    expect(rtl.waypoints.map(localOf).at(-1)).toEqual({ x: Math.round(d.pad.x), y: Math.round(d.pad.y), alt: 0 });
    // Below the 30 m return floor: it climbs to it at its climb rate while flying home, and the
    // point where it levels off is in the intent.
    const low = toSample({ ...d, ...FLYING, status: "returning", x: 200, y: 0, alt: 18 }, HOME, 1).intent!;
    const levelAt = ((30 - 18) / DEFAULT_PHYSICS.climbMps) * d.cruiseMps;
    const first = toLocal(HOME, low.waypoints[0]!);
    expect(low.waypoints[0]!.alt_m).toBe(30);
    expect(Math.hypot(first.x_m - 200, first.y_m)).toBeCloseTo(levelAt, 0);
    expect(low.waypoints).toHaveLength(3);
    const land = toSample({ ...d, ...FLYING, status: "landing", x: d.pad.x, y: d.pad.y, alt: 30 }, HOME, 1).intent!;
    expect(land).toMatchObject({ route_id: "land", speed_mps: DEFAULT_PHYSICS.descentMps });
    expect(toSample({ ...d, status: "charging", armed: false, alt: 0 }, HOME, 1).intent).toBeUndefined();
    // A source that knows no routes, and one without a state topic.
    expect(toSample({ ...d, ...FLYING }, HOME, 1, { intent: false }).intent).toBeUndefined();
    expect(toSample({ ...d, ...FLYING }, HOME, 1, { stateKnown: false })).toMatchObject({ armed: false, status: "idle", mode: "UNKNOWN", state_known: false });
  });

  it("restartRoutes: flying drones start their routes over (new revision); commands forgotten", async () => {
    const { fleet, byId } = fakeFleet();
    setDrone(fleet, { ...FLYING, wp: 2 });
    await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: at(200, -150, 40), modification_reason: "test" }), signal);
    const before = byId("drone_0");
    fleet.restartRoutes();
    const after = byId("drone_0");
    expect(after).toMatchObject({ task: null, wp: 0, pauseS: 0, revision: before.revision + 1, status: "flying" });
    expect(toSample(after, HOME, 1).intent).toMatchObject({ route_id: "patrol", revision: before.revision + 1 });
  });

  it("ignoreCommands: acknowledged, not carried out; redirect: the same as a command, outside the edge", async () => {
    const { fleet, byId } = fakeFleet();
    setDrone(fleet, FLYING);
    fleet.ignoreCommands("drone_0");
    const r = await fleet.execute(cmd("drone_0", { command: "modify_waypoint", new_waypoint: at(200, -150, 40), modification_reason: "test" }), signal);
    expect(r.ok).toBe(true);
    expect(byId("drone_0").task).toBeNull();
    expect(fleet.redirect("drone_0", { x: 100, y: 100, alt: 45 })).toBe(true);
    expect(byId("drone_0").task).toMatchObject({ kind: "goto", target: { x: 100, y: 100, alt: 45 } });
  });

  it("flies legs as straight 3D lines: a climb and the horizontal part arrive together", () => {
    const d = { ...createDrone(0, 1, seededRandom(1)), ...FLYING, alt: 30, task: { kind: "goto" as const, target: { x: 60, y: 0, alt: 60 } } };
    // 30 m up at 3 m/s takes 10 s; 60 m across would take < 10 s at cruise: both take 10 s.
    const mid = stepDrone(d, 5);
    expect(mid.alt).toBeCloseTo(45, 6);
    expect(mid.x).toBeCloseTo(30, 6);
  });
});

describe("the patrol layout: one sector per drone, an area that grows with the fleet", () => {
  it("spreads N drones over ⌈√N⌉² sectors of 90 m, inside the default geofence up to 1,024", () => {
    for (const n of [5, 100, 1000]) {
      const ds = new SimFleet({ drones: n, seed: 2 }).snapshot();
      const half = (Math.ceil(Math.sqrt(n)) * SECTOR_M) / 2;
      for (const d of ds) for (const w of d.route) expect(Math.max(Math.abs(w.x), Math.abs(w.y))).toBeLessThanOrEqual(half);
      expect(half).toBeLessThanOrEqual(n <= 1024 ? 1500 : Infinity);
    }
  });

  it("keeps patrols of the same altitude band at least 100 m apart, and other bands 11 m or more above or below", () => {
    const ds = new SimFleet({ drones: 400, seed: 4 }).snapshot();
    for (let i = 0; i < ds.length; i++) {
      for (let j = i + 1; j < ds.length; j++) {
        const a = ds[i]!;
        const b = ds[j]!;
        const dz = Math.abs(a.route[0]!.alt - b.route[0]!.alt);
        if (dz >= 11) continue;
        let minH = Infinity;
        for (const p of a.route) for (const q of b.route) minH = Math.min(minH, Math.hypot(p.x - q.x, p.y - q.y));
        expect(minH, `${a.id}/${b.id}`).toBeGreaterThan(100);
      }
    }
  });

  it("a patrol fleet left alone keeps separation (their sectors do it)", () => {
    let clock = 1_700_000_000_000;
    const fleet = new SimFleet({ drones: 64, seed: 6, monitorSeparation: true, rateHz: 1, now: () => clock });
    for (let t = 0; t < 120; t++) fleet.emitDue((clock += 1000));
    // Take-offs and landings happen over the drones' own pads, in their own sectors.
    expect(fleet.separationReport().flatMap((p) => p.losses)).toEqual([]);
  });
});

import { afterEach, describe, expect, it, vi } from "vitest";
import { TelemetrySample } from "../../edge/protocol";
import { toLocal } from "../../relay/geo";
import {
  DEFAULT_PHYSICS,
  SIM_MODES,
  SimFleet,
  createDrone,
  seededRandom,
  stepDrone,
  toSample,
  type SimDrone,
} from "../../relay/sim";
import type { SourceSample } from "../../relay/source";

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
          expect(Math.hypot(local.east, local.north)).toBeLessThan(1000);
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
    await fleet.start((s) => got.push(s));
    await new Promise((r) => setTimeout(r, 250));
    await fleet.stop();
    const n = got.length;
    await new Promise((r) => setTimeout(r, 30));
    expect(got.length).toBe(n); // nothing after stop()
    expect(n).toBeGreaterThanOrEqual(30);
    for (const s of got) expect(TelemetrySample.safeParse({ ...s, seq: 0 }).success).toBe(true);
  });
});

import { describe, expect, it } from "vitest";
import { defaultFleetConfig, parseFleetConfig } from "../../edge/domain/fleet-config";
import { fromLocal, pointInPolygon, toLocal, type LatLon } from "../../edge/domain/geo";

const HOME: LatLon = { lat: 47.3977, lon: 8.5456 };
const at = (east: number, north: number, origin = HOME): LatLon => fromLocal(origin, { x_m: east, y_m: north });

/** The errors for `input`, or a failure if it parsed. */
function errorsFor(input: unknown): string[] {
  const r = parseFleetConfig(input);
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify(input)}`);
  return r.errors;
}

describe("fleet config defaults", () => {
  it("has the documented defaults and a ±1500 m square geofence around home", () => {
    const c = defaultFleetConfig();
    expect(c).toMatchObject({
      home: HOME,
      no_fly_zones: [],
      ceiling_m: 120,
      floor_m: 5,
      battery_reserve_pct: 20,
      separation: { horizontal_m: 30, vertical_m: 10 },
      cruise_speed_mps: 10,
      energy: { pct_per_km: 5, pct_per_min_hover: 1 },
      thresholds: { battery_low_pct: 30, battery_critical_pct: 15 },
      max_commands_per_10s: 20,
      version: 0,
    });
    expect(c.geofence).toHaveLength(4);
    for (const v of c.geofence) {
      const l = toLocal(HOME, v);
      expect(Math.abs(Math.abs(l.x_m) - 1500)).toBeLessThan(0.01);
      expect(Math.abs(Math.abs(l.y_m) - 1500)).toBeLessThan(0.01);
    }
    expect(pointInPolygon(c.home, c.geofence)).toBe(true);
    // Defaults are fresh objects, not shared between configs.
    expect(defaultFleetConfig().home).not.toBe(c.home);
  });

  it("fills in partial input and centres the default geofence on the given home", () => {
    const home = { lat: -33.86, lon: 151.21 };
    const r = parseFleetConfig({ home, separation: { horizontal_m: 50 }, ceiling_m: 90 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.separation).toEqual({ horizontal_m: 50, vertical_m: 10 });
    expect(r.config.ceiling_m).toBe(90);
    expect(pointInPolygon(home, r.config.geofence)).toBe(true);
  });

  it("accepts a closed (GeoJSON-style) ring and no-fly zones with a band", () => {
    const ring = [at(-800, -800), at(800, -800), at(800, 800), at(-800, 800), at(-800, -800)];
    const r = parseFleetConfig({
      geofence: ring,
      no_fly_zones: [{ id: "school", name: "School", polygon: [at(100, 100), at(200, 100), at(200, 200)], ceiling_m: 60 }],
    });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.geofence).toHaveLength(4);
  });
});

describe("fleet config errors name the key", () => {
  it.each([
    [{ ceiling_m: 600 }, "ceiling_m:"],
    [{ ceiling_m: Number.NaN }, "ceiling_m:"],
    [{ battery_reserve_pct: Number.POSITIVE_INFINITY }, "battery_reserve_pct:"],
    [{ floor_m: 120 }, "floor_m: must be below ceiling_m"],
    [{ floor_m: 50, ceiling_m: 40 }, "floor_m: must be below ceiling_m"],
    [{ separation: { horizontal_m: -1 } }, "separation.horizontal_m:"],
    [{ energy: { pct_per_km: "5" } }, "energy.pct_per_km:"],
    [{ home: { lat: 91, lon: 0 } }, "home.lat:"],
    [{ home: { lat: 0, lon: -181 } }, "home.lon:"],
    [{ geofence: [HOME, at(100, 0)] }, "geofence: not a simple polygon: needs at least 3 vertices"],
    [{ geofence: [at(-100, -100), at(100, 100), at(100, -100), at(-100, 100)] }, "geofence: not a simple polygon: edges"],
    [{ geofence: [at(-100, -100), { lat: 95, lon: 8 }, at(100, 100)] }, "geofence.1.lat:"],
    [{ geofence: [at(1000, 1000), at(1100, 1000), at(1100, 1100)] }, "home: must lie inside the geofence"],
    [{ thresholds: { battery_low_pct: 10, battery_critical_pct: 15 } }, "thresholds.battery_critical_pct:"],
    [{ max_commands_per_10s: 2.5 }, "max_commands_per_10s:"],
    [{ version: -1 }, "version:"],
    [{ ceiling: 100 }, "ceiling: unknown key"],
    [{ separation: { horizontal: 10 } }, "separation.horizontal: unknown key"],
    [{ no_fly_zones: [{ id: "z", name: "Z", polygon: [at(0, 0), at(10, 0)] }] }, "no_fly_zones.0.polygon:"],
    [{ no_fly_zones: [{ id: "z", name: "Z", polygon: [at(10, 10), at(90, 10), at(90, 90)], floor_m: 50, ceiling_m: 20 }] }, "no_fly_zones.0.floor_m:"],
    [{ no_fly_zones: [{ name: "Z", polygon: [at(10, 10), at(90, 10), at(90, 90)] }] }, "no_fly_zones.0.id:"],
  ])("%j → %s", (input, expected) => {
    const errors = errorsFor(input);
    expect(errors.some((e) => e.startsWith(expected)), errors.join(" | ")).toBe(true);
  });

  it("rejects non-objects and duplicate zone ids without throwing", () => {
    for (const bad of [null, 42, "config", []]) expect(errorsFor(bad)[0]).toMatch(/^\(root\): /);
    const zone = { id: "z", name: "Z", polygon: [at(10, 10), at(90, 10), at(90, 90)] };
    expect(errorsFor({ no_fly_zones: [zone, zone] })).toContain('no_fly_zones.1.id: duplicate zone id "z"');
  });
});

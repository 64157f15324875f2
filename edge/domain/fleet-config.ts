/**
 * A fleet's safety configuration: home, geofence, no-fly zones, altitude band, battery reserve,
 * separation minima, speeds, battery model and thresholds. One zod schema, so the HTTP route, the
 * fleet object and the dashboard agree on it; `parseFleetConfig` is the boundary that turns
 * untrusted JSON into a checked config or a list of messages that each name the bad key.
 *
 * Settings objects are strict: an unknown key is an error rather than silently ignored, because a
 * typo in a safety setting (`ceiling` for `ceiling_m`) would otherwise fall back to the default
 * unnoticed.
 */
import * as z from "zod";
import { offsetM, pointInPolygon, polygonDefect, type LatLon } from "./geo";

/** Most vertices a geofence or zone polygon may have: keeps the O(n²) simplicity check cheap. */
export const MAX_POLYGON_VERTICES = 500;
/** Most no-fly zones per fleet: every waypoint check walks all of them. */
export const MAX_NO_FLY_ZONES = 200;
/** Half the side of the default square geofence around home, metres. */
export const DEFAULT_GEOFENCE_HALF_SIDE_M = 1500;
export const DEFAULT_HOME: LatLon = { lat: 47.3977, lon: 8.5456 };
// The defaults of the settings below, as constants: the schema fills them in, and the relay's
// simulator measures separation against the same numbers instead of repeating them.
/** Separation minima: two drones are in conflict when closer than both at the same instant. */
export const DEFAULT_SEPARATION = { horizontal_m: 30, vertical_m: 10 } as const;
/** Speed a drone is assumed to fly a plan at when it is not (yet) moving, m/s. */
export const DEFAULT_CRUISE_SPEED_MPS = 10;
export const DEFAULT_CEILING_M = 120;
export const DEFAULT_FLOOR_M = 5;
export const DEFAULT_BATTERY_RESERVE_PCT = 20;
export const DEFAULT_ENERGY = { pct_per_km: 5, pct_per_min_hover: 1 } as const;
export const DEFAULT_THRESHOLDS = { battery_low_pct: 30, battery_critical_pct: 15 } as const;
export const DEFAULT_MAX_COMMANDS_PER_10S = 20;

// z.number() already rejects NaN and ±Infinity in zod 4; the bounds here are physical sanity.
const Lat = z.number().min(-90).max(90);
const Lon = z.number().min(-180).max(180);
// Vertices strip extra keys (an `alt_m` from a map tool is harmless); a misspelt `lng` still fails
// because `lon` is then missing.
export const LatLonSchema = z.object({ lat: Lat, lon: Lon });

/** A ring of vertices. A closing vertex equal to the first (GeoJSON style) is dropped, so both
 * conventions are accepted and stored the same way. */
const Polygon = z
  .array(LatLonSchema)
  .max(MAX_POLYGON_VERTICES + 1)
  .transform((ring) => {
    const first = ring[0];
    const last = ring[ring.length - 1];
    return ring.length > 3 && first && last && first.lat === last.lat && first.lon === last.lon
      ? ring.slice(0, -1)
      : ring;
  });

const Altitude = z.number().min(0).max(10_000);

export const NoFlyZoneSchema = z.strictObject({
  id: z.string().min(1).max(64),
  name: z.string().min(1).max(128),
  polygon: Polygon,
  /** The zone applies from this altitude up (metres above home); absent: from the ground. */
  floor_m: Altitude.optional(),
  /** The zone applies up to this altitude; absent: without limit. */
  ceiling_m: Altitude.optional(),
});
export type NoFlyZone = z.infer<typeof NoFlyZoneSchema>;

const Separation = z.strictObject({
  horizontal_m: z.number().positive().max(5_000).default(DEFAULT_SEPARATION.horizontal_m),
  vertical_m: z.number().positive().max(1_000).default(DEFAULT_SEPARATION.vertical_m),
});
const Energy = z.strictObject({
  /** Battery percentage points spent per km flown (3D distance). */
  pct_per_km: z.number().positive().max(100).default(DEFAULT_ENERGY.pct_per_km),
  /** Percentage points spent per minute of hovering in place. */
  pct_per_min_hover: z.number().min(0).max(100).default(DEFAULT_ENERGY.pct_per_min_hover),
});
const Thresholds = z.strictObject({
  battery_low_pct: z.number().min(0).max(100).default(DEFAULT_THRESHOLDS.battery_low_pct),
  battery_critical_pct: z.number().min(0).max(100).default(DEFAULT_THRESHOLDS.battery_critical_pct),
});

const FleetConfigObject = z.strictObject({
  // Function defaults: a shared default object would be aliased between parsed configs.
  home: LatLonSchema.default(() => ({ ...DEFAULT_HOME })),
  /** Absent: a square ±1500 m around home (filled in after parsing, since it depends on home). */
  geofence: Polygon.optional(),
  no_fly_zones: z.array(NoFlyZoneSchema).max(MAX_NO_FLY_ZONES).default(() => []),
  /** Highest allowed altitude above home, metres. */
  ceiling_m: z.number().positive().max(500).default(DEFAULT_CEILING_M),
  /** Lowest allowed altitude above home while flying to a waypoint, metres. */
  floor_m: z.number().min(0).max(500).default(DEFAULT_FLOOR_M),
  /** Battery that must remain on landing back home, percent. */
  battery_reserve_pct: z.number().min(0).max(100).default(DEFAULT_BATTERY_RESERVE_PCT),
  separation: Separation.prefault({}),
  cruise_speed_mps: z.number().positive().max(100).default(DEFAULT_CRUISE_SPEED_MPS),
  energy: Energy.prefault({}),
  thresholds: Thresholds.prefault({}),
  /** Per-connection command rate limit (emergency land is exempt). */
  max_commands_per_10s: z.number().int().min(1).max(10_000).default(DEFAULT_MAX_COMMANDS_PER_10S),
  /** Managed by the server: incremented on every accepted write. */
  version: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
});

/** The fleet configuration schema: defaults filled in, cross-field rules checked. */
export const FleetConfig = FleetConfigObject.superRefine((c, ctx) => {
  const bad = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
  if (c.floor_m >= c.ceiling_m) bad(["floor_m"], `must be below ceiling_m (${c.ceiling_m}), got ${c.floor_m}`);
  if (c.thresholds.battery_critical_pct > c.thresholds.battery_low_pct) {
    bad(["thresholds", "battery_critical_pct"], "must not exceed thresholds.battery_low_pct");
  }
  if (c.geofence) {
    const defect = polygonDefect(c.geofence);
    if (defect) bad(["geofence"], `not a simple polygon: ${defect}`);
    else if (!pointInPolygon(c.home, c.geofence)) bad(["home"], "must lie inside the geofence");
  }
  const ids = new Set<string>();
  c.no_fly_zones.forEach((zone, i) => {
    if (ids.has(zone.id)) bad(["no_fly_zones", i, "id"], `duplicate zone id "${zone.id}"`);
    ids.add(zone.id);
    const defect = polygonDefect(zone.polygon);
    if (defect) bad(["no_fly_zones", i, "polygon"], `not a simple polygon: ${defect}`);
    if (zone.floor_m !== undefined && zone.ceiling_m !== undefined && zone.floor_m >= zone.ceiling_m) {
      bad(["no_fly_zones", i, "floor_m"], "must be below the zone's ceiling_m");
    }
  });
}).transform((c) => ({ ...c, geofence: c.geofence ?? defaultGeofence(c.home) }));

/** A checked fleet configuration (every field present). */
export type FleetConfig = z.output<typeof FleetConfig>;
/** What a client may send: any field may be omitted and takes its default. */
export type FleetConfigInput = z.input<typeof FleetConfig>;

/** The default geofence: a square of ±1500 m around `home`, counter-clockwise from south-west. */
export function defaultGeofence(home: LatLon, half_m = DEFAULT_GEOFENCE_HALF_SIDE_M): LatLon[] {
  return [
    offsetM(home, -half_m, -half_m),
    offsetM(home, half_m, -half_m),
    offsetM(home, half_m, half_m),
    offsetM(home, -half_m, half_m),
  ];
}

/** The configuration a new fleet starts with. */
export function defaultFleetConfig(): FleetConfig {
  return FleetConfig.parse({});
}

export type ParseFleetConfigResult = { ok: true; config: FleetConfig } | { ok: false; errors: string[] };

/**
 * Validate untrusted input (e.g. a PUT body) into a FleetConfig. Never throws. Each error names
 * the key it is about, dotted: `geofence.2.lat: Too big: expected number to be <=90`.
 */
export function parseFleetConfig(input: unknown): ParseFleetConfigResult {
  const r = FleetConfig.safeParse(input);
  if (r.success) return { ok: true, config: r.data };
  const errors: string[] = [];
  for (const issue of r.error.issues) {
    const where = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      // zod reports unknown keys on the parent object; name each key instead.
      for (const k of issue.keys) errors.push(`${where ? `${where}.` : ""}${k}: unknown key`);
    } else {
      errors.push(`${where || "(root)"}: ${issue.message}`);
    }
  }
  return { ok: false, errors };
}

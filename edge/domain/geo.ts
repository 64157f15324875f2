/**
 * WGS84 geometry for short ranges (a fleet's operating area: a few km).
 *
 * Everything planar happens in a local tangent plane around an origin: x east, y north, metres.
 * The plane uses the ellipsoid's radii of curvature (not a sphere), and scales longitude at the
 * mid-latitude of the two points, so distances stay within ~0.1 % over tens of km at mid
 * latitudes — well inside the 1 % the safety checks need — and the mapping inverts exactly.
 *
 * Pure functions on plain data: no runtime APIs, so this loads in workerd, Node and the browser.
 * It is the one geodesy module of the project: the edge's checks, the relay's simulator and
 * ROS 2 source (local metres ↔ WGS84, compass courses) and the dashboard's map all use it, so a
 * metre means the same thing on every side of the wire.
 */

/** A WGS84 position in degrees. */
export type LatLon = { lat: number; lon: number };
/** A WGS84 position with altitude above home (metres). */
export type LatLonAlt = LatLon & { alt_m: number };
/** A point in the local tangent plane: metres east and north of the origin. */
export type LocalPoint = { x_m: number; y_m: number };
/** A point in local 3D metres: east, north, up. */
export type Vec3 = { x: number; y: number; z: number };

const WGS84_A = 6_378_137;
const WGS84_F = 1 / 298.257223563;
const WGS84_E2 = WGS84_F * (2 - WGS84_F);
/** IUGG mean radius: the sphere haversine uses (≤ 0.6 % off the ellipsoid anywhere). */
export const MEAN_EARTH_RADIUS_M = 6_371_008.8;
const DEG = Math.PI / 180;

/** Metres per degree of latitude and of longitude at a latitude, from the ellipsoid's meridional
 * (M) and prime-vertical (N) radii of curvature. */
export function metresPerDegree(latDeg: number): { lat_m: number; lon_m: number } {
  const s = Math.sin(latDeg * DEG);
  const w = 1 - WGS84_E2 * s * s;
  const sw = Math.sqrt(w);
  const n = WGS84_A / sw;
  const m = (WGS84_A * (1 - WGS84_E2)) / (w * sw);
  return { lat_m: m * DEG, lon_m: n * Math.cos(latDeg * DEG) * DEG };
}

/** Longitude difference folded into [-180, 180), so areas across the antimeridian stay small. */
function wrapLonDelta(d: number): number {
  return ((((d + 180) % 360) + 360) % 360) - 180;
}

/** Project `p` into the tangent plane at `origin`: x_m east, y_m north. */
export function toLocal(origin: LatLon, p: LatLon): LocalPoint {
  const lat_m = metresPerDegree(origin.lat).lat_m;
  // Longitude scale at the mid-latitude: the east distance along the parallel halfway between.
  const lon_m = metresPerDegree((origin.lat + p.lat) / 2).lon_m;
  return { x_m: wrapLonDelta(p.lon - origin.lon) * lon_m, y_m: (p.lat - origin.lat) * lat_m };
}

/** Inverse of `toLocal`: the WGS84 position `east`/`north` metres from `origin`. */
export function fromLocal(origin: LatLon, local: LocalPoint): LatLon {
  const lat = origin.lat + local.y_m / metresPerDegree(origin.lat).lat_m;
  const lon_m = metresPerDegree((origin.lat + lat) / 2).lon_m;
  // Near a pole the east scale vanishes; keep the origin's longitude rather than divide by ~0.
  const lon = lon_m > 1e-6 ? origin.lon + local.x_m / lon_m : origin.lon;
  // Crossing the antimeridian folds back into [-180, 180).
  return { lat, lon: wrapLonDelta(lon) };
}

/**
 * A fixed-scale projection around `origin` for hot loops (separation sampling, ranking 1,000
 * drones): two multiplications per point, no trigonometry. The east scale is the origin's, so it
 * is off by ~tan(lat)·Δlat (< 0.1 % within 5 km of the origin at 50°); use `toLocal` when the
 * points are far apart.
 */
export type LocalFrame = {
  x: (lon: number) => number;
  y: (lat: number) => number;
  /** The inverse: the WGS84 position of local (x, y), longitude folded into [-180, 180). */
  toLatLon: (x_m: number, y_m: number) => LatLon;
  lat_m: number;
  lon_m: number;
};

/** Build a `LocalFrame` at `origin`. */
export function makeLocalFrame(origin: LatLon): LocalFrame {
  const { lat_m, lon_m } = metresPerDegree(origin.lat);
  const lon0 = origin.lon;
  const lat0 = origin.lat;
  return {
    lat_m,
    lon_m,
    x: (lon) => {
      const d = lon - lon0;
      // Fold only when needed: the modulo is the slow part and almost never applies.
      return (d >= -180 && d < 180 ? d : wrapLonDelta(d)) * lon_m;
    },
    y: (lat) => (lat - lat0) * lat_m,
    toLatLon: (x_m, y_m) => ({ lat: lat0 + y_m / lat_m, lon: wrapLonDelta(lon0 + x_m / lon_m) }),
  };
}

/** `p` moved `east_m` east and `north_m` north. */
export function offsetM(p: LatLon, east_m: number, north_m: number): LatLon {
  return fromLocal(p, { x_m: east_m, y_m: north_m });
}

/** `p` moved `distance_m` along `bearing_deg` (0 = north, 90 = east). */
export function destination(p: LatLon, bearing_deg: number, distance_m: number): LatLon {
  const b = bearing_deg * DEG;
  return offsetM(p, distance_m * Math.sin(b), distance_m * Math.cos(b));
}

/** Great-circle distance on the mean sphere, metres. Good at any range; ≤ 0.6 % off WGS84. */
export function haversineM(a: LatLon, b: LatLon): number {
  const dLat = (b.lat - a.lat) * DEG;
  const dLon = (b.lon - a.lon) * DEG;
  const s1 = Math.sin(dLat / 2);
  const s2 = Math.sin(dLon / 2);
  const h = s1 * s1 + Math.cos(a.lat * DEG) * Math.cos(b.lat * DEG) * s2 * s2;
  return 2 * MEAN_EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Horizontal distance through the tangent plane, metres: ellipsoidal, for short ranges. */
export function planarDistanceM(a: LatLon, b: LatLon): number {
  const d = toLocal(a, b);
  return Math.hypot(d.x_m, d.y_m);
}

/** Straight-line 3D distance (tangent plane plus altitude difference), metres. */
export function distance3dM(a: LatLonAlt, b: LatLonAlt): number {
  const d = toLocal(a, b);
  return Math.hypot(d.x_m, d.y_m, b.alt_m - a.alt_m);
}

/** Compass direction of a local (east, north) vector: degrees clockwise from north, in [0, 360).
 * The zero vector gives 0; callers that care (a hovering drone has no course) check the length. */
export function compassDeg(east: number, north: number): number {
  const norm = (Math.atan2(east, north) * (180 / Math.PI) + 360) % 360;
  // (−tiny + 360) % 360 can round to exactly 360; the protocol allows it but 0 reads better.
  return norm >= 360 ? 0 : norm;
}

/** Initial great-circle bearing from `a` to `b`, degrees in [0, 360). */
export function bearingDeg(a: LatLon, b: LatLon): number {
  const f1 = a.lat * DEG;
  const f2 = b.lat * DEG;
  const dl = (b.lon - a.lon) * DEG;
  const y = Math.sin(dl) * Math.cos(f2);
  const x = Math.cos(f1) * Math.sin(f2) - Math.sin(f1) * Math.cos(f2) * Math.cos(dl);
  const deg = Math.atan2(y, x) / DEG;
  return (deg + 360) % 360;
}

// ------------------------------------------------------------------------------ planar polygons

/** A polygon in local metres (implicitly closed: the last vertex joins the first). */
export type LocalPolygon = LocalPoint[];

/** Project a polygon of WGS84 vertices into the plane at `origin`. */
export function polygonToLocal(origin: LatLon, polygon: readonly LatLon[]): LocalPolygon {
  return polygon.map((v) => toLocal(origin, v));
}

/** Twice the signed area: > 0 when the vertices run counter-clockwise (x east, y north). */
export function signedArea2(poly: LocalPolygon): number {
  let s = 0;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const a = poly[j]!;
    const b = poly[i]!;
    s += a.x_m * b.y_m - b.x_m * a.y_m;
  }
  return s;
}

/** Even-odd ray casting in local metres. Points exactly on an edge may fall either way; callers
 * that care use a margin (see `nearestPointInside`). */
export function pointInPolygonLocal(p: LocalPoint, poly: LocalPolygon): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const a = poly[i]!;
    const b = poly[j]!;
    if (a.y_m > p.y_m !== b.y_m > p.y_m) {
      const xCross = ((b.x_m - a.x_m) * (p.y_m - a.y_m)) / (b.y_m - a.y_m) + a.x_m;
      if (p.x_m < xCross) inside = !inside;
    }
  }
  return inside;
}

/** Whether `point` lies inside `polygon` (WGS84 vertices), tested in the plane at the point. */
export function pointInPolygon(point: LatLon, polygon: readonly LatLon[]): boolean {
  return pointInPolygonLocal({ x_m: 0, y_m: 0 }, polygonToLocal(point, polygon));
}

/** Closest point to `p` on segment a–b, with its parameter t ∈ [0, 1] and distance. */
export function closestOnSegment(
  p: LocalPoint,
  a: LocalPoint,
  b: LocalPoint,
): { x_m: number; y_m: number; t: number; distance_m: number } {
  const dx = b.x_m - a.x_m;
  const dy = b.y_m - a.y_m;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((p.x_m - a.x_m) * dx + (p.y_m - a.y_m) * dy) / len2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  const x = a.x_m + t * dx;
  const y = a.y_m + t * dy;
  return { x_m: x, y_m: y, t, distance_m: Math.hypot(p.x_m - x, p.y_m - y) };
}

/** Nearest point on the polygon's boundary to `p` (local metres): the edge index i (edge from
 * vertex i to i+1), its parameter t and the distance. */
export function nearestOnBoundaryLocal(
  p: LocalPoint,
  poly: LocalPolygon,
): { x_m: number; y_m: number; edge: number; t: number; distance_m: number } {
  let best = { x_m: Number.NaN, y_m: Number.NaN, edge: -1, t: 0, distance_m: Number.POSITIVE_INFINITY };
  for (let i = 0; i < poly.length; i++) {
    const c = closestOnSegment(p, poly[i]!, poly[(i + 1) % poly.length]!);
    if (c.distance_m < best.distance_m) best = { ...c, edge: i };
  }
  return best;
}

/** `nearestOnBoundaryLocal(p, poly).distance_m` for p = (px, py), computed the same way
 * without allocating: detection asks it of every drone on every pass. */
export function boundaryDistanceLocal(px: number, py: number, poly: LocalPolygon): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < poly.length; i++) {
    const a = poly[i]!;
    const b = poly[(i + 1) % poly.length]!;
    const dx = b.x_m - a.x_m;
    const dy = b.y_m - a.y_m;
    const len2 = dx * dx + dy * dy;
    let t = len2 > 0 ? ((px - a.x_m) * dx + (py - a.y_m) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    const d = Math.hypot(px - (a.x_m + t * dx), py - (a.y_m + t * dy));
    if (d < best) best = d;
  }
  return best;
}

/** Distance from `point` to the nearest edge of `polygon`, metres (whether inside or outside). */
export function distanceToPolygonEdgeM(point: LatLon, polygon: readonly LatLon[]): number {
  return nearestOnBoundaryLocal({ x_m: 0, y_m: 0 }, polygonToLocal(point, polygon)).distance_m;
}

/** Nearest point on the boundary of `polygon` to `point`, and how far it is. */
export function nearestPointOnBoundary(
  point: LatLon,
  polygon: readonly LatLon[],
): { point: LatLon; distance_m: number } {
  const n = nearestOnBoundaryLocal({ x_m: 0, y_m: 0 }, polygonToLocal(point, polygon));
  return { point: fromLocal(point, n), distance_m: n.distance_m };
}

/** Unit normal of edge a→b pointing to the interior side for a polygon of the given winding. */
function inwardNormal(a: LocalPoint, b: LocalPoint, ccw: boolean): LocalPoint {
  const dx = b.x_m - a.x_m;
  const dy = b.y_m - a.y_m;
  const len = Math.hypot(dx, dy) || 1;
  // For a counter-clockwise ring the interior is on the left of each edge: left normal (-dy, dx).
  return ccw ? { x_m: -dy / len, y_m: dx / len } : { x_m: dy / len, y_m: -dx / len };
}

/** Edges whose nearest points are tried by `crossingCandidatesLocal`: a handful is enough, and
 * it keeps a 500-vertex polygon from costing O(n²) per call. */
const CANDIDATE_EDGES = 8;

/**
 * Points on the wanted side of the polygon (inside or outside) with at least `margin_m` clearance
 * from every edge, nearest to `p` first: for each of the nearest edges, its closest point pushed
 * along the edge normal (or, at a vertex, along the corner bisector, lengthened so the margin
 * holds from both edges — the edge normal alone can step out through the neighbour at a sharp
 * corner), and the nearest boundary point pushed along the direction from `p`. `[p]` if `p` is
 * already fine; empty only for slivers thinner than the margin.
 */
export function crossingCandidatesLocal(
  p: LocalPoint,
  poly: LocalPolygon,
  wantInside: boolean,
  margin_m: number,
  max = 3,
): LocalPoint[] {
  const n = poly.length;
  if (n < 3) return [];
  const ok = (c: LocalPoint) =>
    pointInPolygonLocal(c, poly) === wantInside && nearestOnBoundaryLocal(c, poly).distance_m >= margin_m * 0.99;
  if (ok(p)) return [p];
  const ccw = signedArea2(poly) > 0;
  const sign = wantInside ? 1 : -1;
  const pInside = pointInPolygonLocal(p, poly);

  const edges: { i: number; q: ReturnType<typeof closestOnSegment> }[] = [];
  for (let i = 0; i < n; i++) edges.push({ i, q: closestOnSegment(p, poly[i]!, poly[(i + 1) % n]!) });
  edges.sort((a, b) => a.q.distance_m - b.q.distance_m);

  const found: { c: LocalPoint; d: number }[] = [];
  const tryPoint = (c: LocalPoint) => {
    if (found.some((f) => Math.hypot(f.c.x_m - c.x_m, f.c.y_m - c.y_m) < 0.5)) return true;
    if (!ok(c)) return false;
    found.push({ c, d: Math.hypot(c.x_m - p.x_m, c.y_m - p.y_m) });
    return true;
  };
  for (const [rank, { i, q }] of edges.slice(0, CANDIDATE_EDGES).entries()) {
    let dir = inwardNormal(poly[i]!, poly[(i + 1) % n]!, ccw);
    let stretch = 1;
    const vertex = q.t <= 1e-9 ? i : q.t >= 1 - 1e-9 ? (i + 1) % n : -1;
    if (vertex >= 0) {
      const n1 = inwardNormal(poly[(vertex - 1 + n) % n]!, poly[vertex]!, ccw);
      const n2 = inwardNormal(poly[vertex]!, poly[(vertex + 1) % n]!, ccw);
      const bx = n1.x_m + n2.x_m;
      const by = n1.y_m + n2.y_m;
      const bl = Math.hypot(bx, by);
      if (bl > 1e-9) {
        dir = { x_m: bx / bl, y_m: by / bl };
        stretch = 1 / Math.max(dir.x_m * n1.x_m + dir.y_m * n1.y_m, 0.05);
      }
    }
    const dirs: { d: LocalPoint; k: number }[] = [{ d: { x_m: dir.x_m * sign, y_m: dir.y_m * sign }, k: stretch }];
    if (rank === 0 && q.distance_m > 1e-9) {
      // From p through its nearest boundary point: crosses there when p is on the wrong side.
      const ux = (q.x_m - p.x_m) / q.distance_m;
      const uy = (q.y_m - p.y_m) / q.distance_m;
      dirs.push({ d: pInside !== wantInside ? { x_m: ux, y_m: uy } : { x_m: -ux, y_m: -uy }, k: 1 });
    }
    for (const { d, k } of dirs) {
      for (const scale of [1.05, 1.5, 2.5]) {
        const step = margin_m * k * scale;
        if (tryPoint({ x_m: q.x_m + d.x_m * step, y_m: q.y_m + d.y_m * step })) break;
      }
    }
  }
  found.sort((a, b) => a.d - b.d);
  return found.slice(0, max).map((f) => f.c);
}

/** The nearest point on the wanted side with `margin_m` clearance (see `crossingCandidatesLocal`),
 * or null. */
export function moveToSideLocal(
  p: LocalPoint,
  poly: LocalPolygon,
  wantInside: boolean,
  margin_m: number,
): LocalPoint | null {
  return crossingCandidatesLocal(p, poly, wantInside, margin_m, 1)[0] ?? null;
}

/**
 * "Nearest valid point inside the geofence": the nearest point at least `inset_m` inside
 * `polygon` (the point itself if it already is), or null if none is found.
 */
export function nearestPointInside(point: LatLon, polygon: readonly LatLon[], inset_m = 5): LatLon | null {
  const origin = { x_m: 0, y_m: 0 };
  const c = moveToSideLocal(origin, polygonToLocal(point, polygon), true, inset_m);
  // Unmoved: hand back the exact input rather than a projection round trip.
  return c === origin ? { lat: point.lat, lon: point.lon } : c ? fromLocal(point, c) : null;
}

/** The nearest point at least `offset_m` outside `polygon` (e.g. out of a no-fly zone). */
export function nearestPointOutside(point: LatLon, polygon: readonly LatLon[], offset_m = 5): LatLon | null {
  const origin = { x_m: 0, y_m: 0 };
  const c = moveToSideLocal(origin, polygonToLocal(point, polygon), false, offset_m);
  return c === origin ? { lat: point.lat, lon: point.lon } : c ? fromLocal(point, c) : null;
}

/** Orientation of c relative to a→b: > 0 left turn, < 0 right turn, 0 collinear. */
function orient(a: LocalPoint, b: LocalPoint, c: LocalPoint): number {
  return (b.x_m - a.x_m) * (c.y_m - a.y_m) - (b.y_m - a.y_m) * (c.x_m - a.x_m);
}

function onSegment(a: LocalPoint, b: LocalPoint, c: LocalPoint): boolean {
  return (
    Math.min(a.x_m, b.x_m) <= c.x_m &&
    c.x_m <= Math.max(a.x_m, b.x_m) &&
    Math.min(a.y_m, b.y_m) <= c.y_m &&
    c.y_m <= Math.max(a.y_m, b.y_m)
  );
}

/** Whether closed segments p1–p2 and p3–p4 touch or cross (collinear overlap included). */
export function segmentsIntersect2d(p1: LocalPoint, p2: LocalPoint, p3: LocalPoint, p4: LocalPoint): boolean {
  const d1 = orient(p3, p4, p1);
  const d2 = orient(p3, p4, p2);
  const d3 = orient(p1, p2, p3);
  const d4 = orient(p1, p2, p4);
  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) return true;
  if (d1 === 0 && onSegment(p3, p4, p1)) return true;
  if (d2 === 0 && onSegment(p3, p4, p2)) return true;
  if (d3 === 0 && onSegment(p1, p2, p3)) return true;
  if (d4 === 0 && onSegment(p1, p2, p4)) return true;
  return false;
}

/**
 * Why a ring is not a simple polygon, or null if it is: fewer than 3 vertices, a repeated
 * vertex, zero area, or two non-adjacent edges touching. O(n²), fine for geofences of at most a
 * few hundred vertices.
 */
export function polygonDefect(polygon: readonly LatLon[]): string | null {
  const n = polygon.length;
  if (n < 3) return "needs at least 3 vertices";
  const first = polygon[0]!;
  const poly = polygonToLocal(first, polygon);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = poly[i]!;
      const b = poly[j]!;
      // Closer than 1 cm counts as the same vertex: a zero-length edge or a pinched ring.
      if (Math.hypot(a.x_m - b.x_m, a.y_m - b.y_m) < 0.01) return `vertices ${i} and ${j} coincide`;
    }
  }
  for (let i = 0; i < n; i++) {
    const a1 = poly[i]!;
    const a2 = poly[(i + 1) % n]!;
    for (let j = i + 1; j < n; j++) {
      // Adjacent edges share a vertex by construction; only non-adjacent pairs may not touch.
      if (j === i + 1 || (i === 0 && j === n - 1)) continue;
      if (segmentsIntersect2d(a1, a2, poly[j]!, poly[(j + 1) % n]!)) {
        return `edges ${i}-${(i + 1) % n} and ${j}-${(j + 1) % n} intersect`;
      }
    }
  }
  // After the crossing test, so a symmetric bow-tie (zero net area) is reported as crossing.
  if (Math.abs(signedArea2(poly)) < 1e-6) return "has zero area";
  return null;
}

// ------------------------------------------------------------------------------------- 3D

/** Result of `segmentClosestApproach3d`: parameters s on the first segment and t on the second
 * (0 = start, 1 = end), the two closest points and their distance. */
export type ClosestApproach = { s: number; t: number; p: Vec3; q: Vec3; distance_m: number };

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/**
 * Closest approach between segments p1–q1 and p2–q2 in 3D (local metres), after Ericson,
 * Real-Time Collision Detection §5.1.9. Handles degenerate (point) segments and parallel ones.
 * This is purely spatial: for whether two moving drones meet, compare positions at equal times.
 */
export function segmentClosestApproach3d(p1: Vec3, q1: Vec3, p2: Vec3, q2: Vec3): ClosestApproach {
  const d1 = { x: q1.x - p1.x, y: q1.y - p1.y, z: q1.z - p1.z };
  const d2 = { x: q2.x - p2.x, y: q2.y - p2.y, z: q2.z - p2.z };
  const r = { x: p1.x - p2.x, y: p1.y - p2.y, z: p1.z - p2.z };
  const a = d1.x * d1.x + d1.y * d1.y + d1.z * d1.z;
  const e = d2.x * d2.x + d2.y * d2.y + d2.z * d2.z;
  const f = d2.x * r.x + d2.y * r.y + d2.z * r.z;
  const EPS = 1e-12;
  let s: number;
  let t: number;
  if (a <= EPS && e <= EPS) {
    s = 0;
    t = 0;
  } else if (a <= EPS) {
    s = 0;
    t = clamp01(f / e);
  } else {
    const c = d1.x * r.x + d1.y * r.y + d1.z * r.z;
    if (e <= EPS) {
      t = 0;
      s = clamp01(-c / a);
    } else {
      const b = d1.x * d2.x + d1.y * d2.y + d1.z * d2.z;
      const denom = a * e - b * b;
      // Parallel segments (denom 0): any s works; pick 0 and let the clamping below fix t.
      s = denom > EPS ? clamp01((b * f - c * e) / denom) : 0;
      t = (b * s + f) / e;
      if (t < 0) {
        t = 0;
        s = clamp01(-c / a);
      } else if (t > 1) {
        t = 1;
        s = clamp01((b - c) / a);
      }
    }
  }
  const p = { x: p1.x + d1.x * s, y: p1.y + d1.y * s, z: p1.z + d1.z * s };
  const q = { x: p2.x + d2.x * t, y: p2.y + d2.y * t, z: p2.z + d2.z * t };
  return { s, t, p, q, distance_m: Math.hypot(p.x - q.x, p.y - q.y, p.z - q.z) };
}

import { describe, expect, it } from "vitest";
import {
  bearingDeg,
  compassDeg,
  distanceToPolygonEdgeM,
  fromLocal,
  haversineM,
  makeLocalFrame,
  metresPerDegree,
  nearestPointInside,
  nearestPointOnBoundary,
  nearestPointOutside,
  planarDistanceM,
  pointInPolygon,
  polygonDefect,
  segmentClosestApproach3d,
  toLocal,
  type LatLon,
} from "../../edge/domain/geo";

const HOME: LatLon = { lat: 47.3977, lon: 8.5456 };
const at = (east: number, north: number): LatLon => fromLocal(HOME, { x_m: east, y_m: north });
/** A 1 km square centred on HOME. */
const SQUARE = [at(-500, -500), at(500, -500), at(500, 500), at(-500, 500)];
const relErr = (got: number, want: number) => Math.abs(got - want) / want;

describe("distances against known WGS84 values", () => {
  it("metres per degree match the ellipsoid tables", () => {
    // Standard WGS84 values: 1° of latitude is 110 574 m at the equator, 111 132 m at 45°,
    // 111 694 m at the pole; 1° of longitude is 111 320 m at the equator, 78 847 m at 45°.
    expect(relErr(metresPerDegree(0).lat_m, 110_574)).toBeLessThan(1e-4);
    expect(relErr(metresPerDegree(45).lat_m, 111_132)).toBeLessThan(1e-4);
    expect(relErr(metresPerDegree(90).lat_m, 111_694)).toBeLessThan(1e-4);
    expect(relErr(metresPerDegree(0).lon_m, 111_320)).toBeLessThan(1e-4);
    expect(relErr(metresPerDegree(45).lon_m, 78_847)).toBeLessThan(1e-4);
  });

  it("haversine is within 1 % of the ellipsoid, the tangent plane within 0.1 %", () => {
    const cases: [LatLon, LatLon, number][] = [
      [{ lat: 0, lon: 0 }, { lat: 1, lon: 0 }, 110_574],
      [{ lat: 0, lon: 0 }, { lat: 0, lon: 1 }, 111_320],
      [{ lat: 44.5, lon: 0 }, { lat: 45.5, lon: 0 }, 111_132],
      [{ lat: 45, lon: 7 }, { lat: 45, lon: 8 }, 78_847],
    ];
    for (const [a, b, want] of cases) {
      expect(relErr(haversineM(a, b), want)).toBeLessThan(0.01);
      expect(relErr(planarDistanceM(a, b), want)).toBeLessThan(0.001);
    }
    // One nautical mile is one minute of arc on the sphere haversine uses (±0.1 %).
    expect(relErr(haversineM({ lat: 47, lon: 8 }, { lat: 47 + 1 / 60, lon: 8 }), 1852)).toBeLessThan(0.001);
  });

  it("the tangent plane agrees with haversine over a few km in every direction", () => {
    for (let deg = 0; deg < 360; deg += 30) {
      const r = 4000;
      const p = at(r * Math.sin((deg * Math.PI) / 180), r * Math.cos((deg * Math.PI) / 180));
      expect(relErr(planarDistanceM(HOME, p), r)).toBeLessThan(1e-9);
      expect(relErr(haversineM(HOME, p), r)).toBeLessThan(0.01);
      const b = bearingDeg(HOME, p);
      expect(Math.min(Math.abs(b - deg), 360 - Math.abs(b - deg))).toBeLessThan(0.1);
    }
  });

  it("toLocal and fromLocal invert each other to a millimetre, across the antimeridian too", () => {
    for (const origin of [HOME, { lat: -33.9, lon: 179.99 }, { lat: 60, lon: -0.001 }]) {
      for (const [x, y] of [[1234.5, -2345.6], [-5000, 5000], [0.1, 0]]) {
        const p = fromLocal(origin, { x_m: x!, y_m: y! });
        expect(p.lon).toBeGreaterThanOrEqual(-180);
        expect(p.lon).toBeLessThan(180);
        const back = toLocal(origin, p);
        expect(Math.abs(back.x_m - x!)).toBeLessThan(1e-3);
        expect(Math.abs(back.y_m - y!)).toBeLessThan(1e-3);
      }
    }
  });

  it("the fixed-scale frame stays within 0.1 % over 3 km", () => {
    const f = makeLocalFrame(HOME);
    const p = at(2000, 2000);
    const d = Math.hypot(f.x(p.lon), f.y(p.lat));
    expect(relErr(d, Math.hypot(2000, 2000))).toBeLessThan(0.001);
  });

  it("the fixed-scale frame inverts exactly, across the antimeridian too", () => {
    for (const origin of [HOME, { lat: -16.5, lon: 179.999 }]) {
      const f = makeLocalFrame(origin);
      for (const [x, y] of [[0, 0], [1234.5, -987.6], [-3000, 2500]] as const) {
        const p = f.toLatLon(x, y);
        expect(p.lon).toBeGreaterThanOrEqual(-180);
        expect(p.lon).toBeLessThan(180);
        expect(f.x(p.lon)).toBeCloseTo(x, 6);
        expect(f.y(p.lat)).toBeCloseTo(y, 6);
      }
    }
  });
});

describe("compass directions of local vectors", () => {
  it("measures clockwise from north in [0, 360)", () => {
    expect(compassDeg(0, 1)).toBe(0);
    expect(compassDeg(1, 0)).toBe(90);
    expect(compassDeg(0, -1)).toBe(180);
    expect(compassDeg(-1, 0)).toBe(270);
    expect(compassDeg(1, 1)).toBeCloseTo(45, 12);
    expect(compassDeg(0, 0)).toBe(0);
    // A hair west of north folds to 0, not 360.
    expect(compassDeg(-1e-17, 1)).toBe(0);
    expect(compassDeg(-1e-9, 1)).toBeLessThan(360);
  });

  it("agrees with the great-circle bearing over short distances", () => {
    for (const [e, n] of [[300, 400], [-250, 10], [5, -700]] as const) {
      // bearingDeg is on the sphere, the local frame on the ellipsoid: a tenth of a degree apart.
      expect(Math.abs(compassDeg(e, n) - bearingDeg(HOME, at(e, n)))).toBeLessThan(0.2);
    }
  });
});

describe("polygons", () => {
  it("tests points against convex and concave polygons", () => {
    expect(pointInPolygon(HOME, SQUARE)).toBe(true);
    expect(pointInPolygon(at(600, 0), SQUARE)).toBe(false);
    expect(pointInPolygon(at(499, 499), SQUARE)).toBe(true);
    // An L: the square minus its north-east quarter.
    const L = [at(-500, -500), at(500, -500), at(500, 0), at(0, 0), at(0, 500), at(-500, 500)];
    expect(pointInPolygon(at(250, 250), L)).toBe(false);
    expect(pointInPolygon(at(-250, 250), L)).toBe(true);
    expect(pointInPolygon(at(250, -250), L)).toBe(true);
  });

  it("measures the distance to the nearest edge from inside and outside", () => {
    expect(distanceToPolygonEdgeM(at(600, 0), SQUARE)).toBeCloseTo(100, 0);
    expect(distanceToPolygonEdgeM(at(0, 450), SQUARE)).toBeCloseTo(50, 0);
    expect(distanceToPolygonEdgeM(at(600, 600), SQUARE)).toBeCloseTo(Math.SQRT2 * 100, 0);
    const n = nearestPointOnBoundary(at(600, 100), SQUARE);
    expect(n.distance_m).toBeCloseTo(100, 0);
    expect(planarDistanceM(n.point, at(500, 100))).toBeLessThan(0.01);
  });

  it("moves a point a few metres inside, including at a sharp corner", () => {
    const p = nearestPointInside(at(700, 100), SQUARE, 5)!;
    expect(pointInPolygon(p, SQUARE)).toBe(true);
    expect(distanceToPolygonEdgeM(p, SQUARE)).toBeGreaterThanOrEqual(4.9);
    expect(planarDistanceM(p, at(495, 100))).toBeLessThan(1);
    // Already well inside: unchanged.
    expect(nearestPointInside(HOME, SQUARE, 5)).toEqual(HOME);
    // A 10° spike: the corner bisector must be used, not the edge normal.
    const spike = [at(0, 0), at(1000, 0), at(1000, 176)];
    const q = nearestPointInside(at(-50, -30), spike, 5)!;
    expect(pointInPolygon(q, spike)).toBe(true);
    expect(distanceToPolygonEdgeM(q, spike)).toBeGreaterThanOrEqual(4.9);
  });

  it("moves a point just outside a zone", () => {
    const p = nearestPointOutside(at(400, 0), SQUARE, 5)!;
    expect(pointInPolygon(p, SQUARE)).toBe(false);
    expect(distanceToPolygonEdgeM(p, SQUARE)).toBeGreaterThanOrEqual(4.9);
    expect(planarDistanceM(p, at(505, 0))).toBeLessThan(1);
  });

  it("finds self-intersections and degenerate rings", () => {
    expect(polygonDefect(SQUARE)).toBeNull();
    expect(polygonDefect([at(0, 0), at(100, 100), at(100, 0), at(0, 100)])).toMatch(/intersect/);
    expect(polygonDefect([at(0, 0), at(100, 0)])).toMatch(/at least 3/);
    expect(polygonDefect([at(0, 0), at(100, 0), at(200, 0)])).toMatch(/zero area|intersect/);
    expect(polygonDefect([at(0, 0), at(100, 0), at(100, 0), at(0, 100)])).toMatch(/coincide/);
  });
});

describe("segment closest approach in 3D", () => {
  it("handles skew, parallel, touching and degenerate segments", () => {
    const v = (x: number, y: number, z: number) => ({ x, y, z });
    const skew = segmentClosestApproach3d(v(-10, 0, 0), v(10, 0, 0), v(0, -10, 5), v(0, 10, 5));
    expect(skew.distance_m).toBeCloseTo(5, 9);
    expect(skew.s).toBeCloseTo(0.5, 9);
    expect(skew.t).toBeCloseTo(0.5, 9);
    expect(segmentClosestApproach3d(v(0, 0, 0), v(10, 0, 0), v(0, 3, 4), v(10, 3, 4)).distance_m).toBeCloseTo(5, 9);
    // Collinear but apart: end to start.
    expect(segmentClosestApproach3d(v(0, 0, 0), v(10, 0, 0), v(15, 0, 0), v(20, 0, 0)).distance_m).toBeCloseTo(5, 9);
    // Beyond the ends of a crossing line: clamped.
    expect(segmentClosestApproach3d(v(0, 0, 0), v(10, 0, 0), v(20, -5, 0), v(20, 5, 0)).distance_m).toBeCloseTo(10, 9);
    expect(segmentClosestApproach3d(v(1, 1, 1), v(1, 1, 1), v(4, 5, 1), v(4, 5, 1)).distance_m).toBeCloseTo(5, 9);
    expect(segmentClosestApproach3d(v(0, 3, 0), v(0, 3, 0), v(-5, 0, 0), v(5, 0, 0)).distance_m).toBeCloseTo(3, 9);
  });
});

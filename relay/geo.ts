/** Small geometry shared by the sources: compass angles and a local metric frame around home. */

export type LatLon = { lat: number; lon: number };

const EARTH_RADIUS_M = 6_371_008.8;
const DEG = 180 / Math.PI;

/** Degrees clockwise from north for an (east, north) vector, in [0, 360). */
export function compassDeg(east: number, north: number): number {
  const norm = ((Math.atan2(east, north) * DEG) + 360) % 360;
  // (−tiny + 360) % 360 can round to exactly 360; the protocol allows it but 0 reads better.
  return norm >= 360 ? 0 : norm;
}

/** Local east/north metres around `home` → WGS84. Equirectangular: centimetre-exact within a few km. */
export function toLatLon(home: LatLon, east: number, north: number): LatLon {
  return {
    lat: home.lat + (north / EARTH_RADIUS_M) * DEG,
    lon: home.lon + (east / (EARTH_RADIUS_M * Math.cos(home.lat / DEG))) * DEG,
  };
}

/** WGS84 → local east/north metres around `home`; the inverse of toLatLon. */
export function toLocal(home: LatLon, p: LatLon): { east: number; north: number } {
  return {
    east: ((p.lon - home.lon) / DEG) * EARTH_RADIUS_M * Math.cos(home.lat / DEG),
    north: ((p.lat - home.lat) / DEG) * EARTH_RADIUS_M,
  };
}

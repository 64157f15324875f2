/**
 * The base map's pure parts (no DOM, tested in Node): Web Mercator (EPSG:3857) as slippy-map tile
 * servers use it, the tiles that cover a view, URL templates, and which tile server a page uses.
 *
 * World coordinates are normalised to [0, 1): x east from the antimeridian, y south from the
 * Mercator limit at ~85.05° N; at zoom z the world is 256·2^z pixels wide, so a tile's pixel and a
 * drone's position come from the same two formulas and cannot drift apart.
 */

export const TILE_PX = 256;
/** The latitude where Web Mercator's square world ends (atan(sinh(π))). */
export const MAX_LAT = 85.0511287798066;
/** The sphere Web Mercator is defined on (WGS84 semi-major axis), for metres per pixel. */
const MERCATOR_RADIUS_M = 6_378_137;

export const worldX = (lon: number): number => (lon + 180) / 360;

export function worldY(lat: number): number {
  const r = (Math.max(-MAX_LAT, Math.min(MAX_LAT, lat)) * Math.PI) / 180;
  return 0.5 - Math.log(Math.tan(Math.PI / 4 + r / 2)) / (2 * Math.PI);
}

export const lonOf = (x: number): number => x * 360 - 180;
export const latOf = (y: number): number => (Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180) / Math.PI;

/** Ground metres per screen pixel at `lat` when the world is `worldPx` pixels wide. */
export const metresPerPixel = (lat: number, worldPx: number): number => (2 * Math.PI * MERCATOR_RADIUS_M * Math.cos((lat * Math.PI) / 180)) / worldPx;

/** A view: centre in world coordinates, fractional zoom, size in CSS pixels. */
export type View = { cx: number; cy: number; zoom: number; width: number; height: number };

/** One tile to draw: its address (x already wrapped around the antimeridian) and where it goes
 * on screen, in whole pixels so neighbouring tiles never leave a hairline seam. */
export type TilePlacement = { z: number; x: number; y: number; sx: number; sy: number; sw: number; sh: number };

/**
 * The tiles at zoom `z` covering `view`, row by row from the top left. Rows beyond the Mercator
 * limit are left out; columns wrap around the antimeridian.
 */
export function tilesInView(view: View, z: number): TilePlacement[] {
  const n = 2 ** z;
  const k = TILE_PX * 2 ** view.zoom; // screen px per world unit
  const left = view.cx - view.width / 2 / k;
  const top = view.cy - view.height / 2 / k;
  const x0 = Math.floor(left * n);
  const x1 = Math.floor((view.cx + view.width / 2 / k) * n);
  const y0 = Math.max(0, Math.floor(top * n));
  const y1 = Math.min(n - 1, Math.floor((view.cy + view.height / 2 / k) * n));
  const edge = (t: number, c: number, half: number) => Math.round(half + (t / n - c) * k);
  const out: TilePlacement[] = [];
  for (let ty = y0; ty <= y1; ty++) {
    const sy = edge(ty, view.cy, view.height / 2);
    const sh = edge(ty + 1, view.cy, view.height / 2) - sy;
    for (let tx = x0; tx <= x1; tx++) {
      const sx = edge(tx, view.cx, view.width / 2);
      const sw = edge(tx + 1, view.cx, view.width / 2) - sx;
      out.push({ z, x: ((tx % n) + n) % n, y: ty, sx, sy, sw, sh });
    }
  }
  return out;
}

/** The tile zoom for a view zoom: the nearest level the server has (tiles are scaled beyond its
 * last level rather than missing). */
export const tileZoomFor = (zoom: number, maxZoom: number): number => Math.max(0, Math.min(maxZoom, Math.round(zoom)));

/** The URL of one tile: {z}, {x}, {y} replaced, and {s} by a, b or c (spread over a server's
 * subdomains the way OpenStreetMap-style templates expect). */
export function tileUrl(template: string, z: number, x: number, y: number): string {
  return template
    .replaceAll("{z}", String(z))
    .replaceAll("{x}", String(x))
    .replaceAll("{y}", String(y))
    .replaceAll("{s}", "abc"[(x + y) % 3]!);
}

/** Why a template cannot be used, or null when it can. Same-origin paths and http(s) URLs only:
 * the page's content security policy allows images from nowhere else. */
export function templateProblem(template: string): string | null {
  if (!/^(https?:\/\/[^/\s]+|\/)/.test(template)) return "must start with http://, https:// or /";
  if (/\s/.test(template)) return "must not contain spaces";
  for (const p of ["{z}", "{x}", "{y}"]) if (!template.includes(p)) return `must contain ${p}`;
  return null;
}

// ------------------------------------------------------------------ which tiles a page uses

/** A usable tile server, or none (`url: ""`): then the map is the local-metres grid. */
export type BaseMap = { url: string; attribution: string; maxZoom: number };

export const NO_BASEMAP: BaseMap = { url: "", attribution: "", maxZoom: 19 };
const DEFAULT_MAX_ZOOM = 19;
const MAX_ZOOM_LIMIT = 22;

/** What this browser chose (localStorage): a server of its own, or explicitly none. Absent means
 * the deployment's default. */
export type BaseMapChoice = { mode: "custom"; basemap: BaseMap } | { mode: "off" };

function maxZoomOf(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= MAX_ZOOM_LIMIT ? n : DEFAULT_MAX_ZOOM;
}

/** A tile server from loose parts (meta tags, a query string, a form); NO_BASEMAP when the URL is
 * empty or unusable. */
export function makeBaseMap(url: string | null | undefined, attribution?: string | null, maxZoom?: unknown): BaseMap {
  const u = (url ?? "").trim();
  if (!u || templateProblem(u)) return NO_BASEMAP;
  return { url: u, attribution: (attribution ?? "").trim().slice(0, 300), maxZoom: maxZoomOf(maxZoom) };
}

/** Read a stored choice; anything unreadable counts as no choice (the deployment's default). */
export function parseChoice(raw: string | null): BaseMapChoice | null {
  if (!raw) return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null || !("mode" in v)) return null;
  if (v.mode === "off") return { mode: "off" };
  if (v.mode !== "custom" || !("url" in v) || typeof v.url !== "string") return null;
  const attribution = "attribution" in v && typeof v.attribution === "string" ? v.attribution : "";
  const b = makeBaseMap(v.url, attribution, "maxZoom" in v ? v.maxZoom : undefined);
  return b.url ? { mode: "custom", basemap: b } : null;
}

export const serializeChoice = (c: BaseMapChoice): string => JSON.stringify(c.mode === "off" ? c : { mode: "custom", ...c.basemap });

/**
 * A choice carried by the page's address: `?tiles=TEMPLATE` (with optional `tiles_attribution`
 * and `tiles_max_zoom`), or `?tiles=off`. Undefined when the address says nothing; a template
 * that is not usable is ignored rather than switching the map off.
 */
export function choiceFromQuery(q: URLSearchParams): BaseMapChoice | undefined {
  const t = q.get("tiles");
  if (t === null) return undefined;
  if (t.trim() === "off" || t.trim() === "none") return { mode: "off" };
  const b = makeBaseMap(t, q.get("tiles_attribution"), q.get("tiles_max_zoom"));
  return b.url ? { mode: "custom", basemap: b } : undefined;
}

/** The tile server in effect: this browser's choice when it made one, else the deployment's. */
export function effectiveBaseMap(deployment: BaseMap, choice: BaseMapChoice | null): BaseMap {
  if (!choice) return deployment;
  return choice.mode === "off" ? NO_BASEMAP : choice.basemap;
}

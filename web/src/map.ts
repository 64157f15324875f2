/**
 * The fleet map: one canvas in Web Mercator (the projection of slippy-map tile servers), so raster
 * tiles from a configured `{z}/{x}/{y}` server, the drones, the geofence and the no-fly zones all
 * come from the same two formulas (basemap.ts) and line up to the pixel. Without a tile server, or
 * where tiles fail, the map is a grid in local metres around the fleet's home: it works with no
 * internet at all.
 *
 * Draws, bottom to top: grid, tiles, geofence and no-fly zones, home, trails, planned waypoints, the
 * mission being planned, coordination events (pulsing, with a line between the drones involved),
 * the drones as arrows along their heading coloured by status, rejected targets with their
 * suggested alternatives, scale and north arrow. For many drones every layer is batched (one path
 * per colour, not one per drone), dense spots become cluster badges, and labels go only to the
 * drones that matter (declutter.ts), so 1,000 drones draw in a few milliseconds.
 *
 * The page calls draw() from its own animation frame with the latest state; the map never draws
 * per message. Pan by dragging, zoom with the wheel (around the cursor) or the +/− buttons; with
 * tiles the zoom snaps to whole levels so tiles stay sharp. A click that did not drag is reported
 * with its WGS84 position and what it hit; a click on a cluster zooms into it.
 */
import type { FleetConfig } from "../../edge/domain/fleet-config";
import { makeLocalFrame, toLocal, type LatLon, type LocalFrame } from "../../edge/domain/geo";
import type { AlternativeSuggestion, DRONE_STATUSES, Waypoint } from "../../edge/protocol";
import { latOf, lonOf, metresPerPixel, TILE_PX, tilesInView, tileUrl, tileZoomFor, worldX, worldY, type BaseMap, type View } from "./basemap";
import { declutter, type Cluster, type Declutter, type Marker } from "./declutter";
import { inferAirborne } from "../../edge/domain/drone";
import { isStateUnknown, stateView, STATUS_COLORS, UNKNOWN_STATE_COLOR } from "./drone-state";
import type { FleetModel } from "./model";

export type MapMode = "select" | "waypoint" | "mission";

export type MapScene = {
  config: FleetConfig | null;
  model: FleetModel;
  selected: string | null;
  mode: MapMode;
  /** Waypoints of the mission being planned. */
  draft: Waypoint[];
  /** A waypoint sent and not yet final. */
  pendingTarget: LatLon | null;
  /** A rejected target and the alternatives the edge suggested (clickable). */
  rejected: { target: LatLon; suggestions: AlternativeSuggestion[] } | null;
  showTrails: boolean;
  /** The tile server to draw under everything; url "" for the grid only. */
  basemap: BaseMap;
  now: number;
};

export type MapClick = { lat: number; lon: number; droneId: string | null; suggestion: AlternativeSuggestion | null };

/** Status colours live with the state's wording (drone-state.ts); the map's legend and arrows use them. */
export { STATUS_COLORS } from "./drone-state";

const C = {
  bg: "#0b1220",
  grid: "rgba(148,163,184,0.07)",
  gridMajor: "rgba(148,163,184,0.14)",
  fence: "#38bdf8",
  fenceFill: "rgba(56,189,248,0.04)",
  nofly: "#f43f5e",
  noflyFill: "rgba(244,63,94,0.13)",
  home: "#e2e8f0",
  plan: "#e2e8f0",
  draft: "#f59e0b",
  pending: "#38bdf8",
  rejected: "#f43f5e",
  suggestion: "#facc15",
  event: "#f97316",
  label: "#cbd5e1",
  selected: "#ffffff",
  stale: "#475569",
  cluster: "rgba(15,23,42,0.88)",
};

/** ~1,500 km across at mid latitudes. */
const MIN_ZOOM = 3;
/** ~3 cm per pixel. */
const MAX_ZOOM = 22;
const DRAG_PX = 5;
/** Tiles kept (decoded images), least recently drawn dropped first. */
const TILE_CACHE = 300;
/** A tile that failed is asked for again after this long (a tile server that was restarting). */
const TILE_RETRY_MS = 30_000;
/** Levels above a missing tile searched for a loaded one to scale in its place. */
const TILE_FALLBACK_LEVELS = 4;
/** Wheel delta for one whole zoom level when zoom snaps (a mouse notch is ~100, a trackpad less). */
const WHEEL_STEP = 100;
/** Above this many drones in view the drawing is thinned: smaller arrows, shorter trails. */
const MANY = 60;
/** Above this many, trails show only the last seconds, and data alone redraws the map at most
 * every DATA_FRAME_MS (each drone moves a few pixels a second; panning and clicks still draw at once). */
const CROWD = 200;
const DATA_FRAME_MS = 200;
const LABEL_FONT = "11px system-ui, sans-serif";
/** Most drone labels in one view (the selected drone's always shows). */
const MAX_LABELS = 30;
/** Above this many active coordination events, only the selected drone's are labelled on the map
 * (the coordination panel lists them all). */
const EVENT_LABELS_UP_TO = 6;

type Tile = { img: HTMLImageElement; state: "loading" | "ok" | "error"; at: number };
type Pt = { x: number; y: number };
type Drawn = Marker & { heading: number; color: string; stale: boolean; unknown: boolean };
type DroneLayout = { drawn: Drawn[]; dc: Declutter; size: number };

export class MapView {
  readonly canvas: HTMLCanvasElement;
  /** Where the draw methods draw: the canvas, or the base layer while that is redrawn. */
  private ctx: CanvasRenderingContext2D;
  private readonly screenCtx: CanvasRenderingContext2D;
  /** Grid, tiles, geofence and zones: redrawn only when the view, the tiles or the configuration
   * changed, and copied under each frame in one blit. */
  private readonly base: HTMLCanvasElement;
  private readonly baseCtx: CanvasRenderingContext2D;
  private baseKey = "";
  private baseDraws = 0;
  private tilesVersion = 0;
  private configVersion = 0;
  private baseTiles: { z: number; total: number; loaded: number; failed: number } | null = null;
  /** Data-only redraw throttle for crowded views (see DATA_FRAME_MS). */
  private crowded = false;
  private lastDraw = -Infinity;
  private lastKey = "";
  private throttleTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly attribution: HTMLElement;
  private origin: LatLon | null = null;
  private frame: LocalFrame | null = null;
  /** View centre (Web Mercator world units, 0..1) and zoom (fractional; whole with tiles). */
  private wx = 0.5;
  private wy = 0.5;
  private zoom = 15;
  private width = 0;
  private height = 0;
  /** Auto-fit state: the operator's own pan/zoom always wins over it. */
  private userMoved = false;
  private fenceFitted = false;
  private fleetFitted = false;
  private scene: MapScene | null = null;
  private pulseTimer: ReturnType<typeof setTimeout> | undefined;
  private wheelAcc = 0;
  private drag: { x: number; y: number; wx: number; wy: number; moved: boolean; id: number } | null = null;
  /** Screen positions from the last draw, for hit tests. */
  private droneHits: { id: string; x: number; y: number }[] = [];
  private suggestionHits: { s: AlternativeSuggestion; x: number; y: number }[] = [];
  private clusterHits: Cluster[] = [];
  private readonly tiles = new Map<string, Tile>();
  /** The geofence and zones in world units, recomputed when the configuration changes. */
  private cached: { config: FleetConfig; fence: Pt[]; zones: { name: string; poly: Pt[] }[] } | null = null;
  private readonly labelWidths = new Map<string, number>();
  private attributionText = "";
  private readonly stats: Record<string, string> = {};

  constructor(
    private readonly container: HTMLElement,
    private readonly onClick: (c: MapClick) => void,
    private readonly onCursor: (text: string) => void,
    /** Ask the page for a frame (pan, zoom, a tile arrived): it calls draw() with the latest state. */
    private readonly requestFrame: () => void,
  ) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "map-canvas";
    this.canvas.setAttribute("aria-label", "Fleet map");
    this.canvas.tabIndex = 0;
    container.prepend(this.canvas);
    // The page provides the attribution line (before the cursor readout, which moves up for it).
    let attribution = container.querySelector<HTMLElement>(".map-attribution");
    if (!attribution) {
      attribution = document.createElement("div");
      attribution.className = "map-attribution";
      attribution.hidden = true;
      container.append(attribution);
    }
    this.attribution = attribution;
    const ctx = this.canvas.getContext("2d", { alpha: false });
    this.base = document.createElement("canvas");
    const baseCtx = this.base.getContext("2d", { alpha: false });
    if (!ctx || !baseCtx) throw new Error("canvas 2D is not available");
    this.ctx = this.screenCtx = ctx;
    this.baseCtx = baseCtx;
    new ResizeObserver(() => this.resize()).observe(container);
    this.canvas.addEventListener("pointerdown", this.onPointerDown);
    this.canvas.addEventListener("pointermove", this.onPointerMove);
    this.canvas.addEventListener("pointerup", this.onPointerUp);
    this.canvas.addEventListener("pointerleave", () => this.onCursor(""));
    this.canvas.addEventListener("wheel", this.onWheel, { passive: false });
    this.resize();
  }

  /** Draw `scene` now (the caller is in an animation frame). Returns whether it drew (a crowded
   * view skips frames), so the page can give the frames it skips to its other views. */
  draw(scene: MapScene): boolean {
    const hadTiles = !!this.scene?.basemap.url;
    this.scene = scene;
    if (scene.config && (!this.origin || this.origin.lat !== scene.config.home.lat || this.origin.lon !== scene.config.home.lon)) {
      this.origin = scene.config.home;
      this.frame = makeLocalFrame(scene.config.home);
      if (!this.userMoved) this.centerWorld(worldX(this.origin.lon), worldY(this.origin.lat));
      this.fenceFitted = false;
      this.fleetFitted = false;
    }
    // Tiles just switched on: whole zoom levels from now on.
    if (scene.basemap.url && !hadTiles) this.zoom = Math.round(this.zoom);
    // A crowded view redraws for new data alone at most every DATA_FRAME_MS; anything the
    // operator did (view, selection, mode, plans being drawn) or a tile that arrived draws now.
    const key = `${this.viewKey()}|${this.tilesVersion}|${scene.selected}|${scene.mode}|${scene.draft.length}|${scene.pendingTarget?.lat}|${scene.rejected?.target.lat}|${scene.showTrails}|${scene.basemap.url}`;
    const now = performance.now();
    if (this.crowded && key === this.lastKey && now - this.lastDraw < DATA_FRAME_MS) {
      this.throttleTimer ??= setTimeout(() => {
        this.throttleTimer = undefined;
        this.requestFrame();
      }, DATA_FRAME_MS - (now - this.lastDraw));
      return false;
    }
    this.lastKey = key;
    this.lastDraw = now;
    this.render();
    return true;
  }

  /** Whether the view holds so many drones that data alone redraws it only every DATA_FRAME_MS. */
  get crowdedView(): boolean {
    return this.crowded;
  }

  private viewKey(): string {
    return `${this.wx},${this.wy},${this.zoom},${this.width}x${this.height}`;
  }

  private get snap(): boolean {
    return !!this.scene?.basemap.url;
  }

  /** Screen px per world unit. */
  private get k(): number {
    return TILE_PX * 2 ** this.zoom;
  }

  /** Fit the whole geofence into view. */
  fitGeofence(): void {
    const f = this.scene?.config?.geofence;
    if (f?.length) this.fitTo(f, 100);
  }

  /** Fit home, every drone and their planned waypoints into view (at least ~300 m across). */
  fitFleet(): void {
    const s = this.scene;
    if (!s || !this.origin) return;
    const pts: LatLon[] = [this.origin];
    for (const d of s.model.drones.values()) pts.push(d.sample);
    for (const p of s.model.plans.values()) for (const w of p.waypoints) pts.push(w);
    this.fitTo(pts, 300);
  }

  private fitTo(pts: readonly LatLon[], minSpanM: number): void {
    if (!pts.length || this.width < 2) return;
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const p of pts) {
      const x = worldX(p.lon);
      const y = worldY(p.lat);
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    const cy = (y0 + y1) / 2;
    // The minimum span in world units at this latitude (1 world unit = the equator's length there).
    const minSpan = minSpanM / (metresPerPixel(latOf(cy), 1) || 1);
    const spanX = Math.max(x1 - x0, minSpan) * 1.15;
    const spanY = Math.max(y1 - y0, minSpan) * 1.15;
    const zoom = Math.log2(Math.min(this.width / spanX, this.height / spanY) / TILE_PX);
    this.zoom = clamp(this.snap ? Math.floor(zoom) : zoom, MIN_ZOOM, MAX_ZOOM);
    this.centerWorld((x0 + x1) / 2, cy);
    this.requestFrame();
  }

  /** The first view: the geofence while no drone is known, then the fleet once drones report
   * (unless the operator has panned or zoomed by then). */
  private autoFit(): void {
    if (this.userMoved || this.fleetFitted || this.width < 2) return;
    if (this.scene && this.scene.model.drones.size > 0) {
      this.fleetFitted = true;
      this.fitFleet();
    } else if (!this.fenceFitted && this.scene?.config) {
      this.fenceFitted = true;
      this.fitGeofence();
    }
  }

  zoomBy(factor: number, sx = this.width / 2, sy = this.height / 2): void {
    this.userMoved = true;
    const step = Math.log2(factor);
    const next = this.snap ? (step > 0 ? Math.floor(this.zoom + 1e-9) + Math.max(1, Math.round(step)) : Math.ceil(this.zoom - 1e-9) - Math.max(1, Math.round(-step))) : this.zoom + step;
    this.zoomTo(next, sx, sy);
  }

  private zoomTo(zoom: number, sx: number, sy: number): void {
    const before = this.toWorld(sx, sy);
    this.zoom = clamp(zoom, MIN_ZOOM, MAX_ZOOM);
    const after = this.toWorld(sx, sy);
    this.wx += before.x - after.x;
    this.wy += before.y - after.y;
    this.requestFrame();
  }

  /** Centre on a drone without changing the zoom. */
  centerOn(p: LatLon): void {
    this.centerWorld(worldX(p.lon), worldY(p.lat));
    this.requestFrame();
  }

  private centerWorld(x: number, y: number): void {
    this.wx = x;
    this.wy = y;
  }

  /** Screen position (CSS px, relative to the canvas) of a WGS84 point; for tests and overlays. */
  project(p: LatLon): Pt {
    return this.ll(p);
  }

  private resize(): void {
    const r = this.container.getBoundingClientRect();
    this.width = Math.max(1, Math.floor(r.width));
    this.height = Math.max(1, Math.floor(r.height));
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.floor(this.width * dpr);
    this.canvas.height = Math.floor(this.height * dpr);
    this.canvas.style.width = `${this.width}px`;
    this.canvas.style.height = `${this.height}px`;
    this.screenCtx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.base.width = this.canvas.width;
    this.base.height = this.canvas.height;
    this.baseCtx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.baseKey = "";
    this.requestFrame();
  }

  private view(): View {
    return { cx: this.wx, cy: this.wy, zoom: this.zoom, width: this.width, height: this.height };
  }

  private toWorld(sx: number, sy: number): Pt {
    const k = this.k;
    return { x: this.wx + (sx - this.width / 2) / k, y: this.wy + (sy - this.height / 2) / k };
  }

  private toLatLon(sx: number, sy: number): LatLon {
    const w = this.toWorld(sx, sy);
    const lon = lonOf(w.x);
    return { lat: latOf(w.y), lon: ((((lon + 180) % 360) + 360) % 360) - 180 };
  }

  /** World units to screen. */
  private ws(p: Pt): Pt {
    const k = this.k;
    return { x: this.width / 2 + (p.x - this.wx) * k, y: this.height / 2 + (p.y - this.wy) * k };
  }

  /** WGS84 to screen (drones, trails: many points per frame). */
  private ll(p: LatLon): Pt {
    const k = this.k;
    return { x: this.width / 2 + (worldX(p.lon) - this.wx) * k, y: this.height / 2 + (worldY(p.lat) - this.wy) * k };
  }

  // ------------------------------------------------------------------ input

  private readonly onPointerDown = (ev: PointerEvent) => {
    if (ev.button !== 0) return;
    this.canvas.setPointerCapture(ev.pointerId);
    this.drag = { x: ev.offsetX, y: ev.offsetY, wx: this.wx, wy: this.wy, moved: false, id: ev.pointerId };
  };

  private readonly onPointerMove = (ev: PointerEvent) => {
    const d = this.drag;
    if (d && d.id === ev.pointerId) {
      const dx = ev.offsetX - d.x;
      const dy = ev.offsetY - d.y;
      if (!d.moved && Math.hypot(dx, dy) > DRAG_PX) {
        d.moved = true;
        this.canvas.classList.add("dragging");
      }
      if (d.moved) {
        this.userMoved = true;
        this.wx = d.wx - dx / this.k;
        this.wy = d.wy - dy / this.k;
        this.requestFrame();
      }
    }
    // Over a drone: what it is (its state worded as in the table, unknown where it is unknown);
    // elsewhere: where the pointer is.
    const over = nearest(this.droneHits, ev.offsetX, ev.offsetY, 10);
    const hover = over ? this.hoverText(over.id) : "";
    if (this.canvas.dataset.hover !== (over?.id ?? "")) this.canvas.dataset.hover = over?.id ?? "";
    if (this.canvas.title !== hover) this.canvas.title = hover;
    if (hover) this.onCursor(hover);
    else if (this.origin) {
      const p = this.toLatLon(ev.offsetX, ev.offsetY);
      const l = toLocal(this.origin, p);
      this.onCursor(`${p.lat.toFixed(5)}, ${p.lon.toFixed(5)} · ${formatDistance(Math.hypot(l.x_m, l.y_m))} from home`);
    }
  };

  private readonly onPointerUp = (ev: PointerEvent) => {
    const d = this.drag;
    this.drag = null;
    this.canvas.classList.remove("dragging");
    if (!d || d.id !== ev.pointerId || d.moved || !this.origin) return;
    const x = ev.offsetX;
    const y = ev.offsetY;
    const suggestion = nearest(this.suggestionHits, x, y, 14)?.s ?? null;
    const drone = nearest(this.droneHits, x, y, 14);
    const cluster = nearest(this.clusterHits, x, y, 16);
    if (!suggestion && cluster && this.scene?.mode === "select" && !(drone && Math.hypot(drone.x - x, drone.y - y) < 6)) {
      // A cluster hides who is in it: zoom in until it breaks up.
      this.userMoved = true;
      this.zoomTo(this.snap ? Math.round(this.zoom) + 2 : this.zoom + 2, cluster.x, cluster.y);
      return;
    }
    const p = this.toLatLon(x, y);
    this.onClick({ lat: p.lat, lon: p.lon, droneId: drone?.id ?? null, suggestion });
  };

  private readonly onWheel = (ev: WheelEvent) => {
    ev.preventDefault();
    const dy = clamp(ev.deltaMode === 1 ? ev.deltaY * 33 : ev.deltaY, -300, 300);
    if (!this.snap) {
      this.userMoved = true;
      this.zoomTo(this.zoom - dy * 0.0022, ev.offsetX, ev.offsetY);
      return;
    }
    this.wheelAcc += dy;
    if (Math.abs(this.wheelAcc) < WHEEL_STEP) return;
    const steps = Math.trunc(this.wheelAcc / WHEEL_STEP);
    this.wheelAcc -= steps * WHEEL_STEP;
    this.userMoved = true;
    this.zoomTo(Math.round(this.zoom) - steps, ev.offsetX, ev.offsetY);
  };

  // ------------------------------------------------------------------ drawing

  private render(): void {
    const s = this.scene;
    const ctx = this.ctx;
    if (!s || !this.origin || !this.frame) {
      ctx.fillStyle = C.bg;
      ctx.fillRect(0, 0, this.width, this.height);
      this.drawCentered("Waiting for the fleet configuration…");
      return;
    }
    if (s.config && this.cached?.config !== s.config) {
      const w = (p: LatLon): Pt => ({ x: worldX(p.lon), y: worldY(p.lat) });
      this.cached = { config: s.config, fence: s.config.geofence.map(w), zones: s.config.no_fly_zones.map((z) => ({ name: z.name, poly: z.polygon.map(w) })) };
      this.configVersion++;
    }
    this.autoFit();

    const tiles = this.drawBase(s);
    this.updateAttribution(s.basemap, tiles);
    this.drawHome();
    const conflicting = new Set<string>();
    const active = s.model.activeEvents();
    for (const e of active) for (const id of e.drone_ids) conflicting.add(id);
    const layout = this.layoutDrones(s, conflicting);
    this.crowded = layout.drawn.length > CROWD;
    if (s.showTrails) this.drawTrails(s, layout);
    this.drawPlans(s);
    this.drawDraft(s);
    const pulsing = this.drawEvents(s);
    this.drawDrones(s, layout);
    this.drawCommandTargets(s);
    this.drawScale();
    this.setStat("zoom", this.zoom.toFixed(3));
    this.setStat("tileZoom", tiles ? String(tiles.z) : "");
    this.setStat("tiles", tiles ? `${tiles.loaded}/${tiles.total}` : "");

    clearTimeout(this.pulseTimer);
    // The rings pulse at ~16 frames a second; a crowded view redraws at its own data pace anyway.
    if (pulsing) this.pulseTimer = setTimeout(() => this.requestFrame(), this.crowded ? DATA_FRAME_MS : 60);
  }

  /**
   * The base layer (grid, tiles, geofence, zones) into its own canvas when what it shows changed,
   * then onto the screen. Tiles that failed are asked for again every TILE_RETRY_MS.
   */
  private drawBase(s: MapScene): { z: number; total: number; loaded: number; failed: number } | null {
    const b = s.basemap;
    const retry = this.baseTiles && this.baseTiles.failed > 0 ? Math.floor(performance.now() / TILE_RETRY_MS) : 0;
    const key = `${this.viewKey()}|${b.url}|${b.maxZoom}|${this.tilesVersion}|${this.configVersion}|${retry}`;
    if (key !== this.baseKey) {
      this.baseKey = key;
      this.setStat("baseDraws", String(++this.baseDraws));
      this.ctx = this.baseCtx;
      try {
        const ctx = this.ctx;
        ctx.fillStyle = C.bg;
        ctx.fillRect(0, 0, this.width, this.height);
        // The grid first: where tiles are missing or failed, it is what shows.
        this.drawGrid();
        this.baseTiles = b.url ? this.drawTiles(b) : null;
        if (this.cached) this.drawZones();
      } finally {
        this.ctx = this.screenCtx;
      }
    }
    // Physical pixels 1:1 (the base has the canvas's own size).
    this.ctx.save();
    this.ctx.setTransform(1, 0, 0, 1, 0, 0);
    this.ctx.drawImage(this.base, 0, 0);
    this.ctx.restore();
    return this.baseTiles;
  }

  /** Machine-readable state on the canvas element (tests, tools), written only when it changes. */
  private setStat(key: string, value: string): void {
    if (this.stats[key] === value) return;
    this.stats[key] = value;
    this.canvas.dataset[key] = value;
  }

  private drawCentered(text: string): void {
    const ctx = this.ctx;
    ctx.fillStyle = C.label;
    ctx.font = "13px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(text, this.width / 2, this.height / 2);
    ctx.textAlign = "start";
  }

  /** Lines every 1, 2 or 5 × 10^n metres east and north of home (the fleet's local frame). */
  private drawGrid(): void {
    const ctx = this.ctx;
    const f = this.frame!;
    const o = this.origin!;
    const step = niceStep(60 * metresPerPixel(o.lat, this.k));
    const tl = this.toLatLon(0, 0);
    const br = this.toLatLon(this.width, this.height);
    const [xm0, xm1, ym0, ym1] = [f.x(tl.lon), f.x(br.lon), f.y(br.lat), f.y(tl.lat)];
    if ((xm1 - xm0) / step > 400 || (ym1 - ym0) / step > 400) return;
    ctx.lineWidth = 1;
    for (let x = Math.floor(xm0 / step) * step; x <= xm1; x += step) {
      const p = f.toLatLon(x, 0);
      const sx = Math.round(this.ll({ lat: o.lat, lon: p.lon }).x) + 0.5;
      ctx.strokeStyle = Math.round(x / step) % 5 === 0 ? C.gridMajor : C.grid;
      ctx.beginPath();
      ctx.moveTo(sx, 0);
      ctx.lineTo(sx, this.height);
      ctx.stroke();
    }
    for (let y = Math.floor(ym0 / step) * step; y <= ym1; y += step) {
      const p = f.toLatLon(0, y);
      const sy = Math.round(this.ll({ lat: p.lat, lon: o.lon }).y) + 0.5;
      ctx.strokeStyle = Math.round(y / step) % 5 === 0 ? C.gridMajor : C.grid;
      ctx.beginPath();
      ctx.moveTo(0, sy);
      ctx.lineTo(this.width, sy);
      ctx.stroke();
    }
  }

  private path(poly: readonly Pt[]): void {
    const ctx = this.ctx;
    ctx.beginPath();
    poly.forEach((p, i) => {
      const q = this.ws(p);
      if (i === 0) ctx.moveTo(q.x, q.y);
      else ctx.lineTo(q.x, q.y);
    });
    ctx.closePath();
  }

  private drawZones(): void {
    const ctx = this.ctx;
    const c = this.cached!;
    this.path(c.fence);
    ctx.fillStyle = C.fenceFill;
    ctx.fill();
    ctx.setLineDash([8, 5]);
    ctx.strokeStyle = C.fence;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.setLineDash([]);
    const first = c.fence[0];
    if (first) this.label("geofence", this.ws(first), C.fence, 4, -6);

    for (const z of c.zones) {
      this.path(z.poly);
      ctx.fillStyle = C.noflyFill;
      ctx.fill();
      ctx.save();
      ctx.clip();
      ctx.strokeStyle = "rgba(244,63,94,0.25)";
      ctx.lineWidth = 1;
      const b = screenBounds(z.poly.map((p) => this.ws(p)));
      ctx.beginPath();
      for (let x = b.x0 - (b.y1 - b.y0); x < b.x1; x += 9) {
        ctx.moveTo(x, b.y1);
        ctx.lineTo(x + (b.y1 - b.y0), b.y0);
      }
      ctx.stroke();
      ctx.restore();
      this.path(z.poly);
      ctx.strokeStyle = C.nofly;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      this.label(`⊘ ${z.name}`, this.ws(centroid(z.poly)), C.nofly, -20, 4);
    }
  }

  private drawHome(): void {
    const ctx = this.ctx;
    const p = this.ll(this.origin!);
    ctx.strokeStyle = C.home;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.arc(p.x, p.y, 9, 0, Math.PI * 2);
    ctx.stroke();
    ctx.fillStyle = C.home;
    ctx.font = "bold 11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("H", p.x, p.y + 0.5);
    ctx.textAlign = "start";
    ctx.textBaseline = "alphabetic";
  }

  /** Trails fade with age: four alpha bands, one path per colour and band for the whole fleet. In
   * a crowd only the drones that matter keep a trail (hundreds of short strokes are a blur that
   * costs more to draw than everything else). */
  private drawTrails(s: MapScene, layout: DroneLayout): void {
    const ctx = this.ctx;
    const bands = 4;
    const crowd = layout.drawn.length > CROWD;
    const only = crowd ? new Set(layout.drawn.filter((m) => m.priority).map((m) => m.id)) : null;
    const clustered = layout.dc.clustered;
    const since = crowd ? s.now - 15_000 : -Infinity;
    const paths = new Map<string, Path2D[]>();
    const margin = 200;
    for (const [id, d] of s.model.drones) {
      const t = d.trail;
      // A clustered drone is a faded dot: its trail would only add to the blur.
      if (t.length < 2 || clustered.has(id) || (only && !only.has(id))) continue;
      let i0 = t.length - 1;
      while (i0 > 0 && t[i0 - 1]!.t >= since) i0--;
      if (t.length - i0 < 2) continue;
      const head = this.ll(t[t.length - 1]!);
      if (head.x < -margin || head.y < -margin || head.x > this.width + margin || head.y > this.height + margin) continue;
      const color = droneColor(d.sample);
      let bandPaths = paths.get(color);
      if (!bandPaths) paths.set(color, (bandPaths = Array.from({ length: bands }, () => new Path2D())));
      const n = t.length - 1 - i0;
      for (let b = 0; b < bands; b++) {
        const from = i0 + Math.floor(n * (b / bands));
        const to = i0 + Math.floor(n * ((b + 1) / bands));
        if (to <= from) continue;
        const p = bandPaths[b]!;
        for (let i = from; i <= to; i++) {
          const q = this.ll(t[i]!);
          if (i === from) p.moveTo(q.x, q.y);
          else p.lineTo(q.x, q.y);
        }
      }
    }
    ctx.lineWidth = 1.5;
    for (const [color, bandPaths] of paths) {
      bandPaths.forEach((p, b) => {
        ctx.strokeStyle = withAlpha(color, 0.12 + 0.5 * ((b + 1) / bands));
        ctx.stroke(p);
      });
    }
  }

  private drawPlans(s: MapScene): void {
    const ctx = this.ctx;
    // Many plans (collision avoidance re-routes dozens at once): lines for all, numbered markers
    // and captions only for the selected drone's.
    const markers = s.model.plans.size <= 20;
    const captions = s.model.plans.size <= 8;
    for (const [id, plan] of s.model.plans) {
      const d = s.model.drones.get(id);
      const rest = plan.waypoints.slice(plan.index);
      if (!rest.length) continue;
      const sel = id === s.selected;
      ctx.strokeStyle = withAlpha(C.plan, sel ? 0.9 : 0.45);
      ctx.lineWidth = sel ? 1.8 : 1.2;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      let started = false;
      if (d) {
        const q = this.ll(d.sample);
        ctx.moveTo(q.x, q.y);
        started = true;
      }
      for (const w of rest) {
        const q = this.ll(w);
        if (!started) ctx.moveTo(q.x, q.y);
        else ctx.lineTo(q.x, q.y);
        started = true;
      }
      ctx.stroke();
      ctx.setLineDash([]);
      if (!markers && !sel) continue;
      rest.forEach((w, i) => {
        const q = this.ll(w);
        ctx.fillStyle = C.bg;
        ctx.strokeStyle = withAlpha(C.plan, sel ? 1 : 0.6);
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.arc(q.x, q.y, 6, 0, Math.PI * 2);
        ctx.fill();
        ctx.stroke();
        ctx.fillStyle = withAlpha(C.plan, sel ? 1 : 0.7);
        ctx.font = "9px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(plan.kind === "mission" ? String(plan.index + i + 1) : "◎", q.x, q.y + 0.5);
        ctx.textAlign = "start";
        ctx.textBaseline = "alphabetic";
        if (sel || (captions && i === rest.length - 1)) this.label(`${id} ${Math.round(w.alt_m)} m`, q, withAlpha(C.plan, 0.75), 9, -7);
      });
    }
  }

  private drawDraft(s: MapScene): void {
    if (!s.draft.length && s.mode !== "mission") return;
    const ctx = this.ctx;
    ctx.strokeStyle = C.draft;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.draft.forEach((w, i) => {
      const q = this.ll(w);
      if (i === 0) ctx.moveTo(q.x, q.y);
      else ctx.lineTo(q.x, q.y);
    });
    ctx.stroke();
    s.draft.forEach((w, i) => {
      const q = this.ll(w);
      ctx.fillStyle = C.draft;
      ctx.beginPath();
      ctx.arc(q.x, q.y, 8, 0, Math.PI * 2);
      ctx.fill();
      ctx.fillStyle = "#111827";
      ctx.font = "bold 10px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText(String(i + 1), q.x, q.y + 0.5);
      ctx.textAlign = "start";
      ctx.textBaseline = "alphabetic";
    });
  }

  /** Returns true when something pulses (the caller schedules the next frame). */
  private drawEvents(s: MapScene): boolean {
    const ctx = this.ctx;
    const active = s.model.activeEvents();
    if (!active.length) return false;
    // 0 → 1 every 1.2 s: the rings grow and fade.
    const pulse = (performance.now() % 1200) / 1200;
    for (const e of active) {
      const pts = e.drone_ids.map((id) => s.model.drones.get(id)).filter((d) => d !== undefined).map((d) => this.ll(d.sample));
      if (!pts.length) continue;
      ctx.strokeStyle = C.event;
      ctx.lineWidth = 2;
      ctx.setLineDash([3, 3]);
      for (let i = 1; i < pts.length; i++) {
        ctx.beginPath();
        ctx.moveTo(pts[0]!.x, pts[0]!.y);
        ctx.lineTo(pts[i]!.x, pts[i]!.y);
        ctx.stroke();
      }
      ctx.setLineDash([]);
      for (const p of pts) {
        ctx.strokeStyle = withAlpha(C.event, 1 - pulse);
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(p.x, p.y, 12 + pulse * 16, 0, Math.PI * 2);
        ctx.stroke();
      }
      if (active.length > EVENT_LABELS_UP_TO && !(s.selected && e.drone_ids.includes(s.selected))) continue;
      const mid = pts.reduce((a, p) => ({ x: a.x + p.x / pts.length, y: a.y + p.y / pts.length }), { x: 0, y: 0 });
      this.label(`${e.event_type.replace(/_/g, " ")} · ${e.strategy.replace(/_/g, " ")}`, mid, C.event, 10, 16);
    }
    return true;
  }

  /** Where each drone in view goes, and which are clustered or labelled. */
  private layoutDrones(s: MapScene, conflicting: ReadonlySet<string>): DroneLayout {
    const drawn: Drawn[] = [];
    for (const [id, d] of s.model.drones) {
      const q = this.ll(d.sample);
      if (q.x < -30 || q.y < -30 || q.x > this.width + 30 || q.y > this.height + 30) continue;
      const stale = s.model.isStale(d, s.now);
      drawn.push({
        id,
        x: q.x,
        y: q.y,
        priority: id === s.selected || conflicting.has(id) || d.sample.status === "emergency",
        pinned: id === s.selected,
        heading: d.sample.heading_deg,
        color: stale ? C.stale : droneColor(d.sample),
        stale,
        unknown: isStateUnknown(d.sample),
      });
    }
    const size = drawn.length > MANY ? 6 : 9;
    const dc = declutter(drawn, {
      cellPx: 44,
      clusterMin: 8,
      labelAllUpTo: MANY,
      maxLabels: MAX_LABELS,
      labelWidth: (id) => this.labelWidth(id),
      labelHeight: 13,
      labelDx: size + 3,
      labelDy: 4,
      markerPx: size,
    });
    return { drawn, dc, size };
  }

  private drawDrones(s: MapScene, { drawn, dc, size }: DroneLayout): void {
    const ctx = this.ctx;

    // Clustered drones: faded dots, one path per colour.
    const dots = new Map<string, Path2D>();
    const arrows = new Map<string, Path2D>();
    const outline = new Path2D();
    const staleOutline = new Path2D();
    const top: Drawn[] = [];
    const crowd = drawn.length > CROWD;
    for (const m of drawn) {
      if (dc.clustered.has(m.id)) {
        let p = dots.get(m.color);
        if (!p) dots.set(m.color, (p = new Path2D()));
        p.rect(m.x - 1.5, m.y - 1.5, 3, 3);
        continue;
      }
      if (m.priority) {
        top.push(m); // drawn last, above everything else
        continue;
      }
      let p = arrows.get(m.color);
      if (!p) arrows.set(m.color, (p = new Path2D()));
      arrow(p, m.x, m.y, m.heading, size);
      // In a crowd only stale arrows get their (dashed) outline: do not build the others.
      if (m.stale) arrow(staleOutline, m.x, m.y, m.heading, size);
      else if (!crowd) arrow(outline, m.x, m.y, m.heading, size);
    }
    ctx.globalAlpha = 0.5;
    for (const [color, p] of dots) {
      ctx.fillStyle = color;
      ctx.fill(p);
    }
    ctx.globalAlpha = 1;
    // Labels under the arrows: a label may be partly hidden, a drone never is.
    const byId = new Map(drawn.map((m) => [m.id, m]));
    for (const id of dc.labels) {
      const m = byId.get(id)!;
      this.label(this.labelText(m), m, m.id === s.selected ? C.selected : m.priority ? "#fde68a" : C.label, (m.priority ? 9 : size) + 3, 4);
    }
    for (const [color, p] of arrows) {
      ctx.fillStyle = color;
      ctx.fill(p);
    }
    // Outlines set arrows apart on light tiles; in a crowd the fill alone says enough (and a
    // thousand outlines cost as much again to draw). Stale arrows keep their dashed outline.
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(0,0,0,0.6)";
    if (!crowd) ctx.stroke(outline);
    ctx.setLineDash([2, 2]);
    ctx.stroke(staleOutline);
    ctx.setLineDash([]);

    this.drawClusters(dc.clusters, s);

    for (const m of top) {
      const p = new Path2D();
      arrow(p, m.x, m.y, m.heading, 9);
      ctx.fillStyle = m.color;
      ctx.fill(p);
      const sel = m.id === s.selected;
      ctx.lineWidth = sel ? 2.5 : 1.5;
      ctx.strokeStyle = sel ? C.selected : "rgba(0,0,0,0.8)";
      if (m.stale) ctx.setLineDash([2, 2]);
      ctx.stroke(p);
      ctx.setLineDash([]);
      if (sel) {
        ctx.strokeStyle = C.selected;
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.arc(m.x, m.y, 9 * 2.1, 0, Math.PI * 2);
        ctx.stroke();
      }
    }
    this.droneHits = drawn;
    this.clusterHits = dc.clusters;
    this.setStat("drones", String(drawn.length));
    this.setStat("labels", String(dc.labels.length));
    // The labels' words, for tests and tools (at most MAX_LABELS of them).
    this.setStat("labelTexts", dc.labels.map((id) => this.labelText(byId.get(id)!)).join("|"));
    this.setStat("clusters", String(dc.clusters.length));
  }

  /** Cluster badges, batched: one path per ring colour, the font set once for all counts (setting
   * a canvas font parses it, and a hundred badges each setting theirs cost more than the badges). */
  private drawClusters(clusters: readonly Cluster[], s: MapScene): void {
    if (!clusters.length) return;
    const ctx = this.ctx;
    const rings = new Map<string, Path2D>();
    const fill = new Path2D();
    for (const c of clusters) {
      // The badge's ring takes the most urgent colour inside it.
      let ring = C.label;
      let rank = -1;
      for (const id of c.ids) {
        const sample = s.model.drones.get(id)?.sample;
        if (!sample) continue;
        const st = sample.status;
        // A drone of unknown state inferred airborne ranks with the flying ones.
        const unknownAirborne = isStateUnknown(sample) && inferAirborne(sample);
        const r = unknownAirborne ? 1.5 : st === "emergency" ? 3 : st === "returning" ? 2 : st === "flying" ? 1 : 0;
        if (r > rank) {
          rank = r;
          ring = droneColor(sample);
        }
      }
      const r = 9 + Math.min(9, Math.log2(c.count) * 2);
      fill.moveTo(c.x + r, c.y);
      fill.arc(c.x, c.y, r, 0, Math.PI * 2);
      let p = rings.get(ring);
      if (!p) rings.set(ring, (p = new Path2D()));
      p.moveTo(c.x + r, c.y);
      p.arc(c.x, c.y, r, 0, Math.PI * 2);
    }
    ctx.fillStyle = C.cluster;
    ctx.fill(fill);
    ctx.lineWidth = 2;
    for (const [color, p] of rings) {
      ctx.strokeStyle = color;
      ctx.stroke(p);
    }
    ctx.fillStyle = "#f8fafc";
    ctx.font = "bold 11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const c of clusters) ctx.fillText(String(c.count), c.x, c.y + 0.5);
    ctx.textAlign = "start";
    ctx.textBaseline = "alphabetic";
  }

  /** A drone's label: its id, and what is uncertain about it (stale data, unknown state). */
  private labelText(m: Drawn): string {
    const d = this.scene?.model.drones.get(m.id);
    const unknown = m.unknown && d ? stateView(d.sample).mapSuffix : "";
    return `${m.id}${m.stale ? " (stale)" : ""}${unknown}`;
  }

  /** The hover readout over a drone: who it is and its state as the table words it. */
  private hoverText(id: string): string {
    const s = this.scene;
    const d = s?.model.drones.get(id);
    if (!s || !d) return "";
    const st = stateView(d.sample);
    const stale = s.model.isStale(d, s.now) ? " · stale" : "";
    return `${id} · ${st.short}${stale} · ${d.sample.alt_m.toFixed(0)} m · ${d.sample.speed_mps.toFixed(1)} m/s · ${d.sample.battery_pct.toFixed(0)} %`;
  }

  /** Label width, measured once per text (measureText for 1,000 labels a frame is not free). */
  private labelWidth(id: string): number {
    const text = id;
    let w = this.labelWidths.get(text);
    if (w === undefined) {
      if (this.labelWidths.size > 5000) this.labelWidths.clear();
      this.ctx.font = LABEL_FONT;
      w = this.ctx.measureText(text).width;
      this.labelWidths.set(text, w);
    }
    return w;
  }

  private drawCommandTargets(s: MapScene): void {
    const ctx = this.ctx;
    this.suggestionHits = [];
    if (s.pendingTarget) {
      const q = this.ll(s.pendingTarget);
      ctx.strokeStyle = C.pending;
      ctx.lineWidth = 2;
      crosshair(ctx, q.x, q.y, 10);
      this.label("sending…", q, C.pending, 12, -8);
    }
    if (s.rejected) {
      const t = this.ll(s.rejected.target);
      ctx.strokeStyle = C.rejected;
      ctx.lineWidth = 2.5;
      ctx.beginPath();
      ctx.moveTo(t.x - 7, t.y - 7);
      ctx.lineTo(t.x + 7, t.y + 7);
      ctx.moveTo(t.x + 7, t.y - 7);
      ctx.lineTo(t.x - 7, t.y + 7);
      ctx.stroke();
      this.label("rejected", t, C.rejected, 10, -8);
      s.rejected.suggestions.forEach((sg, i) => {
        const q = this.ll(sg);
        ctx.setLineDash([2, 3]);
        ctx.strokeStyle = withAlpha(C.suggestion, 0.6);
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.moveTo(t.x, t.y);
        ctx.lineTo(q.x, q.y);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = C.suggestion;
        ctx.beginPath();
        ctx.moveTo(q.x, q.y - 9);
        ctx.lineTo(q.x + 9, q.y);
        ctx.lineTo(q.x, q.y + 9);
        ctx.lineTo(q.x - 9, q.y);
        ctx.closePath();
        ctx.fill();
        ctx.fillStyle = "#111827";
        ctx.font = "bold 10px system-ui, sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(String(i + 1), q.x, q.y + 0.5);
        ctx.textAlign = "start";
        ctx.textBaseline = "alphabetic";
        this.suggestionHits.push({ s: sg, x: q.x, y: q.y });
      });
    }
  }

  private drawScale(): void {
    const ctx = this.ctx;
    // Mercator's scale changes with latitude: the bar is true at the view's centre.
    const mpp = metresPerPixel(latOf(this.wy), this.k);
    const metres = niceStep(120 * mpp);
    const px = metres / mpp;
    const x = 12;
    const y = this.height - 14;
    ctx.strokeStyle = C.label;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(x, y - 5);
    ctx.lineTo(x, y);
    ctx.lineTo(x + px, y);
    ctx.lineTo(x + px, y - 5);
    ctx.stroke();
    this.label(formatDistance(metres), { x: x + px, y }, C.label, 6, 0);
    // North arrow: the map is north-up.
    const nx = this.width - 22;
    const ny = 26;
    ctx.fillStyle = C.label;
    ctx.beginPath();
    ctx.moveTo(nx, ny - 12);
    ctx.lineTo(nx + 6, ny + 4);
    ctx.lineTo(nx, ny);
    ctx.lineTo(nx - 6, ny + 4);
    ctx.closePath();
    ctx.fill();
    ctx.font = "bold 10px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText("N", nx, ny + 16);
    ctx.textAlign = "start";
  }

  private label(text: string, at: Pt, color: string, dx: number, dy: number): void {
    const ctx = this.ctx;
    ctx.font = LABEL_FONT;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(11,18,32,0.85)";
    ctx.strokeText(text, at.x + dx, at.y + dy);
    ctx.fillStyle = color;
    ctx.fillText(text, at.x + dx, at.y + dy);
  }

  // ------------------------------------------------------------------ tiles

  /** Draw the tiles in view; a tile not there yet is stood in for by a loaded one from a few
   * levels above, scaled. Returns what the view holds, for the attribution line. */
  private drawTiles(b: BaseMap): { z: number; total: number; loaded: number; failed: number } {
    const ctx = this.ctx;
    const z = tileZoomFor(this.zoom, b.maxZoom);
    const list = tilesInView(this.view(), z);
    let failed = 0;
    let loaded = 0;
    // Whole-level zoom draws tiles 1:1; scaling (overzoom, fractional zoom) smooths.
    ctx.imageSmoothingEnabled = Math.abs(this.zoom - z) > 1e-9;
    const now = performance.now();
    for (const t of list) {
      const tile = this.tile(tileUrl(b.url, t.z, t.x, t.y), now);
      if (tile.state === "ok") {
        ctx.drawImage(tile.img, t.sx, t.sy, t.sw, t.sh);
        loaded++;
        continue;
      }
      if (tile.state === "error") failed++;
      for (let dz = 1; dz <= TILE_FALLBACK_LEVELS && dz <= t.z; dz++) {
        const parent = this.tiles.get(tileUrl(b.url, t.z - dz, t.x >> dz, t.y >> dz));
        if (parent?.state !== "ok") continue;
        const part = TILE_PX / 2 ** dz;
        const mask = 2 ** dz - 1;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(parent.img, (t.x & mask) * part, (t.y & mask) * part, part, part, t.sx, t.sy, t.sw, t.sh);
        break;
      }
    }
    ctx.imageSmoothingEnabled = true;
    return { z, total: list.length, loaded, failed };
  }

  private tile(url: string, now: number): Tile {
    let t = this.tiles.get(url);
    if (t && !(t.state === "error" && now - t.at > TILE_RETRY_MS)) {
      // LRU: re-insert so the oldest entries are the first ones iterated.
      this.tiles.delete(url);
      this.tiles.set(url, t);
      return t;
    }
    const img = new Image();
    // No crossOrigin: tile servers need not send CORS headers; the page never reads the canvas back.
    img.decoding = "async";
    const fresh: Tile = { img, state: "loading", at: now };
    t = fresh;
    img.src = url;
    // decode() resolves once the image is decoded off the main thread, so drawing it costs no decode.
    img.decode().then(
      () => {
        fresh.state = "ok";
        this.tilesVersion++;
        this.requestFrame();
      },
      () => {
        fresh.state = "error";
        fresh.at = performance.now();
        this.tilesVersion++;
        this.requestFrame();
      },
    );
    this.tiles.delete(url);
    this.tiles.set(url, t);
    while (this.tiles.size > TILE_CACHE) {
      const oldest = this.tiles.keys().next().value;
      if (oldest === undefined) break;
      this.tiles.delete(oldest);
    }
    return t;
  }

  private updateAttribution(b: BaseMap, tiles: { total: number; failed: number } | null): void {
    let text = "";
    if (b.url) {
      text = b.attribution;
      if (tiles && tiles.failed > 0) {
        const note = tiles.failed >= tiles.total ? "base map tiles unavailable: grid shown" : `${tiles.failed} of ${tiles.total} tiles failed`;
        text = text ? `${text} · ${note}` : note;
      }
    }
    if (text === this.attributionText) return;
    this.attributionText = text;
    this.attribution.textContent = text;
    this.attribution.hidden = !text;
    this.attribution.dataset.failed = tiles && tiles.failed > 0 ? "true" : "false";
  }
}

// ------------------------------------------------------------------ helpers

/** A drone's colour: its status's, or the unknown-state colour when the status is a placeholder. */
function droneColor(s: { status: (typeof DRONE_STATUSES)[number]; state_known?: boolean }): string {
  return isStateUnknown(s) ? UNKNOWN_STATE_COLOR : (STATUS_COLORS[s.status] ?? C.label);
}

/** A drone arrow (pointing along `headingDeg`, clockwise from north) added to `p`. */
function arrow(p: Path2D, x: number, y: number, headingDeg: number, size: number): void {
  const a = (headingDeg * Math.PI) / 180;
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  // Rotate (dx, dy) by the heading: screen y grows downwards, so north is -y.
  const pt = (dx: number, dy: number): [number, number] => [x + dx * cos - dy * sin, y + dx * sin + dy * cos];
  const [x0, y0] = pt(0, -size * 1.3);
  const [x1, y1] = pt(size * 0.85, size);
  const [x2, y2] = pt(0, size * 0.45);
  const [x3, y3] = pt(-size * 0.85, size);
  p.moveTo(x0, y0);
  p.lineTo(x1, y1);
  p.lineTo(x2, y2);
  p.lineTo(x3, y3);
  p.closePath();
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/** 1, 2 or 5 × 10^n, the first at or above `v`. */
export function niceStep(v: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(v, 1e-6)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatDistance(m: number): string {
  return m >= 1000 ? `${(m / 1000).toFixed(m >= 10_000 ? 0 : 1)} km` : `${Math.round(m)} m`;
}

function nearest<T extends Pt>(items: readonly T[], x: number, y: number, maxPx: number): T | undefined {
  let best: T | undefined;
  let bestD = maxPx;
  for (const it of items) {
    const d = Math.hypot(it.x - x, it.y - y);
    if (d <= bestD) {
      best = it;
      bestD = d;
    }
  }
  return best;
}

function centroid(poly: readonly Pt[]): Pt {
  const n = poly.length || 1;
  return { x: poly.reduce((a, p) => a + p.x, 0) / n, y: poly.reduce((a, p) => a + p.y, 0) / n };
}

function screenBounds(pts: readonly Pt[]) {
  return {
    x0: Math.min(...pts.map((p) => p.x)),
    x1: Math.max(...pts.map((p) => p.x)),
    y0: Math.min(...pts.map((p) => p.y)),
    y1: Math.max(...pts.map((p) => p.y)),
  };
}

function crosshair(ctx: CanvasRenderingContext2D, x: number, y: number, r: number): void {
  ctx.beginPath();
  ctx.arc(x, y, r * 0.6, 0, Math.PI * 2);
  ctx.moveTo(x - r, y);
  ctx.lineTo(x + r, y);
  ctx.moveTo(x, y - r);
  ctx.lineTo(x, y + r);
  ctx.stroke();
}

/** `#rrggbb` with an alpha. */
function withAlpha(hex: string, a: number): string {
  if (!hex.startsWith("#") || hex.length !== 7) return hex;
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a.toFixed(3)})`;
}

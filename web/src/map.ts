/**
 * The fleet map: a canvas in local metres around the fleet's home (x east, y north), so it works
 * with no tile server and no internet. Draws the geofence, no-fly zones, home, trails, planned
 * waypoints, the mission being planned, rejected targets with their suggested alternatives,
 * coordination events (pulsing, with a line between the drones involved) and the drones as
 * arrows pointing along their heading, coloured by status.
 *
 * Pan by dragging, zoom with the wheel (around the cursor) or the +/− buttons. A click that did not
 * drag is reported with its WGS84 position and what it hit. An optional slippy-tile URL template
 * draws tiles underneath, for users who have their own tile server.
 */
import type { FleetConfig } from "../../edge/domain/fleet-config";
import { fromLocal, makeLocalFrame, toLocal, type LatLon, type LocalFrame, type LocalPoint } from "../../edge/domain/geo";
import type { AlternativeSuggestion, CoordinationEventView, DRONE_STATUSES, Waypoint } from "../../edge/protocol";
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
  tileTemplate: string;
  now: number;
};

export type MapClick = { lat: number; lon: number; droneId: string | null; suggestion: AlternativeSuggestion | null };

type StatusColor = Record<(typeof DRONE_STATUSES)[number], string>;
export const STATUS_COLORS: StatusColor = {
  idle: "#9aa4b2",
  taking_off: "#38bdf8",
  flying: "#34d399",
  returning: "#fbbf24",
  landing: "#a78bfa",
  landed: "#64748b",
  charging: "#60a5fa",
  emergency: "#f43f5e",
};

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
};

const MIN_SCALE = 0.005; // px per metre: ~200 km across
const MAX_SCALE = 40; // 2.5 cm per px
const DRAG_PX = 5;
const TILE_CACHE = 256;
const MAX_TILES = 120;

export class MapView {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private origin: LatLon | null = null;
  private frame: LocalFrame | null = null;
  /** View centre (local metres) and scale (CSS px per metre). */
  private cx = 0;
  private cy = 0;
  private scale = 0.2;
  private width = 0;
  private height = 0;
  /** Auto-fit state: the operator's own pan/zoom always wins over it. */
  private userMoved = false;
  private fenceFitted = false;
  private fleetFitted = false;
  private scene: MapScene | null = null;
  private raf = 0;
  private pulseTimer: ReturnType<typeof setTimeout> | undefined;
  private drag: { x: number; y: number; cx: number; cy: number; moved: boolean; id: number } | null = null;
  /** Screen positions from the last draw, for hit tests. */
  private droneHits: { id: string; x: number; y: number }[] = [];
  private suggestionHits: { s: AlternativeSuggestion; x: number; y: number }[] = [];
  private readonly tiles = new Map<string, HTMLImageElement>();
  private cached: { config: FleetConfig; fence: LocalPoint[]; zones: { name: string; poly: LocalPoint[] }[] } | null = null;
  private cursor: LocalPoint | null = null;

  constructor(
    private readonly container: HTMLElement,
    private readonly onClick: (c: MapClick) => void,
    private readonly onCursor: (text: string) => void,
  ) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "map-canvas";
    this.canvas.setAttribute("aria-label", "Fleet map");
    this.canvas.tabIndex = 0;
    container.prepend(this.canvas);
    const ctx = this.canvas.getContext("2d");
    if (!ctx) throw new Error("canvas 2D is not available");
    this.ctx = ctx;
    new ResizeObserver(() => this.resize()).observe(container);
    this.canvas.addEventListener("pointerdown", this.onPointerDown);
    this.canvas.addEventListener("pointermove", this.onPointerMove);
    this.canvas.addEventListener("pointerup", this.onPointerUp);
    this.canvas.addEventListener("pointerleave", () => {
      this.cursor = null;
      this.onCursor("");
    });
    this.canvas.addEventListener("wheel", this.onWheel, { passive: false });
    this.resize();
  }

  /** Render `scene` on the next animation frame (coalesced). */
  draw(scene: MapScene): void {
    this.scene = scene;
    if (scene.config && (!this.origin || this.origin.lat !== scene.config.home.lat || this.origin.lon !== scene.config.home.lon)) {
      this.origin = scene.config.home;
      this.frame = makeLocalFrame(scene.config.home);
      this.fenceFitted = false;
      this.fleetFitted = false;
    }
    if (!this.raf) this.raf = requestAnimationFrame(() => this.render());
  }

  /** Fit the whole geofence into view. */
  fitGeofence(): void {
    if (this.cached?.fence.length) this.fitTo(this.cached.fence, 100);
  }

  /** Fit home, every drone and their planned waypoints into view (at least ~300 m across). */
  fitFleet(): void {
    const s = this.scene;
    if (!s || !this.frame) return;
    const f = this.frame;
    const pts: LocalPoint[] = [{ x_m: 0, y_m: 0 }];
    for (const d of s.model.drones.values()) pts.push({ x_m: f.x(d.sample.lon), y_m: f.y(d.sample.lat) });
    for (const p of s.model.plans.values()) for (const w of p.waypoints) pts.push({ x_m: f.x(w.lon), y_m: f.y(w.lat) });
    this.fitTo(pts, 300);
  }

  private fitTo(pts: LocalPoint[], minSpanM: number): void {
    if (!pts.length || this.width < 2) return;
    const xs = pts.map((p) => p.x_m);
    const ys = pts.map((p) => p.y_m);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    this.cx = (x0 + x1) / 2;
    this.cy = (y0 + y1) / 2;
    const spanX = Math.max(x1 - x0, minSpanM) * 1.15;
    const spanY = Math.max(y1 - y0, minSpanM) * 1.15;
    this.scale = clamp(Math.min(this.width / spanX, this.height / spanY), MIN_SCALE, MAX_SCALE);
    this.redraw();
  }

  /** The first view: the geofence while no drone is known, then the fleet once drones report
   * (unless the operator has panned or zoomed by then). */
  private autoFit(): void {
    if (this.userMoved || this.fleetFitted || this.width < 2) return;
    if (this.scene && this.scene.model.drones.size > 0) {
      this.fleetFitted = true;
      this.fitFleet();
    } else if (!this.fenceFitted && this.cached) {
      this.fenceFitted = true;
      this.fitGeofence();
    }
  }

  zoomBy(factor: number, sx = this.width / 2, sy = this.height / 2): void {
    this.userMoved = true;
    const before = this.toLocal(sx, sy);
    this.scale = clamp(this.scale * factor, MIN_SCALE, MAX_SCALE);
    const after = this.toLocal(sx, sy);
    this.cx += before.x_m - after.x_m;
    this.cy += before.y_m - after.y_m;
    this.redraw();
  }

  /** Centre on a drone without changing the zoom. */
  centerOn(p: LatLon): void {
    if (!this.frame) return;
    this.cx = this.frame.x(p.lon);
    this.cy = this.frame.y(p.lat);
    this.redraw();
  }

  /** Screen position (CSS px, relative to the canvas) of a WGS84 point; for tests and overlays. */
  project(p: LatLon): { x: number; y: number } | null {
    if (!this.origin) return null;
    return this.toScreen(toLocal(this.origin, p));
  }

  private redraw(): void {
    if (this.scene) this.draw(this.scene);
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
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.redraw();
  }

  private toScreen(p: LocalPoint): { x: number; y: number } {
    return { x: this.width / 2 + (p.x_m - this.cx) * this.scale, y: this.height / 2 - (p.y_m - this.cy) * this.scale };
  }

  private toLocal(x: number, y: number): LocalPoint {
    return { x_m: this.cx + (x - this.width / 2) / this.scale, y_m: this.cy - (y - this.height / 2) / this.scale };
  }

  /** Fast projection of a WGS84 point to the screen (drones, trails: many points per frame). */
  private ll(p: LatLon): { x: number; y: number } {
    const f = this.frame!;
    return this.toScreen({ x_m: f.x(p.lon), y_m: f.y(p.lat) });
  }

  // ------------------------------------------------------------------ input

  private readonly onPointerDown = (ev: PointerEvent) => {
    if (ev.button !== 0) return;
    this.canvas.setPointerCapture(ev.pointerId);
    this.drag = { x: ev.offsetX, y: ev.offsetY, cx: this.cx, cy: this.cy, moved: false, id: ev.pointerId };
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
        this.cx = d.cx - dx / this.scale;
        this.cy = d.cy + dy / this.scale;
        this.redraw();
      }
    }
    this.cursor = this.toLocal(ev.offsetX, ev.offsetY);
    if (this.origin) {
      const p = fromLocal(this.origin, this.cursor);
      const dist = Math.hypot(this.cursor.x_m, this.cursor.y_m);
      this.onCursor(`${p.lat.toFixed(5)}, ${p.lon.toFixed(5)} · ${formatDistance(dist)} from home`);
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
    const droneId = nearest(this.droneHits, x, y, 14)?.id ?? null;
    const p = fromLocal(this.origin, this.toLocal(x, y));
    this.onClick({ lat: p.lat, lon: p.lon, droneId, suggestion });
  };

  private readonly onWheel = (ev: WheelEvent) => {
    ev.preventDefault();
    const factor = Math.exp(-clamp(ev.deltaY, -300, 300) * 0.0015);
    this.zoomBy(factor, ev.offsetX, ev.offsetY);
  };

  // ------------------------------------------------------------------ drawing

  private render(): void {
    this.raf = 0;
    const s = this.scene;
    const ctx = this.ctx;
    ctx.fillStyle = C.bg;
    ctx.fillRect(0, 0, this.width, this.height);
    if (!s || !this.origin || !this.frame) {
      this.drawCentered("Waiting for the fleet configuration…");
      return;
    }
    if (s.config && this.cached?.config !== s.config) {
      const home = s.config.home;
      this.cached = {
        config: s.config,
        fence: toLocalRing(home, s.config.geofence),
        zones: s.config.no_fly_zones.map((z) => ({ name: z.name, poly: toLocalRing(home, z.polygon) })),
      };
    }
    this.autoFit();

    if (s.tileTemplate) this.drawTiles(s.tileTemplate);
    this.drawGrid();
    if (this.cached) this.drawZones();
    this.drawHome();
    if (s.showTrails) this.drawTrails(s);
    this.drawPlans(s);
    this.drawDraft(s);
    const pulsing = this.drawEvents(s);
    this.drawDrones(s);
    this.drawCommandTargets(s);
    this.drawScale();

    clearTimeout(this.pulseTimer);
    if (pulsing) this.pulseTimer = setTimeout(() => this.redraw(), 60);
  }

  private drawCentered(text: string): void {
    const ctx = this.ctx;
    ctx.fillStyle = C.label;
    ctx.font = "13px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(text, this.width / 2, this.height / 2);
    ctx.textAlign = "start";
  }

  private drawGrid(): void {
    const ctx = this.ctx;
    // Minor lines ~40-100 px apart: 1, 2 or 5 × 10^n metres.
    const step = niceStep(60 / this.scale);
    const tl = this.toLocal(0, 0);
    const br = this.toLocal(this.width, this.height);
    ctx.lineWidth = 1;
    for (let x = Math.floor(tl.x_m / step) * step; x <= br.x_m; x += step) {
      const sx = Math.round(this.toScreen({ x_m: x, y_m: 0 }).x) + 0.5;
      ctx.strokeStyle = Math.round(x / step) % 5 === 0 ? C.gridMajor : C.grid;
      ctx.beginPath();
      ctx.moveTo(sx, 0);
      ctx.lineTo(sx, this.height);
      ctx.stroke();
    }
    for (let y = Math.floor(br.y_m / step) * step; y <= tl.y_m; y += step) {
      const sy = Math.round(this.toScreen({ x_m: 0, y_m: y }).y) + 0.5;
      ctx.strokeStyle = Math.round(y / step) % 5 === 0 ? C.gridMajor : C.grid;
      ctx.beginPath();
      ctx.moveTo(0, sy);
      ctx.lineTo(this.width, sy);
      ctx.stroke();
    }
  }

  private path(poly: LocalPoint[]): void {
    const ctx = this.ctx;
    ctx.beginPath();
    poly.forEach((p, i) => {
      const q = this.toScreen(p);
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
    if (first) this.label("geofence", this.toScreen(first), C.fence, 4, -6);

    for (const z of c.zones) {
      this.path(z.poly);
      ctx.fillStyle = C.noflyFill;
      ctx.fill();
      ctx.save();
      ctx.clip();
      ctx.strokeStyle = "rgba(244,63,94,0.25)";
      ctx.lineWidth = 1;
      const b = screenBounds(z.poly.map((p) => this.toScreen(p)));
      for (let x = b.x0 - (b.y1 - b.y0); x < b.x1; x += 9) {
        ctx.beginPath();
        ctx.moveTo(x, b.y1);
        ctx.lineTo(x + (b.y1 - b.y0), b.y0);
        ctx.stroke();
      }
      ctx.restore();
      this.path(z.poly);
      ctx.strokeStyle = C.nofly;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      const cen = centroid(z.poly);
      this.label(`⊘ ${z.name}`, this.toScreen(cen), C.nofly, -20, 4);
    }
  }

  private drawHome(): void {
    const ctx = this.ctx;
    const p = this.toScreen({ x_m: 0, y_m: 0 });
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

  private drawTrails(s: MapScene): void {
    const ctx = this.ctx;
    ctx.lineWidth = 1.5;
    for (const d of s.model.drones.values()) {
      const t = d.trail;
      if (t.length < 2) continue;
      const color = STATUS_COLORS[d.sample.status] ?? C.label;
      // Older segments fade out: four alpha bands instead of one stroke per segment.
      const bands = 4;
      for (let b = 0; b < bands; b++) {
        const from = Math.floor((t.length - 1) * (b / bands));
        const to = Math.floor((t.length - 1) * ((b + 1) / bands));
        if (to <= from) continue;
        ctx.strokeStyle = withAlpha(color, 0.12 + 0.5 * ((b + 1) / bands));
        ctx.beginPath();
        for (let i = from; i <= to; i++) {
          const q = this.ll(t[i]!);
          if (i === from) ctx.moveTo(q.x, q.y);
          else ctx.lineTo(q.x, q.y);
        }
        ctx.stroke();
      }
    }
  }

  private drawPlans(s: MapScene): void {
    const ctx = this.ctx;
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
        if (sel || i === rest.length - 1) this.label(`${id} ${Math.round(w.alt_m)} m`, q, withAlpha(C.plan, 0.75), 9, -7);
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
    const active: CoordinationEventView[] = s.model.activeEvents();
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
      const mid = pts.reduce((a, p) => ({ x: a.x + p.x / pts.length, y: a.y + p.y / pts.length }), { x: 0, y: 0 });
      this.label(`${e.event_type.replace(/_/g, " ")} · ${e.strategy.replace(/_/g, " ")}`, mid, C.event, 10, 16);
    }
    return true;
  }

  private drawDrones(s: MapScene): void {
    const ctx = this.ctx;
    this.droneHits = [];
    const many = s.model.drones.size > 60;
    for (const [id, d] of s.model.drones) {
      const q = this.ll(d.sample);
      if (q.x < -30 || q.y < -30 || q.x > this.width + 30 || q.y > this.height + 30) continue;
      this.droneHits.push({ id, x: q.x, y: q.y });
      const stale = s.model.isStale(d, s.now);
      const color = stale ? C.stale : (STATUS_COLORS[d.sample.status] ?? C.label);
      const size = many ? 6 : 9;
      ctx.save();
      ctx.translate(q.x, q.y);
      ctx.rotate((d.sample.heading_deg * Math.PI) / 180);
      ctx.beginPath();
      ctx.moveTo(0, -size * 1.3);
      ctx.lineTo(size * 0.85, size);
      ctx.lineTo(0, size * 0.45);
      ctx.lineTo(-size * 0.85, size);
      ctx.closePath();
      ctx.fillStyle = color;
      ctx.fill();
      ctx.lineWidth = id === s.selected ? 2.5 : 1;
      ctx.strokeStyle = id === s.selected ? C.selected : "rgba(0,0,0,0.6)";
      if (stale) ctx.setLineDash([2, 2]);
      ctx.stroke();
      ctx.restore();
      if (id === s.selected) {
        ctx.strokeStyle = C.selected;
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.arc(q.x, q.y, size * 2.1, 0, Math.PI * 2);
        ctx.stroke();
      }
      if (!many || id === s.selected) this.label(`${id}${stale ? " (stale)" : ""}`, q, id === s.selected ? C.selected : C.label, 12, 4);
    }
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
    const metres = niceStep(120 / this.scale);
    const px = metres * this.scale;
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

  private label(text: string, at: { x: number; y: number }, color: string, dx: number, dy: number): void {
    const ctx = this.ctx;
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(11,18,32,0.85)";
    ctx.strokeText(text, at.x + dx, at.y + dy);
    ctx.fillStyle = color;
    ctx.fillText(text, at.x + dx, at.y + dy);
  }

  // ------------------------------------------------------------------ optional tiles

  private drawTiles(template: string): void {
    if (!this.origin) return;
    const ctx = this.ctx;
    const mpp = 1 / this.scale;
    const lat0 = this.origin.lat;
    const z = clamp(Math.round(Math.log2((40_075_016.686 * Math.cos((lat0 * Math.PI) / 180)) / (256 * mpp))), 0, 19);
    const corners = [this.toLocal(0, 0), this.toLocal(this.width, this.height)].map((p) => fromLocal(this.origin!, p));
    const [a, b] = corners as [LatLon, LatLon];
    const x0 = lonToTile(Math.min(a.lon, b.lon), z);
    const x1 = lonToTile(Math.max(a.lon, b.lon), z);
    const y0 = latToTile(Math.max(a.lat, b.lat), z);
    const y1 = latToTile(Math.min(a.lat, b.lat), z);
    if ((x1 - x0 + 1) * (y1 - y0 + 1) > MAX_TILES) return;
    ctx.globalAlpha = 0.55;
    for (let tx = x0; tx <= x1; tx++) {
      for (let ty = y0; ty <= y1; ty++) {
        const url = template.replace("{z}", String(z)).replace("{x}", String(tx)).replace("{y}", String(ty));
        const img = this.tile(url);
        if (!img.complete || !img.naturalWidth) continue;
        const nw = this.ll({ lat: tileToLat(ty, z), lon: tileToLon(tx, z) });
        const se = this.ll({ lat: tileToLat(ty + 1, z), lon: tileToLon(tx + 1, z) });
        ctx.drawImage(img, nw.x, nw.y, se.x - nw.x, se.y - nw.y);
      }
    }
    ctx.globalAlpha = 1;
  }

  private tile(url: string): HTMLImageElement {
    let img = this.tiles.get(url);
    if (img) {
      // LRU: re-insert so the oldest entries are the first ones iterated.
      this.tiles.delete(url);
      this.tiles.set(url, img);
      return img;
    }
    img = new Image();
    img.crossOrigin = "anonymous";
    img.onload = () => this.redraw();
    img.src = url;
    this.tiles.set(url, img);
    if (this.tiles.size > TILE_CACHE) {
      const oldest = this.tiles.keys().next().value;
      if (oldest !== undefined) this.tiles.delete(oldest);
    }
    return img;
  }
}

// ------------------------------------------------------------------ helpers

function toLocalRing(home: LatLon, ring: readonly LatLon[]): LocalPoint[] {
  return ring.map((p) => toLocal(home, p));
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

function nearest<T extends { x: number; y: number }>(items: T[], x: number, y: number, maxPx: number): T | undefined {
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

function centroid(poly: LocalPoint[]): LocalPoint {
  const n = poly.length || 1;
  return { x_m: poly.reduce((a, p) => a + p.x_m, 0) / n, y_m: poly.reduce((a, p) => a + p.y_m, 0) / n };
}

function screenBounds(pts: { x: number; y: number }[]) {
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

const lonToTile = (lon: number, z: number) => Math.floor(((lon + 180) / 360) * 2 ** z);
const latToTile = (lat: number, z: number) => {
  const r = (lat * Math.PI) / 180;
  return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * 2 ** z);
};
const tileToLon = (x: number, z: number) => (x / 2 ** z) * 360 - 180;
const tileToLat = (y: number, z: number) => {
  const n = Math.PI - (2 * Math.PI * y) / 2 ** z;
  return (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)));
};

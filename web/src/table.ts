/**
 * The drone table, virtualised: only the rows in view (and a few either side) exist in the DOM,
 * whatever the fleet's size, so 1,000 drones cost what 30 do. Rows are a small pool re-bound to
 * whichever drones are in view; two spacer rows keep the scrollbar true to the whole list. Cells
 * are written only when their text changes. Battery is coloured by the fleet's thresholds (GET
 * /config), and the data age turns stale past the edge's 15 s.
 */
import type { FleetConfig } from "../../edge/domain/fleet-config";
import { formatAge, h, setClass, setText } from "./dom";
import { stateView, UNKNOWN_STATE_COLOR } from "./drone-state";
import { STATUS_COLORS } from "./map";
import type { FleetModel } from "./model";
import { rowWindow } from "./virtual";

type Row = {
  /** The drone this row shows now ("" while unbound). */
  id: string;
  tr: HTMLTableRowElement;
  idCell: HTMLElement;
  status: HTMLElement;
  dot: HTMLElement;
  mode: HTMLElement;
  batteryBar: HTMLElement;
  batteryText: HTMLElement;
  battery: HTMLElement;
  alt: HTMLElement;
  speed: HTMLElement;
  age: HTMLElement;
  link: HTMLElement;
  plan: HTMLElement;
};

const COLUMNS = 9;
/** Row height until one has been measured (CSS gives rows a fixed height, see styles.css). */
const DEFAULT_ROW_PX = 25;

export class DroneTable {
  private readonly pool: Row[] = [];
  private readonly tbody: HTMLTableSectionElement;
  private readonly scroller: HTMLElement;
  private readonly padTop: HTMLTableCellElement;
  private readonly padBottom: HTMLTableCellElement;
  private filter = "";
  private filtered: { source: readonly string[]; filter: string; ids: readonly string[] } = { source: [], filter: "", ids: [] };
  private rowPx = DEFAULT_ROW_PX;
  private measured = false;
  private headHeight: number | null = null;
  /** The last render's arguments, so a scroll can redraw the window before the next frame. */
  private last: { model: FleetModel; config: FleetConfig | null; selected: string | null } | null = null;

  constructor(
    root: HTMLElement,
    private readonly onSelect: (id: string) => void,
    /** Ask for a render on the next animation frame (scroll, filter). */
    private readonly requestFrame: () => void,
  ) {
    this.tbody = h("tbody");
    this.padTop = h("td", { colspan: COLUMNS });
    this.padBottom = h("td", { colspan: COLUMNS });
    const filter = h("input", { type: "search", class: "table-filter", placeholder: "Filter drones…", "aria-label": "Filter drones" });
    filter.addEventListener("input", () => {
      this.filter = filter.value.trim().toLowerCase();
      this.scroller.scrollTop = 0;
      this.requestFrame();
    });
    this.scroller = h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "drones", id: "drone-table" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", null, "Drone"),
            h("th", null, "Status"),
            h("th", null, "Mode"),
            h("th", { class: "num" }, "Battery"),
            h("th", { class: "num" }, "Alt m"),
            h("th", { class: "num" }, "Speed m/s"),
            h("th", { class: "num" }, "Data age"),
            h("th", null, "Link"),
            h("th", null, "Plan"),
          ),
        ),
        this.tbody,
      ),
    );
    this.tbody.append(h("tr", { class: "spacer", "aria-hidden": "true" }, this.padTop), h("tr", { class: "spacer", "aria-hidden": "true" }, this.padBottom));
    this.scroller.addEventListener("scroll", () => this.requestFrame(), { passive: true });
    root.append(filter, this.scroller);
  }

  /** The ids the table lists (natural order, filtered); recomputed only when either changed. */
  private ids(model: FleetModel): readonly string[] {
    const source = model.sortedIds();
    const f = this.filtered;
    if (f.source !== source || f.filter !== this.filter) {
      const q = this.filter;
      this.filtered = { source, filter: q, ids: q ? source.filter((id) => id.toLowerCase().includes(q)) : source };
    }
    return this.filtered.ids;
  }

  /** Scroll so that `id`'s row is in view (selected on the map, in an alert…). */
  reveal(id: string): void {
    if (!this.last) return;
    const i = this.ids(this.last.model).indexOf(id);
    if (i < 0) return;
    const top = i * this.rowPx;
    const view = this.scroller.clientHeight - this.headPx();
    if (top < this.scroller.scrollTop || top + this.rowPx > this.scroller.scrollTop + view) {
      this.scroller.scrollTop = Math.max(0, top - view / 2);
    }
    this.requestFrame();
  }

  /** The last arguments again (after a scroll). */
  rerender(now: number): void {
    if (this.last) this.render(this.last.model, this.last.config, this.last.selected, now);
  }

  render(model: FleetModel, config: FleetConfig | null, selected: string | null, now: number): void {
    this.last = { model, config, selected };
    const ids = this.ids(model);
    const w = rowWindow(this.scroller.scrollTop, this.scroller.clientHeight - this.headPx(), this.rowPx, ids.length);
    this.padTop.style.height = `${w.padTop}px`;
    this.padBottom.style.height = `${w.padBottom}px`;
    setClass(this.padTop.parentElement!, "empty", w.padTop === 0);
    setClass(this.padBottom.parentElement!, "empty", w.padBottom === 0);
    // Grow or shrink the pool to the window; rows stay in DOM order between the spacers.
    while (this.pool.length < w.count) {
      const r = this.makeRow();
      this.pool.push(r);
      this.tbody.insertBefore(r.tr, this.padBottom.parentElement);
    }
    while (this.pool.length > w.count) this.pool.pop()!.tr.remove();

    const low = config?.thresholds.battery_low_pct ?? 30;
    const critical = config?.thresholds.battery_critical_pct ?? 15;
    for (let i = 0; i < w.count; i++) {
      const row = this.pool[i]!;
      const id = ids[w.first + i]!;
      const d = model.drones.get(id);
      if (row.id !== id) {
        row.id = id;
        row.tr.dataset.droneId = id;
        setText(row.idCell, id);
      }
      if (!d) continue;
      const s = d.sample;
      const stale = model.isStale(d, now);
      // Machine-readable for tools and tests: the sample this row shows.
      const pos = `${s.lat.toFixed(6)},${s.lon.toFixed(6)}`;
      if (row.tr.dataset.pos !== pos) row.tr.dataset.pos = pos;
      if (row.tr.dataset.seq !== String(s.seq)) row.tr.dataset.seq = String(s.seq);
      setClass(row.tr, "selected", id === selected);
      setClass(row.tr, "stale", stale);
      // A sample without a state reading shows as unknown with what is inferred, never as the
      // placeholder "idle" it carries (drone-state.ts).
      const st = stateView(s);
      setText(row.status, st.short);
      setClass(row.tr, "state-unknown", !st.known);
      if (row.status.title !== st.title) row.status.title = st.title;
      const color = st.known ? (STATUS_COLORS[s.status] ?? "#999") : UNKNOWN_STATE_COLOR;
      if (row.dot.dataset.color !== color) {
        row.dot.dataset.color = color;
        row.dot.style.background = color;
      }
      setText(row.mode, st.mode);
      const pct = Math.max(0, Math.min(100, s.battery_pct));
      const width = `${pct.toFixed(0)}%`;
      if (row.batteryBar.style.width !== width) row.batteryBar.style.width = width;
      setText(row.batteryText, `${pct.toFixed(0)} %`);
      const tone = pct <= critical ? "bad" : pct <= low ? "warn" : "ok";
      for (const t of ["ok", "warn", "bad"]) setClass(row.battery, t, t === tone);
      const title = `low ≤ ${low} %, critical ≤ ${critical} %`;
      if (row.battery.title !== title) row.battery.title = title;
      setText(row.alt, s.alt_m.toFixed(1));
      setText(row.speed, s.speed_mps.toFixed(1));
      setText(row.age, formatAge(now - d.seenAt));
      setClass(row.age, "bad", stale);
      setText(row.link, stale ? "stale" : "live");
      setClass(row.link, "bad", stale);
      setClass(row.link, "ok", !stale);
      const plan = model.plans.get(id);
      setText(row.plan, plan ? (plan.kind === "mission" ? `mission ${Math.min(plan.index + 1, plan.waypoints.length)}/${plan.waypoints.length}` : "waypoint") : "");
    }
    if (!this.measured && this.pool[0]) {
      // The real row height (fonts differ per system): measured once, when a row exists.
      const px = this.pool[0].tr.getBoundingClientRect().height;
      this.measured = true;
      if (px > 4 && Math.abs(px - this.rowPx) > 0.5) {
        this.rowPx = px;
        this.requestFrame();
      }
    }
  }

  /** The sticky header's height, measured once (a layout read in every frame would force one). */
  private headPx(): number {
    if (this.headHeight === null) {
      const px = this.scroller.querySelector("thead")?.getBoundingClientRect().height ?? 0;
      if (px > 0) this.headHeight = px;
      return px;
    }
    return this.headHeight;
  }

  private makeRow(): Row {
    const dot = h("span", { class: "dot" });
    const status = h("span", null);
    const batteryBar = h("span", { class: "bar-fill" });
    const batteryText = h("span", { class: "bar-text" });
    const battery = h("td", { class: "num battery" }, h("span", { class: "bar" }, batteryBar), batteryText);
    const r: Row = {
      id: "",
      tr: h("tr", { tabindex: 0 }),
      idCell: h("td", { class: "id" }),
      status,
      dot,
      mode: h("td", { class: "mode" }),
      batteryBar,
      batteryText,
      battery,
      alt: h("td", { class: "num" }),
      speed: h("td", { class: "num" }),
      age: h("td", { class: "num age" }),
      link: h("td", { class: "link-state" }),
      plan: h("td", { class: "muted" }),
    };
    r.tr.append(r.idCell, h("td", { class: "status" }, dot, status), r.mode, battery, r.alt, r.speed, r.age, r.link, r.plan);
    // The row is re-bound as the table scrolls: read its drone at click time.
    r.tr.addEventListener("click", () => r.id && this.onSelect(r.id));
    r.tr.addEventListener("keydown", (ev) => {
      if ((ev.key === "Enter" || ev.key === " ") && r.id) this.onSelect(r.id);
    });
    return r;
  }
}

/**
 * The drone table: one row per drone, updated in place (no re-render of the whole table), so a
 * fleet of hundreds stays cheap at several updates a second. Battery is coloured by the fleet's
 * thresholds (GET /config), and the data age turns stale past the edge's 15 s.
 */
import type { FleetConfig } from "../../edge/domain/fleet-config";
import { formatAge, h, setClass, setText } from "./dom";
import { STATUS_COLORS } from "./map";
import type { FleetModel } from "./model";

type Row = {
  tr: HTMLTableRowElement;
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

export class DroneTable {
  private readonly rows = new Map<string, Row>();
  private readonly tbody: HTMLTableSectionElement;
  private order = "";
  private filter = "";

  constructor(
    root: HTMLElement,
    private readonly onSelect: (id: string) => void,
  ) {
    this.tbody = h("tbody");
    const filter = h("input", { type: "search", class: "table-filter", placeholder: "Filter drones…", "aria-label": "Filter drones" });
    filter.addEventListener("input", () => {
      this.filter = filter.value.trim().toLowerCase();
      this.order = "";
    });
    root.append(
      filter,
      h(
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
      ),
    );
  }

  render(model: FleetModel, config: FleetConfig | null, selected: string | null, now: number): void {
    const ids = model.sortedIds().filter((id) => !this.filter || id.toLowerCase().includes(this.filter));
    const key = ids.join("\u0000");
    if (key !== this.order) {
      const shown = new Set(ids);
      for (const [id, row] of this.rows) {
        if (shown.has(id)) continue;
        row.tr.remove();
        if (!model.drones.has(id)) this.rows.delete(id);
      }
      // append() moves existing rows, so this also puts them in order.
      for (const id of ids) this.tbody.append(this.row(id).tr);
      this.order = key;
    }
    const low = config?.thresholds.battery_low_pct ?? 30;
    const critical = config?.thresholds.battery_critical_pct ?? 15;
    for (const id of ids) {
      const d = model.drones.get(id);
      const row = this.rows.get(id);
      if (!d || !row) continue;
      const s = d.sample;
      const stale = model.isStale(d, now);
      // Machine-readable for tools and tests: the sample this row shows.
      const pos = `${s.lat.toFixed(6)},${s.lon.toFixed(6)}`;
      if (row.tr.dataset.pos !== pos) row.tr.dataset.pos = pos;
      if (row.tr.dataset.seq !== String(s.seq)) row.tr.dataset.seq = String(s.seq);
      setClass(row.tr, "selected", id === selected);
      setClass(row.tr, "stale", stale);
      setText(row.status, s.status.replace(/_/g, " "));
      row.dot.style.background = STATUS_COLORS[s.status] ?? "#999";
      setText(row.mode, s.mode);
      const pct = Math.max(0, Math.min(100, s.battery_pct));
      row.batteryBar.style.width = `${pct}%`;
      setText(row.batteryText, `${pct.toFixed(0)} %`);
      const tone = pct <= critical ? "bad" : pct <= low ? "warn" : "ok";
      for (const t of ["ok", "warn", "bad"]) setClass(row.battery, t, t === tone);
      row.battery.title = `low ≤ ${low} %, critical ≤ ${critical} %`;
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
  }

  private row(id: string): Row {
    const existing = this.rows.get(id);
    if (existing) return existing;
    const dot = h("span", { class: "dot" });
    const status = h("span", null);
    const batteryBar = h("span", { class: "bar-fill" });
    const batteryText = h("span", { class: "bar-text" });
    const battery = h("td", { class: "num battery" }, h("span", { class: "bar" }, batteryBar), batteryText);
    const r: Row = {
      tr: h("tr", { "data-drone-id": id, tabindex: 0 }),
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
    r.tr.append(h("td", { class: "id" }, id), h("td", { class: "status" }, dot, status), r.mode, battery, r.alt, r.speed, r.age, r.link, r.plan);
    r.tr.addEventListener("click", () => this.onSelect(id));
    r.tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") this.onSelect(id);
    });
    this.rows.set(id, r);
    return r;
  }
}

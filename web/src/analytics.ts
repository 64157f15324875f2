/**
 * Analytics on the page: the live cards (analytics_live frames every 5 s, or the fleet_status
 * counts while none has come), hourly charts from GET /analytics/hourly (uPlot), the insights list
 * and the alerts feed (alert frames plus GET /alerts). The HTTP routes are optional: a 404 or 503
 * is shown in place of the chart or list and retried later, never as a page error.
 */
import uPlot from "uplot";
import { AlertsBody, AnalyticsLiveBody, HourlyBody, InsightsBody, type AlertFrame, type AlertView, type AnalyticsLiveFrame, type CoordinationEventView, type LiveAnalytics } from "../../edge/protocol";
import { describeAlert, parseUnresolved, type AlertText } from "./alert-text";
import { parseHourly, toAlertView, toTime, type HourRow } from "./analytics-data";
import { unavailable, type Api } from "./api";
import { formatAge, formatClock, h, keyedList, replaceChildren, setClass, setText } from "./dom";
import type { FleetModel } from "./model";

// ------------------------------------------------------------------ live cards

type Card = { key: string; label: string; el: HTMLElement; value: HTMLElement; sub: HTMLElement };

export class LiveCards {
  private readonly cards = new Map<string, Card>();
  private live: LiveAnalytics | null = null;
  private liveAt = 0;
  private readonly source: HTMLElement;

  constructor(private readonly root: HTMLElement) {
    const defs: [string, string][] = [
      ["status", "Fleet status"],
      ["drones", "Drones live"],
      ["active", "Active (armed)"],
      ["util", "Utilization"],
      ["battery", "Avg battery"],
      ["missions", "Active missions"],
      ["coord", "Coordination"],
      ["alerts", "Alerts active"],
      ["flying", "Flying · charging"],
    ];
    for (const [key, label] of defs) {
      const value = h("div", { class: "kpi-value" }, "—");
      const sub = h("div", { class: "kpi-sub" }, "");
      const el = h("div", { class: "kpi", "data-kpi": key }, h("div", { class: "kpi-label" }, label), value, sub);
      this.cards.set(key, { key, label, el, value, sub });
      root.append(el);
    }
    this.source = h("div", { class: "kpi-source" }, "");
    root.append(this.source);
  }

  applyLive(f: AnalyticsLiveFrame, now: number): void {
    this.live = f;
    this.liveAt = now;
  }

  /** Redraw from the latest analytics_live, falling back to what fleet_status says. */
  render(model: FleetModel, now: number): void {
    const c = model.drones.size || model.counts ? model.liveCounts(now) : null;
    // analytics_live arrives with fleet_status every 5 s; older than 20 s means it stopped.
    const live = this.live && now - this.liveAt < 20_000 ? this.live : null;
    const set = (key: string, value: string, sub = "", tone = "") => {
      const card = this.cards.get(key)!;
      setText(card.value, value);
      setText(card.sub, sub);
      for (const t of ["ok", "warn", "bad"]) setClass(card.el, t, t === tone);
    };
    if (live) {
      const tone = live.emergency_status === "emergency" ? "bad" : live.emergency_status === "warning" ? "warn" : "ok";
      set("status", live.emergency_status.toUpperCase(), live.alerts_active ? `${live.alerts_active} alert${live.alerts_active === 1 ? "" : "s"}` : "no alerts", tone);
      set("drones", `${live.live_drones} / ${live.total_drones}`, live.live_drones < live.total_drones ? `${live.total_drones - live.live_drones} stale` : "all live", live.live_drones < live.total_drones ? "warn" : "");
      set("active", String(live.active_drones), "armed and live");
      set("util", `${live.fleet_utilization_percentage.toFixed(0)} %`, "armed / fleet");
      set("battery", `${live.fleet_battery_average.toFixed(1)} %`, "mean of live drones", batteryTone(live.fleet_battery_average));
      set("missions", String(live.active_missions), "assigned or flying");
      set("coord", String(live.coordination_events_active), "active events", live.coordination_events_active ? "warn" : "");
      set("alerts", String(live.alerts_active), "", live.alerts_active ? "warn" : "");
    } else {
      // No analytics frames (analytics not deployed, or not yet): what fleet_status tells.
      let battery = 0;
      let n = 0;
      for (const d of model.drones.values()) {
        if (model.isStale(d, now)) continue;
        battery += d.sample.battery_pct;
        n++;
      }
      const emergency = [...model.drones.values()].some((d) => d.sample.status === "emergency");
      set("status", emergency ? "EMERGENCY" : c ? "—" : "…", "live analytics not available", emergency ? "bad" : "");
      set("drones", c ? `${c.live} / ${c.total}` : "—", c && c.stale ? `${c.stale} stale` : "", c && c.stale ? "warn" : "");
      set("active", c ? String(c.armed) : "—", "armed");
      set("util", c && c.total ? `${((c.armed / c.total) * 100).toFixed(0)} %` : "—", "armed / fleet");
      set("battery", n ? `${(battery / n).toFixed(1)} %` : "—", "mean of live drones", n ? batteryTone(battery / n) : "");
      set("missions", String([...model.plans.values()].filter((p) => p.kind === "mission").length), "known to this page");
      set("coord", String(model.activeEvents().length), "active events");
      set("alerts", "—", "");
    }
    set("flying", c ? `${c.flying} · ${c.charging}` : "—", "");
    setText(this.source, live ? `live analytics · ${formatAge(now - this.liveAt)} ago` : "from fleet status");
  }
}

function batteryTone(pct: number): string {
  return pct <= 15 ? "bad" : pct <= 30 ? "warn" : "ok";
}

// ------------------------------------------------------------------ alerts feed

const ALERTS_KEPT = 100;

export class AlertsFeed {
  private readonly alerts = new Map<string, AlertView>();
  private version = 0;
  private rendered = -1;
  private note = "";
  private readonly noteEl = h("p", { class: "muted small" });
  private readonly listEl = h("ul", { class: "alerts" });
  private readonly emptyEl = h("p", { class: "muted" }, "No alerts.");

  constructor(
    private readonly root: HTMLElement,
    private readonly onSelectDrone: (id: string) => void,
    /** The coordination event an alert names, when the page holds it. */
    private readonly eventById: (id: string) => CoordinationEventView | undefined = () => undefined,
    /** Show that event (the Coordination panel). */
    private readonly onShowEvent: (id: string) => void = () => {},
  ) {}

  /** Coordination events changed: redraw the alerts that name one (they list its drones). */
  eventsChanged(): void {
    for (const a of this.alerts.values()) {
      if (a.kind === "coordination_unresolved") {
        this.version++;
        return;
      }
    }
  }

  apply(f: AlertFrame): void {
    this.alerts.set(f.alert.alert_id, f.alert);
    this.trim();
    this.version++;
  }

  /** Active alerts from the fleet object (no Postgres needed) and the last day's history. */
  async load(api: Api, cards?: LiveCards): Promise<void> {
    const [live, history] = await Promise.all([api.get("/analytics/live", AnalyticsLiveBody), api.get("/alerts?limit=50", AlertsBody)]);
    const notes: string[] = [];
    if (live.ok) {
      if (cards) cards.applyLive({ type: "analytics_live", ...live.data.metrics }, Date.now());
      for (const a of live.data.alerts) this.add(a);
    } else {
      notes.push(`Live alerts ${unavailable(live)}.`);
    }
    if (history.ok) for (const row of history.data.alerts) this.add(toAlertView(row));
    else notes.push(`Alert history ${unavailable(history)}; new alerts show as they happen.`);
    this.note = notes.join(" ");
    this.trim();
    this.version++;
  }

  /** Keep the newer record of an alert (a frame may already have cleared it). */
  private add(a: AlertView | null): void {
    if (!a) return;
    const cur = this.alerts.get(a.alert_id);
    if (!cur || (cur.cleared_at === null && a.cleared_at !== null)) this.alerts.set(a.alert_id, a);
  }

  activeCount(): number {
    let n = 0;
    for (const a of this.alerts.values()) if (a.cleared_at === null) n++;
    return n;
  }

  render(): void {
    if (this.version === this.rendered) return;
    this.rendered = this.version;
    const list = [...this.alerts.values()].sort((a, b) => Number(a.cleared_at !== null) - Number(b.cleared_at !== null) || b.raised_at - a.raised_at);
    const described = list.map((a) => {
      const eventId = a.kind === "coordination_unresolved" ? parseUnresolved(a.message).eventId : null;
      return { a, t: describeAlert(a, eventId ? this.eventById(eventId) : undefined) };
    });
    const build = ({ a, t }: { a: AlertView; t: AlertText }) => {
      const active = a.cleared_at === null;
      return h(
        "li",
        { class: `alert ${a.severity} ${active ? "active" : "cleared"}`, "data-alert": a.alert_id, "data-kind": a.kind },
        h("span", { class: "sev" }, a.severity === "critical" ? "●" : "▲"),
        h(
          "div",
          { class: "alert-body" },
          h("div", { class: "alert-title" }, t.title),
          h("div", { class: "alert-msg" }, a.message),
          t.reason && !a.message.endsWith(t.reason) ? h("div", { class: "alert-reason" }, t.reason) : null,
          h(
            "div",
            { class: "alert-meta" },
            t.fleetWide ? h("span", { class: "alert-fleet" }, "whole fleet") : null,
            ...t.drones.flatMap((id, i) => [i ? " " : "", h("button", { class: "link alert-drone", type: "button", "data-drone": id, onclick: () => this.onSelectDrone(id) }, id)]),
            t.eventId
              ? h("button", { class: "link alert-event", type: "button", "data-event": t.eventId, title: "Show the event in the Coordination panel", onclick: () => this.onShowEvent(t.eventId!) }, ` event ${t.eventId}`)
              : null,
            ` · ${a.kind.replace(/_/g, " ")} · ${formatClock(a.raised_at)}`,
            active ? h("span", { class: "tag warn" }, "active") : ` · cleared after ${formatAge(a.cleared_at! - a.raised_at)}`,
          ),
          // What to do applies while the condition holds.
          active ? h("div", { class: "alert-action" }, h("b", null, "What to do: "), t.action) : null,
        ),
      );
    };
    setText(this.noteEl, this.note);
    this.noteEl.hidden = !this.note;
    this.emptyEl.hidden = described.length > 0;
    // Keyed: an alert is rebuilt only when what it shows changed.
    keyedList(this.listEl, described, ({ a }) => a.alert_id, ({ a, t }) => `${a.cleared_at}|${a.message}|${t.title}|${t.drones.join(",")}|${t.eventId}`, build);
    if (!this.root.contains(this.listEl)) replaceChildren(this.root, this.noteEl, this.listEl, this.emptyEl);
  }

  private trim(): void {
    if (this.alerts.size <= ALERTS_KEPT) return;
    const cleared = [...this.alerts.values()].filter((a) => a.cleared_at !== null).sort((a, b) => a.raised_at - b.raised_at);
    for (const a of cleared.slice(0, this.alerts.size - ALERTS_KEPT)) this.alerts.delete(a.alert_id);
  }
}


// ------------------------------------------------------------------ hourly charts and insights

type ChartDef = { title: string; series: { key: string; label: string; color: string; scale?: string }[]; unit?: string };

const CHARTS: ChartDef[] = [
  {
    title: "Missions per hour",
    series: [
      { key: "successful_missions", label: "completed", color: "#34d399" },
      { key: "failed_missions", label: "failed", color: "#f43f5e" },
      { key: "aborted_missions", label: "aborted", color: "#fbbf24" },
    ],
  },
  {
    title: "Fleet utilization and data completeness",
    unit: "%",
    series: [
      { key: "fleet_utilization_percentage", label: "utilization %", color: "#38bdf8" },
      { key: "data_completeness_pct", label: "telemetry completeness %", color: "#a78bfa" },
    ],
  },
  {
    title: "Coordination events",
    series: [
      { key: "coordination_events", label: "events", color: "#f97316" },
      { key: "avg_resolution_time_ms", label: "avg resolution (ms)", color: "#e2e8f0", scale: "ms" },
    ],
  },
  {
    title: "Charging, alerts and commands",
    series: [
      { key: "charging_sessions", label: "charging sessions", color: "#60a5fa" },
      { key: "alerts_raised", label: "alerts", color: "#fbbf24" },
      { key: "commands", label: "commands", color: "#cbd5e1" },
      { key: "commands_failed", label: "commands failed", color: "#f43f5e" },
    ],
  },
];

export class HourlyCharts {
  private plots: uPlot[] = [];
  private observer: ResizeObserver;

  constructor(
    private readonly root: HTMLElement,
    private readonly status: HTMLElement,
  ) {
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(root);
  }

  /** Load the last `hours` hours. Returns false when the route is unavailable. */
  async load(api: Api, hours = 24): Promise<boolean> {
    const to = new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000);
    const from = new Date(to.getTime() - hours * 3_600_000);
    const r = await api.get(`/analytics/hourly?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`, HourlyBody);
    if (!r.ok) {
      setText(this.status, `Hourly analytics ${unavailable(r)}.`);
      this.draw([], [0, 0]);
      return false;
    }
    const rows = parseHourly(r.data.hours).map((row) => {
      // completeness comes as a 0..1 fraction; chart it as a percentage next to utilization.
      const c = row.values.data_completeness;
      return c === undefined ? row : { ...row, values: { ...row.values, data_completeness_pct: c * 100 } };
    });
    setText(this.status, rows.length ? `${rows.length} hour${rows.length === 1 ? "" : "s"} · updated ${formatClock(Date.now())}` : "No hourly data yet: the first hour is aggregated at :02 past the next hour.");
    this.draw(rows, [from.getTime() / 1000, to.getTime() / 1000]);
    return true;
  }

  /** `window`: the requested time range (s), so one hour of data is not stretched over years. */
  private draw(rows: HourRow[], window: [number, number]): void {
    for (const p of this.plots) p.destroy();
    this.plots = [];
    this.root.replaceChildren();
    if (!rows.length) return;
    const trends = this.trendsTable(rows[rows.length - 1]!);
    if (trends) this.root.append(trends);
    const xs = rows.map((r) => r.hour / 1000);
    for (const def of CHARTS) {
      const present = def.series.filter((s) => rows.some((r) => r.values[s.key] !== undefined));
      if (!present.length) continue;
      const box = h("div", { class: "chart" }, h("div", { class: "chart-title" }, def.title));
      this.root.append(box);
      const data: uPlot.AlignedData = [xs, ...present.map((s) => rows.map((r) => r.values[s.key] ?? null))];
      const usesMs = present.some((s) => s.scale === "ms");
      const opts: uPlot.Options = {
        width: this.chartWidth(),
        height: 150,
        cursor: { drag: { x: false, y: false } },
        legend: { show: true, live: true },
        scales: {
          x: { time: true, range: () => window },
          y: { range: def.unit === "%" ? [0, 100] : (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
          ms: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [
          { stroke: "#94a3b8", grid: { stroke: "rgba(148,163,184,0.1)" }, ticks: { stroke: "rgba(148,163,184,0.2)" } },
          { stroke: "#94a3b8", grid: { stroke: "rgba(148,163,184,0.1)" }, ticks: { stroke: "rgba(148,163,184,0.2)" }, size: 44 },
          ...(usesMs ? [{ scale: "ms", side: 1, stroke: "#94a3b8", grid: { show: false }, size: 50 } satisfies uPlot.Axis] : []),
        ],
        series: [
          {},
          ...present.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            fill: s.scale ? undefined : `${s.color}22`,
            scale: s.scale ?? "y",
            points: { show: rows.length < 30 },
            spanGaps: false,
          })),
        ],
      };
      this.plots.push(new uPlot(opts, data, box));
    }
  }

  /** The latest hour against the hour before and the same hour yesterday. */
  private trendsTable(row: HourRow): HTMLElement | null {
    const metrics = Object.entries(row.trends).filter(([, t]) => t.value !== null);
    if (!metrics.length) return null;
    const pct = (v: number | null) => {
      if (v === null) return h("td", { class: "num muted" }, "—");
      return h("td", { class: `num ${v > 0 ? "up" : v < 0 ? "down" : ""}` }, `${v > 0 ? "+" : ""}${v.toFixed(0)} %`);
    };
    return h(
      "div",
      { class: "chart trends" },
      h("div", { class: "chart-title" }, `Hour of ${new Date(row.hour).toLocaleString([], { hour: "2-digit", minute: "2-digit", day: "numeric", month: "short", hour12: false })}`),
      h(
        "table",
        { class: "mini" },
        h("thead", null, h("tr", null, h("th", null, "Metric"), h("th", { class: "num" }, "Value"), h("th", { class: "num" }, "vs hour before"), h("th", { class: "num" }, "vs yesterday"))),
        h(
          "tbody",
          null,
          ...metrics.map(([m, t]) =>
            h("tr", null, h("td", null, m.replace(/_/g, " ")), h("td", { class: "num" }, formatNumber(t.value!)), pct(t.previous_hour_change_pct), pct(t.yesterday_change_pct)),
          ),
        ),
      ),
    );
  }

  private chartWidth(): number {
    const w = this.root.getBoundingClientRect().width;
    // Two charts per row on wide screens, one on narrow.
    return Math.max(260, Math.floor(w >= 900 ? w / 2 - 16 : w - 8));
  }

  private resize(): void {
    const w = this.chartWidth();
    for (const p of this.plots) if (Math.abs(p.width - w) > 4) p.setSize({ width: w, height: 150 });
  }

}

function formatNumber(v: number): string {
  return Math.abs(v) >= 100 || Number.isInteger(v) ? Math.round(v).toLocaleString() : v.toFixed(2);
}

export class InsightsList {
  constructor(private readonly root: HTMLElement) {}

  async load(api: Api): Promise<void> {
    const r = await api.get("/insights?limit=20", InsightsBody);
    if (!r.ok) {
      replaceChildren(this.root, h("p", { class: "muted" }, `Insights ${unavailable(r)}.`));
      return;
    }
    const items = r.data.insights
      .slice(0, 20)
      .map((x) => {
        const sev = x.severity || "info";
        const hour = toTime(x.hour);
        const subject = x.subject || "fleet";
        return h(
          "li",
          { class: `insight ${sev}` },
          h("span", { class: `tag ${sev === "critical" ? "bad" : sev === "warning" ? "warn" : "info"}` }, sev),
          h("div", null, h("div", null, x.message), h("div", { class: "muted small" }, `${subject}${hour ? ` · hour of ${new Date(hour).toLocaleString([], { hour: "2-digit", minute: "2-digit", day: "numeric", month: "short", hour12: false })}` : ""}`)),
        );
      });
    replaceChildren(this.root, items.length ? h("ul", { class: "insights" }, ...items) : h("p", { class: "muted" }, "No insights yet: they are generated with each hourly aggregation."));
  }
}

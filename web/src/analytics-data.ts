/**
 * Reading the analytics routes' JSON (pure, tested in Node). The hourly and insights routes answer
 * with rows straight from Postgres; these readers accept an array or an object holding one, either
 * key casing, and numbers sent as strings, so the charts do not break on a cosmetic change there.
 */
import { ALERT_KINDS, type AlertView } from "../../edge/protocol";

/** A metric against the hour before and the same hour the day before (percent change). */
export type Trend = { value: number | null; previous_hour_change_pct: number | null; yesterday_change_pct: number | null };
/** One hour of metrics, keyed snake_case whatever the route's casing, with its trends. */
export type HourRow = { hour: number; values: Record<string, number>; trends: Record<string, Trend> };

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : null);

/** The first array in a JSON body (the body itself, or a property like `hours`/`insights`). */
export function arrayIn(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  if (body && typeof body === "object") {
    for (const v of Object.values(body)) if (Array.isArray(v)) return v;
  }
  return [];
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export function toTime(v: unknown): number | null {
  if (typeof v === "number" && Number.isFinite(v)) return v < 1e12 ? v * 1000 : v;
  if (typeof v === "string") {
    const t = Date.parse(v);
    return Number.isFinite(t) ? t : null;
  }
  return null;
}

/** Rows of GET /analytics/hourly in time order; numeric fields only (numeric strings, as
 * Postgres sends numerics, count too). */
export function parseHourly(body: unknown): HourRow[] {
  const out: HourRow[] = [];
  for (const r of arrayIn(body)) {
    if (!r || typeof r !== "object") continue;
    const rec = r as Record<string, unknown>;
    const hour = toTime(rec.hour ?? rec.hour_start ?? rec.bucket ?? rec.ts);
    if (hour === null) continue;
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(rec)) {
      const n = num(v);
      if (n !== null) values[snake(k)] = n;
    }
    const trends: Record<string, Trend> = {};
    if (rec.trends && typeof rec.trends === "object") {
      for (const [metric, t] of Object.entries(rec.trends as Record<string, unknown>)) {
        if (!t || typeof t !== "object") continue;
        const tr = t as Record<string, unknown>;
        trends[metric] = { value: num(tr.value), previous_hour_change_pct: num(tr.previous_hour_change_pct), yesterday_change_pct: num(tr.yesterday_change_pct) };
      }
    }
    out.push({ hour, values, trends });
  }
  return out.sort((a, b) => a.hour - b.hour);
}

/** An alert from GET /alerts (Postgres rows: times as ISO strings) or /analytics/live (the fleet
 * object: times in ms), as the AlertView the alert frames carry; null when it is not one. */
export function toAlertView(x: unknown): AlertView | null {
  if (!x || typeof x !== "object") return null;
  const a = x as Record<string, unknown>;
  const raised = toTime(a.raised_at);
  if (typeof a.alert_id !== "string" || typeof a.drone_id !== "string" || typeof a.message !== "string" || raised === null) return null;
  if (!(ALERT_KINDS as readonly unknown[]).includes(a.kind)) return null;
  return {
    alert_id: a.alert_id,
    drone_id: a.drone_id,
    kind: a.kind as AlertView["kind"],
    severity: a.severity === "critical" ? "critical" : "warning",
    message: a.message,
    value: typeof a.value === "number" ? a.value : null,
    raised_at: raised,
    cleared_at: a.cleared_at === null || a.cleared_at === undefined ? null : toTime(a.cleared_at),
  };
}

/**
 * Turning the analytics routes' bodies into what the charts and the alert feed draw (pure, tested
 * in Node). The bodies were already checked against their schemas in edge/protocol (rest.ts);
 * hourly rows are loose there on purpose: every numeric column is charted, and Postgres numerics
 * may arrive as strings, so a new column shows without a page change.
 */
import type { AlertRow, AlertView, HourlyRow } from "../../edge/protocol";

/** A metric against the hour before and the same hour the day before (percent change). */
export type Trend = { value: number | null; previous_hour_change_pct: number | null; yesterday_change_pct: number | null };
/** One hour of metrics with its trends. */
export type HourRow = { hour: number; values: Record<string, number>; trends: Record<string, Trend> };

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : null);

/** An ISO 8601 time (as Postgres rows carry them) in ms, or null when it is not one. */
export function toTime(iso: string): number | null {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : null;
}

/** Rows of GET /analytics/hourly in time order; numeric fields only (numeric strings, as
 * Postgres sends numerics, count too). */
export function parseHourly(rows: readonly HourlyRow[]): HourRow[] {
  const out: HourRow[] = [];
  for (const rec of rows) {
    const hour = toTime(rec.hour);
    if (hour === null) continue;
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(rec)) {
      const n = num(v);
      if (n !== null) values[k] = n;
    }
    const trends: Record<string, Trend> = {};
    for (const [metric, t] of Object.entries(rec.trends)) {
      trends[metric] = { value: num(t.value), previous_hour_change_pct: num(t.previous_hour_change_pct), yesterday_change_pct: num(t.yesterday_change_pct) };
    }
    out.push({ hour, values, trends });
  }
  return out.sort((a, b) => a.hour - b.hour);
}

/** An alert of GET /alerts (a Postgres row: times as ISO 8601) as the AlertView that alert frames
 * and GET /analytics/live carry (times in ms); null when a time does not read. */
export function toAlertView(row: AlertRow): AlertView | null {
  const raised = toTime(row.raised_at);
  const cleared = row.cleared_at === null ? null : toTime(row.cleared_at);
  if (raised === null || (row.cleared_at !== null && cleared === null)) return null;
  return { ...row, raised_at: raised, cleared_at: cleared };
}

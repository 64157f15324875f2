/** Reads for the analytics REST routes: hourly rows (with the seed's keys) and their trends, insights, alerts. */
import { and, asc, desc, eq, gte, isNull, lt, type SQL } from "drizzle-orm";
import { alerts, hourlyAnalytics, insights, trendAnalysis, type CoordinationHourStats } from "../../drizzle/schema";
import type { AnalyticsDb } from "./client";

type Snake<T> = { [K in keyof T as K extends string ? SnakeKey<K> : K]: T[K] };
type SnakeKey<S extends string> = S extends `${infer H}${infer R}` ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${SnakeKey<R>}` : S;

/** camelCase drizzle keys → the snake_case of the wire format. */
export function snakeKeys<T extends Record<string, unknown>>(row: T): Snake<T> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v])) as Snake<T>;
}

export type Range = { from: Date; to: Date };

/**
 * An hourly row with the seed's hourly keys beside ours (AnalyticsProcessor.calculate_hourly_metrics):
 * missions_completed, successful_missions, failed_missions, avg_charge_gained, charging_sessions
 * and fleet_utilization_percentage are our column names already; added are avg_duration (minutes,
 * = avg_duration_minutes), avg_charging_time (minutes, = avg_charging_time_minutes) and, for each
 * event type seen in the hour, coordination_<type>_count and coordination_<type>_avg_resolution
 * (ms, null when none of them resolved), unfolded from the `coordination` column.
 */
export function withSeedKeys<R extends { avg_duration_minutes: number | null; avg_charging_time_minutes: number | null; coordination: CoordinationHourStats }>(row: R) {
  const coordination: Record<string, number | null> = {};
  for (const [type, st] of Object.entries(row.coordination ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    coordination[`coordination_${type}_count`] = st.count;
    coordination[`coordination_${type}_avg_resolution`] = st.avg_resolution_ms;
  }
  return { ...row, avg_duration: row.avg_duration_minutes, avg_charging_time: row.avg_charging_time_minutes, ...coordination };
}

/** Hours in [from, to), oldest first, each with its trend rows by metric. */
export async function readHourly(db: AnalyticsDb, fleetId: string, r: Range) {
  const rows = await db
    .select()
    .from(hourlyAnalytics)
    .where(and(eq(hourlyAnalytics.fleetId, fleetId), gte(hourlyAnalytics.hour, r.from), lt(hourlyAnalytics.hour, r.to)))
    .orderBy(asc(hourlyAnalytics.hour));
  const trends = await db
    .select()
    .from(trendAnalysis)
    .where(and(eq(trendAnalysis.fleetId, fleetId), gte(trendAnalysis.hour, r.from), lt(trendAnalysis.hour, r.to)));
  const byHour = new Map<number, Record<string, unknown>>();
  for (const t of trends) {
    const { fleetId: _f, hour, metric, ...rest } = t;
    let m = byHour.get(hour.getTime());
    if (!m) byHour.set(hour.getTime(), (m = {}));
    m[metric] = snakeKeys(rest);
  }
  return rows.map(({ fleetId: _f, ...row }) => ({ ...withSeedKeys(snakeKeys(row)), trends: byHour.get(row.hour.getTime()) ?? {} }));
}

export async function readInsights(db: AnalyticsDb, fleetId: string, r: Range, limit: number) {
  const rows = await db
    .select()
    .from(insights)
    .where(and(eq(insights.fleetId, fleetId), gte(insights.hour, r.from), lt(insights.hour, r.to)))
    .orderBy(desc(insights.hour), asc(insights.rule), asc(insights.subject))
    .limit(limit);
  return rows.map(({ fleetId: _f, ...row }) => snakeKeys(row));
}

/** Alerts raised in [from, to), newest first; `active` keeps only those not cleared. */
export async function readAlerts(db: AnalyticsDb, fleetId: string, r: Range, opts: { active?: boolean; limit: number }) {
  const where: SQL[] = [eq(alerts.fleetId, fleetId), gte(alerts.raisedAt, r.from), lt(alerts.raisedAt, r.to)];
  if (opts.active) where.push(isNull(alerts.clearedAt));
  const rows = await db
    .select()
    .from(alerts)
    .where(and(...where))
    .orderBy(desc(alerts.raisedAt))
    .limit(opts.limit);
  return rows.map(({ fleetId: _f, updatedAt: _u, ...row }) => snakeKeys(row));
}

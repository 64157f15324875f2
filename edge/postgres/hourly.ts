/**
 * Hourly aggregation (cron "2 * * * *", and the admin recompute route): for one fleet and one hour
 * [hour, hour + 1 h), the seed's metrics in one set-based INSERT … SELECT upserted into
 * hourly_analytics on (fleet_id, hour), then trend_analysis against the previous hour and the same
 * hour yesterday, then the insights (edge/domain/insights.ts) for the hour, replacing the hour's old ones.
 * One transaction, so a re-run of an hour (backfill, late data) replaces its rows as a whole.
 *
 * Data completeness counts what each drone could have sent while it was known in the hour: one
 * snapshot per 10 s slot from its first to its last snapshot of the hour, both included. A drone
 * that joins at :30 is expected from :30 (its partial first hour is complete, not half lost); a
 * drone silent from :10 to :50 between two reports is expected throughout (that gap is loss), and
 * so is a silence between two reports on either side of an hour boundary: a drone that reported
 * in the hour before (or reports in the hour after) is expected from the hour's start (or to its
 * end), and one that reported within an hour before and after a whole silent hour is expected all
 * that hour. A silence before a drone's first or after its last report, with no report within an
 * hour on the other side, is not counted: the edge cannot tell a drone switched off from a lost
 * one (link_lost alerts report those). An hour aggregated before the next hour's reports arrived
 * (the cron runs at :02) counts its end again when it is recomputed.
 */
import { sql } from "drizzle-orm";
import { generateInsights, TREND_METRICS, type ChargerInput, type InsightOut, type TrendInput } from "../domain/insights";
import { SNAPSHOT_INTERVAL_MS } from "../domain/outbox-rows";
import { inTransaction, type AnalyticsDb } from "./client";

export const HOUR_MS = 3_600_000;
/** Snapshots one drone sends in a whole hour at one per 10 s (the most it can be expected to send). */
export const SNAPSHOTS_PER_DRONE_HOUR = HOUR_MS / SNAPSHOT_INTERVAL_MS;

/** A row of hourly_analytics as Postgres returns it (snake_case). */
export type HourlyRow = {
  fleet_id: string;
  hour: Date;
  missions_completed: number;
  successful_missions: number;
  failed_missions: number;
  aborted_missions: number;
  avg_duration_minutes: number | null;
  charging_sessions: number;
  avg_charge_gained: number | null;
  avg_charging_time_minutes: number | null;
  coordination_events: number;
  coordination: Record<string, { count: number; avg_resolution_ms: number | null }>;
  avg_resolution_time_ms: number | null;
  fleet_size: number;
  fleet_utilization_percentage: number | null;
  snapshots_received: number;
  snapshots_expected: number;
  data_completeness: number | null;
  alerts_raised: number;
  commands: number;
  commands_failed: number;
  computed_at: Date;
};
export type TrendResult = TrendInput & { previous_hour_change_pct: number | null; yesterday_change_pct: number | null };
export type HourlyResult = { row: HourlyRow; trends: TrendResult[]; insights: InsightOut[]; ms: number };

/** Start of the hour containing `t` (UTC). */
export function hourStart(t: number | Date): Date {
  const ms = typeof t === "number" ? t : t.getTime();
  return new Date(Math.floor(ms / HOUR_MS) * HOUR_MS);
}

/** Aggregate one fleet-hour; `hour` is truncated to the hour. */
export async function aggregateHour(db: AnalyticsDb, fleetId: string, hour: Date | number, opts: { now?: Date } = {}): Promise<HourlyResult> {
  const t0 = Date.now();
  const start = hourStart(hour);
  const s = start.toISOString();
  const e = new Date(start.getTime() + HOUR_MS).toISOString();
  const now = (opts.now ?? new Date()).toISOString();

  return inTransaction(db, async (tx) => {
    // The hour may be aggregated before the fleet's first flush (recompute): the row must exist.
    await tx.execute(sql`insert into fleets (id, name) values (${fleetId}, ${fleetId}) on conflict (id) do nothing`);

    const hourly = await tx.execute<HourlyRow>(sql`
      with
      m as (
        select count(*)::int as n,
               count(*) filter (where status = 'completed')::int as ok,
               count(*) filter (where status = 'failed')::int as failed,
               count(*) filter (where status = 'aborted')::int as aborted,
               avg(actual_duration_minutes)::float8 as avg_min
          from missions
         where fleet_id = ${fleetId} and completed_at >= ${s}::timestamptz and completed_at < ${e}::timestamptz),
      c as (
        select count(*)::int as n,
               avg(end_battery_percentage - start_battery_percentage)::float8 as gained,
               avg(extract(epoch from (end_time - start_time)) / 60)::float8 as mins
          from charging_sessions
         where fleet_id = ${fleetId} and start_time >= ${s}::timestamptz and start_time < ${e}::timestamptz),
      ev as (
        select event_type, count(*)::int as n, avg(resolution_time_ms)::float8 as avg_ms
          from coordination_events
         where fleet_id = ${fleetId} and created_at >= ${s}::timestamptz and created_at < ${e}::timestamptz
         group by event_type),
      e as (
        select coalesce(sum(n), 0)::int as n,
               coalesce(jsonb_object_agg(event_type, jsonb_build_object('count', n, 'avg_resolution_ms', avg_ms)), '{}'::jsonb) as per_type
          from ev),
      er as (
        select avg(resolution_time_ms)::float8 as avg_ms
          from coordination_events
         where fleet_id = ${fleetId} and created_at >= ${s}::timestamptz and created_at < ${e}::timestamptz),
      slots as (
        select snapshot_time, count(*) as n, count(*) filter (where distance_traveled_m > 0) as active
          from drone_telemetry_snapshots
         where fleet_id = ${fleetId} and snapshot_time >= ${s}::timestamptz and snapshot_time < ${e}::timestamptz
         group by snapshot_time),
      sz as (
        select greatest(
                 (select coalesce(max(total_drones), 0) from performance_metrics
                   where fleet_id = ${fleetId} and ts >= ${s}::timestamptz and ts < ${e}::timestamptz),
                 (select count(distinct drone_id) from drone_telemetry_snapshots
                   where fleet_id = ${fleetId} and snapshot_time >= ${s}::timestamptz and snapshot_time < ${e}::timestamptz))::int as n),
      u as (select coalesce(sum(n), 0)::int as received, avg(active)::float8 as avg_active from slots),
      near as (
        select drone_id,
               min(snapshot_time) filter (where snapshot_time >= ${s}::timestamptz and snapshot_time < ${e}::timestamptz) as first_t,
               max(snapshot_time) filter (where snapshot_time >= ${s}::timestamptz and snapshot_time < ${e}::timestamptz) as last_t,
               bool_or(snapshot_time < ${s}::timestamptz) as before,
               bool_or(snapshot_time >= ${e}::timestamptz) as after
          from drone_telemetry_snapshots
         where fleet_id = ${fleetId} and snapshot_time >= ${s}::timestamptz - interval '1 hour' and snapshot_time < ${e}::timestamptz + interval '1 hour'
         group by drone_id),
      per_drone as (
        select case
                 when first_t is null then case when before and after then ${HOUR_MS / SNAPSHOT_INTERVAL_MS}::int else 0 end
                 else floor(extract(epoch from (
                        (case when after then ${e}::timestamptz - ${SNAPSHOT_INTERVAL_MS / 1000}::int * interval '1 second' else last_t end)
                        - (case when before then ${s}::timestamptz else first_t end))) * 1000 / ${SNAPSHOT_INTERVAL_MS}::int) + 1
               end as slots
          from near),
      xp as (select coalesce(sum(slots), 0)::int as expected from per_drone),
      a as (select count(*)::int as n from alerts
             where fleet_id = ${fleetId} and raised_at >= ${s}::timestamptz and raised_at < ${e}::timestamptz),
      k as (select count(*)::int as n, count(*) filter (where status in ('failed', 'timeout'))::int as failed
              from command_audit
             where fleet_id = ${fleetId} and received_at >= ${s}::timestamptz and received_at < ${e}::timestamptz)
      insert into hourly_analytics (
        fleet_id, hour, missions_completed, successful_missions, failed_missions, aborted_missions, avg_duration_minutes,
        charging_sessions, avg_charge_gained, avg_charging_time_minutes, coordination_events, coordination, avg_resolution_time_ms,
        fleet_size, fleet_utilization_percentage, snapshots_received, snapshots_expected, data_completeness,
        alerts_raised, commands, commands_failed, computed_at)
      select ${fleetId}, ${s}::timestamptz, m.n, m.ok, m.failed, m.aborted, m.avg_min,
             c.n, c.gained, c.mins, e.n, e.per_type, er.avg_ms,
             sz.n,
             case when sz.n > 0 then u.avg_active / sz.n * 100 end,
             u.received, xp.expected,
             case when xp.expected > 0 then u.received::float8 / xp.expected end,
             a.n, k.n, k.failed, ${now}::timestamptz
        from m, c, e, er, sz, u, xp, a, k
      on conflict (fleet_id, hour) do update set
        missions_completed = excluded.missions_completed, successful_missions = excluded.successful_missions,
        failed_missions = excluded.failed_missions, aborted_missions = excluded.aborted_missions,
        avg_duration_minutes = excluded.avg_duration_minutes, charging_sessions = excluded.charging_sessions,
        avg_charge_gained = excluded.avg_charge_gained, avg_charging_time_minutes = excluded.avg_charging_time_minutes,
        coordination_events = excluded.coordination_events, coordination = excluded.coordination,
        avg_resolution_time_ms = excluded.avg_resolution_time_ms, fleet_size = excluded.fleet_size,
        fleet_utilization_percentage = excluded.fleet_utilization_percentage, snapshots_received = excluded.snapshots_received,
        snapshots_expected = excluded.snapshots_expected, data_completeness = excluded.data_completeness,
        alerts_raised = excluded.alerts_raised, commands = excluded.commands, commands_failed = excluded.commands_failed,
        computed_at = excluded.computed_at
      returning *`);
    const raw = hourly.rows[0]!;
    // drizzle's neon session hands raw timestamps back as text.
    const row: HourlyRow = { ...raw, hour: pgTime(raw.hour), computed_at: pgTime(raw.computed_at) };

    // Trends: one row per metric against the previous hour and the same hour yesterday (either may be missing).
    const values = sql.join(
      TREND_METRICS.map((m) => sql.raw(`('${m.metric}', cur.${m.metric}::float8, p.${m.metric}::float8, y.${m.metric}::float8)`)),
      sql`, `,
    );
    const trends = await tx.execute<TrendResult>(sql`
      insert into trend_analysis (fleet_id, hour, metric, value, previous_hour_value, previous_hour_change_pct, yesterday_value, yesterday_change_pct)
      select cur.fleet_id, cur.hour, v.metric, v.cur, v.prev,
             case when v.prev <> 0 then (v.cur - v.prev) / abs(v.prev) * 100 end,
             v.yday,
             case when v.yday <> 0 then (v.cur - v.yday) / abs(v.yday) * 100 end
        from hourly_analytics cur
        left join hourly_analytics p on p.fleet_id = cur.fleet_id and p.hour = cur.hour - interval '1 hour'
        left join hourly_analytics y on y.fleet_id = cur.fleet_id and y.hour = cur.hour - interval '1 day'
        cross join lateral (values ${values}) as v(metric, cur, prev, yday)
       where cur.fleet_id = ${fleetId} and cur.hour = ${s}::timestamptz
      on conflict (fleet_id, hour, metric) do update set
        value = excluded.value, previous_hour_value = excluded.previous_hour_value,
        previous_hour_change_pct = excluded.previous_hour_change_pct, yesterday_value = excluded.yesterday_value,
        yesterday_change_pct = excluded.yesterday_change_pct
      returning metric, value, previous_hour_value, previous_hour_change_pct, yesterday_value, yesterday_change_pct`);

    // Charging per drone over the 24 h up to the hour's end: one hour holds too few sessions to judge a drone.
    const chargers = await tx.execute<ChargerInput>(sql`
      select drone_id, count(*)::int as sessions, avg(extract(epoch from (end_time - start_time)) / 60)::float8 as avg_minutes
        from charging_sessions
       where fleet_id = ${fleetId} and start_time >= ${e}::timestamptz - interval '24 hours' and start_time < ${e}::timestamptz
       group by drone_id order by drone_id`);
    const median = await tx.execute<{ median: number | null }>(sql`
      select (percentile_cont(0.5) within group (order by extract(epoch from (end_time - start_time)) / 60))::float8 as median
        from charging_sessions
       where fleet_id = ${fleetId} and start_time >= ${e}::timestamptz - interval '24 hours' and start_time < ${e}::timestamptz`);

    const insights = generateInsights({
      hour: row,
      trends: trends.rows,
      chargers: chargers.rows,
      medianChargeMinutes: median.rows[0]?.median ?? null,
    });
    await tx.execute(sql`delete from insights where fleet_id = ${fleetId} and hour = ${s}::timestamptz`);
    if (insights.length) {
      const rows = sql.join(
        insights.map((i) => sql`(${fleetId}, ${s}::timestamptz, ${i.rule}, ${i.subject}, ${i.severity}, ${i.message}, ${JSON.stringify(i.data)}::jsonb, ${now}::timestamptz)`),
        sql`, `,
      );
      await tx.execute(sql`insert into insights (fleet_id, hour, rule, subject, severity, message, data, created_at) values ${rows}`);
    }
    const order = new Map(TREND_METRICS.map((m, i) => [m.metric, i]));
    const sorted = [...trends.rows].sort((a, b) => (order.get(a.metric) ?? 0) - (order.get(b.metric) ?? 0));
    return { row, trends: sorted, insights, ms: Date.now() - t0 };
  });
}

/** A timestamptz as Postgres prints it ("2026-03-02 14:00:00+00", or already a Date) → Date. */
export function pgTime(v: Date | string): Date {
  if (v instanceof Date) return v;
  return new Date(v.replace(" ", "T").replace(/([+-]\d{2})$/, "$1:00"));
}

/**
 * The Worker's cron triggers (wrangler.toml [triggers]):
 * - "* * * * *": drain the outbox of every fleet active in the last day (or with rows waiting)
 *   into Postgres, by RPC to each fleet object, a few at a time;
 * - "2 * * * *": flush those active in the last 3 h once more, then aggregate the previous hour
 *   for each (hourly_analytics, trend_analysis, insights), catching up hours missed while
 *   Postgres was unreachable (up to a day back).
 * Locally, `npm start` fires both through wrangler dev's /cdn-cgi/local/scheduled?cron=….
 */
import { directoryStub, type DirectoryEntry } from "./directory";
import type { Env } from "../worker/env";
import { openDatabase } from "./client";
import { errorText, type FlushResult } from "./drain";
import { aggregateHour, HOUR_MS, hourStart } from "./hourly";

export const CRON_FLUSH = "* * * * *";
export const CRON_HOURLY = "2 * * * *";
/** Fleets quiet for longer than this (and with nothing waiting) are not flushed. */
export const FLUSH_ACTIVE_WITHIN_MS = 24 * HOUR_MS;
export const HOURLY_ACTIVE_WITHIN_MS = 3 * HOUR_MS;
/** Most hours the hourly job catches up per fleet and run. */
export const MAX_CATCH_UP_HOURS = 24;
const FLUSH_CONCURRENCY = 4;

export type FleetFlush = FlushResult & { fleet: string };
export type HourlyRun = {
  status: "ok" | "no_database" | "error";
  hours: { fleet: string; hour: string; ms: number; error?: string }[];
  error?: string;
};

export async function runScheduled(controller: ScheduledController, env: Env, _ctx: ExecutionContext): Promise<void> {
  const at = controller.scheduledTime;
  switch (controller.cron) {
    case CRON_FLUSH: {
      const r = await flushFleets(env, at);
      const rows = r.reduce((n, f) => n + f.rows, 0);
      const failed = r.filter((f) => f.status === "error" || f.status === "no_database");
      if (rows || failed.length) console.log(`cron flush: ${r.length} fleet(s), ${rows} row(s)${failed.length ? `; not flushed: ${failed.map((f) => `${f.fleet} (${f.error})`).join(", ")}` : ""}`);
      return;
    }
    case CRON_HOURLY: {
      const r = await hourlyAggregation(env, at);
      const errors = r.hours.filter((h) => h.error);
      console.log(`cron hourly: ${r.status}, ${r.hours.length - errors.length} fleet-hour(s) aggregated${errors.length ? `, ${errors.length} failed` : ""}${r.error ? `: ${r.error}` : ""}`);
      return;
    }
    default:
      console.warn(`no handler for cron "${controller.cron}"`);
  }
}

/** Flush every fleet active since `now − within` or with rows waiting; report each to the Directory. */
export async function flushFleets(env: Env, now: number, within = FLUSH_ACTIVE_WITHIN_MS): Promise<FleetFlush[]> {
  const dir = directoryStub(env);
  const entries = await dir.fleets(now - within);
  return mapLimited(entries, FLUSH_CONCURRENCY, (e) => flushOne(env, e, now));
}

async function flushOne(env: Env, e: DirectoryEntry, now: number): Promise<FleetFlush> {
  let r: FlushResult;
  try {
    // The object knows its name from the id (idFromName): nothing to pass.
    r = await env.FLEET_HUB.get(env.FLEET_HUB.idFromName(e.fleet)).flushOutbox();
  } catch (err) {
    r = { status: "error", rows: 0, batches: 0, ms: 0, remaining: e.pending, dead_lettered: 0, error: errorText(err) };
  }
  await directoryStub(env).reportFlush(e.fleet, { at: now, remaining: r.remaining, error: r.error });
  return { fleet: e.fleet, ...r };
}

/** The hourly job at `at`: the previous hour (and missed ones) for each recently active fleet. */
export async function hourlyAggregation(env: Env, at: number): Promise<HourlyRun> {
  const previous = hourStart(at).getTime() - HOUR_MS;
  const db = openDatabase(env);
  if (!db) return { status: "no_database", hours: [], error: "DATABASE_URL is not configured" };
  const out: HourlyRun = { status: "ok", hours: [] };
  try {
    // Flush first so the hour's last minutes are in Postgres (joins a flush already running).
    const flushed = await flushFleets(env, at, HOURLY_ACTIVE_WITHIN_MS);
    const fresh = await directoryStub(env).fleets(at - HOURLY_ACTIVE_WITHIN_MS);
    for (const e of fresh) {
      if (!flushed.some((f) => f.fleet === e.fleet)) continue;
      const first = e.hourly_through === null ? previous : Math.max(e.hourly_through + HOUR_MS, previous - (MAX_CATCH_UP_HOURS - 1) * HOUR_MS);
      for (let h = first; h <= previous; h += HOUR_MS) {
        const hour = new Date(h).toISOString();
        try {
          const r = await aggregateHour(db.db, e.fleet, h, { now: new Date(at) });
          await directoryStub(env).reportHourly(e.fleet, h);
          out.hours.push({ fleet: e.fleet, hour, ms: r.ms });
        } catch (err) {
          // Later hours wait: the watermark must not pass a failed hour.
          out.hours.push({ fleet: e.fleet, hour, ms: 0, error: errorText(err) });
          out.status = "error";
          break;
        }
      }
    }
  } catch (err) {
    out.status = "error";
    out.error = errorText(err);
  } finally {
    await db.close();
  }
  return out;
}

/** Run `fn` over `items`, at most `limit` at a time, results in input order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

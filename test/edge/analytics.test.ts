/**
 * Analytics in the fleet object (workerd): the outbox filling (snapshot downsampling, charging
 * sessions, missions, audit, alerts enter/clear, bounded thinning), the `analytics_live` and
 * `alert` broadcasts, the scheduled handler draining into the real Postgres that
 * test/edge/pg-setup.ts started, and the analytics routes.
 */
import { createExecutionContext, createScheduledController, env, evictDurableObject, runDurableObjectAlarm, runInDurableObject, SELF, waitOnExecutionContext } from "cloudflare:test";
import { Pool } from "@neondatabase/serverless";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { directoryStub } from "../../edge/postgres/directory";
import { FleetAnalytics } from "../../edge/fleet/analytics";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import worker, { app } from "../../edge/worker/index";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import { Outbox } from "../../edge/fleet/outbox";
import { SNAPSHOT_INTERVAL_MS, type OutboxItem } from "../../edge/domain/outbox-rows";
import { useLocalProxy } from "../../edge/postgres/client";
import { HOUR_MS } from "../../edge/postgres/hourly";
import { AnalyticsLiveBody, DeadLettersBody, LIMITS } from "../../edge/protocol";
import { connect, ManualClock, relay, sample, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

/**
 * One clock per fleet, put into the fleet's object. It only moves forward from the real time, so
 * every alarm the object sets lies in the future and runs only when a test runs it.
 */
const clocks = new Map<string, ManualClock>();
async function clockOf(fleet: string): Promise<ManualClock> {
  let clock = clocks.get(fleet);
  if (!clock) clocks.set(fleet, (clock = new ManualClock()));
  await useClock(fleet, clock);
  return clock;
}

async function dashboard(fleet: string, role: "viewer" | "operator" | "admin" = "viewer") {
  const d = await connect(fleet, "ws", await token(role, [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  return d;
}

/** Move the fleet's clock to the next 5 s status tick (and `laterMs` beyond) and run it: no sleeping. */
async function tick(fleet: string, laterMs = 0): Promise<void> {
  (await clockOf(fleet)).advance(LIMITS.statusIntervalMs + laterMs);
  expect(await runDurableObjectAlarm(stubFor(fleet))).toBe(true);
}

function queued(fleet: string) {
  return runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) => {
    const box = new Outbox(state.storage.sql);
    box.load();
    const batch = box.read(10_000, 10_000);
    box.release();
    return { items: batch.items, snapshots: batch.snapshots };
  });
}

describe("outbox in the fleet object", () => {
  it("downsamples telemetry to one snapshot per drone per 10 s slot, with distance flown", async () => {
    const fleet = uniqueFleet("an");
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1"), sample("d2")]);
    await sendBatch(r, [sample("d1"), sample("d2")]);
    const now = (await queued(fleet)).snapshots;
    // Two batches in the same slot (or, rarely, across a slot boundary): at most one per drone per slot.
    const perSlot = new Set(now.map((x) => `${x.drone_id}@${x.snapshot_time}`));
    expect(perSlot.size).toBe(now.length);
    expect(new Set(now.map((x) => x.drone_id))).toEqual(new Set(["d1", "d2"]));

    // The object's clock set by hand: slots 10 s apart, a drone moving 100 m north per slot, another still.
    const t0 = Math.ceil(Date.now() / SNAPSHOT_INTERVAL_MS) * SNAPSHOT_INTERVAL_MS + 10 * SNAPSHOT_INTERVAL_MS;
    const clock = new ManualClock(t0);
    await useClock(fleet, clock);
    for (let k = 0; k < 3; k++) {
      const t = t0 + k * SNAPSHOT_INTERVAL_MS;
      clock.set(t);
      await sendBatch(r, [sample("mover", { lat: 47.4 + (k * 100) / 111_195, lon: 8.5 }), sample("still", { lat: 47.4, lon: 8.5 })]);
      clock.set(t + 4_000);
      await sendBatch(r, [sample("mover", { lat: 47.4 + (k * 100 + 50) / 111_195, lon: 8.5 })]); // same slot: ignored
    }
    const snaps = (await queued(fleet)).snapshots.filter((x) => x.snapshot_time >= t0);
    const mover = snaps.filter((x) => x.drone_id === "mover");
    expect(mover.map((x) => x.snapshot_time)).toEqual([t0, t0 + 10_000, t0 + 20_000]);
    expect(mover[0]!.distance_m).toBe(0);
    expect(mover[1]!.distance_m).toBeGreaterThan(99);
    expect(mover[1]!.distance_m).toBeLessThan(101);
    expect(snaps.filter((x) => x.drone_id === "still").map((x) => x.distance_m)).toEqual([0, 0, 0]);
  });

  it("derives charging sessions from telemetry, across a restart", async () => {
    const fleet = uniqueFleet("an");
    const { r } = await relay(fleet);
    open.push(r);
    const t0 = Date.now();
    const clock = new ManualClock(t0);
    await useClock(fleet, clock);
    const report = async (at: number, over: Record<string, unknown>) => {
      clock.set(t0 + at);
      await sendBatch(r, [sample("c1", over)]);
    };
    await report(0, { status: "landed", battery_pct: 22 });
    await report(1_000, { status: "charging", battery_pct: 23 });
    await report(600_000, { status: "charging", battery_pct: 60 });
    await report(1_200_000, { status: "charging", battery_pct: 95 });
    await report(1_201_000, { status: "idle", battery_pct: 94 });
    // A second session opens, then the object is evicted mid-charge: memory lost, storage kept.
    await report(2_000_000, { status: "charging", battery_pct: 40 });
    await evictDurableObject(stubFor(fleet));
    await useClock(fleet, clock);
    await report(3_000_000, { status: "taking_off", battery_pct: 90 });
    const sessions = (await queued(fleet)).items.filter((i) => i.kind === "charging_session").map((i) => i.body);
    expect(sessions).toEqual([
      { drone_id: "c1", start_time: t0 + 1_000, end_time: t0 + 1_201_000, start_battery: 23, end_battery: 95 },
      { drone_id: "c1", start_time: t0 + 2_000_000, end_time: t0 + 3_000_000, start_battery: 40, end_battery: 90 },
    ]);
  });

  it("queues missions (newest revision only) and final command states", async () => {
    const fleet = uniqueFleet("an");
    const d = await dashboard(fleet, "operator");
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("near", { status: "idle", armed: false, alt_m: 0, battery_pct: 90, speed_mps: 0 })]);
    d.send({ type: "assign_mission", command_id: `cmd-${crypto.randomUUID()}`, mission: { waypoints: [{ lat: 47.399, lon: 8.5456, alt_m: 50 }], priority: "high" } });
    const cmd = await r.nextOfType("command");
    r.send({ type: "command_result", command_id: cmd.command_id, status: "acked" });
    await d.nextOfType("mission_assignment_response");
    for (const state of ["active", "completed"]) {
      r.send({ type: "mission_progress", mission_id: cmd.mission_id, drone_id: "near", state, ts: Date.now() });
      await d.next((f) => f.type === "mission_update" && (f.update as { status?: string }).status === state);
    }
    const { items } = await queued(fleet);
    const missions = items.filter((i): i is Extract<OutboxItem, { kind: "mission" }> => i.kind === "mission");
    expect(missions).toHaveLength(1);
    expect(missions[0]!.body).toMatchObject({ mission_id: cmd.mission_id, status: "completed", drone_id: "near", priority: "high", waypoint_count: 1 });
    expect(typeof missions[0]!.body.started_at).toBe("number");
    const audit = items.filter((i) => i.kind === "command_audit").map((i) => i.body);
    expect(audit).toEqual([expect.objectContaining({ command_id: cmd.command_id, command: "assign_mission", status: "acked", drone_id: "near" })]);
  });

  it("thins the oldest snapshots past the bound, keeping distance totals and counting the dropped", async () => {
    const fleet = uniqueFleet("an");
    await stubFor(fleet).getStatus();
    const r = await runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) => {
      const box = new Outbox(state.storage.sql, { snapshots: 100, metrics: 10 });
      box.load();
      for (let i = 0; i < 101; i++) {
        box.addSnapshot({ drone_id: i % 2 ? "a" : "b", snapshot_time: i * 10_000, lat: 0, lon: 0, alt_m: 0, battery_pct: 50, speed_mps: 1, status: "flying", armed: true, distance_m: 1 });
      }
      for (let i = 0; i < 11; i++) {
        box.put("performance_metrics", String(i), { ts: i, active_drones: 0, total_drones: 1, live_drones: 1, fleet_battery_average: 0, active_missions: 0, coordination_events_active: 0, fleet_utilization_percentage: 0, emergency_status: "normal", alerts_active: 0 }, i);
      }
      box.put("mission", "m1", { mission_id: "m1", drone_id: "a", command_id: "c", status: "pending", priority: "low", waypoint_count: 1, created_at: 0, assigned_at: null, started_at: null, completed_at: null, message: null, updated_at: 0 }, 0);
      const batch = box.read(1000, 1000);
      box.release();
      return { stats: box.stats(), snaps: batch.snapshots, items: batch.items };
    });
    // The oldest 50 rows (25 per drone) lost every other row that has a successor: 12 per drone.
    expect(r.stats.snapshots_thinned).toBe(24);
    expect(r.stats.pending.snapshot).toBe(101 - 24);
    expect(r.snaps.reduce((sum, x) => sum + x.distance_m, 0)).toBe(101);
    // Never below one snapshot per 20 s for a drone in the thinned range.
    const a = r.snaps.filter((x) => x.drone_id === "a").map((x) => x.snapshot_time);
    for (let i = 1; i < a.length; i++) expect(a[i]! - a[i - 1]!).toBeLessThanOrEqual(40_000);
    // Metrics: 11 > 10, so the oldest 5 lost rows 2 and 4.
    expect(r.stats.metrics_thinned).toBe(2);
    expect(r.stats.pending.performance_metrics).toBe(9);
    expect(r.stats.pending.mission).toBe(1);
  });
});

describe("live analytics and alerts", () => {
  it("broadcasts analytics_live on the tick with the fleet's real size", async () => {
    const fleet = uniqueFleet("an");
    await clockOf(fleet);
    const d = await dashboard(fleet);
    const { r } = await relay(fleet);
    open.push(r);
    // a2 flies parallel to a1, 300 m east: detection passes run on the tick too, and find nothing.
    await sendBatch(r, [
      sample("a1", { armed: true, battery_pct: 80 }),
      sample("a2", { armed: true, battery_pct: 60, lon: 8.5456 + 300 / 75_250 }),
      sample("g1", { armed: false, status: "idle", alt_m: 0, battery_pct: 100 }),
    ]);
    await tick(fleet);
    const f = await d.nextOfType("analytics_live");
    expect(f).toMatchObject({
      fleet,
      active_drones: 2,
      total_drones: 3,
      live_drones: 3,
      fleet_battery_average: 80,
      active_missions: 0,
      coordination_events_active: 0,
      fleet_utilization_percentage: 66.67,
      emergency_status: "normal",
      alerts_active: 0,
    });
    expect(typeof f.timestamp).toBe("string");
    const metrics = (await queued(fleet)).items.filter((i) => i.kind === "performance_metrics");
    expect(metrics).toHaveLength(1);
    expect(metrics[0]!.body).toMatchObject({ total_drones: 3, active_drones: 2 });

    // The same numbers over REST, with the outbox state.
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/analytics/live`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } });
    expect(res.status).toBe(200);
    const live = (await res.json()) as { metrics: Record<string, unknown>; outbox: { database: string; pending: Record<string, number> } };
    expect(live.metrics).toMatchObject({ total_drones: 3, active_drones: 2 });
    expect(live.outbox.database).toBe("configured");
    expect(live.outbox.pending.snapshot).toBe(3);
  });

  it("sends the alert changes of one tick as one `alerts` frame when there are many (a relay gone)", async () => {
    const fleet = uniqueFleet("an");
    await clockOf(fleet);
    const d = await dashboard(fleet);
    const { r } = await relay(fleet);
    open.push(r);
    const n = LIMITS.alertFramesMax + 5;
    // A 5 × 5 grid 300 m apart, inside the fence: no threshold and no coordination alert.
    const at = (i: number) => ({ lat: 47.3977 + (((i % 5) - 2) * 300) / 111_195, lon: 8.5456 + ((Math.floor(i / 5) - 2) * 300) / 75_250 });
    const ids = Array.from({ length: n }, (_, i) => `g${i}`);
    await sendBatch(r, ids.map((id, i) => sample(id, at(i))));
    await tick(fleet);
    await d.nextOfType("analytics_live");
    // All go silent: every link is lost in the same tick.
    await tick(fleet, 15_000);
    const lost = await d.nextOfType("alerts");
    expect((lost.raised as { kind: string }[]).map((a) => a.kind)).toEqual(ids.map(() => "link_lost"));
    expect((lost.raised as { drone_id: string }[]).map((a) => a.drone_id).sort()).toEqual([...ids].sort());
    expect(lost.cleared).toEqual([]);
    expect((await d.barrier()).filter((f) => f.type === "alert")).toEqual([]);
    // Back: every alert is cleared in the next tick's one frame.
    await sendBatch(r, ids.map((id, i) => sample(id, at(i))));
    await tick(fleet);
    const back = await d.nextOfType("alerts");
    expect(back.raised).toEqual([]);
    expect((back.cleared as { cleared_at: number | null }[]).every((a) => a.cleared_at !== null)).toBe(true);
    expect(back.cleared as unknown[]).toHaveLength(n);
  });

  it("raises an alert on entering a condition, once, and clears it on leaving", async () => {
    const fleet = uniqueFleet("an");
    await clockOf(fleet);
    const d = await dashboard(fleet);
    const { r } = await relay(fleet);
    open.push(r);
    const far = { lat: 47.3977 + 3000 / 111_195, lon: 8.5456 }; // 3 km north: outside the ±1.5 km fence
    // 300 m apart east-west, so that no two are in conflict (coordination alerts are not the subject here).
    const lane = (i: number) => ({ lat: 47.3977, lon: 8.5456 + (i * 300) / 75_250 });
    // Threshold alerts only: collision avoidance raises its own (coordination_*) about "out".
    const threshold = (f: { type: string; alert?: unknown }) => f.type === "alert" && !(f.alert as { kind: string }).kind.startsWith("coordination_");
    await sendBatch(r, [sample("low", { ...lane(1), battery_pct: 25 }), sample("crit", { ...lane(2), battery_pct: 10 }), sample("out", far), sample("sos", { ...lane(3), status: "emergency" }), sample("ok", lane(4))]);
    await tick(fleet);
    const raised = await Promise.all([0, 1, 2, 3].map(() => d.next((f) => threshold(f) && f.state === "raised")));
    const kinds = raised.map((f) => `${(f.alert as { drone_id: string }).drone_id}:${(f.alert as { kind: string }).kind}`).sort();
    expect(kinds).toEqual(["crit:battery_critical", "low:battery_low", "out:geofence_breach", "sos:emergency"]);
    expect((await d.nextOfType("analytics_live")).emergency_status).toBe("emergency");

    // The next tick repeats nothing.
    await tick(fleet);
    await d.nextOfType("analytics_live");
    expect((await d.barrier()).filter(threshold)).toEqual([]);

    // Battery recovers, the drone comes back inside; low drops to critical; ok goes silent.
    // sos reports again unchanged; ok stays silent: with 5 s more on the clock, for 20 s.
    await sendBatch(r, [sample("low", { ...lane(1), battery_pct: 12 }), sample("out"), sample("crit", { ...lane(2), battery_pct: 50, status: "charging" }), sample("sos", { ...lane(3), status: "emergency" })]);
    await tick(fleet, 5_000);
    const changes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const f = await d.next(threshold);
      changes.push(`${f.state} ${(f.alert as { drone_id: string }).drone_id}:${(f.alert as { kind: string }).kind}`);
    }
    expect(changes.sort()).toEqual(["cleared crit:battery_critical", "cleared low:battery_low", "cleared out:geofence_breach", "raised low:battery_critical", "raised ok:link_lost"]);

    // Every raise and clear is queued for Postgres; an alert's newest revision replaces the older.
    const alerts = (await queued(fleet)).items
      .filter((i) => i.kind === "alert")
      .map((i) => i.body as { drone_id: string; kind: string; cleared_at: number | null })
      .filter((a) => !a.kind.startsWith("coordination_"));
    expect(alerts).toHaveLength(6);
    expect(alerts.find((a) => a.drone_id === "crit")!.cleared_at).not.toBeNull();
    expect(alerts.find((a) => a.kind === "emergency")!.cleared_at).toBeNull();
  });

  it("a flush without DATABASE_URL leaves the outbox intact and says so", async () => {
    const fleet = uniqueFleet("an");
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1")]);
    const res = await runInDurableObject(stubFor(fleet), async (hub: FleetHub, state) => {
      const a = new FleetAnalytics(state.storage.sql, { ...env, DATABASE_URL: undefined }, {
        now: () => Date.now(),
        fleet: () => fleet,
        config: () => defaultFleetConfig(),
        drones: () => [],
        activeMissions: () => 0,
        activeCoordinationEvents: () => 0,
        broadcast: () => {},
        waitUntil: () => {},
      });
      a.load();
      return { flush: await a.flush(), view: a.liveView(Date.now()) };
    });
    expect(res.flush).toMatchObject({ status: "no_database", rows: 0, remaining: 1 });
    expect(res.view.outbox).toMatchObject({ database: "not_configured", last_flush: { status: "no_database" } });
    expect((await queued(fleet)).snapshots).toHaveLength(1);
  });
});

describe("cron triggers into Postgres", () => {
  let pool: Pool;
  beforeAll(() => {
    expect(env.DATABASE_URL, "test/edge/pg-setup.ts provides a database").toBeTruthy();
    if (env.NEON_WS_PROXY) useLocalProxy(env.NEON_WS_PROXY);
    pool = new Pool({ connectionString: env.DATABASE_URL, max: 1 });
    pool.on("error", () => {});
  });
  afterAll(async () => {
    await pool?.end();
  });
  const rows = async (q: string, fleet: string) => (await pool.query(q, [fleet])).rows;

  async function scheduled(cron: string, at: number): Promise<void> {
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron, scheduledTime: at }), env, ctx);
    await waitOnExecutionContext(ctx);
  }

  it("flushes active fleets every minute and aggregates the hour at :02", async () => {
    const fleet = uniqueFleet("cron");
    await clockOf(fleet);
    const d = await dashboard(fleet);
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1", { battery_pct: 20 }), sample("d2"), sample("d3", { status: "charging", armed: false })]);
    await tick(fleet); // pings the Directory, queues metrics and a battery_low alert
    await d.nextOfType("analytics_live");
    // The ping is sent with waitUntil from the alarm: wait for it, bounded.
    for (let i = 0; ; i++) {
      const listed = await directoryStub(env).fleets(Date.now() - 60_000);
      if (listed.some((e) => e.fleet === fleet)) break;
      if (i >= 40) throw new Error("fleet never registered in the Directory");
      await new Promise((res) => setTimeout(res, 50));
    }

    const now = Date.now();
    await scheduled("* * * * *", now);
    expect(await rows(`select drone_id from drone_telemetry_snapshots where fleet_id = $1 order by drone_id`, fleet)).toEqual([{ drone_id: "d1" }, { drone_id: "d2" }, { drone_id: "d3" }]);
    expect(await rows(`select total_drones, active_drones from performance_metrics where fleet_id = $1`, fleet)).toEqual([{ total_drones: 3, active_drones: 2 }]);
    expect(await rows(`select drone_id, kind, cleared_at from alerts where fleet_id = $1`, fleet)).toEqual([{ drone_id: "d1", kind: "battery_low", cleared_at: null }]);
    expect(await rows(`select count(*)::int as n from drones where fleet_id = $1`, fleet)).toEqual([{ n: 3 }]);
    expect((await queued(fleet)).snapshots).toHaveLength(0);
    const entry = (await directoryStub(env).fleets(0)).find((e) => e.fleet === fleet)!;
    expect(entry).toMatchObject({ pending: 0, last_error: null });

    // A second run finds nothing new and writes nothing twice.
    await scheduled("* * * * *", now + 60_000);
    expect(await rows(`select count(*)::int as n from drone_telemetry_snapshots where fleet_id = $1`, fleet)).toEqual([{ n: 3 }]);

    // :02 of the next hour aggregates this one.
    const hour = Math.floor(now / HOUR_MS) * HOUR_MS;
    await scheduled("2 * * * *", hour + HOUR_MS + 2 * 60_000);
    const h = await rows(`select fleet_size, snapshots_received, snapshots_expected, data_completeness, alerts_raised from hourly_analytics where fleet_id = $1`, fleet);
    // Each drone reported once: known for one slot of the hour, and sent it.
    expect(h).toEqual([{ fleet_size: 3, snapshots_received: 3, snapshots_expected: 3, data_completeness: 1, alerts_raised: 1 }]);
    expect(await rows(`select count(*)::int as n from trend_analysis where fleet_id = $1`, fleet)).toEqual([{ n: 13 }]);
    expect((await directoryStub(env).fleets(0)).find((e) => e.fleet === fleet)!.hourly_through).toBe(hour);

    // The REST routes read it back.
    const auth = { Authorization: `Bearer ${await token("viewer", [fleet])}` };
    const from = new Date(hour).toISOString();
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/analytics/hourly?from=${from}`, { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { hours: { hour: string; fleet_size: number; trends: Record<string, unknown> }[] };
    expect(body.hours).toHaveLength(1);
    // The seed's keys beside ours (no missions, charging or events in this hour: counts 0, averages null).
    expect(body.hours[0]).toMatchObject({ hour: from, fleet_size: 3, missions_completed: 0, avg_duration: null, avg_charging_time: null, charging_sessions: 0, fleet_utilization_percentage: 0 });
    expect(Object.keys(body.hours[0]!.trends)).toContain("failed_missions");
    for (const path of ["analytics/insights", "insights"]) {
      const ins = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/${path}?from=${from}`, { headers: auth });
      expect(ins.status, path).toBe(200);
      // The fleet's first, partial hour: the drones joined late, nothing was lost, no warning.
      expect(((await ins.json()) as { insights: { rule: string }[] }).insights.map((i) => i.rule)).not.toContain("low_completeness");
    }
    // Up to a minute ahead: the object's clock ran 5 s ahead of the real one for the tick.
    const to = new Date(Date.now() + 60_000).toISOString();
    const al = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/alerts?active=true&from=${from}&to=${to}`, { headers: auth });
    expect(((await al.json()) as { alerts: { kind: string }[] }).alerts.map((a) => a.kind)).toEqual(["battery_low"]);
  });

  it("a NUL from a viewer or a relay no longer stops later commands, missions and snapshots from reaching Postgres", async () => {
    const fleet = uniqueFleet("nul");
    const clock = await clockOf(fleet);
    const viewer = await dashboard(fleet, "viewer");
    const op = await dashboard(fleet, "operator");
    const { r } = await relay(fleet);
    open.push(r);
    // Far apart, so that collision avoidance has nothing to say (its commands would interleave).
    const nearAt = { lat: 47.3977, lon: 8.5556 };
    await sendBatch(r, [sample("d1"), sample("near", { ...nearAt, status: "idle", armed: false, alt_m: 0, speed_mps: 0, battery_pct: 90 })]);
    const wp = { lat: 47.3987, lon: 8.5456, alt_m: 60 };

    // A viewer's command, refused, with a NUL in its reason.
    const refused = `cmd-${crypto.randomUUID()}`;
    viewer.send({ type: "modify_waypoint", command_id: refused, drone_id: "d1", new_waypoint: wp, modification_reason: "stop\u0000now" });
    expect(await viewer.nextOfType("waypoint_modification_response")).toMatchObject({ success: false, code: "forbidden" });
    // An operator's command the relay fails with a NUL in its message.
    const failed = `cmd-${crypto.randomUUID()}`;
    op.send({ type: "modify_waypoint", command_id: failed, drone_id: "d1", new_waypoint: wp, modification_reason: "inspect" });
    const c1 = await r.next((f) => f.type === "command" && f.command_id === failed);
    r.send({ type: "command_result", command_id: c1.command_id, status: "failed", message: "motor\u0000fault\ud800" });
    expect(await op.nextOfType("waypoint_modification_response")).toMatchObject({ command_id: failed, success: false });

    // Later: a mission flown to completion, and telemetry in the next snapshot slot.
    const assigned = `cmd-${crypto.randomUUID()}`;
    op.send({ type: "assign_mission", command_id: assigned, drone_id: "near", mission: { waypoints: [{ ...nearAt, lat: 47.3987, alt_m: 50 }] } });
    const c2 = await r.next((f) => f.type === "command" && f.command_id === assigned);
    r.send({ type: "command_result", command_id: c2.command_id, status: "acked" });
    expect(await op.nextOfType("mission_assignment_response")).toMatchObject({ command_id: assigned, success: true });
    for (const state of ["active", "completed"]) {
      r.send({ type: "mission_progress", mission_id: c2.mission_id, drone_id: "near", state, ts: Date.now() });
      await op.next((f) => f.type === "mission_update" && (f.update as { status?: string }).status === state);
    }
    clock.advance(SNAPSHOT_INTERVAL_MS);
    await sendBatch(r, [sample("d1", { lat: 47.3982 }), sample("near", nearAt)]);

    const flush = await stubFor(fleet).flushOutbox();
    expect(flush).toMatchObject({ status: "ok", remaining: 0, dead_lettered: 0 });
    const audit = await rows(`select command_id, status, message, params from command_audit where fleet_id = $1 order by received_at, command_id`, fleet);
    const byId = new Map(audit.map((a: { command_id: string }) => [a.command_id, a]));
    expect(byId.get(failed)).toMatchObject({ status: "failed", message: expect.stringContaining("motor\uFFFDfault\uFFFD") });
    expect(byId.get(assigned)).toMatchObject({ status: "acked" });
    // The refused command, where the ledger records it, carries its reason cleaned.
    if (byId.has(refused)) expect(byId.get(refused)).toMatchObject({ status: "rejected", params: expect.objectContaining({ modification_reason: "stop\uFFFDnow" }) });
    expect(await rows(`select status from missions where fleet_id = $1`, fleet)).toEqual([{ status: "completed" }]);
    expect(await rows(`select count(*)::int as n from drone_telemetry_snapshots where fleet_id = $1`, fleet)).toEqual([{ n: 4 }]);
  });

  it("sets a row Postgres refuses aside, counts it in /analytics/live and shows it to admins only", async () => {
    const fleet = uniqueFleet("dead");
    const clock = await clockOf(fleet);
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1")]);
    // A row the protocol cannot make: a resolution time beyond Postgres's integer. Queued between
    // good rows, as a bug elsewhere would queue it.
    await runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) => {
      const box = new Outbox(state.storage.sql);
      const t = clock.now();
      box.put("coordination_event", "ev-poison", { event_id: "ev-poison", key: "k", event_type: "head_on", drone_ids: ["d1", "d2"], detected_at: t, first_command_at: null, resolved_at: t, resolution_time_ms: 3e9, strategy: "hold", status: "resolved", overridden_by: null, override_reason: null, time_to_conflict_s: 10, min_horizontal_m: 5, min_vertical_m: 1, attempts: 1, last_attempt_at: t, updated_at: t }, t);
    });
    clock.advance(SNAPSHOT_INTERVAL_MS);
    await sendBatch(r, [sample("d1", { lat: 47.3982 })]);

    const flush = await stubFor(fleet).flushOutbox();
    expect(flush).toMatchObject({ status: "ok", dead_lettered: 1, remaining: 0 });
    expect(await rows(`select count(*)::int as n from drone_telemetry_snapshots where fleet_id = $1`, fleet)).toEqual([{ n: 2 }]);
    expect(await rows(`select count(*)::int as n from coordination_events where fleet_id = $1`, fleet)).toEqual([{ n: 0 }]);

    const live = (await (await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/analytics/live`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } })).json()) as Record<string, unknown> & { outbox: Record<string, unknown> };
    expect(live.outbox).toMatchObject({ dead_letters: 1, dead_letters_total: 1, last_flush: { dead_lettered: 1 } });
    const parsed = AnalyticsLiveBody.safeParse(live);
    expect(parsed.success, parsed.success ? "" : parsed.error.message).toBe(true);

    const url = `https://edge.test/v1/fleets/${fleet}/analytics/dead-letters`;
    for (const role of ["viewer", "operator"] as const) {
      expect((await SELF.fetch(url, { headers: { Authorization: `Bearer ${await token(role, [fleet])}` } })).status, role).toBe(403);
    }
    const res = await SELF.fetch(url, { headers: { Authorization: `Bearer ${await token("admin", [fleet])}` } });
    expect(res.status).toBe(200);
    const body = DeadLettersBody.parse(await res.json());
    expect(body).toMatchObject({ fleet, kept: 1, total: 1, dropped: 0 });
    expect(body.dead_letters).toEqual([
      expect.objectContaining({ kind: "coordination_event", key: "ev-poison", error: expect.stringMatching(/out of range for type integer/), body: expect.objectContaining({ resolution_time_ms: 3e9 }) }),
    ]);
    // A second flush does not try it again (it may carry a live-metrics row of a status tick that
    // the object's real alarm ran meanwhile; the set-aside row is not among what it writes).
    expect(await stubFor(fleet).flushOutbox()).toMatchObject({ status: "ok", dead_lettered: 0, remaining: 0 });
    expect(await rows(`select count(*)::int as n from coordination_events where fleet_id = $1`, fleet)).toEqual([{ n: 0 }]);
    const again = DeadLettersBody.parse(await (await SELF.fetch(url, { headers: { Authorization: `Bearer ${await token("admin", [fleet])}` } })).json());
    expect(again).toMatchObject({ kept: 1, total: 1 });

    // Replay (admin): back into the outbox. Not fixed, it is refused and set aside again.
    const replay = async (body: unknown, role: "admin" | "operator" = "admin") => {
      const res = await SELF.fetch(`${url}/replay`, { method: "POST", headers: { Authorization: `Bearer ${await token(role, [fleet])}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await replay({}, "operator")).status).toBe(403);
    expect(await replay({ ids: ["x"] })).toMatchObject({ status: 400, body: { error: { code: "invalid_body" } } });
    expect(await replay({})).toMatchObject({ status: 200, body: { fleet, replayed: 1, superseded: 0, kept: 0 } });
    expect(await stubFor(fleet).flushOutbox()).toMatchObject({ status: "ok", dead_lettered: 1 });
    const third = DeadLettersBody.parse(await (await SELF.fetch(url, { headers: { Authorization: `Bearer ${await token("admin", [fleet])}` } })).json());
    expect(third).toMatchObject({ kept: 1, total: 2 });
    // Once the row is right (here corrected in place, as a fix of its cause would make it), the
    // replay of that id lands it in Postgres.
    const id = third.dead_letters[0]!.id;
    await runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) => {
      state.storage.sql.exec(`UPDATE outbox_dead_letters SET body = json_set(body, '$.resolution_time_ms', 1500) WHERE id = ?`, id);
    });
    expect(await replay({ ids: [id] })).toMatchObject({ status: 200, body: { replayed: 1, kept: 0 } });
    expect(await stubFor(fleet).flushOutbox()).toMatchObject({ status: "ok", dead_lettered: 0 });
    expect(await rows(`select resolution_time_ms from coordination_events where fleet_id = $1`, fleet)).toEqual([{ resolution_time_ms: 1500 }]);
  });

  it("answers the seed's flat live fields at the top level of /analytics/live, beside `metrics`", async () => {
    const fleet = uniqueFleet("flat");
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("a1", { armed: true, battery_pct: 70 }), sample("g1", { armed: false, status: "idle", alt_m: 0, battery_pct: 90 })]);
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/analytics/live`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } });
    const live = (await res.json()) as Record<string, unknown> & { metrics: Record<string, unknown> };
    const seedKeys = ["timestamp", "active_drones", "total_drones", "fleet_battery_average", "active_missions", "coordination_events_active", "fleet_utilization_percentage", "emergency_status"];
    for (const k of seedKeys) expect(live[k], k).toEqual(live.metrics[k]);
    expect(live).toMatchObject({ fleet, active_drones: 1, total_drones: 2, fleet_battery_average: 80, fleet_utilization_percentage: 50, emergency_status: "normal" });
  });

  it("recompute is admin-only, flushes first and rewrites the same row", async () => {
    const fleet = uniqueFleet("re");
    await clockOf(fleet); // no tick of its own between the two flushes
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1"), sample("d2")]);
    const hour = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS).toISOString();
    const url = `https://edge.test/v1/fleets/${fleet}/analytics/hourly/recompute?hour=${hour}`;
    const viewer = await SELF.fetch(url, { method: "POST", headers: { Authorization: `Bearer ${await token("operator", [fleet])}` } });
    expect(viewer.status).toBe(403);
    const admin = { Authorization: `Bearer ${await token("admin", [fleet])}` };
    const a = await SELF.fetch(url, { method: "POST", headers: admin });
    expect(a.status).toBe(200);
    const first = (await a.json()) as { flush: { rows: number }; hourly: Record<string, unknown> };
    expect(first.flush.rows).toBe(2);
    expect(first.hourly).toMatchObject({ hour, snapshots_received: 2, fleet_size: 2 });
    const b = (await (await SELF.fetch(url, { method: "POST", headers: admin })).json()) as { flush: { rows: number }; hourly: Record<string, unknown> };
    expect(b.flush.rows).toBe(0);
    expect({ ...b.hourly, computed_at: null }).toEqual({ ...first.hourly, computed_at: null });
  });
});

describe("analytics routes", () => {
  const get = async (fleet: string, path: string, role: "viewer" | "relay" = "viewer", bindings: Partial<typeof env> = {}) =>
    app.request(`https://edge.test/v1/fleets/${fleet}/${path}`, { headers: { Authorization: `Bearer ${await token(role, [fleet])}` } }, { ...env, ...bindings });

  it("validates query parameters with coded 400s", async () => {
    const fleet = uniqueFleet("rt");
    const cases: [string, string][] = [
      ["analytics/hourly?from=yesterday", "bad_time"],
      ["analytics/hourly?to=2026-13-45T99:00:00Z", "bad_time"],
      ["analytics/hourly?from=2026-02-02T00:00:00Z&to=2026-02-01T00:00:00Z", "bad_range"],
      ["analytics/hourly?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "range_too_large"],
      ["analytics/insights?limit=0", "bad_limit"],
      ["alerts?limit=abc", "bad_limit"],
      ["alerts?active=maybe", "bad_param"],
    ];
    for (const [path, code] of cases) {
      const res = await get(fleet, path);
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code, path).toBe(code);
    }
    const admin = { Authorization: `Bearer ${await token("admin", [fleet])}` };
    for (const [q, code] of [["", "missing_hour"], ["?hour=noon", "bad_time"], [`?hour=${new Date(Date.now() + 2 * HOUR_MS).toISOString()}`, "hour_in_future"]]) {
      const res = await app.request(`https://edge.test/v1/fleets/${fleet}/analytics/hourly/recompute${q}`, { method: "POST", headers: admin }, env);
      expect(res.status, q).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code, q).toBe(code);
    }
  });

  it("answers 503 analytics_unavailable without DATABASE_URL, and 403 for the relay role", async () => {
    const fleet = uniqueFleet("rt");
    for (const path of ["analytics/hourly", "analytics/insights", "alerts"]) {
      const res = await get(fleet, path, "viewer", { DATABASE_URL: undefined });
      expect(res.status, path).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("analytics_unavailable");
    }
    expect((await get(fleet, "analytics/live", "relay")).status).toBe(403);
  });
});

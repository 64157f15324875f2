/**
 * The analytics Postgres path against a real Postgres (TEST_DATABASE_URL; embedded PGlite when it
 * is unset and nothing listens on 127.0.0.1:5432): the outbox writer and flush (idempotent retry,
 * Postgres down mid-flush, crash between COMMIT and the outbox delete), the hourly aggregation
 * against hand-computed fixtures, trends, insights, and recompute. Same driver and proxy as the
 * edge: @neondatabase/serverless over scripts/wsproxy.ts.
 */
import { randomUUID } from "node:crypto";
import { Pool } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OutboxItem, SnapshotRow } from "../../edge/domain/outbox-rows";
import { benchAnalytics } from "../../bench/lib/analytics";
import { drizzleFor, endPool, type AnalyticsDb } from "../../edge/postgres/client";
import { drainOutbox } from "../../edge/postgres/drain";
import { aggregateHour, type HourlyRow } from "../../edge/postgres/hourly";
import { MemoryOutbox } from "../fixtures/memory-outbox";
import { readAlerts, readHourly, readInsights } from "../../edge/postgres/reads";
import { writeBatch } from "../../edge/postgres/writer";
import { applyNeonLocalConfig, runMigrations, startDatabase, type Database, tcpReachable } from "../../scripts/db";
import { startWsProxy, type WsProxy } from "../../scripts/wsproxy";

const BASE_URL = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const T = (iso: string) => Date.parse(iso);

let proxy: WsProxy;
let url: string;
let pool: Pool;
let db: AnalyticsDb;
let cleanup: () => Promise<void> = async () => {};

function newPool(connectionString = url): Pool {
  const p = new Pool({ connectionString, max: 1, connectionTimeoutMillis: 5_000, query_timeout: 20_000 });
  p.on("error", () => {}); // a dropped idle connection surfaces through the next query
  return p;
}


beforeAll(async () => {
  proxy = await startWsProxy();
  applyNeonLocalConfig(proxy.port);
  const base = new URL(BASE_URL);
  if (process.env.TEST_DATABASE_URL || (await tcpReachable(base.hostname, Number(base.port || 5432)))) {
    const name = `df_analytics_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
    const admin = newPool(BASE_URL);
    await admin.query(`create database ${name}`);
    base.pathname = `/${name}`;
    url = base.toString();
    cleanup = async () => {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    };
  } else {
    const pg: Database = await startDatabase({ dataDir: "memory://" });
    url = pg.url;
    cleanup = () => pg.close();
  }
  await runMigrations(url, proxy.port);
  pool = newPool();
  db = drizzleFor(pool);
});

afterAll(async () => {
  await pool?.end().catch(() => {});
  await cleanup();
  await proxy?.close();
});

async function count(table: string, fleet: string): Promise<number> {
  const r = await pool.query<{ n: number }>(`select count(*)::int as n from ${table} where fleet_id = $1`, [fleet]);
  return r.rows[0]!.n;
}

const FLEET_INFO = (id: string, version = 1) => ({ id, config: { ceiling_m: 120, version }, configVersion: version });

function snap(drone: string, t: number, distance: number, over: Partial<SnapshotRow> = {}): Omit<SnapshotRow, "id"> {
  return { drone_id: drone, snapshot_time: t, lat: 47.4, lon: 8.5, alt_m: 40, battery_pct: 70, speed_mps: 5, status: "flying", armed: true, distance_m: distance, ...over };
}

type NewItem = Omit<OutboxItem, "id">;
const mission = (id: string, o: { status: string; started?: number | null; assigned?: number | null; completed?: number | null; updated: number; drone?: string }): NewItem => ({
  kind: "mission",
  key: id,
  body: {
    mission_id: id,
    drone_id: o.drone ?? "d1",
    command_id: `cmd-${id}`,
    status: o.status,
    priority: "normal",
    waypoint_count: 2,
    created_at: (o.assigned ?? o.started ?? o.updated) - 1000,
    assigned_at: o.assigned ?? null,
    started_at: o.started ?? null,
    completed_at: o.completed ?? null,
    message: null,
    updated_at: o.updated,
  },
});
const event = (id: string, type: "head_on" | "crossing", created: number, resolutionMs: number | null): NewItem => ({
  kind: "coordination_event",
  key: id,
  body: {
    event_id: id,
    key: `k-${id}`,
    event_type: type,
    drone_ids: ["d1", "d2"],
    detected_at: created,
    first_command_at: created + 10,
    resolved_at: resolutionMs === null ? null : created + resolutionMs,
    resolution_time_ms: resolutionMs,
    strategy: "hold",
    status: resolutionMs === null ? "active" : "resolved",
    overridden_by: null,
    override_reason: null,
    time_to_conflict_s: 12,
    min_horizontal_m: 10,
    min_vertical_m: 2,
    attempts: 1,
    last_attempt_at: created,
    updated_at: created + (resolutionMs ?? 0),
  },
});
const charge = (drone: string, start: number, minutes: number, from: number, to: number): NewItem => ({
  kind: "charging_session",
  key: `${drone}@${start}`,
  body: { drone_id: drone, start_time: start, end_time: start + minutes * 60_000, start_battery: from, end_battery: to },
});
const alert = (id: string, raised: number, cleared: number | null = null): NewItem => ({
  kind: "alert",
  key: id,
  body: { alert_id: id, drone_id: "d1", kind: "battery_low", severity: "warning", message: "d1 battery low", value: 25, raised_at: raised, cleared_at: cleared, updated_at: cleared ?? raised },
});
const audit = (id: string, received: number, status: string): NewItem => ({
  kind: "command_audit",
  key: id,
  body: { command_id: id, command: "modify_waypoint", drone_id: "d1", sub: "op", role: "operator", status, code: null, message: status, params: '{"a":1}', relay_id: "r1", received_at: received, sent_at: received + 1, finished_at: received + 30 },
});
const metrics = (ts: number, total: number): NewItem => ({
  kind: "performance_metrics",
  key: String(ts),
  body: { ts, active_drones: 1, total_drones: total, live_drones: total, fleet_battery_average: 70, active_missions: 0, coordination_events_active: 0, fleet_utilization_percentage: 20, emergency_status: "normal", alerts_active: 0 },
});

function outboxOf(items: NewItem[], snapshots: Omit<SnapshotRow, "id">[] = []): MemoryOutbox {
  const box = new MemoryOutbox();
  for (const i of items) box.add(i);
  for (const s of snapshots) box.addSnapshot(s);
  return box;
}

describe("outbox flush into Postgres", () => {
  const t0 = T("2026-03-01T10:00:00Z");
  const fixture = () =>
    outboxOf(
      [
        mission("m1", { status: "completed", started: t0, completed: t0 + 600_000, updated: t0 + 600_000 }),
        event("e1", "head_on", t0 + 1000, 800),
        alert("a1", t0 + 2000),
        audit("c1", t0 + 3000, "acked"),
        metrics(t0 + 5000, 3),
        charge("d2", t0, 30, 20, 80),
      ],
      [snap("d1", t0, 0), snap("d1", t0 + 10_000, 12), snap("d2", t0, 0), snap("d2", t0 + 10_000, 0), snap("d3", t0 + 20_000, 4)],
    );

  it("writes every kind in one run and empties the outbox", async () => {
    const fleet = "flush-a";
    const box = fixture();
    const r = await drainOutbox(box, db, FLEET_INFO(fleet));
    expect(r).toMatchObject({ status: "ok", rows: 11, batches: 1, remaining: 0 });
    expect(box.pendingTotal()).toBe(0);
    for (const [table, n] of [
      ["missions", 1],
      ["coordination_events", 1],
      ["alerts", 1],
      ["command_audit", 1],
      ["performance_metrics", 1],
      ["charging_sessions", 1],
      ["drone_telemetry_snapshots", 5],
      ["drones", 3],
    ] as const) {
      expect(await count(table, fleet), table).toBe(n);
    }
    const m = await pool.query(`select status, actual_duration_minutes from missions where fleet_id = $1`, [fleet]);
    expect(m.rows).toEqual([{ status: "completed", actual_duration_minutes: 10 }]);
    const d = await pool.query(`select drone_id, first_seen_at, last_seen_at from drones where fleet_id = $1 order by drone_id`, [fleet]);
    expect(d.rows[0]).toEqual({ drone_id: "d1", first_seen_at: new Date(t0), last_seen_at: new Date(t0 + 10_000) });
    const a = await pool.query(`select params, latency_ms from command_audit where fleet_id = $1`, [fleet]);
    expect(a.rows).toEqual([{ params: { a: 1 }, latency_ms: 30 }]);
    const f = await pool.query(`select config, config_version from fleets where id = $1`, [fleet]);
    expect(f.rows).toEqual([{ config: { ceiling_m: 120, version: 1 }, config_version: 1 }]);
  });

  it("writes a batch twice without duplicates; missions keep their newest revision", async () => {
    const fleet = "flush-b";
    const box = fixture();
    const batch = box.read(100, 100);
    await writeBatch(db, FLEET_INFO(fleet), batch);
    await writeBatch(db, FLEET_INFO(fleet), batch);
    expect(await count("drone_telemetry_snapshots", fleet)).toBe(5);
    expect(await count("missions", fleet)).toBe(1);
    expect(await count("performance_metrics", fleet)).toBe(1);

    // A newer revision updates the mission and the event; an older one arriving late does not.
    const newer = outboxOf([mission("m1", { status: "failed", started: t0, completed: t0 + 60_000, updated: t0 + 900_000 }), alert("a1", t0 + 2000, t0 + 9000)]);
    await writeBatch(db, FLEET_INFO(fleet, 2), newer.read(10, 10));
    const older = outboxOf([mission("m1", { status: "active", started: t0, updated: t0 + 1 })]);
    await writeBatch(db, FLEET_INFO(fleet, 1), older.read(10, 10));
    const m = await pool.query(`select status, actual_duration_minutes from missions where fleet_id = $1`, [fleet]);
    expect(m.rows).toEqual([{ status: "failed", actual_duration_minutes: 1 }]);
    const a = await pool.query(`select cleared_at from alerts where fleet_id = $1`, [fleet]);
    expect(a.rows).toEqual([{ cleared_at: new Date(t0 + 9000) }]);
    const f = await pool.query(`select config_version from fleets where id = $1`, [fleet]);
    expect(f.rows).toEqual([{ config_version: 2 }]);
  });

  it("keeps everything queued while Postgres is unreachable and delivers on the next run", async () => {
    const fleet = "flush-down";
    const box = fixture();
    // A Postgres that is down: the proxy's connection to the target is refused.
    const dead = newPool(url.replace(/:\d+\//, ":1/"));
    const r1 = await drainOutbox(box, drizzleFor(dead), FLEET_INFO(fleet));
    await endPool(dead);
    expect(r1.status).toBe("error");
    expect(r1.error).toBeTruthy();
    expect(r1).toMatchObject({ rows: 0, remaining: 11 });
    expect(box.pendingTotal()).toBe(11);

    const r2 = await drainOutbox(box, db, FLEET_INFO(fleet));
    expect(r2).toMatchObject({ status: "ok", rows: 11, remaining: 0 });
    expect(await count("drone_telemetry_snapshots", fleet)).toBe(5);
  });

  it("loses nothing when Postgres goes away in the middle of a flush", async () => {
    const fleet = "flush-mid";
    const items = Array.from({ length: 10 }, (_, i) => metrics(t0 + i * 5000, 4));
    const box = outboxOf(items);
    // A proxy of our own that dies after the first batch has been committed and acked.
    const own = await startWsProxy();
    applyNeonLocalConfig(own.port);
    const p = newPool();
    const ack = box.ack.bind(box);
    let acks = 0;
    box.ack = (b) => {
      ack(b);
      if (++acks === 1) void own.close();
    };
    try {
      const r1 = await drainOutbox(box, drizzleFor(p), FLEET_INFO(fleet), { maxItems: 3 });
      expect(r1.status).toBe("error");
      expect(r1.rows).toBe(3);
      expect(box.pendingTotal()).toBe(7);
    } finally {
      box.ack = ack;
      await endPool(p);
      await own.close();
      applyNeonLocalConfig(proxy.port);
    }
    expect(await count("performance_metrics", fleet)).toBe(3);
    const r2 = await drainOutbox(box, db, FLEET_INFO(fleet), { maxItems: 3 });
    expect(r2).toMatchObject({ status: "ok", rows: 7, batches: 3, remaining: 0 });
    expect(await count("performance_metrics", fleet)).toBe(10);
  });

  it("does not duplicate rows after a crash between COMMIT and the outbox delete", async () => {
    const fleet = "flush-crash";
    const box = fixture();
    box.failAcks = 1;
    const r1 = await drainOutbox(box, db, FLEET_INFO(fleet));
    expect(r1.status).toBe("error");
    expect(r1.error).toMatch(/simulated crash/);
    // Committed in Postgres, still in the outbox.
    expect(await count("drone_telemetry_snapshots", fleet)).toBe(5);
    expect(box.pendingTotal()).toBe(11);
    const r2 = await drainOutbox(box, db, FLEET_INFO(fleet));
    expect(r2).toMatchObject({ status: "ok", rows: 11, remaining: 0 });
    for (const table of ["drone_telemetry_snapshots", "missions", "coordination_events", "alerts", "command_audit", "performance_metrics", "charging_sessions"]) {
      const expected = table === "drone_telemetry_snapshots" ? 5 : 1;
      expect(await count(table, fleet), table).toBe(expected);
    }
  });
});

describe("a poison-proof flush", () => {
  const t0 = T("2026-03-01T12:00:00Z");
  const good = () => [
    mission("g-m", { status: "completed", started: t0, completed: t0 + 60_000, updated: t0 + 60_000 }),
    audit("g-c", t0 + 1000, "acked"),
    metrics(t0 + 5000, 2),
  ];
  const goodSnaps = () => [snap("g1", t0, 0), snap("g1", t0 + 10_000, 5)];
  const withBody = (it: NewItem, over: Record<string, unknown>): NewItem => ({ ...it, body: { ...it.body, ...over } }) as NewItem;

  it("cleans NUL and lone surrogates in text and jsonb columns before Postgres sees them", async () => {
    const fleet = "poison-text";
    const box = outboxOf([
      ...good(),
      // A viewer's refused command: the reason is in the params (jsonb) and the message (text).
      withBody(audit("p-c", t0 + 2000, "rejected"), { message: "forbidden: a\u0000b", params: JSON.stringify({ modification_reason: "x\u0000y\ud800" }) }),
      withBody(mission("p-m", { status: "failed", started: t0, completed: t0 + 1000, updated: t0 + 1000 }), { message: "relay said \u0000\udc00" }),
      withBody(event("p-e", "head_on", t0 + 3000, 100), { overridden_by: "op\u0000", drone_ids: ["d1", "d\u00002"] }),
      withBody(alert("p-a", t0 + 4000), { message: "low \ud83d\ude81 \u0000" }),
    ]);
    const r = await drainOutbox(box, db, { id: fleet, config: { name: "yard\u0000", zones: [{ "k\u0000": "\ud800" }] }, configVersion: 1 });
    expect(r).toMatchObject({ status: "ok", rows: 7, dead_lettered: 0, remaining: 0 });
    expect(box.deadLetters).toEqual([]);
    const a = await pool.query(`select message, params from command_audit where fleet_id = $1 and command_id = 'p-c'`, [fleet]);
    expect(a.rows).toEqual([{ message: "forbidden: a\uFFFDb", params: { modification_reason: "x\uFFFDy\uFFFD" } }]);
    const m = await pool.query(`select message from missions where fleet_id = $1 and mission_id = 'p-m'`, [fleet]);
    expect(m.rows).toEqual([{ message: "relay said \uFFFD\uFFFD" }]);
    const e = await pool.query(`select overridden_by, drone_ids from coordination_events where fleet_id = $1`, [fleet]);
    expect(e.rows).toEqual([{ overridden_by: "op\uFFFD", drone_ids: ["d1", "d\uFFFD2"] }]);
    const al = await pool.query(`select message from alerts where fleet_id = $1`, [fleet]);
    expect(al.rows).toEqual([{ message: "low \u{1F681} \uFFFD" }]);
    const f = await pool.query(`select config from fleets where id = $1`, [fleet]);
    expect(f.rows).toEqual([{ config: { name: "yard\uFFFD", zones: [{ "k\uFFFD": "\uFFFD" }] } }]);
  });

  it("sets aside each row Postgres refuses, one per column type, and writes every other row", async () => {
    const fleet = "poison-types";
    const poison: [string, NewItem | Omit<SnapshotRow, "id">][] = [
      ["integer out of range", withBody(event("p-int", "crossing", t0 + 1000, 100), { resolution_time_ms: 3e9 })],
      ["integer with a fraction", withBody(mission("p-frac", { status: "active", started: t0, updated: t0 }), { waypoint_count: 1.5 })],
      ["timestamptz out of range", withBody(alert("p-ts", t0), { raised_at: -8.64e15 })],
      ["timestamptz not a time", withBody(charge("p-nan", t0, 10, 20, 40), { start_time: Number.NaN })],
      ["double precision null", { ...snap("p-dbl", t0, 0), lat: null as unknown as number }],
      ["boolean not a boolean", { ...snap("p-bool", t0, 0), armed: "maybe" as unknown as boolean }],
      ["integer out of range (metrics)", withBody(metrics(t0 + 10_000, 2), { total_drones: 1e10 })],
    ];
    const items = poison.map(([, p]) => p).filter((p): p is NewItem => "kind" in p);
    const snaps = poison.map(([, p]) => p).filter((p): p is Omit<SnapshotRow, "id"> => !("kind" in p));
    // Poison first, in the middle and last: the good rows around them must all arrive.
    const box = outboxOf([items[0]!, ...good().slice(0, 2), ...items.slice(1), good()[2]!], [snaps[0]!, ...goodSnaps(), snaps[1]!]);
    const r = await drainOutbox(box, db, FLEET_INFO(fleet));
    expect(r).toMatchObject({ status: "ok", rows: 5, dead_lettered: poison.length, remaining: 0 });
    expect(box.pendingTotal()).toBe(0);
    expect(box.deadLetters.map((d) => d.key).sort()).toEqual(["p-frac", "p-int", "p-nan@" + t0, "p-ts", String(t0 + 10_000), `p-bool@${t0}`, `p-dbl@${t0}`].sort());
    const why = new Map(box.deadLetters.map((d) => [d.key, d.error]));
    expect(why.get("p-int")).toMatch(/out of range for type integer/);
    expect(why.get("p-frac")).toMatch(/invalid input syntax for type integer/);
    expect(why.get("p-ts")).toMatch(/out of range/);
    expect(why.get(`p-nan@${t0}`)).toMatch(/invalid time value/i);
    expect(why.get(`p-dbl@${t0}`)).toMatch(/null value in column "lat"/);
    expect(why.get(`p-bool@${t0}`)).toMatch(/invalid input syntax for type boolean/);
    for (const [table, n] of [
      ["missions", 1],
      ["command_audit", 1],
      ["performance_metrics", 1],
      ["drone_telemetry_snapshots", 2],
      ["coordination_events", 0],
      ["alerts", 0],
      ["charging_sessions", 0],
    ] as const) {
      expect(await count(table, fleet), table).toBe(n);
    }
    // A second run has nothing left to try.
    expect(await drainOutbox(box, db, FLEET_INFO(fleet))).toMatchObject({ status: "ok", rows: 0, dead_lettered: 0 });
  });

  it("keeps later batches flowing past a poison row, batch after batch", async () => {
    const fleet = "poison-later";
    const box = outboxOf([withBody(event("p-int", "crossing", t0, 100), { resolution_time_ms: 3e9 }), ...Array.from({ length: 9 }, (_, i) => metrics(t0 + i * 5000, 1))]);
    const r = await drainOutbox(box, db, FLEET_INFO(fleet), { maxItems: 4 });
    expect(r).toMatchObject({ status: "ok", rows: 9, dead_lettered: 1, remaining: 0 });
    expect(await count("performance_metrics", fleet)).toBe(9);
  });

  it("sets nothing aside when Postgres itself fails", async () => {
    const box = outboxOf([withBody(event("p-int", "crossing", t0, 100), { resolution_time_ms: 3e9 }), ...good()]);
    const dead = newPool(url.replace(/:\d+\//, ":1/"));
    const r = await drainOutbox(box, drizzleFor(dead), FLEET_INFO("poison-down"));
    await endPool(dead);
    expect(r).toMatchObject({ status: "error", rows: 0, dead_lettered: 0, remaining: 4 });
    expect(box.deadLetters).toEqual([]);
  });
});

describe("hourly aggregation", () => {
  const H = T("2026-03-02T14:00:00Z");
  const min = 60_000;

  /** The fixture hour, with rows just outside it on both sides that must not count. */
  async function loadHour(fleet: string): Promise<void> {
    const box = outboxOf(
      [
        // Missions finishing in the hour: 30, 20, 15 (assigned, never active) and 10 minutes.
        mission("m1", { status: "completed", started: H, completed: H + 30 * min, updated: H + 30 * min }),
        mission("m2", { status: "completed", started: H - 10 * min, completed: H + 10 * min, updated: H + 10 * min }),
        mission("m3", { status: "failed", assigned: H + 20 * min, completed: H + 35 * min, updated: H + 35 * min }),
        mission("m4", { status: "aborted", started: H + 30 * min, completed: H + 40 * min, updated: H + 40 * min }),
        mission("m5", { status: "completed", started: H + 50 * min, completed: H + 60 * min, updated: H + 60 * min }), // next hour
        mission("m6", { status: "active", started: H + 5 * min, updated: H + 5 * min }),
        // Charging starting in the hour: +60 % in 30 min, +40 % in 20 min; one before the hour.
        charge("a", H + 5 * min, 30, 20, 80),
        charge("b", H + 50 * min, 20, 30, 70),
        charge("c", H - 20 * min, 60, 10, 90),
        // Coordination: head_on ×2 (1,000 and 3,000 ms), crossing ×1 (500 ms), one next hour.
        event("e1", "head_on", H + 1 * min, 1000),
        event("e2", "head_on", H + 2 * min, 3000),
        event("e3", "crossing", H + 3 * min, 500),
        event("e4", "crossing", H + 60 * min, 100),
        // Live metrics saw five drones.
        metrics(H + 5000, 4),
        metrics(H + 10_000, 5),
        metrics(H + 60 * min, 9),
        alert("al1", H + 10 * min),
        alert("al2", H + 50 * min),
        alert("al0", H - 1),
        audit("k1", H + min, "acked"),
        audit("k2", H + 2 * min, "failed"),
        audit("k3", H + 3 * min, "timeout"),
        audit("k4", H + 61 * min, "failed"),
      ],
      [
        // Three slots: active (distance > 0) 2, 1 and 1 of five drones.
        snap("a", H, 10),
        snap("b", H, 0),
        snap("c", H, 5),
        snap("a", H + 10_000, 10),
        snap("b", H + 10_000, 0),
        snap("a", H + 20_000, 0),
        snap("b", H + 20_000, 0),
        snap("c", H + 20_000, 0),
        snap("d", H + 20_000, 3),
        snap("a", H + 60 * min, 50), // next hour
      ],
    );
    const r = await drainOutbox(box, db, FLEET_INFO(fleet));
    expect(r.status).toBe("ok");
  }

  it("computes the seed's metrics for the hour, by hand", async () => {
    const fleet = "hourly-a";
    await loadHour(fleet);
    const { row, trends } = await aggregateHour(db, fleet, H + 17 * min);
    expect(row.hour).toEqual(new Date(H));
    expect(row).toMatchObject({
      missions_completed: 4,
      successful_missions: 2,
      failed_missions: 1,
      aborted_missions: 1,
      charging_sessions: 2,
      coordination_events: 3,
      coordination: { head_on: { count: 2, avg_resolution_ms: 2000 }, crossing: { count: 1, avg_resolution_ms: 500 } },
      fleet_size: 5,
      snapshots_received: 9,
      // From each drone's first to its last snapshot of the hour: b, c over 3 slots, d over 1; a
      // reports again at the next hour's start, so its silence from :00:20 on is loss: all 360.
      snapshots_expected: 360 + 3 + 3 + 1,
      alerts_raised: 2,
      commands: 3,
      commands_failed: 2,
    });
    expect(row.avg_duration_minutes).toBeCloseTo((30 + 20 + 15 + 10) / 4, 9);
    expect(row.avg_charge_gained).toBeCloseTo(50, 9);
    expect(row.avg_charging_time_minutes).toBeCloseTo(25, 9);
    expect(row.avg_resolution_time_ms).toBeCloseTo(1500, 9);
    // Average active drones per slot (2 + 1 + 1) / 3 over the real fleet size, 5.
    expect(row.fleet_utilization_percentage).toBeCloseTo(((4 / 3) / 5) * 100, 9);
    expect(row.data_completeness).toBeCloseTo(9 / 367, 12);
    // No earlier hours: trends have values but no baselines.
    const failed = trends.find((t) => t.metric === "failed_missions")!;
    expect(failed).toMatchObject({ value: 1, previous_hour_value: null, yesterday_value: null, previous_hour_change_pct: null });
  });

  it("expects telemetry only while each drone was known: a partial first hour is complete, a gap is not", async () => {
    const fleet = "hourly-known";
    const slot = 10_000;
    const every = (drone: string, from: number, to: number) => Array.from({ length: (to - from) / slot }, (_, i) => snap(drone, from + i * slot, 3));
    // The fleet's first hour: "early" reports from :00, "late" joins at :30, "brief" reports once at :59:50.
    await drainOutbox(
      outboxOf([metrics(H + 40 * min, 3)], [...every("early", H, H + 60 * min), ...every("late", H + 30 * min, H + 60 * min), snap("brief", H + 60 * min - slot, 0)]),
      db,
      FLEET_INFO(fleet),
    );
    const first = await aggregateHour(db, fleet, H);
    expect(first.row).toMatchObject({ snapshots_received: 360 + 180 + 1, snapshots_expected: 360 + 180 + 1, data_completeness: 1 });
    expect(first.insights.filter((i) => i.rule === "low_completeness")).toEqual([]);

    // The next hour: "early" goes silent from :10 to :50 between two reports: 40 minutes lost.
    const next = H + 60 * min;
    await drainOutbox(outboxOf([], [...every("early", next, next + 10 * min), ...every("early", next + 50 * min, next + 60 * min), ...every("late", next, next + 60 * min)]), db, FLEET_INFO(fleet));
    const second = await aggregateHour(db, fleet, next);
    expect(second.row).toMatchObject({ snapshots_received: 120 + 360, snapshots_expected: 360 + 360 });
    expect(second.row.data_completeness).toBeCloseTo(480 / 720, 12);
    const low = second.insights.find((i) => i.rule === "low_completeness");
    expect(low).toMatchObject({ severity: "warning", message: expect.stringMatching(/^only 67 % of expected telemetry snapshots arrived \(480 of 720\)/) });
  });

  it("counts a silence that spans an hour boundary, and a whole silent hour between reports", async () => {
    const fleet = "hourly-boundary";
    const slot = 10_000;
    const every = (drone: string, from: number, to: number) => Array.from({ length: (to - from) / slot }, (_, i) => snap(drone, from + i * slot, 3));
    const h1 = H + 60 * min;
    const h2 = H + 120 * min;
    const h3 = H + 180 * min;
    // "gap" reports until :50 of H and again from :20 of the next hour: 30 minutes lost across the boundary.
    // "away" reports in H until :40, is silent through all of h1, and back at :10 of h2 (within an hour on both sides).
    // "off" reports until :30 of H and never again (switched off, or lost: not counted).
    await drainOutbox(
      outboxOf([], [...every("gap", H, H + 50 * min), ...every("gap", h1 + 20 * min, h2), ...every("away", H, H + 40 * min), ...every("away", h2 + 10 * min, h3), ...every("off", H, H + 30 * min)]),
      db,
      FLEET_INFO(fleet),
    );
    const first = await aggregateHour(db, fleet, H);
    // gap expected to the hour's end (it reported after it), away to :40 only (nothing within an hour after), off to :30.
    expect(first.row).toMatchObject({ snapshots_received: 300 + 240 + 180, snapshots_expected: 360 + 240 + 180 });
    const second = await aggregateHour(db, fleet, h1);
    // gap from the hour's start (it reported before it); away all hour: reported within an hour before and after.
    expect(second.row).toMatchObject({ snapshots_received: 240, snapshots_expected: 360 + 360 });
    const third = await aggregateHour(db, fleet, h2);
    // gap no longer reports (not counted); away from its first report: its last one before is more than an hour back.
    expect(third.row).toMatchObject({ snapshots_received: 300, snapshots_expected: 300 });
  });

  it("answers the seed's hourly keys over REST, beside ours", async () => {
    const fleet = "hourly-seed";
    await loadHour(fleet);
    await aggregateHour(db, fleet, H);
    const [h] = await readHourly(db, fleet, { from: new Date(H), to: new Date(H + 60 * min) });
    expect(h).toMatchObject({
      missions_completed: 4,
      successful_missions: 2,
      failed_missions: 1,
      charging_sessions: 2,
      coordination_head_on_count: 2,
      coordination_head_on_avg_resolution: 2000,
      coordination_crossing_count: 1,
      coordination_crossing_avg_resolution: 500,
      // Ours stay beside them.
      avg_duration_minutes: h!.avg_duration,
      avg_charging_time_minutes: h!.avg_charging_time,
      coordination: { head_on: { count: 2, avg_resolution_ms: 2000 } },
    });
    expect(h!.avg_duration).toBeCloseTo(75 / 4, 9);
    expect(h!.avg_charging_time).toBeCloseTo(25, 9);
    expect(h!.avg_charge_gained).toBeCloseTo(50, 9);
    expect(h!.fleet_utilization_percentage).toBeCloseTo(((4 / 3) / 5) * 100, 9);
    // The seed's four queries, verbatim but for the fleet filter, agree with the keys.
    const seed = await pool.query(
      `select count(*)::int as missions_completed, avg(actual_duration_minutes) as avg_duration,
              count(*) filter (where status = 'completed')::int as successful_missions, count(*) filter (where status = 'failed')::int as failed_missions
         from missions where fleet_id = $1 and completed_at between $2 and $3`,
      [fleet, new Date(H), new Date(H + 60 * min - 1)],
    );
    expect(seed.rows[0]).toMatchObject({ missions_completed: h!.missions_completed, successful_missions: h!.successful_missions, failed_missions: h!.failed_missions });
    expect(seed.rows[0].avg_duration).toBeCloseTo(h!.avg_duration as number, 9);
    const ev = await pool.query<{ event_type: string; event_count: number; avg_resolution_time: number }>(
      `select event_type, count(*)::int as event_count, avg(resolution_time_ms)::float8 as avg_resolution_time
         from coordination_events where fleet_id = $1 and created_at between $2 and $3 group by event_type`,
      [fleet, new Date(H), new Date(H + 60 * min - 1)],
    );
    const byKey = h as unknown as Record<string, unknown>;
    for (const r of ev.rows) {
      expect(byKey[`coordination_${r.event_type}_count`]).toBe(r.event_count);
      expect(byKey[`coordination_${r.event_type}_avg_resolution`]).toBe(r.avg_resolution_time);
    }
  });

  it("an empty hour still gets a row", async () => {
    const { row, insights } = await aggregateHour(db, "hourly-empty", H);
    expect(row).toMatchObject({ missions_completed: 0, charging_sessions: 0, coordination_events: 0, coordination: {}, fleet_size: 0, snapshots_expected: 0 });
    expect(row.avg_duration_minutes).toBeNull();
    expect(row.data_completeness).toBeNull();
    expect(row.fleet_utilization_percentage).toBeNull();
    expect(insights).toEqual([]);
  });

  it("recomputing an hour yields the same row, and takes late data in", async () => {
    const fleet = "hourly-re";
    await loadHour(fleet);
    const a = await aggregateHour(db, fleet, H, { now: new Date(H + 62 * min) });
    const b = await aggregateHour(db, fleet, H, { now: new Date(H + 90 * min) });
    const strip = (r: HourlyRow) => ({ ...r, computed_at: null });
    expect(strip(b.row)).toEqual(strip(a.row));
    expect(b.trends).toEqual(a.trends);
    expect(b.insights).toEqual(a.insights);
    expect(await count("hourly_analytics", fleet)).toBe(1);

    // A late flush (Postgres was down at :02) adds a failed mission; recompute picks it up.
    await drainOutbox(outboxOf([mission("late", { status: "failed", started: H + 40 * min, completed: H + 45 * min, updated: H + 45 * min })]), db, FLEET_INFO(fleet));
    const c = await aggregateHour(db, fleet, H);
    expect(c.row).toMatchObject({ missions_completed: 5, failed_missions: 2 });
    expect(await count("hourly_analytics", fleet)).toBe(1);
  });
});

describe("trends and insights", () => {
  const H = T("2026-03-05T09:00:00Z");
  const min = 60_000;

  async function failedMissions(fleet: string, hour: number, n: number, ok = 0): Promise<void> {
    const items: NewItem[] = [];
    for (let i = 0; i < n + ok; i++) {
      const done = hour + (i + 1) * min;
      items.push(mission(`m-${hour}-${i}`, { status: i < n ? "failed" : "completed", started: done - 5 * min, completed: done, updated: done }));
    }
    await drainOutbox(outboxOf(items), db, FLEET_INFO(fleet));
  }

  it("compares with the previous hour and yesterday and writes sentences an operator can act on", async () => {
    const fleet = "insights-a";
    // Same hour yesterday: 5 failed of 10; previous hour: 7 failed; this hour: 7 failed of 10.
    await failedMissions(fleet, H - 24 * 60 * min, 5, 5);
    await failedMissions(fleet, H - 60 * min, 7, 3);
    await failedMissions(fleet, H, 7, 3);
    // Charging over the last day: three drones around 20 min, drone_7 at 42 min → median 21 min.
    await drainOutbox(
      outboxOf([
        charge("drone_1", H - 5 * 60 * min, 20, 30, 80),
        charge("drone_2", H - 4 * 60 * min, 20, 30, 80),
        charge("drone_3", H + 5 * min, 22, 30, 80),
        charge("drone_7", H + 10 * min, 42, 30, 80),
        charge("drone_9", H - 30 * 60 * min, 200, 30, 80), // older than a day: ignored
      ]),
      db,
      FLEET_INFO(fleet),
    );
    // Telemetry for two of the fleet's drones: drone_1 silent for the hour between two reports, far from complete.
    await drainOutbox(outboxOf([], [snap("drone_1", H, 5), snap("drone_1", H + 3_590_000, 5), snap("drone_7", H, 0)]), db, FLEET_INFO(fleet));

    await aggregateHour(db, fleet, H - 24 * 60 * min);
    await aggregateHour(db, fleet, H - 60 * min);
    const r = await aggregateHour(db, fleet, H);

    const failed = r.trends.find((t) => t.metric === "failed_missions")!;
    expect(failed).toMatchObject({ value: 7, previous_hour_value: 7, yesterday_value: 5, previous_hour_change_pct: 0 });
    expect(failed.yesterday_change_pct).toBeCloseTo(40, 9);

    const byRule = new Map(r.insights.map((i) => [`${i.rule}:${i.subject}`, i]));
    expect(byRule.get("trend_failed_missions:")?.message).toBe("failed missions up 40 % on yesterday (7 vs 5)");
    expect(byRule.get("low_success_rate:")?.message).toBe(
      "only 30 % of missions succeeded (3 of 10): read the failed missions' messages in the command audit",
    );
    expect(byRule.get("slow_charger:drone_7")?.message).toBe(
      "drone_7 charges twice as long as the fleet median (42 min vs 21 min over the last 24 h, 1 session): check its battery health and charger",
    );
    expect(byRule.has("slow_charger:drone_3")).toBe(false);
    expect(byRule.get("low_completeness:")?.severity).toBe("critical");
    expect(byRule.get("low_completeness:")?.message).toMatch(/^only 1 % of expected telemetry snapshots arrived \(3 of 361\)/);

    // Stored, and readable through the route queries.
    const stored = await readInsights(db, fleet, { from: new Date(H), to: new Date(H + 60 * min) }, 100);
    expect(stored.map((i) => `${i.rule}:${i.subject}`).sort()).toEqual([...byRule.keys()].sort());
    const hours = await readHourly(db, fleet, { from: new Date(H - 60 * min), to: new Date(H + 60 * min) });
    expect(hours.map((h) => h.hour)).toEqual([new Date(H - 60 * min), new Date(H)]);
    expect(hours[1]).toMatchObject({ failed_missions: 7, trends: { failed_missions: { value: 7, yesterday_value: 5 } } });

    // Recompute after the underlying data changed: stale insights go.
    await pool.query(`update missions set status = 'completed' where fleet_id = $1 and completed_at >= $2`, [fleet, new Date(H)]);
    const again = await aggregateHour(db, fleet, H);
    expect(again.insights.some((i) => i.rule === "trend_failed_missions")).toBe(false);
    const stored2 = await pool.query<{ n: number }>(`select count(*)::int as n from insights where fleet_id = $1 and hour = $2`, [fleet, new Date(H)]);
    expect(stored2.rows[0]!.n).toBe(again.insights.length);
  });

  it("reads alert history for the route", async () => {
    const fleet = "alerts-read";
    await drainOutbox(outboxOf([alert("x1", H + min), alert("x2", H + 2 * min, H + 3 * min), alert("x3", H - 2 * 60 * min)]), db, FLEET_INFO(fleet));
    const range = { from: new Date(H), to: new Date(H + 60 * min) };
    expect((await readAlerts(db, fleet, range, { limit: 10 })).map((a) => a.alert_id)).toEqual(["x2", "x1"]);
    expect((await readAlerts(db, fleet, range, { limit: 10, active: true })).map((a) => a.alert_id)).toEqual(["x1"]);
    expect((await readAlerts(db, fleet, range, { limit: 10 }))[0]).toMatchObject({ drone_id: "d1", kind: "battery_low", cleared_at: new Date(H + 3 * min) });
  });
});

describe("benchmark hook", () => {
  it("flushes a synthetic minute and aggregates its hour (small, untimed)", async () => {
    const r = await benchAnalytics(db, { fleet: "bench-small", drones: 20, snapshotsPerDrone: 6, events: 10 });
    expect(r.flush.snapshots).toBe(120);
    expect(r.flush.rows).toBe(120 + 10 * 5 + 12);
    expect(r.hourly).toMatchObject({ snapshots_received: 120, fleet_size: 20 });
    const n = await db.execute<{ n: number }>(sql`select count(*)::int as n from hourly_analytics where fleet_id = 'bench-small'`);
    expect(n.rows[0]!.n).toBe(1);
  });
});

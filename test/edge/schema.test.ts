/**
 * The fleet object's SQLite schema in workerd (edge/fleet/schema.ts): storage as the code before
 * schema versioning left it (its 21 statements, its rows, no version) upgrades in place when the
 * new code starts on it; later migrations run once, in order, each in a transaction; and the fleet
 * name comes from the object's own id, kept in storage for wakes that come without one.
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { fleetName, type FleetHub } from "../../edge/fleet/fleet-hub";
import { migrate, MIGRATIONS, SCHEMA_VERSION, schemaVersion, type Migration } from "../../edge/fleet/schema";
import { connect, relay, token, type TestSocket } from "./helpers";

/** The DDL the fleet object ran at every start before versioning (commit c95f893), verbatim. */
const LEGACY_DDL = [
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS drones (drone_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, received_at INTEGER NOT NULL, sample TEXT NOT NULL, relay_id TEXT)`,
  `CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS commands (
      command_id TEXT PRIMARY KEY, command TEXT NOT NULL, drone_id TEXT, sub TEXT NOT NULL, role TEXT NOT NULL,
      status TEXT NOT NULL, code TEXT, message TEXT, params TEXT NOT NULL, response TEXT, relay_id TEXT,
      received_at INTEGER NOT NULL, sent_at INTEGER, finished_at INTEGER, deadline_at INTEGER)`,
  `CREATE INDEX IF NOT EXISTS commands_pending ON commands (status, deadline_at)`,
  `CREATE INDEX IF NOT EXISTS commands_received ON commands (received_at)`,
  `CREATE TABLE IF NOT EXISTS missions (
      mission_id TEXT PRIMARY KEY, drone_id TEXT NOT NULL, command_id TEXT NOT NULL, status TEXT NOT NULL,
      priority TEXT NOT NULL, waypoints TEXT NOT NULL, waypoint_index INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL, assigned_at INTEGER, started_at INTEGER, completed_at INTEGER, message TEXT)`,
  `CREATE INDEX IF NOT EXISTS missions_drone ON missions (drone_id, status)`,
  `CREATE TABLE IF NOT EXISTS plans (drone_id TEXT PRIMARY KEY, path TEXT NOT NULL, updated_at INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS coordination_events (
      event_id TEXT PRIMARY KEY, key TEXT NOT NULL, event_type TEXT NOT NULL, drone_ids TEXT NOT NULL,
      detected_at INTEGER NOT NULL, first_command_at INTEGER, resolved_at INTEGER, resolution_time_ms INTEGER,
      strategy TEXT NOT NULL, status TEXT NOT NULL, overridden_by TEXT, override_reason TEXT,
      time_to_conflict_s REAL NOT NULL, min_horizontal_m REAL NOT NULL, min_vertical_m REAL NOT NULL,
      attempts INTEGER NOT NULL, last_attempt_at INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS coordination_events_status ON coordination_events (status)`,
  `CREATE TABLE IF NOT EXISTS event_tracks (
      event_id TEXT NOT NULL, drone_id TEXT NOT NULL, t INTEGER NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL, alt_m REAL NOT NULL,
      PRIMARY KEY (event_id, drone_id, t))`,
  `CREATE TABLE IF NOT EXISTS outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL)`,
  `CREATE UNIQUE INDEX IF NOT EXISTS outbox_kind_key ON outbox (kind, key)`,
  `CREATE TABLE IF NOT EXISTS outbox_snapshots (
      id INTEGER PRIMARY KEY AUTOINCREMENT, drone_id TEXT NOT NULL, snapshot_time INTEGER NOT NULL,
      lat REAL NOT NULL, lon REAL NOT NULL, alt_m REAL NOT NULL, battery_pct REAL NOT NULL, speed_mps REAL NOT NULL,
      status TEXT NOT NULL, armed INTEGER NOT NULL, distance_m REAL NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS alerts (
      alert_id TEXT PRIMARY KEY, drone_id TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
      message TEXT NOT NULL, value REAL, raised_at INTEGER NOT NULL, cleared_at INTEGER)`,
  `CREATE INDEX IF NOT EXISTS alerts_open ON alerts (cleared_at)`,
  `CREATE INDEX IF NOT EXISTS alerts_raised ON alerts (raised_at)`,
  `CREATE TABLE IF NOT EXISTS snapshot_last (
      drone_id TEXT PRIMARY KEY, slot INTEGER NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL, alt_m REAL NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS charging_open (
      drone_id TEXT PRIMARY KEY, start_time INTEGER NOT NULL, start_battery REAL NOT NULL)`,
];

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

/** A fresh object of its own: idFromName(randomUUID()); the UUID is also a valid fleet id. */
function freshFleet(): { fleet: string; stub: DurableObjectStub<FleetHub> } {
  const fleet = crypto.randomUUID();
  return { fleet, stub: env.FLEET_HUB.get(env.FLEET_HUB.idFromName(fleet)) };
}

/** Every table and index of the object, with its SQL, whitespace folded (the version table aside). */
function schemaOf(sql: SqlStorage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of sql.exec<{ name: string; sql: string | null }>(
    `SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name != 'schema_version'`,
  )) {
    out[r.name] = (r.sql ?? "").replace(/\s+/g, " ");
  }
  return out;
}

const T0 = Date.UTC(2026, 0, 31, 14, 0, 0);
const SAMPLE = { drone_id: "d1", seq: 41, ts: T0, lat: 47.3977, lon: 8.5456, alt_m: 50, heading_deg: 90, speed_mps: 8, battery_pct: 64, armed: true, mode: "AUTO.MISSION", status: "flying" };
const WAYPOINT = { lat: 47.399, lon: 8.5456, alt_m: 50 };
const RESPONSE = { type: "waypoint_modification_response", command_id: "legacy-cmd-0001", success: true, status: "acked", message: "acknowledged by the drone", drone_id: "d1", alternative_suggestions: [] };
const EVENT_ID = "ev-legacy-1";

/** Storage exactly as the old code left it for `fleet`: its tables, a row in each, no version. */
function writeLegacyStorage(sql: SqlStorage, fleet: string): void {
  // The new code already ran on this object when it was created: start from empty storage.
  for (const { name } of sql.exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'`).toArray()) {
    sql.exec(`DROP TABLE "${name}"`);
  }
  for (const s of LEGACY_DDL) sql.exec(s);
  // The old code kept the fleet name, passed in a header, in meta.
  sql.exec(`INSERT INTO meta (key, value) VALUES ('fleet', ?)`, fleet);
  sql.exec(`INSERT INTO drones (drone_id, seq, received_at, sample, relay_id) VALUES ('d1', 41, ?, ?, 'relay-old')`, T0, JSON.stringify(SAMPLE));
  const config = { ceiling_m: 90, version: 3 };
  sql.exec(`INSERT INTO config (id, version, body, updated_at, updated_by) VALUES (1, 3, ?, ?, 'admin-user')`, JSON.stringify(config), T0);
  sql.exec(
    `INSERT INTO commands (command_id, command, drone_id, sub, role, status, code, message, params, response, relay_id, received_at, sent_at, finished_at, deadline_at)
     VALUES ('legacy-cmd-0001', 'modify_waypoint', 'd1', 'operator-user', 'operator', 'acked', NULL, 'acknowledged by the drone', ?, ?, 'relay-old', ?, ?, ?, ?)`,
    JSON.stringify({ drone_id: "d1", new_waypoint: WAYPOINT, modification_reason: "legacy" }),
    JSON.stringify(RESPONSE),
    T0,
    T0 + 10,
    T0 + 200,
    T0 + 5010,
  );
  sql.exec(
    `INSERT INTO missions (mission_id, drone_id, command_id, status, priority, waypoints, waypoint_index, created_at, assigned_at, started_at)
     VALUES ('m-legacy', 'd1', 'legacy-cmd-0002', 'active', 'high', ?, 0, ?, ?, ?)`,
    JSON.stringify([WAYPOINT]),
    T0,
    T0 + 100,
    T0 + 200,
  );
  sql.exec(`INSERT INTO plans (drone_id, path, updated_at) VALUES ('d1', ?, ?)`, JSON.stringify([WAYPOINT]), T0);
  sql.exec(
    `INSERT INTO coordination_events (event_id, key, event_type, drone_ids, detected_at, first_command_at, strategy, status, time_to_conflict_s, min_horizontal_m, min_vertical_m, attempts, last_attempt_at)
     VALUES (?, 'd1|d2', 'head_on', '["d1","d2"]', ?, ?, 'vertical_separation', 'active', 12.5, 3.2, 0, 1, ?)`,
    EVENT_ID,
    T0,
    T0,
    T0,
  );
  sql.exec(`INSERT INTO event_tracks (event_id, drone_id, t, lat, lon, alt_m) VALUES (?, 'd1', ?, 47.3977, 8.5456, 50)`, EVENT_ID, T0);
  sql.exec(`INSERT INTO outbox (kind, key, body, created_at) VALUES ('mission', 'm-legacy', '{}', ?)`, T0);
  sql.exec(
    `INSERT INTO outbox_snapshots (drone_id, snapshot_time, lat, lon, alt_m, battery_pct, speed_mps, status, armed, distance_m) VALUES ('d1', ?, 47.3977, 8.5456, 50, 64, 8, 'flying', 1, 0)`,
    T0,
  );
  sql.exec(`INSERT INTO outbox_meta (key, value) VALUES ('snapshots_thinned', '7')`);
  sql.exec(
    `INSERT INTO alerts (alert_id, drone_id, kind, severity, message, value, raised_at) VALUES ('al-legacy', 'd1', 'battery_low', 'warning', 'd1 battery low', 24, ?)`,
    T0,
  );
  sql.exec(`INSERT INTO snapshot_last (drone_id, slot, lat, lon, alt_m) VALUES ('d1', ?, 47.3977, 8.5456, 50)`, T0);
  sql.exec(`INSERT INTO charging_open (drone_id, start_time, start_battery) VALUES ('d9', ?, 20)`, T0);
}

describe("fleet object schema", () => {
  it("migration 1 is exactly the schema before versioning", async () => {
    const { stub } = freshFleet();
    const { created, legacy } = await runInDurableObject(stub, (_hub: FleetHub, state) => {
      const sql = state.storage.sql;
      writeLegacyStorage(sql, "x");
      const legacy = schemaOf(sql);
      // Migration 1 alone on empty storage (later migrations add tables of their own).
      for (const { name } of sql.exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'`).toArray()) {
        sql.exec(`DROP TABLE "${name}"`);
      }
      MIGRATIONS[0]!.up(sql);
      return { created: schemaOf(sql), legacy };
    });
    expect(Object.keys(created).sort()).toEqual(Object.keys(legacy).sort());
    expect(created).toEqual(legacy);
    expect(Object.keys(legacy)).toHaveLength(LEGACY_DDL.length);
  });

  it("upgrades storage written by the code before versioning in place, data intact and in use", async () => {
    const { fleet, stub } = freshFleet();
    await runInDurableObject(stub, (_hub: FleetHub, state) => {
      writeLegacyStorage(state.storage.sql, fleet);
      expect(schemaVersion(state.storage.sql)).toBe(0);
    });
    // A restart: the new code starts on the old storage.
    await evictDurableObject(stub);

    const status = await stub.getStatus();
    expect(status.fleet).toBe(fleet);
    expect(status.drones.map((d) => [d.drone_id, d.seq, d.battery_pct])).toEqual([["d1", 41, 64]]);
    expect(status.coordination_events?.map((e) => e.event_id)).toEqual([EVENT_ID]);

    const after = await runInDurableObject(stub, (_hub: FleetHub, state) => {
      const sql = state.storage.sql;
      const count = (t: string) => sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${t}`).one().n;
      return {
        version: schemaVersion(sql),
        rows: Object.fromEntries(["meta", "drones", "config", "commands", "missions", "plans", "coordination_events", "event_tracks", "outbox", "outbox_snapshots", "outbox_meta", "alerts", "snapshot_last", "charging_open"].map((t) => [t, count(t)])),
      };
    });
    expect(after.version).toBe(SCHEMA_VERSION);
    expect(after.rows).toEqual({ meta: 1, drones: 1, config: 1, commands: 1, missions: 1, plans: 1, coordination_events: 1, event_tracks: 1, outbox: 1, outbox_snapshots: 1, outbox_meta: 1, alerts: 1, snapshot_last: 1, charging_open: 1 });

    // Each module reads its rows as before.
    expect(await stub.getConfig()).toMatchObject({ ceiling_m: 90, version: 3 });
    expect((await stub.listCommands(10)).map((c) => [c.command_id, c.status, c.latency_ms])).toEqual([["legacy-cmd-0001", "acked", 200]]);
    expect((await stub.listMissions(10)).map((m) => [m.mission_id, m.status, m.waypoints])).toEqual([["m-legacy", "active", [WAYPOINT]]]);
    expect((await stub.getCoordinationEvent(EVENT_ID))?.tracks).toEqual({ d1: [{ t: T0, lat: 47.3977, lon: 8.5456, alt_m: 50 }] });
    const live = await stub.analyticsLive();
    expect(live.alerts.map((a) => a.alert_id)).toEqual(["al-legacy"]);
    expect(live.outbox).toMatchObject({ pending: { mission: 1, snapshot: 1 }, snapshots_thinned: 7 });

    // The ledger still answers a repeated command_id from its record, without running it again.
    const d = await connect(fleet, "ws", await token("operator", [fleet]));
    open.push(d);
    d.send({ type: "modify_waypoint", command_id: "legacy-cmd-0001", request_id: "again", drone_id: "d1", new_waypoint: WAYPOINT, modification_reason: "legacy" });
    expect(await d.nextOfType("waypoint_modification_response")).toEqual({ ...RESPONSE, request_id: "again", duplicate: true });

    // The live state resumes: a reconnecting relay learns the stored seq.
    const { r, ack } = await relay(fleet);
    open.push(r);
    expect(ack).toMatchObject({ fleet, last_seq: { d1: 41 } });
  });

  it("answers the missions' status and last-hour queries from indexes, not by reading every mission", async () => {
    const { stub } = freshFleet();
    const plans = await runInDurableObject(stub, (_hub: FleetHub, state) => {
      const plan = (q: string) => state.storage.sql.exec<{ detail: string }>(`EXPLAIN QUERY PLAN ${q}`).toArray().map((r) => r.detail).join("; ");
      return {
        busy: plan(`SELECT drone_id, priority FROM missions WHERE status IN ('assigned', 'active')`),
        since: plan(`SELECT drone_id, COUNT(*) AS n FROM missions INDEXED BY missions_created WHERE created_at >= 0 GROUP BY drone_id`),
      };
    });
    expect(plans.busy).toMatch(/USING (COVERING )?INDEX missions_status/);
    expect(plans.since).toMatch(/SEARCH missions USING COVERING INDEX missions_created \(created_at>\?\)/);
  });

  it("runs later migrations once, in order, each with its version bump in one transaction", async () => {
    const { stub } = freshFleet();
    await runInDurableObject(stub, (_hub: FleetHub, state) => {
      const sql = state.storage.sql;
      expect(schemaVersion(sql)).toBe(SCHEMA_VERSION);
      const ran: number[] = [];
      const next = (version: number, up: (sql: SqlStorage) => void): Migration => ({ version, description: `test ${version}`, up: (s) => (ran.push(version), up(s)) });
      // Two migrations after the code's own: N + 1 and N + 2.
      const n = SCHEMA_VERSION;
      const v2 = next(n + 1, (s) => s.exec(`CREATE TABLE IF NOT EXISTS extra (x INTEGER)`));
      const v3 = next(n + 2, (s) => s.exec(`ALTER TABLE extra ADD COLUMN y TEXT`));
      expect(migrate(state.storage, T0, [...MIGRATIONS, v2, v3])).toEqual({ from: n, to: n + 2 });
      expect(migrate(state.storage, T0, [...MIGRATIONS, v2, v3])).toEqual({ from: n + 2, to: n + 2 });
      expect(ran).toEqual([n + 1, n + 2]);
      expect(schemaVersion(sql)).toBe(n + 2);

      // A failing migration leaves the previous version whole; the next start tries again.
      const broken = next(n + 3, (s) => {
        s.exec(`CREATE TABLE half_done (x INTEGER)`);
        throw new Error("boom");
      });
      expect(() => migrate(state.storage, T0, [...MIGRATIONS, v2, v3, broken])).toThrow(/boom/);
      expect(schemaVersion(sql)).toBe(n + 2);
      expect(sql.exec(`SELECT name FROM sqlite_master WHERE name = 'half_done'`).toArray()).toEqual([]);

      // Code that knows fewer migrations than the storage has leaves it alone (additive rule).
      expect(migrate(state.storage, T0)).toEqual({ from: n + 2, to: n + 2 });
      expect(schemaVersion(sql)).toBe(n + 2);

      // Migrations are numbered 1, 2, 3, … without gaps.
      expect(() => migrate(state.storage, T0, [...MIGRATIONS, v3])).toThrow(/numbered/);
    });
  });
});

describe("fleet name", () => {
  it("comes from the object's own id (idFromName), with nothing passed in, and is stored once", async () => {
    const { fleet, stub } = freshFleet();
    expect((await stub.getStatus()).fleet).toBe(fleet);
    const stored = await runInDurableObject(stub, (_hub: FleetHub, state) => {
      expect(state.id.name).toBe(fleet);
      return state.storage.sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = 'fleet'`).toArray();
    });
    expect(stored).toEqual([{ value: fleet }]);
  });

  it("is known in an alarm that wakes an evicted object", async () => {
    const { fleet, stub } = freshFleet();
    const d = await connect(fleet, "ws", await token("viewer", [fleet]));
    open.push(d);
    await d.nextOfType("fleet_status");
    await evictDurableObject(stub);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await d.nextOfType("fleet_status")).toMatchObject({ fleet });
  });

  it("is taken from storage when the object wakes with a nameless id (an alarm after a restart)", async () => {
    const { fleet, stub } = freshFleet();
    await stub.getStatus();
    await runInDurableObject(stub, (_hub: FleetHub, state) => {
      // What the object sees when an alarm wakes it without a name (workerd#6850; alarms set
      // before the runtime passed names, 2026-03-15): the same storage, `ctx.id.name` undefined.
      expect(fleetName(state.storage.sql, undefined)).toBe(fleet);
      // Storage that never saw a name (not reachable through idFromName) yields "" rather than a guess.
      state.storage.sql.exec(`DELETE FROM meta WHERE key = 'fleet'`);
      expect(fleetName(state.storage.sql, undefined)).toBe("");
      expect(fleetName(state.storage.sql, fleet)).toBe(fleet);
      expect(fleetName(state.storage.sql, undefined)).toBe(fleet);
    });
  });
});

/**
 * The fleet object's SQLite schema, in one place: every table and index, a schema version and the
 * forward migrations that reach it. The stateful modules (ingest, config store, ledger, missions,
 * collision avoidance, analytics, outbox, alerts) read and write these tables but create none.
 *
 * - Migration 1 is the schema exactly as the code before versioning created it, every statement
 *   `IF NOT EXISTS`: an object created by that code has the tables and no version, so migration 1
 *   is a no-op on its tables and only records version 1. Its data stays where it is.
 * - Later migrations get the next number and are never edited once shipped. They must be additive
 *   (new tables, columns, indexes), so that code rolled back one release still runs on the newer
 *   schema; a version newer than this code knows is logged and left alone.
 * - Each migration runs in its own transaction together with the version bump, so a failure leaves
 *   the previous version whole and the next start tries again.
 *
 * Durable Object SQLite refuses `PRAGMA user_version`, so the version lives in a one-row table.
 */
import { log } from "../domain/log";

export type Migration = {
  version: number;
  /** What it changes, for the log and the reader. */
  description: string;
  up(sql: SqlStorage): void;
};

/** Runs DDL statements in order. */
const ddl =
  (...statements: string[]) =>
  (sql: SqlStorage): void => {
    for (const s of statements) sql.exec(s);
  };

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "the schema before versioning: live state, config, ledger, missions, coordination, analytics, outbox, alerts",
    up: ddl(
      // Object identity: the fleet name, kept for wakes that come without one (fleet-hub.ts).
      `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      // Live state (ingest.ts): the latest sample per drone and the relay that sent it.
      `CREATE TABLE IF NOT EXISTS drones (drone_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, received_at INTEGER NOT NULL, sample TEXT NOT NULL, relay_id TEXT)`,
      // Fleet configuration (config-store.ts), one versioned row.
      `CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL)`,
      // Command ledger (ledger.ts).
      `CREATE TABLE IF NOT EXISTS commands (
      command_id TEXT PRIMARY KEY, command TEXT NOT NULL, drone_id TEXT, sub TEXT NOT NULL, role TEXT NOT NULL,
      status TEXT NOT NULL, code TEXT, message TEXT, params TEXT NOT NULL, response TEXT, relay_id TEXT,
      received_at INTEGER NOT NULL, sent_at INTEGER, finished_at INTEGER, deadline_at INTEGER)`,
      `CREATE INDEX IF NOT EXISTS commands_pending ON commands (status, deadline_at)`,
      `CREATE INDEX IF NOT EXISTS commands_received ON commands (received_at)`,
      // Missions and planned paths (missions.ts).
      `CREATE TABLE IF NOT EXISTS missions (
      mission_id TEXT PRIMARY KEY, drone_id TEXT NOT NULL, command_id TEXT NOT NULL, status TEXT NOT NULL,
      priority TEXT NOT NULL, waypoints TEXT NOT NULL, waypoint_index INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL, assigned_at INTEGER, started_at INTEGER, completed_at INTEGER, message TEXT)`,
      `CREATE INDEX IF NOT EXISTS missions_drone ON missions (drone_id, status)`,
      `CREATE TABLE IF NOT EXISTS plans (drone_id TEXT PRIMARY KEY, path TEXT NOT NULL, updated_at INTEGER NOT NULL)`,
      // Collision avoidance (collision-avoidance.ts): events and their replay tracks.
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
      // Outbox to Postgres (outbox.ts).
      `CREATE TABLE IF NOT EXISTS outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL)`,
      `CREATE UNIQUE INDEX IF NOT EXISTS outbox_kind_key ON outbox (kind, key)`,
      `CREATE TABLE IF NOT EXISTS outbox_snapshots (
      id INTEGER PRIMARY KEY AUTOINCREMENT, drone_id TEXT NOT NULL, snapshot_time INTEGER NOT NULL,
      lat REAL NOT NULL, lon REAL NOT NULL, alt_m REAL NOT NULL, battery_pct REAL NOT NULL, speed_mps REAL NOT NULL,
      status TEXT NOT NULL, armed INTEGER NOT NULL, distance_m REAL NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      // Threshold alerts (alerts.ts).
      `CREATE TABLE IF NOT EXISTS alerts (
      alert_id TEXT PRIMARY KEY, drone_id TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
      message TEXT NOT NULL, value REAL, raised_at INTEGER NOT NULL, cleared_at INTEGER)`,
      `CREATE INDEX IF NOT EXISTS alerts_open ON alerts (cleared_at)`,
      `CREATE INDEX IF NOT EXISTS alerts_raised ON alerts (raised_at)`,
      // Analytics state that survives eviction (analytics.ts).
      `CREATE TABLE IF NOT EXISTS snapshot_last (
      drone_id TEXT PRIMARY KEY, slot INTEGER NOT NULL, lat REAL NOT NULL, lon REAL NOT NULL, alt_m REAL NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS charging_open (
      drone_id TEXT PRIMARY KEY, start_time INTEGER NOT NULL, start_battery REAL NOT NULL)`,
    ),
  },
  {
    version: 2,
    description: "outbox dead letters: rows Postgres refused, set aside so the rest still flows",
    up: ddl(
      // Outbox rows (kind "snapshot" for telemetry snapshots) that Postgres refused alone, with its
      // reason (outbox.ts; the drain in edge/postgres/drain.ts decides). Bounded there.
      `CREATE TABLE IF NOT EXISTS outbox_dead_letters (
      id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
      error TEXT NOT NULL, queued_at INTEGER, dead_at INTEGER NOT NULL)`,
    ),
  },
  {
    version: 3,
    description: "relay identities bound to token subjects; dashboard subscriptions out of the socket attachment",
    up: ddl(
      // relay_id → the token subject that first said hello with it (relay-registry.ts), and since
      // when its last socket is gone (null while one is open): a relay's drones stay its own until
      // it has been gone for longer than the stale bound. The drone's owner is drones.relay_id.
      `CREATE TABLE IF NOT EXISTS relays (
      relay_id TEXT PRIMARY KEY, sub TEXT NOT NULL, bound_at INTEGER NOT NULL, seen_at INTEGER NOT NULL, gone_at INTEGER)`,
      // The drones a dashboard socket subscribed to by name (fan-out.ts), keyed by the socket's id
      // in its attachment: a list of 10,000 ids does not fit the 16 KiB attachment.
      `CREATE TABLE IF NOT EXISTS dashboard_subs (sid TEXT NOT NULL, drone_id TEXT NOT NULL, PRIMARY KEY (sid, drone_id)) WITHOUT ROWID`,
    ),
  },
  {
    version: 4,
    description: "missions by status and by creation time",
    up: ddl(
      // missions.ts asks for the assigned and active missions (every assign_mission, the live
      // metrics) and for those created in the last hour (the ranking's fairness); missions are
      // kept for the audit, so without these both read the whole table.
      `CREATE INDEX IF NOT EXISTS missions_status ON missions (status)`,
      `CREATE INDEX IF NOT EXISTS missions_created ON missions (created_at, drone_id)`,
    ),
  },
];

/** The version this code brings storage to. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

const VERSION_TABLE = `CREATE TABLE IF NOT EXISTS schema_version (
  id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, migrated_at INTEGER NOT NULL)`;

/** The schema version recorded in storage; 0 for storage that predates versioning (or is empty). */
export function schemaVersion(sql: SqlStorage): number {
  sql.exec(VERSION_TABLE);
  return sql.exec<{ version: number }>(`SELECT version FROM schema_version WHERE id = 1`).toArray()[0]?.version ?? 0;
}

/**
 * Bring storage to the newest version: every migration above the recorded version, in order, each
 * in a transaction with its version bump. Call it before anything reads the tables.
 */
export function migrate(storage: DurableObjectStorage, now: number, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  for (let i = 0; i < migrations.length; i++) {
    if (migrations[i]!.version !== i + 1) throw new Error(`migration ${i + 1} is numbered ${migrations[i]!.version}: migrations are numbered 1, 2, 3, … in order`);
  }
  const sql = storage.sql;
  const from = schemaVersion(sql);
  const latest = migrations.length;
  if (from > latest) {
    log("warn", `fleet storage is at schema version ${from}, newer than this code's ${latest}; leaving it as it is`, { schema_version: from, code_version: latest });
    return { from, to: from };
  }
  for (const m of migrations.slice(from)) {
    storage.transactionSync(() => {
      m.up(sql);
      sql.exec(
        `INSERT INTO schema_version (id, version, migrated_at) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, migrated_at = excluded.migrated_at`,
        m.version,
        now,
      );
    });
  }
  return { from, to: Math.max(from, latest) };
}

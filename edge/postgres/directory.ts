/**
 * Directory: one Durable Object (`idFromName("directory")`) that knows which fleets exist and when
 * each was last active, so the cron triggers know whose outbox to drain and which fleet-hours to
 * aggregate. Fleet objects ping it from their alarm (at most once a minute); the cron handler
 * reports each flush's outcome, so a fleet with rows still waiting stays listed however long it
 * has been quiet.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../worker/env";

export type DirectoryEntry = {
  fleet: string;
  last_active_at: number;
  /** Outbox rows left after the last flush (0 when unknown). */
  pending: number;
  last_flush_at: number | null;
  last_error: string | null;
  /** Start of the newest hour aggregated (ms), or null. */
  hourly_through: number | null;
};

export class Directory extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS fleets (
      fleet TEXT PRIMARY KEY, last_active_at INTEGER NOT NULL, pending INTEGER NOT NULL DEFAULT 0,
      last_flush_at INTEGER, last_error TEXT, hourly_through INTEGER)`);
  }

  /** A fleet object is alive (and may have rows to flush). */
  ping(fleet: string, at: number): void {
    this.sql.exec(
      `INSERT INTO fleets (fleet, last_active_at) VALUES (?, ?)
       ON CONFLICT (fleet) DO UPDATE SET last_active_at = MAX(last_active_at, excluded.last_active_at)`,
      fleet,
      at,
    );
  }

  /** Outcome of a flush of `fleet`. */
  reportFlush(fleet: string, r: { at: number; remaining: number; error?: string | undefined }): void {
    this.sql.exec(
      `INSERT INTO fleets (fleet, last_active_at, pending, last_flush_at, last_error) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (fleet) DO UPDATE SET pending = excluded.pending, last_flush_at = excluded.last_flush_at, last_error = excluded.last_error`,
      fleet,
      r.at,
      r.remaining,
      r.at,
      r.error ?? null,
    );
  }

  reportHourly(fleet: string, hour: number): void {
    this.sql.exec(`UPDATE fleets SET hourly_through = MAX(COALESCE(hourly_through, 0), ?) WHERE fleet = ?`, hour, fleet);
  }

  /** Fleets active since `since` (ms) or with rows still waiting in their outbox. */
  fleets(since: number): DirectoryEntry[] {
    return this.sql
      .exec<DirectoryEntry>(`SELECT * FROM fleets WHERE last_active_at >= ? OR pending > 0 ORDER BY fleet`, since)
      .toArray();
  }
}

/** The directory's stub. */
export function directoryStub(env: Pick<Env, "DIRECTORY">): DurableObjectStub<Directory> {
  return env.DIRECTORY.get(env.DIRECTORY.idFromName("directory"));
}

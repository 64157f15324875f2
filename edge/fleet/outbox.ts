/**
 * The fleet object's outbox: everything that must reach Postgres, kept in the object's SQLite until
 * a flush has committed it there (edge/postgres/drain.ts drains it; the cron trigger calls the flush).
 * Tables `outbox`, `outbox_snapshots` and `outbox_meta` (schema.ts).
 *
 * - `outbox` holds one row per fact, keyed by (kind, key). Facts that evolve (a mission, a
 *   coordination event, an alert) are replaced rather than appended: the old row is deleted and the
 *   new one inserted with a fresh id, so at most the newest revision waits, and a flush in flight
 *   that acks the old id leaves the new one queued.
 * - `outbox_snapshots` holds the downsampled telemetry (one row per drone per 10 s) in columns.
 *
 * Bounded: past `snapshotBound` snapshot rows (Postgres down for a long time) the oldest half is
 * thinned to every other row per drone, the dropped rows' distance added to the row that follows,
 * and the count kept in `outbox_meta`. Live-metric rows are thinned the same way past their own
 * bound. Missions, coordination events, alerts, charging sessions and command audit are never dropped.
 *
 * Dead letters: a row Postgres refused on its own (edge/postgres/drain.ts decides) moves to
 * `outbox_dead_letters` with the reason, so every other row keeps flowing. Admins read them
 * (GET /analytics/dead-letters) and `/analytics/live` counts them. The table keeps the newest
 * `DEAD_LETTER_BOUND` rows; older ones are dropped and counted (`dead_letters_dropped`).
 */
import type { OutboxBodies, OutboxBatch, OutboxItem, OutboxKind, SnapshotRow } from "../domain/outbox-rows";
import { OUTBOX_KINDS } from "../domain/outbox-rows";

export const DEFAULT_SNAPSHOT_BOUND = 200_000;
export const DEFAULT_METRICS_BOUND = 50_000;
/** Most dead letters kept; each is one refused row, so this many means something is badly wrong. */
export const DEAD_LETTER_BOUND = 1_000;

/** A row Postgres refused, as kept in the fleet object. `kind` is an outbox kind or "snapshot". */
export type DeadLetter = {
  id: number;
  kind: string;
  key: string;
  /** The row as it was queued (an outbox body, or the snapshot's columns), JSON text. */
  body: string;
  /** Why Postgres (or the driver) refused it. */
  error: string;
  /** When it was queued (ms; null for snapshots, which keep only their slot time). */
  queued_at: number | null;
  dead_at: number;
};

export type OutboxStats = {
  pending: Record<OutboxKind | "snapshot", number>;
  /** Snapshots dropped by thinning while Postgres was unreachable. */
  snapshots_thinned: number;
  /** Live-metric rows dropped the same way. */
  metrics_thinned: number;
  /** Rows set aside because Postgres refused them, kept now (at most DEAD_LETTER_BOUND). */
  dead_letters: number;
  /** Every row ever set aside, including those dropped beyond the bound. */
  dead_letters_total: number;
};

export class Outbox {
  private snapshotCount = 0;
  private metricsCount = 0;
  /** Highest ids in a batch being written: thinning leaves those rows alone. */
  private inflightSnapshotId = 0;
  private inflightItemId = 0;

  constructor(
    private readonly sql: SqlStorage,
    private readonly bounds: { snapshots: number; metrics: number } = { snapshots: DEFAULT_SNAPSHOT_BOUND, metrics: DEFAULT_METRICS_BOUND },
    /** The fleet object's clock (dead letters' `dead_at`). */
    private readonly now: () => number = () => Date.now(),
  ) {}

  load(): void {
    this.snapshotCount = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox_snapshots`).one().n;
    this.metricsCount = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox WHERE kind = 'performance_metrics'`).one().n;
  }

  /** Queue a fact; a queued fact with the same kind and key is replaced by this newer one. */
  put<K extends OutboxKind>(kind: K, key: string, body: OutboxBodies[K], now: number): void {
    const replaced = this.sql.exec(`DELETE FROM outbox WHERE kind = ? AND key = ?`, kind, key).rowsWritten;
    this.sql.exec(`INSERT INTO outbox (kind, key, body, created_at) VALUES (?, ?, ?, ?)`, kind, key, JSON.stringify(body), now);
    if (kind === "performance_metrics" && replaced === 0 && ++this.metricsCount > this.bounds.metrics) this.thinMetrics();
  }

  /** `put` for many facts of one kind in two statements (an alert storm, outbox writes per tick). */
  putMany<K extends OutboxKind>(kind: K, items: readonly { key: string; body: OutboxBodies[K] }[], now: number): void {
    if (!items.length) return;
    if (items.length === 1) return this.put(kind, items[0]!.key, items[0]!.body, now);
    const rows = JSON.stringify(items.map((i) => [i.key, JSON.stringify(i.body)]));
    const replaced = this.sql.exec(`DELETE FROM outbox WHERE kind = ? AND key IN (SELECT value ->> 0 FROM json_each(?))`, kind, rows).rowsWritten;
    this.sql.exec(`INSERT INTO outbox (kind, key, body, created_at) SELECT ?, value ->> 0, value ->> 1, ? FROM json_each(?)`, kind, now, rows);
    if (kind === "performance_metrics") {
      this.metricsCount += items.length - replaced;
      if (this.metricsCount > this.bounds.metrics) this.thinMetrics();
    }
  }

  addSnapshot(s: Omit<SnapshotRow, "id">): void {
    this.sql.exec(
      `INSERT INTO outbox_snapshots (drone_id, snapshot_time, lat, lon, alt_m, battery_pct, speed_mps, status, armed, distance_m)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      s.drone_id,
      s.snapshot_time,
      s.lat,
      s.lon,
      s.alt_m,
      s.battery_pct,
      s.speed_mps,
      s.status,
      s.armed ? 1 : 0,
      s.distance_m,
    );
    if (++this.snapshotCount > this.bounds.snapshots) this.thinSnapshots();
  }

  /**
   * Many snapshots in one statement (a relay frame's, when its drones crossed a 10 s slot
   * together: one INSERT over a JSON array instead of one per drone).
   */
  addSnapshots(rows: readonly Omit<SnapshotRow, "id">[]): void {
    if (!rows.length) return;
    if (rows.length === 1) return this.addSnapshot(rows[0]!);
    this.sql.exec(
      `INSERT INTO outbox_snapshots (drone_id, snapshot_time, lat, lon, alt_m, battery_pct, speed_mps, status, armed, distance_m)
       SELECT value ->> 'drone_id', value ->> 'snapshot_time', value ->> 'lat', value ->> 'lon', value ->> 'alt_m', value ->> 'battery_pct',
              value ->> 'speed_mps', value ->> 'status', CASE WHEN value ->> 'armed' THEN 1 ELSE 0 END, value ->> 'distance_m'
         FROM json_each(?)`,
      JSON.stringify(rows),
    );
    this.snapshotCount += rows.length;
    if (this.snapshotCount > this.bounds.snapshots) this.thinSnapshots();
  }

  /** The oldest rows, up to the limits; marks the snapshots in flight until ack() or release(). */
  read(maxItems: number, maxSnapshots: number): OutboxBatch {
    const items = this.sql
      .exec<{ id: number; kind: string; key: string; body: string }>(`SELECT id, kind, key, body FROM outbox ORDER BY id LIMIT ?`, maxItems)
      .toArray()
      .map((r) => ({ id: r.id, kind: r.kind, key: r.key, body: JSON.parse(r.body) }) as OutboxItem);
    const snapshots = this.sql
      .exec<Omit<SnapshotRow, "armed"> & { armed: number }>(`SELECT * FROM outbox_snapshots ORDER BY id LIMIT ?`, maxSnapshots)
      .toArray()
      .map((r) => ({ ...r, armed: r.armed === 1 }));
    this.inflightSnapshotId = snapshots.length ? snapshots[snapshots.length - 1]!.id : 0;
    this.inflightItemId = items.length ? items[items.length - 1]!.id : 0;
    return { items, snapshots };
  }

  /** Delete a batch (or a contiguous part of one) after its transaction committed. Rows replaced
   * meanwhile are already gone. The rest of the batch stays in flight until release(). */
  ack(batch: OutboxBatch): void {
    // Durable Object SQLite binds at most 100 parameters per statement ("too many SQL variables").
    for (const ids of chunk(batch.items.map((i) => i.id), 100)) {
      this.sql.exec(`DELETE FROM outbox WHERE id IN (${ids.map(() => "?").join(",")})`, ...ids);
    }
    const snaps = batch.snapshots;
    if (snaps.length) {
      // Snapshots are read in id order: the batch is an id range (less any thinned meanwhile).
      this.sql.exec(`DELETE FROM outbox_snapshots WHERE id >= ? AND id <= ?`, snaps[0]!.id, snaps[snaps.length - 1]!.id);
    }
    this.load();
  }

  /**
   * Move rows Postgres refused out of the outbox into the dead letters, with the reason. A row
   * replaced by a newer revision meanwhile is not recorded: the newer one gets its own try.
   */
  deadLetter(part: OutboxBatch, error: string): void {
    const now = this.now();
    let added = 0;
    for (const i of part.items) {
      const row = this.sql.exec<{ body: string; created_at: number }>(`SELECT body, created_at FROM outbox WHERE id = ?`, i.id).toArray()[0];
      if (!row) continue;
      this.sql.exec(`INSERT INTO outbox_dead_letters (kind, key, body, error, queued_at, dead_at) VALUES (?, ?, ?, ?, ?, ?)`, i.kind, i.key, row.body, error, row.created_at, now);
      this.sql.exec(`DELETE FROM outbox WHERE id = ?`, i.id);
      added++;
    }
    for (const s of part.snapshots) {
      if (this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox_snapshots WHERE id = ?`, s.id).one().n === 0) continue;
      const { id: _id, ...body } = s;
      this.sql.exec(
        `INSERT INTO outbox_dead_letters (kind, key, body, error, queued_at, dead_at) VALUES ('snapshot', ?, ?, ?, NULL, ?)`,
        `${s.drone_id}@${s.snapshot_time}`,
        JSON.stringify(body),
        error,
        now,
      );
      this.sql.exec(`DELETE FROM outbox_snapshots WHERE id = ?`, s.id);
      added++;
    }
    if (!added) return;
    this.addMeta("dead_letters_total", added);
    const over = this.deadLetterCount() - DEAD_LETTER_BOUND;
    if (over > 0) {
      this.sql.exec(`DELETE FROM outbox_dead_letters WHERE id IN (SELECT id FROM outbox_dead_letters ORDER BY id LIMIT ?)`, over);
      this.addMeta("dead_letters_dropped", over);
    }
    this.load();
  }

  /**
   * Dead letters back into the outbox for another try, once their cause is fixed (a migration, a
   * widened column): `ids` those, else every one kept. A row whose kind and key have a newer
   * revision queued meanwhile is dropped instead (the newer one is what Postgres should get).
   * Counted in `dead_letters_replayed`. A row refused again becomes a dead letter again.
   */
  replayDeadLetters(ids?: readonly number[]): { replayed: number; superseded: number } {
    const rows = ids
      ? ids.length
        ? this.sql.exec<DeadLetter>(`SELECT * FROM outbox_dead_letters WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, JSON.stringify(ids)).toArray()
        : []
      : this.sql.exec<DeadLetter>(`SELECT * FROM outbox_dead_letters ORDER BY id`).toArray();
    let replayed = 0;
    let superseded = 0;
    for (const r of rows) {
      if (r.kind === "snapshot") {
        this.addSnapshot(JSON.parse(r.body) as Omit<SnapshotRow, "id">);
        replayed++;
      } else if (this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox WHERE kind = ? AND key = ?`, r.kind, r.key).one().n > 0) {
        superseded++;
      } else {
        this.sql.exec(`INSERT INTO outbox (kind, key, body, created_at) VALUES (?, ?, ?, ?)`, r.kind, r.key, r.body, r.queued_at ?? this.now());
        replayed++;
      }
      this.sql.exec(`DELETE FROM outbox_dead_letters WHERE id = ?`, r.id);
    }
    if (replayed) this.addMeta("dead_letters_replayed", replayed);
    this.load();
    return { replayed, superseded };
  }

  /** The newest dead letters first; `before` an id for paging. */
  deadLetters(limit: number, before?: number): DeadLetter[] {
    return this.sql
      .exec<DeadLetter>(`SELECT * FROM outbox_dead_letters WHERE id < ? ORDER BY id DESC LIMIT ?`, before ?? Number.MAX_SAFE_INTEGER, limit)
      .toArray();
  }

  deadLetterCount(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox_dead_letters`).one().n;
  }

  /** The batch read is settled (written, set aside or left queued): thinning may touch its rows again. */
  release(): void {
    this.inflightSnapshotId = 0;
    this.inflightItemId = 0;
  }

  pendingTotal(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM outbox`).one().n + this.snapshotCount;
  }

  stats(): OutboxStats {
    const pending = Object.fromEntries([...OUTBOX_KINDS, "snapshot"].map((k) => [k, 0])) as OutboxStats["pending"];
    for (const r of this.sql.exec<{ kind: OutboxKind; n: number }>(`SELECT kind, COUNT(*) AS n FROM outbox GROUP BY kind`)) pending[r.kind] = r.n;
    pending.snapshot = this.snapshotCount;
    return {
      pending,
      snapshots_thinned: this.meta("snapshots_thinned"),
      metrics_thinned: this.meta("metrics_thinned"),
      dead_letters: this.deadLetterCount(),
      dead_letters_total: this.meta("dead_letters_total"),
    };
  }

  meta(key: string): number {
    const r = this.sql.exec<{ value: string }>(`SELECT value FROM outbox_meta WHERE key = ?`, key).toArray()[0];
    return r ? Number(r.value) : 0;
  }

  getMetaText(key: string): string | null {
    return this.sql.exec<{ value: string }>(`SELECT value FROM outbox_meta WHERE key = ?`, key).toArray()[0]?.value ?? null;
  }

  setMetaText(key: string, value: string): void {
    this.sql.exec(`INSERT INTO outbox_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value);
  }

  private addMeta(key: string, n: number): void {
    this.setMetaText(key, String(this.meta(key) + n));
  }

  /**
   * Drop every other snapshot per drone among the oldest half (outside any batch in flight). Each
   * dropped row's distance moves to the drone's next row, so distance totals stay right.
   */
  private thinSnapshots(): void {
    const window = `WITH old AS (SELECT id, drone_id, distance_m FROM outbox_snapshots WHERE id > ? ORDER BY id LIMIT ?),
      win AS (SELECT id, distance_m, ROW_NUMBER() OVER (PARTITION BY drone_id ORDER BY id) AS rn,
                     LEAD(id) OVER (PARTITION BY drone_id ORDER BY id) AS next_id FROM old),
      pairs AS (SELECT id AS drop_id, next_id AS keep_id, distance_m AS d FROM win WHERE rn % 2 = 0 AND next_id IS NOT NULL)`;
    const args = [this.inflightSnapshotId, Math.ceil(this.bounds.snapshots / 2)];
    this.sql.exec(
      `${window} UPDATE outbox_snapshots SET distance_m = outbox_snapshots.distance_m + pairs.d FROM pairs WHERE outbox_snapshots.id = pairs.keep_id`,
      ...args,
    );
    this.sql.exec(`${window} DELETE FROM outbox_snapshots WHERE id IN (SELECT drop_id FROM pairs)`, ...args);
    // Counted, not taken from rowsWritten (which may include index writes).
    const before = this.snapshotCount;
    this.load();
    this.addMeta("snapshots_thinned", before - this.snapshotCount);
  }

  private thinMetrics(): void {
    this.sql.exec(
      `WITH old AS (SELECT id FROM outbox WHERE kind = 'performance_metrics' AND id > ? ORDER BY id LIMIT ?),
            win AS (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM old)
       DELETE FROM outbox WHERE id IN (SELECT id FROM win WHERE rn % 2 = 0)`,
      this.inflightItemId,
      Math.ceil(this.bounds.metrics / 2),
    );
    const before = this.metricsCount;
    this.load();
    this.addMeta("metrics_thinned", before - this.metricsCount);
  }
}

function chunk<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/**
 * Draining an outbox into Postgres: read a batch, write it in one transaction, and only after
 * COMMIT delete it from the outbox. A failure before COMMIT leaves the rows queued for the next
 * run; a crash after COMMIT but before the delete makes the next run write them again, which the
 * writer's natural keys turn into no-ops. The source is an interface so that the fleet object
 * (SQLite, edge/fleet/outbox.ts) and the Node tests (memory) drain the same way.
 *
 * One row Postgres refuses must not hold back every row after it. When a batch fails for a reason
 * that lies in its rows (SQLSTATE class 21, 22 or 23: a number out of range, a time out of range,
 * a NULL in a NOT NULL column, …; or a value the driver cannot even encode), the batch is split in
 * halves and each half written on its own, down to single rows; a row that fails alone is set
 * aside (`deadLetter`) with the reason, and everything else is committed. Any other failure
 * (Postgres unreachable, a missing table, a timeout) ends the run with every row still queued:
 * none of those is a row's fault, and setting rows aside for it would lose them from the flow.
 */
import type { OutboxBatch, OutboxItem, SnapshotRow } from "../domain/outbox-rows";
import type { AnalyticsDb } from "./client";
import { writeBatch, type FleetInfo } from "./writer";

export interface OutboxSource {
  /** The oldest rows; they are in flight until release(). */
  read(maxItems: number, maxSnapshots: number): OutboxBatch;
  /** These rows (all of a batch read, or a contiguous part of it) are committed in Postgres: delete them. */
  ack(part: OutboxBatch): void;
  /** Postgres refused these rows (a part of the batch read): move them out of the outbox, with why. */
  deadLetter(part: OutboxBatch, error: string): void;
  /** The batch read is settled (written, set aside, or left queued): nothing is in flight any more. */
  release(): void;
  pendingTotal(): number;
}

export type FlushLimits = {
  /** Rows per transaction (snapshots and other rows are counted apart). */
  maxItems?: number;
  maxSnapshots?: number;
  /** Stop starting new transactions after this long; the rest waits for the next run. */
  budgetMs?: number;
  maxBatches?: number;
};

export type FlushResult = {
  status: "ok" | "error" | "no_database" | "unknown_fleet";
  /** Rows committed by this run. */
  rows: number;
  /** Transactions committed by this run. */
  batches: number;
  ms: number;
  /** Rows still in the outbox afterwards. */
  remaining: number;
  /** Rows this run set aside because Postgres refused them (outbox dead letters). */
  dead_lettered: number;
  error?: string;
};

export const DEFAULT_FLUSH_LIMITS: Required<FlushLimits> = { maxItems: 2_000, maxSnapshots: 10_000, budgetMs: 20_000, maxBatches: 50 };

/** SQLSTATE classes that blame the data: cardinality (21), data exception (22), integrity (23). */
const ROW_FAULT_CLASSES = new Set(["21", "22", "23"]);

/**
 * Whether `err` is a row's fault rather than the database's: a Postgres error of class 21, 22 or
 * 23, or a RangeError from encoding a value (an invalid Date, JSON nested beyond the stack). The
 * driver's error may be wrapped (drizzle puts it in `cause`).
 */
export function isRowFault(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e !== null && e !== undefined && depth < 5; depth++) {
    if (e instanceof RangeError) return true;
    const code = typeof e === "object" ? (e as { code?: unknown }).code : undefined;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return ROW_FAULT_CLASSES.has(code.slice(0, 2));
    e = typeof e === "object" ? (e as { cause?: unknown }).cause : undefined;
  }
  return false;
}

type Row = { item: OutboxItem } | { snapshot: SnapshotRow };
const EMPTY: OutboxBatch = { items: [], snapshots: [] };

/** Drain `source` into Postgres batch by batch. Never throws: a failure ends the run with status "error". */
export async function drainOutbox(
  source: OutboxSource,
  db: AnalyticsDb,
  fleet: FleetInfo,
  limits: FlushLimits = {},
  clock: () => number = () => Date.now(),
): Promise<FlushResult> {
  const lim = { ...DEFAULT_FLUSH_LIMITS, ...limits };
  const t0 = clock();
  const run = { rows: 0, batches: 0, dead: 0, outOfTime: false };
  const inBudget = () => clock() - t0 < lim.budgetMs;

  /** Write `part` in one transaction and ack it; false when it failed for a row's fault. */
  const attempt = async (part: OutboxBatch): Promise<{ ok: true } | { ok: false; err: unknown }> => {
    try {
      await writeBatch(db, fleet, part);
    } catch (err) {
      if (!isRowFault(err)) throw err;
      return { ok: false, err };
    }
    // Committed. Should the next line never run (eviction, crash), the retry re-inserts the same
    // keys and Postgres keeps one copy.
    source.ack(part);
    run.rows += part.items.length + part.snapshots.length;
    run.batches++;
    return { ok: true };
  };

  /** Halve a failed part until each bad row stands alone; rows left when time runs out stay queued. */
  const isolate = async (rows: Row[]): Promise<void> => {
    const mid = Math.ceil(rows.length / 2);
    for (const half of [rows.slice(0, mid), rows.slice(mid)]) {
      if (half.length === 0) continue;
      if (!inBudget()) {
        run.outOfTime = true;
        return;
      }
      const part = toBatch(half);
      const r = await attempt(part);
      if (r.ok) continue;
      if (half.length === 1) {
        source.deadLetter(part, errorText(r.err));
        run.dead++;
      } else {
        await isolate(half);
      }
    }
  };

  try {
    while (run.batches < lim.maxBatches && inBudget() && !run.outOfTime) {
      const batch = source.read(lim.maxItems, lim.maxSnapshots);
      if (batch.items.length + batch.snapshots.length === 0) break;
      try {
        const r = await attempt(batch);
        if (!r.ok) {
          // Before blaming rows: the fleet's own row alone must go in, or the fault is not theirs.
          try {
            await writeBatch(db, fleet, EMPTY);
          } catch {
            throw r.err;
          }
          await isolate([...batch.items.map((item) => ({ item })), ...batch.snapshots.map((snapshot) => ({ snapshot }))]);
        }
      } finally {
        source.release();
      }
    }
    return { status: "ok", rows: run.rows, batches: run.batches, ms: clock() - t0, remaining: source.pendingTotal(), dead_lettered: run.dead };
  } catch (err) {
    return { status: "error", rows: run.rows, batches: run.batches, ms: clock() - t0, remaining: source.pendingTotal(), dead_lettered: run.dead, error: errorText(err) };
  }
}

/** Rows back into a batch; items come before snapshots, so a slice stays contiguous in both. */
function toBatch(rows: readonly Row[]): OutboxBatch {
  const b: OutboxBatch = { items: [], snapshots: [] };
  for (const r of rows) {
    if ("item" in r) b.items.push(r.item);
    else b.snapshots.push(r.snapshot);
  }
  return b;
}

/** A short reason: drizzle wraps driver errors in a message that repeats the whole query and its
 * parameters (thousands of rows), so the cause comes first and the text is capped. The driver may
 * also reject with a WebSocket ErrorEvent rather than an Error. */
export function errorText(err: unknown): string {
  const cause = err instanceof Error ? (err as { cause?: unknown }).cause : undefined;
  const pick = (e: unknown): string | null => {
    if (e instanceof Error && e.message) return e.message;
    if (typeof e === "object" && e !== null) {
      const m = (e as { message?: unknown; error?: unknown; type?: unknown }).message;
      if (typeof m === "string" && m) return m;
      const inner = (e as { error?: unknown }).error;
      if (inner instanceof Error) return inner.message;
      const t = (e as { type?: unknown }).type;
      if (typeof t === "string") return `connection ${t}`;
    }
    return null;
  };
  const text = pick(cause) ?? pick(err) ?? String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * Draining an outbox into Postgres: read a batch, write it in one transaction, and only after
 * COMMIT delete it from the outbox. A failure before COMMIT leaves the rows queued for the next
 * run; a crash after COMMIT but before the delete makes the next run write them again, which the
 * writer's natural keys turn into no-ops. The source is an interface so that the fleet object
 * (SQLite, edge/fleet/outbox.ts) and the Node tests (memory) drain the same way.
 */
import type { OutboxBatch } from "../domain/outbox-rows";
import type { AnalyticsDb } from "./client";
import { writeBatch, type FleetInfo } from "./writer";

export interface OutboxSource {
  read(maxItems: number, maxSnapshots: number): OutboxBatch;
  /** The batch is committed in Postgres: delete it. */
  ack(batch: OutboxBatch): void;
  /** The batch was not written: keep it. */
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
  batches: number;
  ms: number;
  /** Rows still in the outbox afterwards. */
  remaining: number;
  error?: string;
};

export const DEFAULT_FLUSH_LIMITS: Required<FlushLimits> = { maxItems: 2_000, maxSnapshots: 10_000, budgetMs: 20_000, maxBatches: 50 };

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
  let rows = 0;
  let batches = 0;
  try {
    while (batches < lim.maxBatches && clock() - t0 < lim.budgetMs) {
      const batch = source.read(lim.maxItems, lim.maxSnapshots);
      const n = batch.items.length + batch.snapshots.length;
      if (n === 0) break;
      try {
        await writeBatch(db, fleet, batch);
      } catch (err) {
        source.release();
        throw err;
      }
      // Committed. Should the next line never run (eviction, crash), the retry re-inserts the
      // same keys and Postgres keeps one copy.
      source.ack(batch);
      rows += n;
      batches++;
    }
    return { status: "ok", rows, batches, ms: clock() - t0, remaining: source.pendingTotal() };
  } catch (err) {
    return { status: "error", rows, batches, ms: clock() - t0, remaining: source.pendingTotal(), error: errorText(err) };
  }
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

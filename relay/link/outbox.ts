/**
 * Telemetry between the source and the socket: the strategy interface the link talks to, the
 * per-drone sequencer both strategies share, and the batch writer that numbers frames and keeps
 * the unacknowledged ones. Two strategies implement it:
 * - LatestOutbox (latest-outbox.ts), in memory: a pending batch while connected, the latest sample
 *   per drone while not; bounded by drones.
 * - LogOutbox (log-outbox.ts), over a persistent OutboxStore (disk-outbox.ts): every sample in
 *   order, across disconnects and restarts; bounded by bytes.
 */
import type { TelemetrySample } from "../../edge/protocol";
import type { Logger } from "../log";
import type { SourceSample } from "../sources/source";
import type { Clock } from "./clock";
import type { Uplink } from "./connection";

export interface TelemetryOutbox {
  /** A sample from the source (the link has checked it is not stopped). */
  push(sample: SourceSample): void;
  /** The edge answered our hello: send what waits, in order. */
  resume(): void;
  /** A frame reached the kernel while connected: room may have appeared for held samples. */
  writable(): void;
  /** `batch_ack` for one of our frames. */
  acked(batchId: number): void;
  /** The socket closed: take back what was pending or unacknowledged, so nothing is lost. */
  disconnected(): void;
  /** `stop()` while connected: send all that can go now. */
  flush(): void;
  /** After `flush()`: true once nothing more is on its way (what counts differs per strategy). */
  settled(): boolean;
  /** Release timers; nothing is sent afterwards. */
  stop(): void;
  /** Log what a stopped link leaves behind, if anything. */
  logLeftover(log: Logger): void;
  /** Drones held (memory) or records not yet acknowledged (store). */
  depth(): number;
  /** Bytes on disk; 0 in memory. */
  bytes(): number;
  /** Samples lost because the outbox was full. */
  dropped(): number;
  /** Stored records not sent because hello_ack said the edge already held them. */
  staleSkipped(): number;
  readonly framesSent: number;
  readonly updatesSent: number;
}

/** What both strategies are configured with. */
export interface OutboxOptions {
  uplink: Uplink;
  seq: Sequencer;
  clock: Clock;
  log: Logger;
  /** Most updates in one frame (≤ LIMITS.batchUpdates). */
  batchMax: number;
  /** Longest a partial batch waits. */
  batchWindowMs: number;
  /** Unacknowledged frames remembered. */
  maxInflightBatches: number;
}

/**
 * Per-drone sequence numbers: next = max(prev + 1, now, edge_last_seq + 1), where hello_ack folds
 * edge_last_seq into `prev`. Monotonic per drone by construction. Restart-safe without persisting
 * anything: a restarted relay lost `prev`, but its seqs start at the wall clock in ms, above
 * everything its previous run sent, since that run could not sustain more than one sample per
 * drone per ms (sources publish at ≤10 Hz). A clock stepped backwards is covered by the edge's
 * `last_seq` from `hello_ack`; a disk outbox also raises the floor to what its log holds.
 */
export class Sequencer {
  /** Highest seq assigned per drone (also raised by hello_ack `last_seq` and stored history). */
  private readonly last = new Map<string, number>();
  /** `last_seq` of the latest hello_ack: what the edge already holds. */
  private readonly edge = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  next(droneId: string): number {
    const next = Math.max((this.last.get(droneId) ?? -1) + 1, this.now());
    this.last.set(droneId, next);
    return next;
  }

  /** Never assign `seq` or below to this drone again. */
  raise(droneId: string, seq: number): void {
    this.last.set(droneId, Math.max(this.last.get(droneId) ?? -1, seq));
  }

  /** hello_ack: the edge's `last_seq` replaces what the previous connection said. */
  edgeHolds(lastSeq: Readonly<Record<string, number>>): void {
    this.edge.clear();
    for (const [drone, seq] of Object.entries(lastSeq)) {
      this.edge.set(drone, seq);
      this.raise(drone, seq);
    }
  }

  /** The edge said it already holds this seq or a newer one for the drone. */
  edgeHas(droneId: string, seq: number): boolean {
    return (this.edge.get(droneId) ?? -1) >= seq;
  }
}

/**
 * Writes `telemetry_batch` frames and remembers each unacknowledged one with what the strategy
 * needs to take it back (`M`). Batch ids grow for the whole process run, across reconnects.
 */
export class BatchWriter<M> {
  private nextId = 0;
  private readonly inflight = new Map<number, M>();
  framesSent = 0;
  updatesSent = 0;

  constructor(
    private readonly uplink: Uplink,
    private readonly clock: Clock,
    private readonly maxInflight: number,
  ) {}

  /** Send one frame; false when the socket could not take it (the caller keeps the updates). */
  send(updates: TelemetrySample[], meta: M): boolean {
    const batchId = this.nextId++;
    // 500 updates of ~250 bytes is ~125 KiB, well under LIMITS.relayFrameBytes (1 MiB).
    if (!this.uplink.send({ type: "telemetry_batch", batch_id: batchId, sent_at: this.clock.now(), updates })) return false;
    this.framesSent++;
    this.updatesSent += updates.length;
    this.inflight.set(batchId, meta);
    if (this.inflight.size > this.maxInflight) {
      // An edge that never acks must not grow memory: forget the oldest (Maps iterate in order).
      const oldest = this.inflight.keys().next();
      if (!oldest.done) this.inflight.delete(oldest.value);
    }
    return true;
  }

  /** The frame's meta, forgotten; undefined for an unknown or forgotten batch id. */
  take(batchId: number): M | undefined {
    const meta = this.inflight.get(batchId);
    this.inflight.delete(batchId);
    return meta;
  }

  /** Every unacknowledged frame's meta, oldest first, and forget them all. */
  takeAll(): M[] {
    const all = [...this.inflight.values()];
    this.inflight.clear();
    return all;
  }

  get size(): number {
    return this.inflight.size;
  }
}

/**
 * The in-memory outbox: while connected (and not backpressured) every sample joins the pending
 * batch, sent when it holds `batchMax` updates or after `batchWindowMs`; otherwise each drone's
 * latest sample waits, at most `outboxMax` drones. Samples of frames the edge had not acknowledged
 * when the socket dropped go back to the waiting set with the seq they were given, so a re-send is
 * a duplicate at the edge, never a fork.
 */
import type { TelemetrySample } from "../../edge/protocol";
import type { Logger } from "../log";
import type { SourceSample } from "../sources/source";
import type { Timer } from "./clock";
import { BatchWriter, type OutboxOptions, type TelemetryOutbox } from "./outbox";

/** A sample waiting; `seq` is set when it was already sent once (re-send). */
type Held = { sample: SourceSample; seq?: number };

export class LatestOutbox implements TelemetryOutbox {
  private readonly held = new Map<string, Held>();
  private pending: TelemetrySample[] = [];
  /** Each frame's updates, to take them back if the socket drops before its batch_ack. */
  private readonly batches: BatchWriter<TelemetrySample[]>;
  private batchTimer: Timer | null = null;
  private droppedCount = 0;

  constructor(
    private readonly o: OutboxOptions & {
      /** Most drones held while offline. */
      outboxMax: number;
    },
  ) {
    this.batches = new BatchWriter(o.uplink, o.clock, o.maxInflightBatches);
  }

  get framesSent(): number {
    return this.batches.framesSent;
  }
  get updatesSent(): number {
    return this.batches.updatesSent;
  }

  push(sample: SourceSample): void {
    const { uplink } = this.o;
    // While the outbox drains, new samples join it too: a fresh sample sent ahead of an older held
    // one for the same drone would get the lower seq and be overwritten by the stale one.
    if (!uplink.ready || this.held.size > 0 || uplink.backpressured()) {
      this.hold({ sample });
      if (uplink.ready) this.drain();
      return;
    }
    this.pending.push({ ...sample, seq: this.o.seq.next(sample.drone_id) });
    if (this.pending.length >= this.o.batchMax) this.flushPending();
    else this.batchTimer ??= this.o.clock.setTimeout(() => this.flushPending(), this.o.batchWindowMs);
  }

  resume(): void {
    this.drain();
  }

  writable(): void {
    if (this.held.size > 0) this.drain();
  }

  acked(batchId: number): void {
    this.batches.take(batchId);
  }

  disconnected(): void {
    this.clearTimer();
    // Newest first, so that `requeue` keeps each drone's latest sample.
    this.requeue(this.pending);
    this.pending = [];
    for (const updates of this.batches.takeAll().reverse()) this.requeue(updates);
  }

  flush(): void {
    this.drain();
  }

  settled(): boolean {
    // Nothing is acknowledged before stopping in memory: what reached the kernel is all we can do.
    return this.o.uplink.buffered() === 0;
  }

  stop(): void {
    this.clearTimer();
  }

  logLeftover(log: Logger): void {
    if (this.held.size > 0) log.warn("stopped with undelivered telemetry", { outbox: this.held.size });
  }

  depth(): number {
    return this.held.size;
  }
  bytes(): number {
    return 0;
  }
  dropped(): number {
    return this.droppedCount;
  }
  staleSkipped(): number {
    return 0;
  }

  private clearTimer(): void {
    this.o.clock.clearTimeout(this.batchTimer);
    this.batchTimer = null;
  }

  private hold(h: Held): void {
    const id = h.sample.drone_id;
    if (!this.held.has(id) && this.held.size >= this.o.outboxMax) {
      this.droppedCount++;
      return;
    }
    this.held.set(id, h);
  }

  /** Put sent-or-pending updates back, unless the outbox already holds something newer. */
  private requeue(updates: readonly TelemetrySample[]): void {
    for (let i = updates.length - 1; i >= 0; i--) {
      const u = updates[i];
      if (!u || this.held.has(u.drone_id)) continue;
      const { seq, ...sample } = u;
      this.hold({ sample, seq });
    }
  }

  private flushPending(): void {
    this.clearTimer();
    if (this.pending.length === 0) return;
    const updates = this.pending;
    this.pending = [];
    if (!this.o.uplink.ready) {
      this.requeue(updates);
      return;
    }
    this.sendBatch(updates);
  }

  /** Send held samples in full batches while the socket has room; the rest stay held. */
  private drain(): void {
    const { uplink, seq } = this.o;
    if (!uplink.ready) return;
    // Order matters: anything pending was sequenced before these held samples were, and must not
    // be overtaken by them in a later frame.
    this.flushPending();
    while (this.held.size > 0 && !uplink.backpressured()) {
      const updates: TelemetrySample[] = [];
      for (const [id, h] of this.held) {
        this.held.delete(id);
        if (h.seq !== undefined) {
          // Sequenced before the drop: re-send unchanged (same sample, same seq, so at worst a
          // duplicate) unless the edge's hello_ack says it already holds this seq or newer.
          if (seq.edgeHas(id, h.seq)) continue;
          updates.push({ ...h.sample, seq: h.seq });
        } else {
          updates.push({ ...h.sample, seq: seq.next(id) });
        }
        if (updates.length >= this.o.batchMax) break;
      }
      if (updates.length > 0) this.sendBatch(updates);
    }
  }

  private sendBatch(updates: TelemetrySample[]): void {
    if (!this.batches.send(updates, updates)) this.requeue(updates);
  }
}

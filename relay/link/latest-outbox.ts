/**
 * The in-memory outbox: while connected (and not backpressured) every sample joins the pending
 * batch, sent when the pacer says (outbox.ts Pacer: in the next macrotask while the link is idle,
 * else on the next batch_ack or after `batchWindowMs`) or at once when it holds `batchMax`
 * updates; otherwise each drone's latest sample waits, at most `outboxMax` drones. Samples of
 * frames the edge had not acknowledged when the socket dropped go back to the waiting set with the
 * seq they were given, so a re-send is a duplicate at the edge, never a fork.
 */
import type { TelemetrySample } from "../../edge/protocol";
import type { Logger } from "../log";
import type { SourceSample } from "../sources/source";
import { BatchWriter, Pacer, type OutboxOptions, type Release, type TelemetryOutbox } from "./outbox";

/** A sample waiting; `seq` is set when it was already sent once (re-send). */
type Held = { sample: SourceSample; seq?: number };

export class LatestOutbox implements TelemetryOutbox {
  private readonly held = new Map<string, Held>();
  private pending: TelemetrySample[] = [];
  /** Each frame's updates, to take them back if the socket drops before its batch_ack. */
  private readonly batches: BatchWriter<TelemetrySample[]>;
  private readonly pacer: Pacer;
  private droppedCount = 0;

  constructor(
    private readonly o: OutboxOptions & {
      /** Most drones held while offline. */
      outboxMax: number;
    },
  ) {
    this.batches = new BatchWriter(o.uplink, o.clock, o.maxInflightBatches);
    this.pacer = new Pacer({ clock: o.clock, windowMs: o.batchWindowMs, maxFramesPerSecond: o.maxFramesPerSecond, release: (why) => this.flushPending(why) });
  }

  get framesSent(): number {
    return this.batches.framesSent;
  }
  get updatesSent(): number {
    return this.batches.updatesSent;
  }
  get released(): Readonly<Record<Release, number>> {
    return this.pacer.released;
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
    if (this.pending.length >= this.o.batchMax) this.flushPending("full");
    else this.pacer.waiting(this.busy());
  }

  resume(): void {
    this.drain();
  }

  writable(): void {
    if (this.held.size > 0) this.drain();
    // Pending held back only by a full socket buffer may go now that it drained.
    else if (this.pending.length > 0) this.pacer.waiting(this.busy());
  }

  acked(batchId: number): void {
    this.batches.take(batchId);
    // The ack clocks the next frame: what gathered while that one was on its way goes now.
    if (this.pending.length > 0 && this.o.uplink.ready && this.pacer.onAck()) this.flushPending("ack");
  }

  disconnected(): void {
    this.pacer.reset();
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
    this.pacer.reset();
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

  /** A frame awaits its batch_ack, or the socket has not handed the last ones to the kernel. */
  private busy(): boolean {
    return this.batches.size > 0 || this.o.uplink.buffered() > this.o.idleBufferedBytes;
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

  /** Send the pending batch as one frame; `why` counts it (null: part of a drain). */
  private flushPending(why: Release | null): void {
    this.pacer.reset();
    if (this.pending.length === 0) return;
    const updates = this.pending;
    this.pending = [];
    if (!this.o.uplink.ready) {
      this.requeue(updates);
      return;
    }
    if (this.sendBatch(updates) && why) this.pacer.sent(why);
  }

  /** Send held samples in full batches while the socket has room; the rest stay held. */
  private drain(): void {
    const { uplink, seq } = this.o;
    if (!uplink.ready) return;
    // Order matters: anything pending was sequenced before these held samples were, and must not
    // be overtaken by them in a later frame.
    this.flushPending(null);
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

  private sendBatch(updates: TelemetrySample[]): boolean {
    if (this.batches.send(updates, updates)) return true;
    this.requeue(updates);
    return false;
  }
}

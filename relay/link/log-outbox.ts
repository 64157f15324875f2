/**
 * The persistent outbox: every sample is given its seq when pushed and appended to the store's
 * log, and frames are read from the log in order, at most `maxInflightBatches` unacknowledged. So
 * while offline the whole history is kept (bounded in bytes by the store) instead of the latest
 * sample per drone, and it survives a restart: what a previous run left is delivered first, in
 * order, with its original seqs. A dropped socket rewinds the read cursor to the oldest
 * unacknowledged record. When unread records go is the pacer's call (outbox.ts Pacer), as in
 * memory: in the next macrotask while the link is idle, else on an ack or after the window.
 */
import type { Logger } from "../log";
import type { SourceSample } from "../sources/source";
import type { OutboxStore } from "./disk-outbox";
import { BatchWriter, Pacer, type OutboxOptions, type Release, type TelemetryOutbox } from "./outbox";

/** A frame's LSN range in the store, acknowledged as a whole. */
type Range = { from: number; to: number };

export class LogOutbox implements TelemetryOutbox {
  private readonly batches: BatchWriter<Range>;
  private readonly pacer: Pacer;
  private skipped = 0;

  constructor(private readonly o: OutboxOptions & { store: OutboxStore }) {
    this.batches = new BatchWriter(o.uplink, o.clock, o.maxInflightBatches);
    this.pacer = new Pacer({ clock: o.clock, windowMs: o.batchWindowMs, maxFramesPerSecond: o.maxFramesPerSecond, release: (why) => this.drain(why) });
    // New samples must sort after the history a previous run left in the log.
    for (const [drone, seq] of o.store.lastSeqs()) o.seq.raise(drone, seq);
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
    // Sequenced now, so the stored record is exactly what will be sent, after a restart too.
    this.o.store.appendTelemetry({ ...sample, seq: this.o.seq.next(sample.drone_id) });
    this.schedule();
  }

  resume(): void {
    const held = this.o.store.depth();
    if (held > 0) this.o.log.info("delivering buffered telemetry in order", { records: held });
    this.drain(null);
  }

  writable(): void {
    this.schedule();
  }

  acked(batchId: number): void {
    const range = this.batches.take(batchId);
    if (!range) return;
    this.o.store.ackTelemetry(range.from, range.to);
    this.schedule(true);
  }

  disconnected(): void {
    this.pacer.reset();
    this.batches.takeAll();
    // Everything unacknowledged is read again, in order, from the oldest unacknowledged record.
    this.o.store.rewind();
  }

  flush(): void {
    this.drain(null);
  }

  settled(): boolean {
    // Acks matter here: whatever is not acknowledged is sent again by the next run.
    return this.batches.size === 0 && this.o.store.unread() === 0;
  }

  stop(): void {
    this.pacer.reset();
  }

  logLeftover(log: Logger): void {
    const { store } = this.o;
    if (store.depth() > 0) log.info("stopped with telemetry kept on disk for the next run", { records: store.depth(), bytes: store.bytes() });
  }

  depth(): number {
    return this.o.store.depth();
  }
  bytes(): number {
    return this.o.store.bytes();
  }
  dropped(): number {
    return this.o.store.dropped();
  }
  staleSkipped(): number {
    return this.skipped;
  }

  /** Send unread records when due: a full batch now, else as the pacer says (`acked`: an ack just came). */
  private schedule(acked = false): void {
    const { store, uplink } = this.o;
    if (!uplink.ready || store.unread() === 0) return;
    if (this.batches.size >= this.o.maxInflightBatches || uplink.backpressured()) return; // an ack or a write resumes
    if (store.unread() >= this.o.batchMax) this.drain("full");
    else if (acked && this.pacer.onAck()) this.drain("ack");
    else this.pacer.waiting(this.batches.size > 0 || uplink.buffered() > this.o.idleBufferedBytes);
  }

  /**
   * Send stored records in order while the socket has room and fewer than the inflight cap wait;
   * `why` counts the frames (null: a drain after hello_ack or at stop).
   */
  private drain(why: Release | null): void {
    // Whatever stays unread now waits for room (an ack or a write), which schedules it afresh.
    this.pacer.reset();
    const { store, uplink, seq } = this.o;
    if (!uplink.ready) return;
    while (!uplink.backpressured() && this.batches.size < this.o.maxInflightBatches) {
      const read = store.readTelemetry(this.o.batchMax);
      if (!read) break;
      // The edge's hello_ack says what it already holds; older records would only be counted as
      // duplicates there, so they are acknowledged here without being sent.
      const updates = read.updates.filter((u) => !seq.edgeHas(u.drone_id, u.seq));
      this.skipped += read.updates.length - updates.length;
      if (updates.length === 0) {
        store.ackTelemetry(read.from, read.to);
        continue;
      }
      // On failure the records stay in the store; the close that follows rewinds the cursor.
      if (!this.batches.send(updates, { from: read.from, to: read.to })) break;
      if (why) this.pacer.sent(why);
    }
  }
}

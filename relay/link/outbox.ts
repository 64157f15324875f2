/**
 * Telemetry between the source and the socket: the strategy interface the link talks to, the
 * per-drone sequencer both strategies share, the batch writer that numbers frames and keeps the
 * unacknowledged ones, and the pacer that decides when waiting updates go (adaptive batching).
 * Two strategies implement it:
 * - LatestOutbox (latest-outbox.ts), in memory: a pending batch while connected, the latest sample
 *   per drone while not; bounded by drones.
 * - LogOutbox (log-outbox.ts), over a persistent OutboxStore (disk-outbox.ts): every sample in
 *   order, across disconnects and restarts; bounded by bytes.
 */
import type { TelemetrySample } from "../../edge/protocol";
import type { Logger } from "../log";
import type { SourceSample } from "../sources/source";
import type { Clock, Timer } from "./clock";
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
  /** Frames by what released them (see Pacer); outbox drains after a reconnect are in none. */
  readonly released: Readonly<Record<Release, number>>;
}

/** What both strategies are configured with. */
export interface OutboxOptions {
  uplink: Uplink;
  seq: Sequencer;
  clock: Clock;
  log: Logger;
  /** Most updates in one frame (≤ LIMITS.batchUpdates). */
  batchMax: number;
  /** Longest an update waits for company while the link is busy (the window bound). */
  batchWindowMs: number;
  /** Frames a second above which updates are held back; see Pacer. */
  maxFramesPerSecond: number;
  /** The link counts as idle only while the socket buffers at most this many bytes. */
  idleBufferedBytes: number;
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

/**
 * What released a frame: `idle` the link was idle (sent in the next macrotask), `ack` a batch_ack
 * arrived while updates waited, `rate` the frame-rate cap held them back and now allowed them,
 * `window` they had waited the window bound, `full` a frame's worth (500) waited.
 */
export type Release = "idle" | "ack" | "rate" | "window" | "full";

export interface PacerOptions {
  clock: Clock;
  /** Longest an update waits for company (`batchWindowMs`). */
  windowMs: number;
  /** Frames a second above which updates are held back (see Pacer); 0: never early, a fixed window. */
  maxFramesPerSecond: number;
  /** Send what waits, now (a timer fired). */
  release: (why: "idle" | "rate" | "window") => void;
}

/**
 * When waiting telemetry goes: Nagle's algorithm with a deadline and a frame-rate cap. A fixed
 * window added its full length (100 ms) to every update of a small fleet; this adds nothing while
 * the link is idle and coalesces only while the link is busy, which is when frames cost something.
 * - Idle (no frame awaits its batch_ack, the socket buffers next to nothing): send in the next
 *   macrotask (`clock.defer`), so the samples one event-loop turn produces (the simulator's whole
 *   tick, a burst of ROS callbacks) share one frame and none waits longer.
 * - Busy: wait for the next batch_ack (`onAck`) or until the oldest waiting update has waited
 *   `windowMs`, whichever comes first. A frame's worth (500) goes at once (the caller's rule).
 * - High rate: frames at most every 1000/`maxFramesPerSecond` ms (10 ms by default), so a fast
 *   edge (acks in 1-2 ms on a LAN) or a source spreading many drones over the second cannot drive
 *   the relay into a frame per sample, and each frame costs the edge one write. An early release
 *   (idle or ack) that comes sooner waits for that moment (`rate`), or for the window bound if
 *   that is earlier.
 * So an update waits at the pacer at most `windowMs` whatever happens (backpressure and an
 * offline link are the outbox's business, not the pacer's).
 */
export class Pacer {
  private deferred: Timer | null = null;
  private timer: Timer | null = null;
  private timerDue = Number.POSITIVE_INFINITY;
  /** When the oldest waiting update arrived; null when nothing waits. */
  private since: number | null = null;
  /** When the last frame left (any release). */
  private lastFrameAt = Number.NEGATIVE_INFINITY;
  private readonly gapMs: number;
  readonly released: Record<Release, number> = { idle: 0, ack: 0, rate: 0, window: 0, full: 0 };

  constructor(private readonly o: PacerOptions) {
    this.gapMs = o.maxFramesPerSecond > 0 ? 1000 / o.maxFramesPerSecond : Number.POSITIVE_INFINITY;
  }

  /** Updates wait to be sent; `busy`: a frame awaits its batch_ack, or the socket still buffers. */
  waiting(busy: boolean): void {
    const now = this.o.clock.now();
    this.since ??= now;
    // Decided this turn already: the deferred flush takes everything that arrives before it runs.
    if (this.deferred) return;
    if (busy) {
      this.arm(this.since + this.o.windowMs, "window");
      return;
    }
    if (now >= this.nextFrameAt()) {
      this.disarm();
      this.deferred = this.o.clock.defer(() => {
        this.deferred = null;
        this.o.release("idle");
      });
      return;
    }
    this.holdBack();
  }

  /**
   * A batch_ack arrived while updates wait: true when they go now; false when the frame-rate cap
   * holds them back (a timer then releases them as soon as it allows, or at the window bound).
   */
  onAck(): boolean {
    if (this.o.clock.now() >= this.nextFrameAt()) return true;
    this.since ??= this.o.clock.now();
    this.holdBack();
    return false;
  }

  /** A frame left for `why`. */
  sent(why: Release): void {
    this.released[why]++;
    this.lastFrameAt = this.o.clock.now();
  }

  /** Nothing waits any more (all sent, taken back or stopping): timers off. */
  reset(): void {
    this.o.clock.clearTimeout(this.deferred);
    this.deferred = null;
    this.disarm();
    this.since = null;
  }

  /** Until the cap allows the next frame, or the window bound if that comes first. */
  private holdBack(): void {
    const free = this.nextFrameAt();
    const bound = (this.since ?? this.o.clock.now()) + this.o.windowMs;
    if (free < bound) this.arm(free, "rate");
    else this.arm(bound, "window");
  }

  /** When the cap allows the next frame (never, with a cap of 0: the fixed window). */
  private nextFrameAt(): number {
    if (this.gapMs === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
    return this.lastFrameAt + this.gapMs;
  }

  /** Release at `due` unless a timer already releases sooner. */
  private arm(due: number, why: "rate" | "window"): void {
    if (this.timer && this.timerDue <= due) return;
    this.disarm();
    this.timerDue = due;
    this.timer = this.o.clock.setTimeout(
      () => {
        this.timer = null;
        this.timerDue = Number.POSITIVE_INFINITY;
        this.o.release(why);
      },
      Math.max(0, due - this.o.clock.now()),
    );
  }

  private disarm(): void {
    this.o.clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerDue = Number.POSITIVE_INFINITY;
  }
}

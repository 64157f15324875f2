/**
 * relay/link: the relay's one WebSocket to the edge's fleet object, and everything owed to it.
 *
 * Owns: the connection (connection.ts: lifecycle, backoff, heartbeat, parsing every E→R frame with
 * the protocol's `parseEdgeToRelay`), telemetry batching (outbox.ts Pacer: at once while the link
 * is idle, coalesced while a frame awaits its ack) and the outbox (outbox.ts, one strategy
 * in memory, latest-outbox.ts, and one over the disk store, log-outbox.ts + disk-outbox.ts),
 * per-drone seqs, command execution and results (command-runner.ts), mission progress
 * (progress-queue.ts), and the clock they all run on (clock.ts).
 * May import: edge/protocol (the wire, both ways) and edge/domain, the relay's log, the
 * `DroneSource` types of relay/sources/source.ts, node:* and ws. Not the sources themselves
 * (cli.ts wires a source to a link), and nothing else of edge/.
 *
 * Guarantees, in the order they matter on a field site with a flaky uplink:
 * - Bounded memory: a pending batch of ≤500 updates, an outbox of ≤`outboxMax` drones (latest
 *   sample per drone), ≤`maxInflightBatches` unacknowledged frames, and no sends while the socket
 *   already buffers more than `maxBufferedBytes`.
 * - Latest state survives disconnects: while offline, or before the edge has answered our hello,
 *   samples wait in the outbox; so do samples of frames the edge had not acknowledged when the
 *   socket dropped. After the next `hello_ack` the outbox is flushed in batches.
 * - Per-drone `seq` never goes backwards and never names two different samples (see Sequencer).
 * - Never spins, and dead sockets are noticed (see connection.ts).
 * - Commands run concurrently with the relay's own deadline, a repeated command_id never runs
 *   twice, and results are re-sent after every reconnect until acknowledged (command-runner.ts).
 * - `mission_progress` waits, in order and bounded, until the edge has answered our hello and the
 *   mission's assign_mission result has gone first (progress-queue.ts).
 * - With a persistent `store` (DiskOutbox) the whole history is kept while offline and survives a
 *   restart; results and progress are mirrored into it until acknowledged or sent (log-outbox.ts).
 */
import { EventEmitter } from "node:events";
import { DRONE_ID_RE, LIMITS, type EdgeToRelay, type HelloAck, type RelayHello } from "../../edge/protocol";
import { silentLogger, type Logger } from "../log";
import type { MissionProgressEvent, SourceKind, SourceSample } from "../sources/source";
import { realClock, type Clock } from "./clock";
import { CommandRunner, type CommandEnded, type Execute } from "./command-runner";
import { Connection, DEFAULT_BACKOFF, relayUrl, type BackoffOptions, type Refusal } from "./connection";
import type { OutboxStore } from "./disk-outbox";
import { LatestOutbox } from "./latest-outbox";
import { LogOutbox } from "./log-outbox";
import { Sequencer, type TelemetryOutbox } from "./outbox";
import { ProgressQueue } from "./progress-queue";

export { backoffDelay, DEFAULT_BACKOFF, relayUrl, type BackoffOptions, type Refusal } from "./connection";
export type { Clock, Timer } from "./clock";

export interface LinkStats {
  /** Telemetry updates written into sent frames (a re-sent update counts again). */
  updatesSent: number;
  /** `telemetry_batch` frames sent. */
  framesSent: number;
  /**
   * Frames by what released them (adaptive batching, outbox.ts Pacer): `idle` sent at once (next
   * macrotask) because no frame awaited its ack; the others coalesced, released by a batch_ack
   * (`ack`), by the frame-rate cap allowing the next frame (`rate`), by the window bound
   * (`window`, `batchWindowMs`), or by 500 waiting updates (`full`). The outbox's drains after a
   * reconnect and at stop are in none of them.
   */
  framesReleased: { idle: number; ack: number; rate: number; window: number; full: number };
  /** Updates lost because the outbox was full when a new drone arrived. */
  droppedUpdates: number;
  /** Connection attempts after the first one. */
  reconnects: number;
  /** Drones waiting in the outbox (in memory), or records not yet acknowledged (with a store). */
  outboxDepth: number;
  /** Bytes the store holds on disk; 0 without a store. */
  outboxBytes: number;
  /** Stored records not sent because the edge's hello_ack said it already held that seq or newer. */
  staleSkipped: number;
  /** True between `hello_ack` and the socket closing. */
  connected: boolean;
  /**
   * A configuration error the edge keeps answering with (token refused with 401/403, or the
   * relay_id bound to another token subject, close 4003), with what to do; null once a hello_ack
   * arrives or an attempt ends otherwise. Reconnects then wait the maximum backoff.
   */
  refused: Refusal | null;
  /** Relay clock (ms) when the last `hello_ack` or `batch_ack` arrived; null before any. */
  lastAckAt: number | null;
  rejectedByEdge: number;
  duplicatesAtEdge: number;
  /** `command` frames received (duplicates and refused ones with a command_id included). */
  commandsReceived: number;
  /** `command` frames whose command_id was already running or answered (not executed again). */
  duplicateCommands: number;
  /** Commands executing now. */
  commandsInFlight: number;
  /** Results the edge has not acknowledged yet. */
  pendingResults: number;
  /** Unacknowledged results forgotten because `maxPendingResults` was reached. */
  droppedResults: number;
  /** mission_progress frames waiting for the socket. */
  progressQueued: number;
  /** mission_progress frames dropped because the queue was full. */
  droppedProgress: number;
}

export type LinkEvents = {
  /** Every frame from the edge that parsed, including the ones the link handles itself. */
  message: [frame: EdgeToRelay];
  /** The edge answered our hello; telemetry flows. */
  connected: [info: { fleet: string; url: string }];
  /** The socket closed after having been connected. */
  disconnected: [info: { code: number; reason: string }];
  /** A command executed here ended (not emitted for duplicates or malformed frames). */
  command: [info: CommandEnded];
};

export interface EdgeLinkOptions {
  /** Edge base URL, http(s):// or ws(s)://. */
  edge: string;
  fleet: string;
  token: string;
  relayId: string;
  source: SourceKind;
  version?: string;
  /** Drones announced in `relay_hello`, asked on every connection. */
  droneIds: () => string[];
  backoff?: Partial<BackoffOptions>;
  /** A connection up this long resets the backoff. Default 10 s. */
  stableAfterMs?: number;
  /** ws ping interval. Default 10 s. */
  heartbeatMs?: number;
  /** Time allowed for the edge's `hello_ack` after opening. Default 10 s. */
  helloTimeoutMs?: number;
  /**
   * The window bound: while a frame awaits its batch_ack, updates wait for that ack at most this
   * long (an idle link sends at once). Default LIMITS.batchWindowMs (100); config
   * `link.batch_window_ms`.
   */
  batchWindowMs?: number;
  /**
   * The frame-rate cap: frames at most every 1000/this ms (unless 500 updates wait or the window
   * bound comes first), so a fast edge or a source spreading many drones over the second does not
   * cost the edge a write per sample. Default 100 (at 50, 100 drones at 1 Hz waited 14 ms at the
   * median); 0 never sends early: the fixed window.
   */
  maxFramesPerSecond?: number;
  /** Default LIMITS.batchUpdates (500). */
  batchMax?: number;
  /** Most drones held while offline. Default 10,000. */
  outboxMax?: number;
  /** Hold sends while the socket buffers more than this. Default 4 MiB. */
  maxBufferedBytes?: number;
  /** Unacknowledged frames remembered for re-sending after a drop. Default 64. */
  maxInflightBatches?: number;
  /** How long `stop()` may spend flushing. Default 1 s, at most 1 s. */
  stopGraceMs?: number;
  /** Offer permessage-deflate (JSON telemetry shrinks ~5× on metered site uplinks). Default true. */
  compress?: boolean;
  log?: Logger;
  /** Wall clock (seqs, timestamps) and timers (windows, backoff, heartbeat, deadlines). Default real. */
  clock?: Clock;
  /** For backoff jitter. Default Math.random. */
  random?: () => number;
  /**
   * Runs a command at the drone (the source's `execute`). Without it every command is answered
   * `failed` "this relay does not execute commands".
   */
  execute?: Execute;
  /** Most commands executing at once; emergency_land is exempt. Default 256. */
  maxInflightCommands?: number;
  /** Most unacknowledged results held for re-sending. Default 1,000. */
  maxPendingResults?: number;
  /** Acknowledged results remembered to answer a repeated command_id. Default 1,000. */
  maxRecentResults?: number;
  /** Most mission_progress frames queued while offline. Default 1,000. */
  maxProgressQueue?: number;
  /**
   * Persistent outbox (see the module comment). The link reads what it holds at construction
   * (results, progress, seq floors) and sends it after the first hello_ack; the caller owns it
   * and closes it after `stop()`.
   */
  store?: OutboxStore;
}

const MiB = 1024 * 1024;
/** See EdgeLinkOptions.maxFramesPerSecond. */
export const DEFAULT_MAX_FRAMES_PER_SECOND = 100;
/** Above this many buffered bytes the link is not idle (a frame or two of telemetry). */
const IDLE_BUFFERED_BYTES = 64 * 1024;

/**
 * The relay → edge link. Call `start()` once, `push()` every sample, `stop()` at the end.
 * Events: `message`, `connected`, `disconnected`, `command` (see LinkEvents).
 */
export class EdgeLink extends EventEmitter<LinkEvents> {
  readonly url: string;
  private readonly fleet: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly stopGraceMs: number;
  private readonly conn: Connection;
  private readonly seq: Sequencer;
  private readonly outbox: TelemetryOutbox;
  private readonly commands: CommandRunner;
  private readonly progress: ProgressQueue;
  private stopping: Promise<void> | null = null;
  /** While stop() waits for the last acks and writes: checks whether it may go on. */
  private settleCheck: (() => void) | null = null;
  private lastAckAt: number | null = null;
  private rejectedByEdge = 0;
  private duplicatesAtEdge = 0;

  constructor(opts: EdgeLinkOptions) {
    super();
    this.url = relayUrl(opts.edge, opts.fleet);
    if (!opts.token) throw new Error("EdgeLink: token is required");
    this.fleet = opts.fleet;
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? realClock;
    this.stopGraceMs = Math.min(opts.stopGraceMs ?? 1000, 1000);
    const log = this.log;
    const clock = this.clock;

    this.conn = new Connection({
      url: this.url,
      token: opts.token,
      relayId: opts.relayId,
      fleet: opts.fleet,
      backoff: { ...DEFAULT_BACKOFF, ...opts.backoff },
      stableAfterMs: opts.stableAfterMs ?? 10_000,
      heartbeatMs: opts.heartbeatMs ?? 10_000,
      helloTimeoutMs: opts.helloTimeoutMs ?? 10_000,
      maxBufferedBytes: opts.maxBufferedBytes ?? 4 * MiB,
      compress: opts.compress ?? true,
      clock,
      random: opts.random ?? Math.random,
      log,
      hello: (): RelayHello => ({
        type: "relay_hello",
        relay_id: opts.relayId,
        source: opts.source,
        ...(opts.version ? { version: opts.version } : {}),
        drone_ids: helloDroneIds(opts.droneIds(), log),
      }),
      handlers: {
        ready: (ack) => this.onReady(ack),
        frame: (frame) => this.onFrame(frame),
        badCommand: (id, reason) => this.commands.refuse(id, reason),
        closed: (info) => this.onClosed(info),
        written: () => {
          // Written to the kernel: if sends were held for backpressure, this is when room appears.
          if (this.conn.ready) this.outbox.writable();
          this.settleCheck?.();
        },
      },
    });
    const uplink = this.conn;
    this.seq = new Sequencer(() => clock.now());
    const common = {
      uplink,
      seq: this.seq,
      clock,
      log,
      batchMax: Math.min(opts.batchMax ?? LIMITS.batchUpdates, LIMITS.batchUpdates),
      batchWindowMs: Math.max(0, opts.batchWindowMs ?? LIMITS.batchWindowMs),
      maxFramesPerSecond: Math.max(0, opts.maxFramesPerSecond ?? DEFAULT_MAX_FRAMES_PER_SECOND),
      // "Idle" needs the socket to have handed (nearly) everything to the kernel, not merely to
      // be under the backpressure bound.
      idleBufferedBytes: Math.min(opts.maxBufferedBytes ?? 4 * MiB, IDLE_BUFFERED_BYTES),
      maxInflightBatches: opts.maxInflightBatches ?? 64,
    };
    this.outbox = opts.store ? new LogOutbox({ ...common, store: opts.store }) : new LatestOutbox({ ...common, outboxMax: opts.outboxMax ?? 10_000 });
    this.commands = new CommandRunner({
      uplink,
      clock,
      log,
      execute: opts.execute,
      maxInflight: opts.maxInflightCommands ?? 256,
      maxPendingResults: Math.max(1, opts.maxPendingResults ?? 1000),
      maxRecentResults: Math.max(0, opts.maxRecentResults ?? 1000),
      store: opts.store,
      onEnded: (info) => this.emit("command", info),
      onReleased: () => this.progress.flush(),
    });
    this.progress = new ProgressQueue({
      uplink,
      log,
      max: Math.max(1, opts.maxProgressQueue ?? 1000),
      held: (missionId) => this.commands.holds(missionId),
      store: opts.store,
    });
  }

  /** Open the link; reconnects on its own until `stop()`. A no-op once stopped. */
  start(): void {
    if (this.conn.stopped) return;
    if (this.conn.started) throw new Error("EdgeLink.start() called twice");
    this.conn.start();
  }

  stats(): LinkStats {
    return {
      updatesSent: this.outbox.updatesSent,
      framesSent: this.outbox.framesSent,
      framesReleased: { ...this.outbox.released },
      droppedUpdates: this.outbox.dropped(),
      reconnects: this.conn.reconnects,
      outboxDepth: this.outbox.depth(),
      outboxBytes: this.outbox.bytes(),
      staleSkipped: this.outbox.staleSkipped(),
      connected: this.conn.ready,
      refused: this.conn.refusal ? { ...this.conn.refusal } : null,
      lastAckAt: this.lastAckAt,
      rejectedByEdge: this.rejectedByEdge,
      duplicatesAtEdge: this.duplicatesAtEdge,
      commandsReceived: this.commands.received,
      duplicateCommands: this.commands.duplicates,
      commandsInFlight: this.commands.inFlight,
      pendingResults: this.commands.pendingResults,
      droppedResults: this.commands.droppedResults,
      progressQueued: this.progress.length,
      droppedProgress: this.progress.dropped,
    };
  }

  /**
   * Queue one sample. While ready and not backpressured it joins the pending batch (every sample
   * is sent; the edge drops stale ones). Otherwise it waits in the outbox.
   */
  push(sample: SourceSample): void {
    if (this.conn.stopped) return;
    this.outbox.push(sample);
  }

  /**
   * Queue a mission's progress for the edge (a source's `onMissionProgress`). Sent at once when
   * connected, otherwise after the next hello_ack, in order (see progress-queue.ts).
   */
  pushProgress(p: MissionProgressEvent): void {
    if (this.conn.stopped) return;
    this.progress.push(p);
  }

  /**
   * Stop: flush what can be flushed within the grace period, close with 1000, clear every timer.
   * Resolves within stopGraceMs (+100 ms for the close handshake at worst); never rejects.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private onReady(ack: HelloAck): void {
    this.seq.edgeHolds(ack.last_seq);
    this.lastAckAt = this.clock.now();
    this.log.info("connected to edge", { url: this.url, fleet: ack.fleet, outbox: this.outbox.depth(), reconnects: this.conn.reconnects });
    this.emit("connected", { fleet: ack.fleet, url: this.url });
    // Results first (the edge must see a command's ack before its mission's progress), then
    // progress in order, then telemetry.
    this.commands.resend();
    this.progress.flush();
    this.outbox.resume();
  }

  private onFrame(frame: EdgeToRelay): void {
    switch (frame.type) {
      case "batch_ack":
        this.outbox.acked(frame.batch_id);
        this.lastAckAt = this.clock.now();
        this.duplicatesAtEdge += frame.duplicates;
        this.rejectedByEdge += frame.rejected;
        if (frame.rejected > 0) {
          this.log.warn("edge rejected telemetry items", { batch_id: frame.batch_id, rejected: frame.rejected, errors: frame.errors.slice(0, 3) });
        }
        this.settleCheck?.();
        break;
      case "command":
        this.commands.receive(frame);
        break;
      case "command_result_ack":
        this.commands.ack(frame.command_id);
        break;
      case "error":
        // relay_id_taken comes just before close 4003, which the connection logs as the error it is.
        if (frame.code === "relay_id_taken") this.log.debug("edge reported an error", { code: frame.code, message: frame.message.slice(0, 256) });
        else this.log.warn("edge reported an error", { code: frame.code, message: frame.message.slice(0, 256) });
        break;
      case "hello_ack":
      case "pong":
        // hello_ack was handled by the connection (onReady); pong is for listeners of 'message'.
        break;
    }
    this.emit("message", frame);
  }

  private onClosed({ code, reason, wasReady }: { code: number; reason: string; wasReady: boolean }): void {
    // Nothing may be lost silently: what was pending or unacknowledged goes back to the outbox.
    this.outbox.disconnected();
    if (wasReady) {
      const fields = { url: this.url, code, reason: reason.slice(0, 123), outbox: this.outbox.depth() };
      if (this.conn.stopped) this.log.info("closed the edge link", fields);
      else this.log.warn("disconnected from edge", fields);
      this.emit("disconnected", { code, reason });
    }
    this.settleCheck?.();
  }

  private async doStop(): Promise<void> {
    const deadline = this.clock.now() + this.stopGraceMs;
    try {
      this.conn.holdReconnects();
      if (this.conn.ready) {
        this.progress.flush();
        this.outbox.flush();
        await this.settled(deadline);
      }
    } finally {
      this.conn.markStopped();
      this.outbox.stop();
      this.commands.stop();
      await this.conn.close(deadline);
      this.outbox.logLeftover(this.log);
    }
  }

  /** Resolves when the outbox has settled, the socket is no longer open, or the deadline passed. */
  private settled(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.clock.clearTimeout(timer);
        this.settleCheck = null;
        resolve();
      };
      const timer = this.clock.setTimeout(done, Math.max(0, deadline - this.clock.now()));
      // Checked after every ack, write and close: the events that can settle it.
      this.settleCheck = () => {
        if (this.outbox.settled() || !this.conn.open) done();
      };
      this.settleCheck();
    });
  }
}

/** Valid ids only: one malformed id would make the edge refuse the whole hello. */
function helloDroneIds(ids: string[], log: Logger): string[] {
  const valid = ids.filter((id) => DRONE_ID_RE.test(id));
  if (valid.length < ids.length) log.warn("leaving invalid drone ids out of relay_hello", { invalid: ids.length - valid.length });
  if (valid.length > LIMITS.dronesPerFleet) {
    log.warn("more drones than a fleet may hold; announcing the first ones", { drones: valid.length, limit: LIMITS.dronesPerFleet });
  }
  return valid.slice(0, LIMITS.dronesPerFleet);
}

/**
 * EdgeLink: the relay's one WebSocket to the edge's fleet object.
 *
 * Guarantees, in the order they matter on a field site with a flaky uplink:
 * - Bounded memory: a pending batch of ≤500 updates, an outbox of ≤`outboxMax` drones (latest
 *   sample per drone), ≤`maxInflightBatches` unacknowledged frames, and no sends while the socket
 *   already buffers more than `maxBufferedBytes`.
 * - Latest state survives disconnects: while offline, or before the edge has answered our hello,
 *   samples wait in the outbox; so do samples of frames the edge had not acknowledged when the
 *   socket dropped. After the next `hello_ack` the outbox is flushed in batches.
 * - Per-drone `seq` never goes backwards and never names two different samples (see `nextSeq`).
 * - Never spins: capped exponential backoff with full jitter; a 401/403 handshake waits the
 *   maximum delay every time, since only a human fixing the token can help.
 * - Dead sockets are noticed: a ws-level ping each `heartbeatMs`; no pong by the next one ends it.
 *
 * Commands (E→R `command`, answered by R→E `command_result`):
 * - Each runs through `execute` (the source's) with the relay's own deadline: `timeout_ms` from the
 *   frame clamped to [500, 30000] ms. A source that throws → `failed` with its message; one that
 *   never answers → `failed` "timeout at the relay after N ms" (and its signal is aborted).
 * - Commands run concurrently, so an emergency land never waits behind a slow command. At most
 *   `maxInflightCommands` run at once; beyond that a command fails at once ("relay busy"), except
 *   emergency_land, which always runs.
 * - A result stays in `unackedResults` until the edge's `command_result_ack`, and every one of them
 *   is re-sent after each reconnect (after hello_ack), so a result is not lost because the uplink
 *   dropped while the drone was acting. Bounded by `maxPendingResults` (oldest dropped, counted).
 * - The same command_id again (an edge retry) never executes twice: while it runs, the one result
 *   to come answers both; once answered, the cached result is sent again.
 * - `mission_progress` frames from the source (`pushProgress`) wait in an ordered, bounded queue
 *   until the edge has answered our hello; progress of a mission whose assign_mission command is
 *   still executing waits for that command's result, so the edge sees the ack first.
 *
 * With a persistent `store` (DiskOutbox) the outbox changes shape: every sample is given its seq
 * when pushed and appended to the store's log, and frames are read from the log in order (at most
 * `maxInflightBatches` unacknowledged), so while offline the whole history is kept (bounded in
 * bytes by the store) instead of the latest sample per drone, and it survives a restart. Results
 * and progress are mirrored into the store until acknowledged (results) or sent (progress). After
 * a restart, what the store holds is delivered first, in order, with its original seqs.
 */
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import WebSocket from "ws";
import { DRONE_ID_RE, LIMITS, type RelayCommand, type TelemetrySample } from "../../edge/protocol";
import { errorMessage, parseRelayCommand, runWithTimeout } from "./commands";
import type { OutboxStore } from "./disk-outbox";
import { silentLogger, type Logger } from "../log";
import type { CommandOutcome, MissionProgressEvent, SourceKind, SourceSample } from "../sources/source";

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000 };

/**
 * Delay before reconnect attempt `attempt` (0-based): uniform in [0, min(max, initial·2^attempt)]
 * ("full jitter"), so a site's relays restarting together after an outage do not reconnect in
 * lock-step. Pure; `random` is injectable for tests.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exp = Math.max(0, Math.floor(attempt));
  // 2 ** 1100 is Infinity, and min() with the cap still gives the cap: no overflow to guard.
  const ceiling = Math.min(opts.maxMs, opts.initialMs * 2 ** exp);
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(ceiling * r);
}

/** A frame from the edge, checked only for a string `type` (full checks live with each consumer). */
export type EdgeFrame = { type: string } & Record<string, unknown>;

export interface LinkStats {
  /** Telemetry updates written into sent frames (a re-sent update counts again). */
  updatesSent: number;
  /** `telemetry_batch` frames sent. */
  framesSent: number;
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
  /** Relay clock (ms) when the last `hello_ack` or `batch_ack` arrived; null before any. */
  lastAckAt: number | null;
  rejectedByEdge: number;
  duplicatesAtEdge: number;
  /** `command` frames received (duplicates included). */
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
  /** Every parsed frame from the edge, including the ones the link handles itself. */
  message: [frame: EdgeFrame];
  /** The edge answered our hello; telemetry flows. */
  connected: [info: { fleet: string; url: string }];
  /** The socket closed after having been connected. */
  disconnected: [info: { code: number; reason: string }];
  /** A command executed here ended (not emitted for duplicates or malformed frames). */
  command: [info: { command: RelayCommand["command"]; status: "acked" | "failed"; seconds: number }];
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
  /** Default LIMITS.batchWindowMs (100). */
  batchWindowMs?: number;
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
  /** Wall clock, ms; used for seq and timestamps. Default Date.now. */
  now?: () => number;
  /** For backoff jitter. Default Math.random. */
  random?: () => number;
  /**
   * Runs a command at the drone (the source's `execute`). Without it every command is answered
   * `failed` "this relay does not execute commands".
   */
  execute?: (command: RelayCommand, signal: AbortSignal) => Promise<CommandOutcome>;
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

export type CommandResultFrame = { type: "command_result"; command_id: string; status: "acked" | "failed"; message?: string };
export type MissionProgressFrame = { type: "mission_progress" } & MissionProgressEvent;
type RunningCommand = { controller: AbortController; command: RelayCommand["command"]; missionId?: string };

/** A sample waiting in the outbox; `seq` is set when it was already sent once (re-send). */
type Held = { sample: SourceSample; seq?: number };
/** A sent frame awaiting batch_ack; `range` is its LSN range in the store. */
type Inflight = { updates: TelemetrySample[]; range?: { from: number; to: number } };
type Phase = "idle" | "connecting" | "open" | "ready" | "stopped";

const MiB = 1024 * 1024;

/** ws → relay URL for a fleet: http→ws, https→wss, trailing slashes tolerated. */
export function relayUrl(edge: string, fleet: string): string {
  const u = new URL(edge);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  else if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new Error(`edge URL must be http(s) or ws(s), got ${u.protocol}`);
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/v1/fleets/${encodeURIComponent(fleet)}/relay`;
  u.search = "";
  u.hash = "";
  return u.toString();
}

/**
 * The relay → edge link. Call `start()` once, `push()` every sample, `stop()` at the end.
 * Events: `message`, `connected`, `disconnected` (see LinkEvents).
 */
export class EdgeLink extends EventEmitter<LinkEvents> {
  readonly url: string;
  private readonly o: Required<Omit<EdgeLinkOptions, "backoff" | "version" | "log" | "execute" | "store">> & {
    backoff: BackoffOptions;
    version?: string;
    log: Logger;
    execute?: EdgeLinkOptions["execute"];
  };
  private readonly store: OutboxStore | undefined;
  /** Store ids of queued progress frames. */
  private readonly progressIds = new WeakMap<MissionProgressFrame, number>();
  private phase: Phase = "idle";
  private ws: WebSocket | null = null;
  private attempt = 0;
  private connectCount = 0;
  /** HTTP status of the last refused handshake (401, 403, 502…), null when none. */
  private refusedStatus: number | null = null;
  /** The socket whose hello the edge acknowledged, for 'disconnected' and backoff reset. */
  private readySocket: WebSocket | null = null;

  /** Highest seq assigned per drone (also raised by hello_ack `last_seq`). */
  private readonly lastSeq = new Map<string, number>();
  /** `last_seq` of the latest hello_ack: what the edge already holds. */
  private readonly edgeLastSeq = new Map<string, number>();
  private readonly outbox = new Map<string, Held>();
  private pending: TelemetrySample[] = [];
  private readonly inflight = new Map<number, Inflight>();
  private nextBatchId = 0;

  private batchTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private stableTimer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;

  /** Commands executing, by command_id. */
  private readonly running = new Map<string, RunningCommand>();
  /** Results sent (or waiting to be) that the edge has not acknowledged; insertion order. */
  private readonly unackedResults = new Map<string, CommandResultFrame>();
  /** Acknowledged results, newest last, to answer a repeated command_id without executing. */
  private readonly recentResults = new Map<string, CommandResultFrame>();
  private progressQueue: MissionProgressFrame[] = [];
  /** Missions whose assign_mission is still executing: their progress waits for the result. */
  private readonly heldMissions = new Map<string, number>();
  private progressDropWarned = false;

  private readonly counters = {
    updatesSent: 0,
    framesSent: 0,
    droppedUpdates: 0,
    rejectedByEdge: 0,
    duplicatesAtEdge: 0,
    lastAckAt: null as number | null,
    commandsReceived: 0,
    duplicateCommands: 0,
    droppedResults: 0,
    droppedProgress: 0,
    staleSkipped: 0,
  };

  constructor(opts: EdgeLinkOptions) {
    super();
    this.url = relayUrl(opts.edge, opts.fleet);
    if (!opts.token) throw new Error("EdgeLink: token is required");
    this.o = {
      edge: opts.edge,
      fleet: opts.fleet,
      token: opts.token,
      relayId: opts.relayId,
      source: opts.source,
      version: opts.version,
      droneIds: opts.droneIds,
      backoff: { ...DEFAULT_BACKOFF, ...opts.backoff },
      stableAfterMs: opts.stableAfterMs ?? 10_000,
      heartbeatMs: opts.heartbeatMs ?? 10_000,
      helloTimeoutMs: opts.helloTimeoutMs ?? 10_000,
      batchWindowMs: opts.batchWindowMs ?? LIMITS.batchWindowMs,
      batchMax: Math.min(opts.batchMax ?? LIMITS.batchUpdates, LIMITS.batchUpdates),
      outboxMax: opts.outboxMax ?? 10_000,
      maxBufferedBytes: opts.maxBufferedBytes ?? 4 * MiB,
      maxInflightBatches: opts.maxInflightBatches ?? 64,
      stopGraceMs: Math.min(opts.stopGraceMs ?? 1000, 1000),
      compress: opts.compress ?? true,
      log: opts.log ?? silentLogger,
      now: opts.now ?? Date.now,
      random: opts.random ?? Math.random,
      execute: opts.execute,
      maxInflightCommands: opts.maxInflightCommands ?? 256,
      maxPendingResults: Math.max(1, opts.maxPendingResults ?? 1000),
      maxRecentResults: Math.max(0, opts.maxRecentResults ?? 1000),
      maxProgressQueue: Math.max(1, opts.maxProgressQueue ?? 1000),
    };
    this.store = opts.store;
    if (this.store) {
      // What a previous run left: seq floors (so new samples sort after its history), results
      // the edge never acknowledged, progress never sent. All go out after the first hello_ack.
      for (const [drone, seq] of this.store.lastSeqs()) this.lastSeq.set(drone, Math.max(this.lastSeq.get(drone) ?? -1, seq));
      for (const r of this.store.pendingResults()) this.unackedResults.set(r.command_id, r);
      for (const { id, frame } of this.store.pendingProgress()) {
        this.progressIds.set(frame, id);
        this.progressQueue.push(frame);
      }
    }
  }

  /** Open the link; reconnects on its own until `stop()`. A no-op once stopped. */
  start(): void {
    if (this.phase === "stopped") return;
    if (this.phase !== "idle" || this.connectCount > 0) throw new Error(`EdgeLink.start() called twice (phase ${this.phase})`);
    this.connect();
  }

  stats(): LinkStats {
    return {
      ...this.counters,
      reconnects: Math.max(0, this.connectCount - 1),
      droppedUpdates: this.counters.droppedUpdates + (this.store?.dropped() ?? 0),
      outboxDepth: this.store ? this.store.depth() : this.outbox.size,
      outboxBytes: this.store?.bytes() ?? 0,
      connected: this.phase === "ready",
      commandsInFlight: this.running.size,
      pendingResults: this.unackedResults.size,
      progressQueued: this.progressQueue.length,
    };
  }

  /**
   * Queue a mission's progress for the edge (a source's `onMissionProgress`). Sent at once when
   * connected, otherwise after the next hello_ack, in order. When the queue is full the oldest
   * `active` report goes first (a later one supersedes it), else the oldest of all.
   */
  pushProgress(p: MissionProgressEvent): void {
    if (this.phase === "stopped") return;
    if (typeof p.mission_id !== "string" || p.mission_id.length < 1 || p.mission_id.length > 64 || !DRONE_ID_RE.test(p.drone_id)) {
      this.o.log.warn("ignoring malformed mission progress", { mission_id: String(p.mission_id).slice(0, 64) });
      return;
    }
    const frame: MissionProgressFrame = {
      type: "mission_progress",
      mission_id: p.mission_id,
      drone_id: p.drone_id,
      state: p.state,
      ...(p.waypoint_index !== undefined ? { waypoint_index: Math.max(0, Math.floor(p.waypoint_index)) } : {}),
      ...(p.message ? { message: p.message.slice(0, 500) } : {}),
      ts: Math.max(0, Math.round(p.ts)),
    };
    if (this.progressQueue.length >= this.o.maxProgressQueue) {
      const i = this.progressQueue.findIndex((f) => f.state === "active");
      const [gone] = this.progressQueue.splice(Math.max(0, i), 1);
      if (gone) this.forgetProgress(gone);
      this.counters.droppedProgress++;
      if (!this.progressDropWarned) {
        this.progressDropWarned = true;
        this.o.log.warn("mission progress queue full; dropping the oldest reports", { max: this.o.maxProgressQueue });
      }
    }
    if (this.store) this.progressIds.set(frame, this.store.queueProgress(frame));
    this.progressQueue.push(frame);
    this.flushProgress();
  }

  private forgetProgress(f: MissionProgressFrame): void {
    const id = this.progressIds.get(f);
    if (id !== undefined) this.store?.progressDone(id);
  }

  /**
   * Queue one sample. While ready and not backpressured it joins the pending batch (every sample
   * is sent; the edge drops stale ones). Otherwise it replaces that drone's outbox entry.
   */
  push(sample: SourceSample): void {
    if (this.phase === "stopped") return;
    if (this.store) {
      // Sequenced now, so the stored record is exactly what will be sent, after a restart too.
      this.store.appendTelemetry({ ...sample, seq: this.nextSeq(sample.drone_id) });
      if (this.phase === "ready") this.scheduleStoreDrain();
      return;
    }
    // While the outbox drains, new samples join it too: a fresh sample sent ahead of an older held
    // one for the same drone would get the lower seq and be overwritten by the stale one.
    if (this.phase !== "ready" || this.outbox.size > 0 || this.backpressured()) {
      this.hold({ sample });
      if (this.phase === "ready") this.drainOutbox();
      return;
    }
    this.pending.push({ ...sample, seq: this.nextSeq(sample.drone_id) });
    if (this.pending.length >= this.o.batchMax) this.flushPending();
    else this.batchTimer ??= setTimeout(() => this.flushPending(), this.o.batchWindowMs);
  }

  /**
   * Stop: flush what can be flushed within the grace period, close with 1000, clear every timer.
   * Resolves within stopGraceMs (+100 ms for the close handshake at worst); never rejects.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  // ------------------------------------------------------------------ sequencing

  /**
   * next = max(prev + 1, now, edge_last_seq + 1); hello_ack folds edge_last_seq into `prev`.
   * Monotonic per drone by construction. Restart-safe without persisting anything: a restarted
   * relay lost `prev`, but its seqs start at the wall clock in ms, above everything its previous
   * run sent, since that run could not sustain more than one sample per drone per ms (sources
   * publish at ≤10 Hz). A clock stepped backwards is covered by the edge's `last_seq` from
   * `hello_ack`. Seqs are assigned only when a sample first enters a frame, after that ack.
   */
  private nextSeq(droneId: string): number {
    const prev = this.lastSeq.get(droneId) ?? -1;
    const next = Math.max(prev + 1, this.o.now());
    this.lastSeq.set(droneId, next);
    return next;
  }

  // ------------------------------------------------------------------ connection lifecycle

  private connect(): void {
    if (this.phase === "stopped") return;
    this.phase = "connecting";
    this.connectCount++;
    const ws = new WebSocket(this.url, {
      headers: { Authorization: `Bearer ${this.o.token}` },
      handshakeTimeout: 10_000,
      perMessageDeflate: this.o.compress,
      // A relay frame is ≤1 MiB; anything the edge sends us is far smaller.
      maxPayload: LIMITS.relayFrameBytes,
    });
    this.ws = ws;
    this.refusedStatus = null;

    ws.on("unexpected-response", (_req, res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      this.refusedStatus = status;
      const fields = { url: this.url, status, status_text: res.statusMessage ?? "" };
      if (this.authRefused()) {
        this.o.log.error("edge rejected the relay token; check --token/--token-file (retrying at max backoff)", fields);
      } else {
        this.o.log.warn("edge refused the WebSocket upgrade", fields);
      }
      // Drain the body so the socket can be freed, then abort the handshake ('error' + 'close').
      res.resume();
      ws.terminate();
    });
    ws.on("open", () => this.onOpen(ws));
    ws.on("message", (data, isBinary) => this.onMessage(ws, data, isBinary));
    ws.on("error", (err) => {
      // Always followed by 'close', where reconnecting happens; here we only say why. A refused
      // handshake was already logged with its status, and its abort error adds nothing.
      if (this.refusedStatus !== null) return;
      // Aborting a handshake in stop() raises an error too; it is expected, not news.
      if (this.phase === "stopped") this.o.log.debug("edge link error while stopping", { error: err.message });
      else this.o.log.warn("edge link error", { url: this.url, error: err.message });
    });
    ws.on("close", (code, reason) => this.onClose(ws, code, reason.toString("utf8")));
  }

  private onOpen(ws: WebSocket): void {
    if (ws !== this.ws) return;
    this.phase = "open";
    this.send(ws, {
      type: "relay_hello",
      relay_id: this.o.relayId,
      source: this.o.source,
      ...(this.o.version ? { version: this.o.version } : {}),
      drone_ids: this.helloDroneIds(),
    });
    // ws answers pings itself on the edge side; a missing pong means the path or the peer is dead
    // even though TCP has not noticed (NAT timeouts, a yanked LTE modem).
    let alive = true;
    ws.on("pong", () => {
      alive = true;
    });
    this.heartbeatTimer = setInterval(() => {
      if (!alive) {
        this.o.log.warn("edge missed a heartbeat; terminating the socket", { url: this.url, heartbeat_ms: this.o.heartbeatMs });
        ws.terminate();
        return;
      }
      alive = false;
      try {
        ws.ping();
      } catch (err) {
        // ping() throws only if the socket is no longer open; 'close' is already on its way.
        this.o.log.debug("ping failed", { error: err });
      }
    }, this.o.heartbeatMs);
    this.helloTimer = setTimeout(() => {
      this.o.log.warn("no hello_ack from the edge; reconnecting", { url: this.url, timeout_ms: this.o.helloTimeoutMs });
      ws.terminate();
    }, this.o.helloTimeoutMs);
  }

  private onMessage(ws: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    if (ws !== this.ws) return;
    if (isBinary) {
      this.o.log.warn("ignoring a binary frame from the edge");
      return;
    }
    const frame = parseEdgeFrame(rawToString(data));
    if (!frame) {
      this.o.log.warn("ignoring a malformed frame from the edge");
      return;
    }
    switch (frame.type) {
      case "hello_ack":
        this.onHelloAck(ws, frame);
        break;
      case "batch_ack":
        this.onBatchAck(frame);
        break;
      case "command":
        this.onCommand(frame);
        break;
      case "command_result_ack":
        this.onResultAck(frame);
        break;
      case "error":
        this.o.log.warn("edge reported an error", {
          code: typeof frame.code === "string" ? frame.code : undefined,
          message: typeof frame.message === "string" ? frame.message.slice(0, 256) : undefined,
        });
        break;
      default:
        // pong and frames for later features are for listeners of 'message'.
        break;
    }
    this.emit("message", frame);
  }

  private onHelloAck(ws: WebSocket, frame: EdgeFrame): void {
    if (this.phase !== "open") {
      this.o.log.warn("ignoring a repeated hello_ack");
      return;
    }
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.edgeLastSeq.clear();
    const lastSeq = frame.last_seq;
    if (lastSeq && typeof lastSeq === "object") {
      for (const [drone, seq] of Object.entries(lastSeq)) {
        if (typeof seq !== "number" || !Number.isFinite(seq)) continue;
        this.edgeLastSeq.set(drone, seq);
        this.lastSeq.set(drone, Math.max(this.lastSeq.get(drone) ?? -1, seq));
      }
    }
    this.counters.lastAckAt = this.o.now();
    this.phase = "ready";
    this.readySocket = ws;
    this.stableTimer = setTimeout(() => {
      this.attempt = 0;
    }, this.o.stableAfterMs);
    const fleet = typeof frame.fleet === "string" ? frame.fleet : this.o.fleet;
    this.o.log.info("connected to edge", { url: this.url, fleet, outbox: this.outbox.size, reconnects: this.connectCount - 1 });
    this.emit("connected", { fleet, url: this.url });
    // Results first (the edge must see a command's ack before its mission's progress), then
    // progress in order, then telemetry.
    for (const r of this.unackedResults.values()) this.send(ws, r);
    if (this.unackedResults.size > 0) this.o.log.info("re-sent unacknowledged command results", { count: this.unackedResults.size });
    this.flushProgress();
    if (this.store) {
      const held = this.store.depth();
      if (held > 0) this.o.log.info("delivering buffered telemetry in order", { records: held });
      this.drainStore();
    } else {
      this.drainOutbox();
    }
  }

  // ------------------------------------------------------------------ commands

  private onCommand(frame: EdgeFrame): void {
    this.counters.commandsReceived++;
    const id = typeof frame.command_id === "string" ? frame.command_id : null;
    if (id !== null && this.answerDuplicate(id)) return;
    const parsed = parseRelayCommand(frame);
    if (!parsed.ok) {
      if (parsed.command_id === null) {
        this.o.log.warn("ignoring a command frame without a usable command_id", { message: parsed.message });
        return;
      }
      this.o.log.warn("rejecting a malformed command", { command_id: parsed.command_id, message: parsed.message });
      this.finishCommand(parsed.command_id, { ok: false, message: parsed.message });
      return;
    }
    this.startCommand(parsed.command);
  }

  /** A command_id seen before: never execute again. Returns false when it is new. */
  private answerDuplicate(id: string): boolean {
    if (this.running.has(id)) {
      // The one result to come answers the retry too.
      this.counters.duplicateCommands++;
      this.o.log.debug("command already executing; not running it twice", { command_id: id });
      return true;
    }
    const result = this.unackedResults.get(id) ?? this.recentResults.get(id);
    if (!result) return false;
    // An acknowledged result is owed again until this repeat is acknowledged too.
    if (!this.unackedResults.has(id)) this.store?.recordResult(result);
    this.counters.duplicateCommands++;
    this.o.log.debug("repeated command; answering with the first result", { command_id: id, status: result.status });
    this.recentResults.delete(id);
    this.unackedResults.delete(id);
    this.unackedResults.set(id, result);
    this.sendResult(result);
    return true;
  }

  private startCommand(cmd: RelayCommand): void {
    const id = cmd.command_id;
    if (cmd.command !== "emergency_land" && this.running.size >= this.o.maxInflightCommands) {
      this.finishCommand(id, { ok: false, message: `relay busy: ${this.running.size} commands in flight` });
      return;
    }
    const controller = new AbortController();
    const missionId = cmd.command === "assign_mission" ? cmd.mission_id : undefined;
    if (missionId !== undefined) this.heldMissions.set(missionId, (this.heldMissions.get(missionId) ?? 0) + 1);
    this.running.set(id, { controller, command: cmd.command, missionId });
    const t0 = Date.now();
    const execute = this.o.execute ?? (async () => ({ ok: false as const, message: "this relay does not execute commands" }));
    this.o.log.debug("executing command", { command_id: id, command: cmd.command, drone_id: cmd.drone_id, timeout_ms: cmd.timeout_ms });
    void runWithTimeout(execute, cmd, cmd.timeout_ms, controller).then(
      (outcome) => {
        if (this.running.get(id)?.controller !== controller) return; // stopped meanwhile
        this.running.delete(id);
        this.releaseMission(missionId);
        const ms = Date.now() - t0;
        const fields = { command_id: id, command: cmd.command, drone_id: cmd.drone_id, ok: outcome.ok, message: outcome.message, ms };
        if (outcome.ok) this.o.log.info("command acked", fields);
        else this.o.log.warn("command failed", fields);
        this.emit("command", { command: cmd.command, status: outcome.ok ? "acked" : "failed", seconds: ms / 1000 });
        this.finishCommand(id, outcome);
        this.flushProgress();
      },
      (err: unknown) => {
        // runWithTimeout never rejects; this only guards against a bug turning into a lost result.
        this.running.delete(id);
        this.releaseMission(missionId);
        this.finishCommand(id, { ok: false, message: errorMessage(err) });
      },
    );
  }

  private releaseMission(missionId: string | undefined): void {
    if (missionId === undefined) return;
    const n = (this.heldMissions.get(missionId) ?? 1) - 1;
    if (n > 0) this.heldMissions.set(missionId, n);
    else this.heldMissions.delete(missionId);
  }

  /** Record the result until acknowledged and send it if we can. */
  private finishCommand(id: string, outcome: CommandOutcome): void {
    if (this.phase === "stopped") return;
    const frame: CommandResultFrame = {
      type: "command_result",
      command_id: id,
      status: outcome.ok ? "acked" : "failed",
      ...(outcome.message ? { message: outcome.message.slice(0, 1000) } : {}),
    };
    this.unackedResults.delete(id);
    if (this.unackedResults.size >= this.o.maxPendingResults) {
      const oldest = this.unackedResults.keys().next();
      if (!oldest.done) {
        this.unackedResults.delete(oldest.value);
        this.store?.ackResult(oldest.value);
        this.counters.droppedResults++;
        this.o.log.warn("too many unacknowledged command results; forgetting the oldest", { command_id: oldest.value, max: this.o.maxPendingResults });
      }
    }
    this.unackedResults.set(id, frame);
    this.store?.recordResult(frame);
    this.sendResult(frame);
  }

  private sendResult(frame: CommandResultFrame): void {
    // Results ignore telemetry backpressure: they are small and an operator is waiting.
    if (this.ws && this.phase === "ready") this.send(this.ws, frame);
  }

  private onResultAck(frame: EdgeFrame): void {
    const id = frame.command_id;
    if (typeof id !== "string") return;
    const result = this.unackedResults.get(id);
    if (!result) return;
    this.unackedResults.delete(id);
    this.store?.ackResult(id);
    if (this.o.maxRecentResults === 0) return;
    this.recentResults.delete(id);
    this.recentResults.set(id, result);
    if (this.recentResults.size > this.o.maxRecentResults) {
      const oldest = this.recentResults.keys().next();
      if (!oldest.done) this.recentResults.delete(oldest.value);
    }
  }

  /** Send queued progress in order; a mission whose assign_mission still runs keeps its reports. */
  private flushProgress(): void {
    const ws = this.ws;
    if (!ws || this.phase !== "ready" || this.progressQueue.length === 0) return;
    const kept: MissionProgressFrame[] = [];
    for (const f of this.progressQueue) {
      if (this.heldMissions.has(f.mission_id) || !this.send(ws, f)) kept.push(f);
      else this.forgetProgress(f);
    }
    this.progressQueue = kept;
    if (kept.length === 0) this.progressDropWarned = false;
  }

  private onBatchAck(frame: EdgeFrame): void {
    const id = frame.batch_id;
    if (typeof id === "number") {
      const range = this.inflight.get(id)?.range;
      this.inflight.delete(id);
      if (range && this.store) {
        this.store.ackTelemetry(range.from, range.to);
        if (this.phase === "ready") this.scheduleStoreDrain();
      }
    }
    this.counters.lastAckAt = this.o.now();
    const rejected = typeof frame.rejected === "number" ? frame.rejected : 0;
    this.counters.duplicatesAtEdge += typeof frame.duplicates === "number" ? frame.duplicates : 0;
    this.counters.rejectedByEdge += rejected;
    if (rejected > 0) {
      const errors = Array.isArray(frame.errors) ? frame.errors.slice(0, 3) : [];
      this.o.log.warn("edge rejected telemetry items", { batch_id: id, rejected, errors: errors as unknown[] });
    }
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    const wasReady = this.readySocket === ws;
    this.readySocket = null;
    this.ws = null;
    this.clearConnectionTimers();
    // Nothing may be lost silently: unsent updates and unacknowledged frames go back to the outbox
    // (latest per drone), keeping the seq they were given so a re-send is a duplicate, not a fork.
    if (this.store) {
      // Everything unacknowledged is read again, in order, from the oldest unacknowledged record.
      this.store.rewind();
    } else {
      this.requeue(this.pending);
      for (const b of [...this.inflight.values()].reverse()) this.requeue(b.updates);
    }
    this.pending = [];
    this.inflight.clear();
    if (wasReady) {
      const fields = { url: this.url, code, reason: reason.slice(0, 123), outbox: this.outbox.size };
      if (this.phase === "stopped") this.o.log.info("closed the edge link", fields);
      else this.o.log.warn("disconnected from edge", fields);
      this.emit("disconnected", { code, reason });
    }
    if (this.phase === "stopped") return;
    this.phase = "idle";
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    // 401/403: a retry only helps once someone fixes the token, so wait the longest every time.
    const delay = this.authRefused()
      ? this.o.backoff.maxMs
      : backoffDelay(this.attempt, this.o.backoff, this.o.random);
    this.attempt++;
    this.o.log.debug("reconnecting", { in_ms: delay, attempt: this.attempt });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private authRefused(): boolean {
    return this.refusedStatus === 401 || this.refusedStatus === 403;
  }

  /** Valid ids only: one malformed id would make the edge refuse the whole hello. */
  private helloDroneIds(): string[] {
    const ids = this.o.droneIds();
    const valid = ids.filter((id) => DRONE_ID_RE.test(id));
    if (valid.length < ids.length) {
      this.o.log.warn("leaving invalid drone ids out of relay_hello", { invalid: ids.length - valid.length });
    }
    if (valid.length > LIMITS.dronesPerFleet) {
      this.o.log.warn("more drones than a fleet may hold; announcing the first ones", { drones: valid.length, limit: LIMITS.dronesPerFleet });
    }
    return valid.slice(0, LIMITS.dronesPerFleet);
  }

  private clearConnectionTimers(): void {
    for (const t of [this.batchTimer, this.helloTimer, this.stableTimer]) if (t) clearTimeout(t);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.batchTimer = this.helloTimer = this.stableTimer = this.heartbeatTimer = null;
  }

  private async doStop(): Promise<void> {
    const ws = this.ws;
    const deadline = this.o.now() + this.o.stopGraceMs;
    try {
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      if (ws && this.phase === "ready") {
        this.flushProgress();
        if (this.store) {
          // Acks matter here: whatever is not acknowledged is sent again by the next run.
          this.drainStore();
          await waitUntil(() => (this.inflight.size === 0 && this.store?.unread() === 0) || ws.readyState !== WebSocket.OPEN, deadline, this.o.now);
        } else {
          this.flushPending();
          this.drainOutbox();
          await waitUntil(() => ws.bufferedAmount === 0 || ws.readyState !== WebSocket.OPEN, deadline, this.o.now);
        }
      }
    } finally {
      this.phase = "stopped";
      this.clearConnectionTimers();
      // Whatever still runs is abandoned; its result could not reach the edge any more.
      for (const r of this.running.values()) r.controller.abort(new Error("relay stopping"));
      if (this.running.size > 0) this.o.log.warn("stopped with commands still executing", { count: this.running.size });
      this.running.clear();
      if (this.unackedResults.size > 0) this.o.log.warn("stopped with unacknowledged command results", { count: this.unackedResults.size });
      if (ws) await closeSocket(ws, Math.max(100, deadline - this.o.now()));
      this.ws = null;
      if (this.outbox.size > 0) this.o.log.warn("stopped with undelivered telemetry", { outbox: this.outbox.size });
      if (this.store && this.store.depth() > 0) {
        this.o.log.info("stopped with telemetry kept on disk for the next run", { records: this.store.depth(), bytes: this.store.bytes() });
      }
    }
  }

  // ------------------------------------------------------------------ sending

  private backpressured(): boolean {
    return (this.ws?.bufferedAmount ?? 0) > this.o.maxBufferedBytes;
  }

  private hold(h: Held): void {
    const id = h.sample.drone_id;
    if (!this.outbox.has(id) && this.outbox.size >= this.o.outboxMax) {
      this.counters.droppedUpdates++;
      return;
    }
    this.outbox.set(id, h);
  }

  /** Put sent-or-pending updates back, unless the outbox already holds something newer. */
  private requeue(updates: readonly TelemetrySample[]): void {
    for (let i = updates.length - 1; i >= 0; i--) {
      const u = updates[i];
      if (!u || this.outbox.has(u.drone_id)) continue;
      const { seq, ...sample } = u;
      this.hold({ sample, seq });
    }
  }

  private flushPending(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    if (this.pending.length === 0) return;
    const updates = this.pending;
    this.pending = [];
    const ws = this.ws;
    if (!ws || this.phase !== "ready") {
      this.requeue(updates);
      return;
    }
    this.sendBatch(ws, updates);
  }

  /** Send held samples in full batches while the socket has room; the rest stay held. */
  private drainOutbox(): void {
    const ws = this.ws;
    if (!ws || this.phase !== "ready") return;
    // Order matters: anything pending was sequenced before these held samples were, and must not
    // be overtaken by them in a later frame.
    this.flushPending();
    while (this.outbox.size > 0 && !this.backpressured()) {
      const updates: TelemetrySample[] = [];
      for (const [id, h] of this.outbox) {
        this.outbox.delete(id);
        if (h.seq !== undefined) {
          // Sequenced before the drop: re-send unchanged (same sample, same seq, so at worst a
          // duplicate) unless the edge's hello_ack says it already holds this seq or newer.
          if ((this.edgeLastSeq.get(id) ?? -1) >= h.seq) continue;
          updates.push({ ...h.sample, seq: h.seq });
        } else {
          updates.push({ ...h.sample, seq: this.nextSeq(id) });
        }
        if (updates.length >= this.o.batchMax) break;
      }
      if (updates.length > 0) this.sendBatch(ws, updates);
    }
  }


  /** Send the store's unread records soon (a full batch now, else after the batch window). */
  private scheduleStoreDrain(): void {
    const store = this.store;
    if (!store || this.phase !== "ready" || store.unread() === 0) return;
    if (this.inflight.size >= this.o.maxInflightBatches || this.backpressured()) return; // an ack or a write resumes
    if (store.unread() >= this.o.batchMax) this.drainStore();
    else this.batchTimer ??= setTimeout(() => this.drainStore(), this.o.batchWindowMs);
  }

  /** Send stored records in order while the socket has room and fewer than the inflight cap wait. */
  private drainStore(): void {
    if (this.batchTimer) clearTimeout(this.batchTimer);
    this.batchTimer = null;
    const ws = this.ws;
    const store = this.store;
    if (!ws || !store || this.phase !== "ready") return;
    while (!this.backpressured() && this.inflight.size < this.o.maxInflightBatches) {
      const read = store.readTelemetry(this.o.batchMax);
      if (!read) break;
      // The edge's hello_ack says what it already holds; older records would only be counted as
      // duplicates there, so they are acknowledged here without being sent.
      const updates = read.updates.filter((u) => (this.edgeLastSeq.get(u.drone_id) ?? -1) < u.seq);
      this.counters.staleSkipped += read.updates.length - updates.length;
      if (updates.length === 0) {
        store.ackTelemetry(read.from, read.to);
        continue;
      }
      if (!this.sendBatch(ws, updates, { from: read.from, to: read.to })) break;
    }
  }

  private sendBatch(ws: WebSocket, updates: TelemetrySample[], range?: { from: number; to: number }): boolean {
    const batchId = this.nextBatchId++;
    // 500 updates of ~250 bytes is ~125 KiB, well under LIMITS.relayFrameBytes (1 MiB).
    const ok = this.send(ws, { type: "telemetry_batch", batch_id: batchId, sent_at: this.o.now(), updates });
    if (!ok) {
      // With a store the records stay in it; 'close' rewinds the read cursor.
      if (!range) this.requeue(updates);
      return false;
    }
    this.counters.framesSent++;
    this.counters.updatesSent += updates.length;
    this.inflight.set(batchId, range ? { updates, range } : { updates });
    if (this.inflight.size > this.o.maxInflightBatches) {
      // An edge that never acks must not grow memory: forget the oldest (Maps iterate in order).
      const oldest = this.inflight.keys().next();
      if (!oldest.done) this.inflight.delete(oldest.value);
    }
    return true;
  }

  private send(ws: WebSocket, frame: object): boolean {
    if (ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame), (err) => {
      if (err) {
        // The socket is failing; 'close' follows and re-queues what was in flight.
        this.o.log.debug("send failed", { error: err });
        return;
      }
      // Written to the kernel: if sends were held for backpressure, this is when room appears.
      if (ws !== this.ws || this.phase !== "ready") return;
      if (this.store) {
        if (this.store.unread() > 0) this.scheduleStoreDrain();
      } else if (this.outbox.size > 0) {
        this.drainOutbox();
      }
    });
    return true;
  }
}

function rawToString(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

/** A light, zod-free check: JSON object with a string `type`, or null. */
export function parseEdgeFrame(raw: string): EdgeFrame | null {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) return null;
  const type: unknown = (data as { type?: unknown }).type;
  if (typeof type !== "string") return null;
  return data as EdgeFrame;
}

/** Resolve when `cond()` holds or the deadline passes; polls every 10 ms (used only in stop()). */
async function waitUntil(cond: () => boolean, deadline: number, now: () => number): Promise<void> {
  while (!cond() && now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** Close with 1000 and wait for the close handshake, terminating if it takes longer than `ms`. */
function closeSocket(ws: WebSocket, ms: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, ms);
    ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, "relay stopping");
    else ws.terminate();
  });
}

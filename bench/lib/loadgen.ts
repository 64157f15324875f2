/**
 * The load generator: simulated relays and dashboard clients in this one process, so send and
 * receive times come from the same clock. It speaks the wire protocol of edge/protocol/index.ts over raw
 * `ws` and drives our edge and the seed-style baseline alike.
 *
 * - Relays: `relay_hello`, then every 100 ms (LIMITS.batchWindowMs, as relay/link/link.ts does) one
 *   `telemetry_batch` of ≤500 updates holding the drones that came due; each drone's `seq` grows
 *   by one per sample and its `ts` is the send time. `command` frames are answered at once with
 *   `command_result` acked, as a simulator accepting the command would.
 * - Dashboards: `subscribe_telemetry` all, per-update `telemetry` frames or `batch: true`.
 * - A Tracker remembers the precise send time of every (drone, seq) in a ring per drone and
 *   counts how many dashboards received it: latency and dropped updates come from there.
 */
import WebSocket from "ws";
import { offsetM, type LatLon } from "../../edge/domain/geo";
import { LIMITS, type RelayCommand, type TelemetrySample } from "../../edge/protocol";
import { nowMs, Samples } from "./stats";

/** Drone ids are `d<index>` so the hot receive path maps them to an index without a Map. */
export const droneId = (i: number) => `d${i}`;

/** Send times and delivery counts per (drone, seq). */
export class Tracker {
  private readonly sentAt: Float64Array;
  private readonly seqs: Int32Array;
  private readonly got: Uint16Array;
  private readonly measured: Uint8Array;
  private readonly ringMask: number;
  readonly latency = new Samples();
  /** Deliveries of measured updates (summed over dashboards). */
  delivered = 0;
  /** Measured updates sent. */
  sentMeasured = 0;
  /** Frames whose (drone, seq) was not in the ring any more (overwritten, or never sent). */
  unknown = 0;

  constructor(
    readonly drones: number,
    ring: number,
  ) {
    let r = 16;
    while (r < ring) r *= 2;
    this.ringMask = r - 1;
    this.sentAt = new Float64Array(drones * r);
    this.seqs = new Int32Array(drones * r).fill(-1);
    this.got = new Uint16Array(drones * r);
    this.measured = new Uint8Array(drones * r);
  }

  private slot(idx: number, seq: number): number {
    return idx * (this.ringMask + 1) + (seq & this.ringMask);
  }

  sent(idx: number, seq: number, t: number, measured: boolean): void {
    const s = this.slot(idx, seq);
    this.sentAt[s] = t;
    this.seqs[s] = seq;
    this.got[s] = 0;
    this.measured[s] = measured ? 1 : 0;
    if (measured) this.sentMeasured++;
  }

  received(idx: number, seq: number, t: number): void {
    if (!(idx >= 0 && idx < this.drones)) {
      this.unknown++;
      return;
    }
    const s = this.slot(idx, seq);
    if (this.seqs[s] !== seq) {
      this.unknown++;
      return;
    }
    this.got[s] = this.got[s]! + 1;
    if (this.measured[s]) {
      this.delivered++;
      this.latency.push(t - this.sentAt[s]!);
    }
  }

  /** Measured updates that some of the `dashboards` never received. */
  missing(dashboards: number): number {
    let m = 0;
    for (let s = 0; s < this.seqs.length; s++) {
      if (this.measured[s] && this.got[s]! < dashboards) m += dashboards - this.got[s]!;
    }
    return m;
  }
}

/** Where a drone of the synthetic fleet hovers: a 34×34 grid per layer, 60 m apart, layers 15 m apart. */
export const GRID = { perSide: 34, spacingM: 60, baseAltM: 40, layerM: 15 } as const;

export function gridPosition(home: LatLon, i: number): { lat: number; lon: number; alt_m: number; east: number; north: number } {
  const perLayer = GRID.perSide * GRID.perSide;
  const layer = Math.floor(i / perLayer);
  const k = i % perLayer;
  const half = (GRID.perSide - 1) / 2;
  const east = ((k % GRID.perSide) - half) * GRID.spacingM;
  const north = (Math.floor(k / GRID.perSide) - half) * GRID.spacingM;
  return { ...offsetM(home, east, north), alt_m: GRID.baseAltM + GRID.layerM * layer, east, north };
}

/** A hovering drone's sample (armed, flying, speed 0): the edge runs detection over it. */
export function hoverSample(pos: { lat: number; lon: number; alt_m: number }, id: string, seq: number, ts: number): TelemetrySample {
  return {
    drone_id: id,
    seq,
    ts,
    lat: pos.lat,
    lon: pos.lon,
    alt_m: pos.alt_m,
    heading_deg: 0,
    speed_mps: 0,
    climb_mps: 0,
    battery_pct: 90,
    armed: true,
    mode: "AUTO.LOITER",
    status: "flying",
  };
}

type WsLike = WebSocket;

/** Close without further events; a peer that does not complete the handshake quickly is cut off. */
export function closeQuietly(ws: WsLike): void {
  ws.removeAllListeners("message");
  ws.on("error", () => {});
  try {
    ws.close(1000, "bench done");
  } catch {
    ws.terminate();
  }
  setTimeout(() => ws.terminate(), 500).unref();
}

export function openSocket(url: string, timeoutMs: number): Promise<WsLike> {
  return new Promise((resolve, reject) => {
    // No permessage-deflate on either side of either design: the bench measures the servers, and
    // compression would spend the shared CPU in the client.
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const fail = (err: Error) => {
      ws.removeAllListeners();
      ws.on("error", () => {});
      ws.terminate();
      reject(err);
    };
    ws.once("open", () => {
      ws.removeListener("error", fail);
      resolve(ws);
    });
    ws.once("error", fail);
    ws.once("unexpected-response", (_req, res) => fail(new Error(`${url.replace(/access_token=[^&]+/, "access_token=…")}: HTTP ${res.statusCode}`)));
  });
}

export function waitFor(ws: WsLike, pred: (msg: { type?: string } & Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off("message", on);
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (data: WebSocket.RawData) => {
      let m: unknown;
      try {
        m = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (typeof m === "object" && m !== null && pred(m as { type?: string })) {
        clearTimeout(timer);
        ws.off("message", on);
        resolve();
      }
    };
    ws.on("message", on);
  });
}

export type CommandHandler = (cmd: RelayCommand, receivedAt: number) => void;

/** One simulated relay: a socket, its drones and their seq counters. */
export class RelayConn {
  private ws: WsLike | null = null;
  private batchId = 0;
  private readonly inflight = new Map<number, { t: number; n: number; measured: boolean }>();
  readonly ackRtt = new Samples();
  acceptedMeasured = 0;
  rejected = 0;
  duplicates = 0;
  framesSent = 0;
  maxBuffered = 0;
  commands = 0;
  /** Set to answer commands (default: ack at once). */
  onCommand: CommandHandler | null = null;
  closedUnexpectedly = false;

  constructor(
    readonly url: string,
    readonly relayId: string,
    readonly droneIds: string[],
  ) {}

  async open(timeoutMs = 10_000): Promise<void> {
    const ws = await openSocket(this.url, timeoutMs);
    this.ws = ws;
    const hello = waitFor(ws, (m) => m.type === "hello_ack", timeoutMs, "hello_ack");
    ws.send(JSON.stringify({ type: "relay_hello", relay_id: this.relayId, source: "sim", version: "bench", drone_ids: this.droneIds }));
    await hello;
    ws.on("message", (data) => this.onMessage(data.toString()));
    ws.on("close", () => {
      if (this.ws) this.closedUnexpectedly = true;
    });
    ws.on("error", () => {
      this.closedUnexpectedly = true;
    });
  }

  private onMessage(raw: string): void {
    const t = nowMs();
    let m: { type?: string } & Record<string, unknown>;
    try {
      m = JSON.parse(raw) as typeof m;
    } catch {
      return;
    }
    if (m.type === "batch_ack") {
      const id = m.batch_id as number;
      const b = this.inflight.get(id);
      if (!b) return;
      this.inflight.delete(id);
      if (b.measured) {
        this.ackRtt.push(t - b.t);
        this.acceptedMeasured += (m.accepted as number) ?? 0;
        this.rejected += (m.rejected as number) ?? 0;
        this.duplicates += (m.duplicates as number) ?? 0;
      }
    } else if (m.type === "command") {
      this.commands++;
      const cmd = m as unknown as RelayCommand;
      if (this.onCommand) this.onCommand(cmd, t);
      this.send({ type: "command_result", command_id: cmd.command_id, status: "acked", message: "bench relay: accepted" });
    }
  }

  send(frame: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** Send one telemetry_batch; returns the precise send time. */
  sendBatch(updates: TelemetrySample[], measured: boolean): number {
    const id = this.batchId++;
    const raw = JSON.stringify({ type: "telemetry_batch", batch_id: id, sent_at: Date.now(), updates });
    const t = nowMs();
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(raw);
      this.framesSent++;
      this.inflight.set(id, { t, n: updates.length, measured });
      if (this.ws.bufferedAmount > this.maxBuffered) this.maxBuffered = this.ws.bufferedAmount;
    }
    return t;
  }

  /** Batches not acknowledged yet, measured or not. */
  pendingAcks(): number {
    return this.inflight.size;
  }

  /** Measured batches not acknowledged yet. */
  unacked(): number {
    let n = 0;
    for (const b of this.inflight.values()) if (b.measured) n++;
    return n;
  }

  close(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) closeQuietly(ws);
  }
}

/** One dashboard client subscribed to every drone. */
export class Dashboard {
  private ws: WsLike | null = null;
  frames = 0;
  closedUnexpectedly = false;

  constructor(
    readonly url: string,
    private readonly tracker: Tracker | null,
    private readonly batch: boolean,
  ) {}

  async open(timeoutMs = 10_000, subscribe = true): Promise<WsLike> {
    const ws = await openSocket(this.url, timeoutMs);
    this.ws = ws;
    // Flow control (edge/fleet/flow.ts): answer markers at once, as the dashboard page does; a
    // dashboard that never answers is treated as not reading (latest-wins, then closed).
    ws.on("message", (data) => {
      if (!isFlowMarker(data as Buffer)) return;
      const m = /"seq":(\d+)/.exec((data as Buffer).toString());
      if (m) ws.send(`{"type":"flow_ack","seq":${m[1]}}`);
    });
    ws.on("close", () => {
      if (this.ws) this.closedUnexpectedly = true;
    });
    ws.on("error", () => {
      this.closedUnexpectedly = true;
    });
    if (subscribe) {
      const ok = waitFor(ws, (m) => m.type === "subscribed", timeoutMs, "subscribed");
      ws.send(JSON.stringify({ type: "subscribe_telemetry", request_id: "sub", drone_ids: "all", ...(this.batch ? { batch: true } : {}) }));
      await ok;
      ws.on("message", (data) => this.onMessage(data as Buffer));
    }
    return ws;
  }

  /** The hot path: pull drone index and seq out of the text without building objects. */
  private onMessage(data: Buffer): void {
    const t = nowMs();
    if (isFlowMarker(data)) return;
    this.frames++;
    const tr = this.tracker;
    if (!tr) return;
    // Bytes, not text: the frames are ASCII JSON, and decoding 10 dashboards' share of 40,000
    // updates/s to strings cost the load generator more than the scan.
    if (startsWithBytes(data, TELEMETRY)) {
      readIdSeq(data, 0, t, tr);
    } else if (startsWithBytes(data, TELEMETRY_BATCH)) {
      let from = 0;
      for (;;) {
        const next = readIdSeq(data, from, t, tr);
        if (next < 0) break;
        from = next;
      }
    }
  }

  close(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) closeQuietly(ws);
  }
}

/** An edge flow-control marker (`{"type":"flow","seq":n}`): tiny, so only short frames are looked at. */
function isFlowMarker(data: Buffer): boolean {
  return data.length < 64 && data.toString().startsWith('{"type":"flow",');
}

const ID_KEY = Buffer.from('"drone_id":"d');
const SEQ_KEY = Buffer.from('"seq":');
const TELEMETRY = Buffer.from('{"type":"telemetry",');
const TELEMETRY_BATCH = Buffer.from('{"type":"telemetry_batch"');

/** Whether `data` begins with `prefix` (bytes). */
export function startsWithBytes(data: Buffer, prefix: Buffer): boolean {
  return data.length >= prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** Find the next `"drone_id":"d<n>"…"seq":<m>` from `from`; record it; return where to go on, or -1. */
function readIdSeq(s: Buffer, from: number, t: number, tr: Tracker): number {
  return scanIdNumber(s, from, ID_KEY, SEQ_KEY, (idx, seq) => tr.received(idx, seq, t));
}

/**
 * The receive hot path of the bench's dashboards: from `from`, find the next `<idKey><n>"` (a
 * drone id ending in a decimal index) and the next `<numKey><m>` after it, without building
 * objects; `found(n, m)`; return where to go on, or -1 at the end. Ids of other shapes are
 * skipped (e.g. a coordination pair drone).
 */
export function scanIdNumber(s: Buffer, from: number, idKey: Buffer, numKey: Buffer, found: (idx: number, value: number) => void): number {
  const a = s.indexOf(idKey, from);
  if (a < 0) return -1;
  let i = a + idKey.length;
  let idx = 0;
  let c = i < s.length ? s[i]! : -1;
  if (c < 48 || c > 57) return i;
  while (c >= 48 && c <= 57) {
    idx = idx * 10 + (c - 48);
    c = ++i < s.length ? s[i]! : -1;
  }
  if (c !== 34) return i;
  const b = s.indexOf(numKey, i);
  if (b < 0) return -1;
  let j = b + numKey.length;
  let value = 0;
  c = j < s.length ? s[j]! : -1;
  while (c >= 48 && c <= 57) {
    value = value * 10 + (c - 48);
    c = ++j < s.length ? s[j]! : -1;
  }
  found(idx, value);
  return j;
}

/**
 * Drives relays at a total rate: every tick each relay sends the samples that came due since the
 * last tick, round-robin over its drones, in batches of ≤ LIMITS.batchUpdates. A tick is every
 * LIMITS.batchWindowMs (100 ms), or more often when a relay's rate would fill more than one batch
 * in that time: then every batchUpdates/rate seconds, one full frame a tick, as the relay itself
 * sends them (one frame after another's ack), instead of several frames at once each 100 ms.
 */
export class Generator {
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private readonly sentPerRelay: number[];
  private readonly cursor: number[];
  private readonly seq: Uint32Array;
  measuring = false;
  /** Updates the generator could not send on time (a tick came late and it caught up). */
  lateTicks = 0;

  constructor(
    private readonly relays: RelayConn[],
    /** Drone indices of each relay. */
    private readonly dronesOf: number[][],
    /** Updates per second per drone. */
    private readonly hz: number,
    private readonly tracker: Tracker,
    private readonly sample: (idx: number, seq: number, ts: number) => TelemetrySample,
  ) {
    this.sentPerRelay = relays.map(() => 0);
    this.cursor = relays.map(() => 0);
    this.seq = new Uint32Array(tracker.drones);
  }

  /** The tick, ms (see the class). */
  get periodMs(): number {
    const fastest = Math.max(...this.dronesOf.map((d) => d.length * this.hz), 1);
    return Math.max(5, Math.min(LIMITS.batchWindowMs, Math.floor((LIMITS.batchUpdates * 1000) / fastest)));
  }

  start(): void {
    this.t0 = performance.now();
    this.period = this.periodMs;
    this.timer = setInterval(() => this.tick(), this.period);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const elapsed = (performance.now() - this.t0) / 1000;
    if (elapsed * 1000 > this.period * (this.ticks + 2)) this.lateTicks++;
    this.ticks = Math.floor((elapsed * 1000) / this.period);
    const ts = Date.now();
    for (let r = 0; r < this.relays.length; r++) {
      const drones = this.dronesOf[r]!;
      const due = Math.floor(drones.length * this.hz * elapsed) - this.sentPerRelay[r]!;
      if (due <= 0) continue;
      let batch: { idx: number; seq: number }[] = [];
      let updates: TelemetrySample[] = [];
      const flush = () => {
        const t = this.relays[r]!.sendBatch(updates, this.measuring);
        for (const u of batch) this.tracker.sent(u.idx, u.seq, t, this.measuring);
        batch = [];
        updates = [];
      };
      for (let k = 0; k < due; k++) {
        const idx = drones[this.cursor[r]!]!;
        this.cursor[r] = (this.cursor[r]! + 1) % drones.length;
        const seq = ++this.seq[idx]!;
        updates.push(this.sample(idx, seq, ts));
        batch.push({ idx, seq });
        if (updates.length >= LIMITS.batchUpdates) flush();
      }
      if (updates.length) flush();
      this.sentPerRelay[r]! += due;
    }
  }
  private ticks = 0;
  private period: number = LIMITS.batchWindowMs;
}

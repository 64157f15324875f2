/**
 * EdgeLink against a real `ws` WebSocketServer on port 0 standing in for the edge. The double
 * parses what the relay sends with the protocol's R→E parser (as the fleet object does) and
 * queues it, together with a marker for each ws-level ping, so frame order is what is tested.
 * Time is a FakeClock: adaptive batching (an idle link's next-macrotask flush, the window bound,
 * the frame-rate cap), backoff, heartbeat, hello timeout and command deadlines move only when a
 * test advances it, and "nothing else was sent" is checked with a barrier (the
 * relay's own heartbeat ping, which follows anything sent before it), never with a sleep.
 */
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { parseRelayMessage, TelemetrySample, type EdgeToRelay, type RelayCommand, type RelayMessage } from "../../edge/protocol";
import { offsetM } from "../../edge/domain/geo";
import { realClock } from "../../relay/link/clock";
import { backoffDelay, EdgeLink, relayUrl, type EdgeLinkOptions } from "../../relay/link/link";
import { createLogger } from "../../relay/log";
import { SimFleet } from "../../relay/sources/sim/sim";
import type { CommandOutcome, MissionProgressEvent, SourceSample } from "../../relay/sources/source";
import { FakeClock } from "./relay-clock";

/** What the double saw on a connection, in order: parsed R→E frames, ws pings, refused frames. */
type Seen = RelayMessage | { type: "(ws ping)" } | { type: "(invalid)"; message: string };
type SeenOf<T extends Seen["type"]> = Extract<Seen, { type: T }>;

/** An async FIFO: `next()` resolves with the next item or rejects after `timeoutMs`. */
class Queue<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((v: T) => void)[] = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  get size(): number {
    return this.items.length;
  }
  next(timeoutMs = 2000, what = "item"): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter = (x: T): void => {
        clearTimeout(timer);
        resolve(x);
      };
      this.waiters.push(waiter);
    });
  }
}

type Conn = { ws: WebSocket; req: IncomingMessage; frames: Queue<Seen>; closed: Promise<number> };

interface EdgeDoubleOptions {
  port?: number;
  /** ws answers pings by default; false makes a peer that never pongs. */
  autoPong?: boolean;
  /** Answer relay_hello with hello_ack (default true). */
  hello?: boolean;
  /** last_seq sent in hello_ack. */
  lastSeq?: Record<string, number>;
  /** Answer batches with batch_ack (default true). */
  ack?: boolean;
  /** Refuse the upgrade with this HTTP status. */
  refuse?: number;
  /** Answer command_result with command_result_ack (default true); may be changed mid-test. */
  ackResults?: boolean;
}

/** The edge, as far as the relay can tell: hello → hello_ack, batch → batch_ack. */
class EdgeDouble {
  readonly conns = new Queue<Conn>();
  readonly all: Conn[] = [];
  attempts = 0;
  private constructor(
    readonly server: WebSocketServer,
    readonly opts: EdgeDoubleOptions,
  ) {}

  static async start(opts: EdgeDoubleOptions = {}): Promise<EdgeDouble> {
    let self: EdgeDouble | null = null;
    const server = new WebSocketServer({
      port: opts.port ?? 0,
      host: "127.0.0.1",
      autoPong: opts.autoPong ?? true,
      verifyClient: (_info, cb) => {
        if (self) self.attempts++;
        if (opts.refuse) cb(false, opts.refuse, "Unauthorized");
        else cb(true);
      },
    });
    self = new EdgeDouble(server, opts);
    const edge = self;
    server.on("connection", (ws, req) => edge.onConnection(ws, req));
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    servers.add(edge);
    return edge;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const frames = new Queue<Seen>();
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.on("ping", () => frames.push({ type: "(ws ping)" }));
    ws.on("message", (data) => {
      const parsed = parseRelayMessage(String(data));
      if (!parsed.ok) {
        frames.push({ type: "(invalid)", message: parsed.error.message });
        return;
      }
      const frame = parsed.value;
      if (frame.type === "relay_hello" && this.opts.hello !== false) {
        ws.send(JSON.stringify({ type: "hello_ack", fleet: "f1", last_seq: this.opts.lastSeq ?? {} }));
      } else if (frame.type === "telemetry_batch" && this.opts.ack !== false) {
        const n = frame.updates.length;
        ws.send(JSON.stringify({ type: "batch_ack", batch_id: frame.batch_id, accepted: n, duplicates: 0, rejected: 0, errors: [] }));
      } else if (frame.type === "command_result" && this.opts.ackResults !== false) {
        ws.send(JSON.stringify({ type: "command_result_ack", command_id: frame.command_id }));
      }
      frames.push(frame);
    });
    const conn = { ws, req, frames, closed };
    this.all.push(conn);
    this.conns.push(conn);
  }

  async close(): Promise<void> {
    servers.delete(this);
    for (const c of this.all) c.ws.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const servers = new Set<EdgeDouble>();
const links = new Set<EdgeLink>();
/** The links' clock in each test (SimFleet's test passes the real one). */
let clock: FakeClock;
/** Longest backoff in these tests: advancing by it always fires a pending reconnect. */
const MAX_BACKOFF = 200;
const HEARTBEAT_MS = 5_000;

beforeEach(() => {
  clock = new FakeClock();
});

afterEach(async () => {
  await Promise.all([...links].map((l) => l.stop()));
  links.clear();
  await Promise.all([...servers].map((s) => s.close()));
});

function makeLink(edge: string, opts: Partial<EdgeLinkOptions> = {}): EdgeLink {
  const link = new EdgeLink({
    edge,
    fleet: "f1",
    token: "secret-token",
    relayId: "relay-test",
    source: "sim",
    version: "9.9.9",
    droneIds: () => ["drone_a", "drone_b"],
    backoff: { initialMs: 20, maxMs: MAX_BACKOFF },
    heartbeatMs: HEARTBEAT_MS,
    clock,
    ...opts,
  });
  links.add(link);
  return link;
}

let tick = 0;
function sample(drone: string, patch: Partial<SourceSample> = {}): SourceSample {
  return {
    drone_id: drone,
    ts: Date.now(),
    lat: 47.3977,
    lon: 8.5456 + ++tick * 1e-6,
    alt_m: 50,
    heading_deg: 90,
    speed_mps: 10,
    climb_mps: 0,
    battery_pct: 80,
    armed: true,
    mode: "AUTO.MISSION",
    status: "flying",
    ...patch,
  };
}

const isType = <T extends Seen["type"]>(f: Seen, type: T): f is SeenOf<T> => f.type === type;

/** Next frame of a type, skipping none: the relay's frame order is part of what is tested. */
async function nextOf<T extends Seen["type"]>(conn: Conn, type: T, timeoutMs = 2000): Promise<SeenOf<T>> {
  const f = await conn.frames.next(timeoutMs, type);
  expect(f.type).toBe(type);
  if (!isType(f, type)) throw new Error(`expected ${type}, got ${f.type}`);
  return f;
}

async function nextBatch(conn: Conn, timeoutMs = 2000): Promise<{ frame: SeenOf<"telemetry_batch">; updates: TelemetrySample[] }> {
  const frame = await nextOf(conn, "telemetry_batch", timeoutMs);
  return { frame, updates: frame.updates.map((u) => TelemetrySample.parse(u)) };
}

/**
 * Nothing but what was already read was sent on `conn`: the relay's next heartbeat ping, which
 * follows on the same socket anything sent before it, must be the next thing the edge sees.
 */
async function barrier(conn: Conn): Promise<void> {
  clock.advance(HEARTBEAT_MS);
  await nextOf(conn, "(ws ping)");
}

function once<T>(link: EdgeLink, event: "connected" | "disconnected", timeoutMs = 3000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${timeoutMs} ms`)), timeoutMs);
    link.once(event, (info: unknown) => {
      clearTimeout(timer);
      resolve(info as T);
    });
  });
}

/** The link lost its socket and set its reconnect timer: fire it. */
async function reconnectNow(): Promise<void> {
  await clock.waitForTimer();
  clock.advance(MAX_BACKOFF);
}

async function freePort(): Promise<number> {
  const s = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((r) => s.once("listening", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("relayUrl and backoff", () => {
  it("maps http→ws and https→wss and appends the fleet's relay path", () => {
    expect(relayUrl("http://127.0.0.1:8787", "f1")).toBe("ws://127.0.0.1:8787/v1/fleets/f1/relay");
    expect(relayUrl("https://edge.example.com/", "demo")).toBe("wss://edge.example.com/v1/fleets/demo/relay");
    expect(relayUrl("wss://edge.example.com/base", "demo")).toBe("wss://edge.example.com/base/v1/fleets/demo/relay");
    expect(() => relayUrl("ftp://x", "f")).toThrow(/http/);
  });

  it("stays within [0, min(max, initial·2^n)] and never exceeds the cap", () => {
    const opts = { initialMs: 250, maxMs: 30_000 };
    for (let n = 0; n < 40; n++) {
      const cap = Math.min(30_000, 250 * 2 ** n);
      expect(backoffDelay(n, opts, () => 0)).toBe(0);
      expect(backoffDelay(n, opts, () => 1)).toBe(cap);
      const d = backoffDelay(n, opts);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(cap);
    }
    expect(backoffDelay(5000, opts, () => 0.999)).toBeLessThanOrEqual(30_000);
    expect(backoffDelay(-3, opts, () => 1)).toBe(250);
  });
});

describe("EdgeLink", () => {
  it("connects with the bearer token and sends relay_hello first", async () => {
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url);
    const connected = once<{ fleet: string }>(link, "connected");
    link.start();
    const conn = await edge.conns.next(2000, "connection");
    expect(conn.req.headers.authorization).toBe("Bearer secret-token");
    expect(conn.req.url).toBe("/v1/fleets/f1/relay");
    const hello = await nextOf(conn, "relay_hello");
    expect(hello).toEqual({ type: "relay_hello", relay_id: "relay-test", source: "sim", version: "9.9.9", drone_ids: ["drone_a", "drone_b"] });
    expect((await connected).fleet).toBe("f1");
    expect(link.stats().connected).toBe(true);
  });

  it("sends a sample at once on an idle link, with no clock advance; the samples of one turn share a frame", async () => {
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url);
    link.start();
    const conn = await edge.conns.next();
    await nextOf(conn, "relay_hello");
    await once(link, "connected");
    const t0 = clock.now();
    link.push(sample("drone_a"));
    // Not within the turn: the rest of it may still bring samples (the simulator's whole tick).
    expect(link.stats().framesSent).toBe(0);
    link.push(sample("drone_b"));
    link.push(sample("drone_a"));
    clock.advance(0); // the next macrotask; time does not move
    expect(link.stats().framesSent).toBe(1);
    const { frame, updates } = await nextBatch(conn, 1000);
    expect(updates.map((u) => u.drone_id)).toEqual(["drone_a", "drone_b", "drone_a"]);
    expect(frame.sent_at).toBe(t0); // no window was waited for
    // The batch_ack arrives after this: its time is the ack time.
    clock.advance(1);
    await expect.poll(() => link.stats().lastAckAt, { timeout: 1000 }).toBe(t0 + 1);
    // Acknowledged, and past the frame-rate cap's 20 ms: idle again, the next lone sample goes at once too.
    clock.advance(19);
    link.push(sample("drone_b"));
    clock.advance(0);
    const second = await nextBatch(conn, 1000);
    expect(second.updates.map((u) => u.drone_id)).toEqual(["drone_b"]);
    expect(second.frame.sent_at).toBe(t0 + 20);
    expect(link.stats()).toMatchObject({ updatesSent: 4, framesSent: 2, framesReleased: { idle: 2, ack: 0, rate: 0, window: 0, full: 0 } });
  });

  it("while a frame awaits its batch_ack, samples coalesce and go with the ack, before the window bound", async () => {
    const edge = await EdgeDouble.start({ ack: false });
    const link = makeLink(edge.url);
    link.start();
    const conn = await edge.conns.next();
    await nextOf(conn, "relay_hello");
    await once(link, "connected");
    link.push(sample("drone_a"));
    clock.advance(0);
    const first = await nextBatch(conn);
    // Frame 1 is in flight: these wait for its ack instead of going one by one.
    link.push(sample("drone_b"));
    clock.advance(0);
    link.push(sample("drone_a"));
    clock.advance(50);
    expect(link.stats().framesSent).toBe(1);
    const tAck = clock.now();
    conn.ws.send(JSON.stringify({ type: "batch_ack", batch_id: first.frame.batch_id, accepted: 1, duplicates: 0, rejected: 0, errors: [] }));
    await expect.poll(() => link.stats().framesSent, { timeout: 1000 }).toBe(2);
    const second = await nextBatch(conn);
    expect(second.updates.map((u) => u.drone_id)).toEqual(["drone_b", "drone_a"]);
    expect(second.frame.sent_at).toBe(tAck); // at the ack, 50 ms before the bound
    expect(link.stats().framesReleased).toEqual({ idle: 1, ack: 1, rate: 0, window: 0, full: 0 });
    // The bound was cancelled with the ack: nothing else goes when it would have expired.
    clock.advance(100);
    expect(link.stats().framesSent).toBe(2);
    await barrier(conn);
  });

  it("sends coalesced samples when the window bound expires and no ack came", async () => {
    const edge = await EdgeDouble.start({ ack: false });
    const link = makeLink(edge.url, { batchWindowMs: 40 });
    link.start();
    const conn = await edge.conns.next();
    await nextOf(conn, "relay_hello");
    await once(link, "connected");
    link.push(sample("drone_a"));
    clock.advance(0);
    await nextBatch(conn);
    clock.advance(10);
    const t1 = clock.now();
    link.push(sample("drone_b")); // waits for an ack that never comes, at most 40 ms
    clock.advance(20);
    link.push(sample("drone_a")); // joins it, and does not extend the wait
    clock.advance(19);
    expect(link.stats().framesSent).toBe(1);
    clock.advance(1);
    expect(link.stats().framesSent).toBe(2);
    const second = await nextBatch(conn);
    expect(second.updates.map((u) => u.drone_id)).toEqual(["drone_b", "drone_a"]);
    expect(second.frame.sent_at).toBe(t1 + 40);
    expect(link.stats().framesReleased).toEqual({ idle: 1, ack: 0, rate: 0, window: 1, full: 0 });
  });

  it("caps the frame rate: an early frame within 1000/maxFramesPerSecond ms of the last waits for that moment, or for the window bound", async () => {
    const edge = await EdgeDouble.start({ ack: false });
    const link = makeLink(edge.url, { maxFramesPerSecond: 50 }); // a frame at most every 20 ms
    let acks = 0;
    link.on("message", (f) => void (f.type === "batch_ack" && acks++));
    link.start();
    const conn = await edge.conns.next();
    await nextOf(conn, "relay_hello");
    await once(link, "connected");
    const ack = async (frame: { batch_id: number }): Promise<void> => {
      const n = acks;
      conn.ws.send(JSON.stringify({ type: "batch_ack", batch_id: frame.batch_id, accepted: 1, duplicates: 0, rejected: 0, errors: [] }));
      await expect.poll(() => acks, { timeout: 1000 }).toBe(n + 1);
    };
    const t0 = clock.now();
    link.push(sample("drone_a"));
    clock.advance(0);
    const first = await nextBatch(conn);
    await ack(first.frame);
    // Idle again, but 5 ms after the last frame: held back until 20 ms after it.
    clock.advance(5);
    link.push(sample("drone_b"));
    clock.advance(14);
    expect(link.stats().framesSent).toBe(1);
    clock.advance(1);
    const second = await nextBatch(conn);
    expect(second.frame.sent_at).toBe(t0 + 20);
    // An ack within the gap does not release either: the cap's moment does.
    clock.advance(2);
    link.push(sample("drone_a"));
    await ack(second.frame);
    expect(link.stats().framesSent).toBe(2);
    clock.advance(18);
    expect((await nextBatch(conn)).frame.sent_at).toBe(t0 + 40);
    expect(link.stats().framesReleased).toEqual({ idle: 1, ack: 0, rate: 2, window: 0, full: 0 });
    await link.stop();

    // A cap below 1000/window (3 a second: 333 ms) cannot hold an update past the window bound.
    const slow = makeLink(edge.url, { maxFramesPerSecond: 3 });
    slow.start();
    const c2 = await edge.conns.next();
    await nextOf(c2, "relay_hello");
    await once(slow, "connected");
    const t1 = clock.now();
    slow.push(sample("drone_a"));
    clock.advance(0);
    const f1 = await nextBatch(c2);
    c2.ws.send(JSON.stringify({ type: "batch_ack", batch_id: f1.frame.batch_id, accepted: 1, duplicates: 0, rejected: 0, errors: [] }));
    await expect.poll(() => slow.stats().lastAckAt, { timeout: 1000 }).toBe(t1);
    slow.push(sample("drone_b"));
    clock.advance(99);
    expect(slow.stats().framesSent).toBe(1);
    clock.advance(1);
    expect((await nextBatch(c2)).frame.sent_at).toBe(t1 + 100);
    expect(slow.stats().framesReleased).toMatchObject({ idle: 1, window: 1 });
  });

  it("sends a full batch at 500 updates without waiting for the window", async () => {
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url);
    link.start();
    const conn = await edge.conns.next();
    await once(link, "connected");
    await nextOf(conn, "relay_hello");
    const t0 = clock.now();
    for (let i = 0; i < 1100; i++) link.push(sample(`drone_${i % 700}`));
    expect(link.stats().framesSent).toBe(2);
    clock.advance(99);
    expect(link.stats().framesSent).toBe(2);
    clock.advance(1);
    const sizes: number[] = [];
    const sentAt: number[] = [];
    const batchIds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { frame, updates } = await nextBatch(conn);
      sizes.push(updates.length);
      sentAt.push(Number(frame.sent_at) - t0);
      batchIds.push(frame.batch_id);
    }
    expect(sizes).toEqual([500, 500, 100]);
    // The first full frame went at once; the rest waited for its ack, or here the window bound.
    expect(sentAt).toEqual([0, 0, 100]);
    expect(link.stats().framesReleased).toEqual({ idle: 0, ack: 0, rate: 0, window: 1, full: 2 });
    expect(batchIds[1]).toBeGreaterThan(batchIds[0] ?? Infinity);
    expect(batchIds[2]).toBeGreaterThan(batchIds[1] ?? Infinity);
  });

  it("assigns per-drone seqs that grow, start at the wall clock and above hello_ack last_seq", async () => {
    const future = clock.now() + 1_000_000;
    const edge = await EdgeDouble.start({ lastSeq: { drone_a: future } });
    const link = makeLink(edge.url);
    link.start();
    const conn = await edge.conns.next();
    await once(link, "connected");
    await nextOf(conn, "relay_hello");
    const t0 = clock.now();
    for (let i = 0; i < 5; i++) {
      link.push(sample("drone_a"));
      link.push(sample("drone_b"));
    }
    clock.advance(100);
    const { updates } = await nextBatch(conn);
    const a = updates.filter((u) => u.drone_id === "drone_a").map((u) => u.seq);
    const b = updates.filter((u) => u.drone_id === "drone_b").map((u) => u.seq);
    expect(a).toEqual([future + 1, future + 2, future + 3, future + 4, future + 5]);
    expect(b).toEqual([t0, t0 + 1, t0 + 2, t0 + 3, t0 + 4]);
  });

  it("holds latest-per-drone while offline, counts overflow, and delivers on (re)start of the edge", async () => {
    const port = await freePort();
    const link = makeLink(`http://127.0.0.1:${port}`, { outboxMax: 3 });
    link.start(); // nothing listens yet: connection refused, backoff
    for (let i = 0; i < 5; i++) {
      link.push(sample("drone_a", { battery_pct: 90 - i }));
      link.push(sample("drone_b", { battery_pct: 80 - i }));
    }
    link.push(sample("drone_c", { battery_pct: 70 }));
    link.push(sample("drone_d", { battery_pct: 60 })); // outbox full: dropped
    link.push(sample("drone_a", { battery_pct: 42 }));
    expect(link.stats()).toMatchObject({ outboxDepth: 3, droppedUpdates: 1, connected: false, updatesSent: 0 });

    const edge = await EdgeDouble.start({ port });
    await reconnectNow();
    const conn = await edge.conns.next(3000, "reconnection");
    await nextOf(conn, "relay_hello");
    const { updates } = await nextBatch(conn);
    const byDrone = Object.fromEntries(updates.map((u) => [u.drone_id, u.battery_pct]));
    expect(byDrone).toEqual({ drone_a: 42, drone_b: 76, drone_c: 70 });
    expect(link.stats().outboxDepth).toBe(0);
    expect(link.stats().reconnects).toBe(1);
  });

  it("reconnects after the edge drops the socket and after an edge restart; no seq goes backwards", async () => {
    const edge1 = await EdgeDouble.start({ ack: false });
    const port = edge1.port;
    const link = makeLink(edge1.url);
    const seen = new Map<string, number[]>();
    const record = (us: TelemetrySample[]): void => {
      for (const u of us) seen.set(u.drone_id, [...(seen.get(u.drone_id) ?? []), u.seq]);
    };
    link.start();
    const c1 = await edge1.conns.next();
    await nextOf(c1, "relay_hello");
    await once(link, "connected");
    link.push(sample("drone_a", { battery_pct: 70 }));
    link.push(sample("drone_b", { battery_pct: 60 }));
    clock.advance(100);
    const first = await nextBatch(c1);
    record(first.updates);

    // 1) The edge drops the socket. The batch above was never acked, so it is re-sent.
    const down = once(link, "disconnected");
    c1.ws.terminate();
    await down;
    link.push(sample("drone_a", { battery_pct: 69 }));
    await reconnectNow();
    const c2 = await edge1.conns.next(3000, "reconnection");
    await nextOf(c2, "relay_hello");
    const second = await nextBatch(c2);
    record(second.updates);
    const a2 = second.updates.find((u) => u.drone_id === "drone_a");
    const b2 = second.updates.find((u) => u.drone_id === "drone_b");
    expect(a2?.battery_pct).toBe(69); // latest state, freshly sequenced
    expect(b2?.battery_pct).toBe(60); // unacknowledged sample re-sent...
    expect(b2?.seq).toBe(first.updates.find((u) => u.drone_id === "drone_b")?.seq); // ...with the same seq

    // 2) The edge restarts on the same port; it remembers drone_b's seq from before.
    const lastB = Math.max(...(seen.get("drone_b") ?? [0]));
    const down2 = once(link, "disconnected");
    await edge1.close();
    await down2;
    link.push(sample("drone_a", { battery_pct: 68 }));
    link.push(sample("drone_b", { battery_pct: 59 }));
    const edge2 = await EdgeDouble.start({ port, lastSeq: { drone_b: lastB } });
    await reconnectNow();
    const c3 = await edge2.conns.next(3000, "reconnection after restart");
    await nextOf(c3, "relay_hello");
    const third = await nextBatch(c3);
    record(third.updates);
    expect(Object.fromEntries(third.updates.map((u) => [u.drone_id, u.battery_pct]))).toEqual({ drone_a: 68, drone_b: 59 });
    for (const [, seqs] of seen) {
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThanOrEqual(seqs[i - 1] ?? Infinity);
    }
    expect(third.updates.find((u) => u.drone_id === "drone_b")?.seq).toBeGreaterThan(lastB);
    expect(link.stats().reconnects).toBe(2);
  });

  it("keeps a socket whose peer answers pings, and terminates one whose peer stops answering", async () => {
    // A peer that answers: a frame the edge sends after its pong arrives after that pong too.
    const live = await EdgeDouble.start();
    const kept = makeLink(live.url, { heartbeatMs: 100 });
    const frames: EdgeToRelay[] = [];
    kept.on("message", (f) => frames.push(f));
    kept.start();
    const k1 = await live.conns.next();
    await once(kept, "connected");
    await nextOf(k1, "relay_hello");
    for (let i = 0; i < 3; i++) {
      clock.advance(100);
      await nextOf(k1, "(ws ping)");
      k1.ws.send(JSON.stringify({ type: "pong", ts: i }));
      await expect.poll(() => frames.filter((f) => f.type === "pong").length, { timeout: 1000 }).toBe(i + 1);
    }
    expect(kept.stats()).toMatchObject({ connected: true, reconnects: 0 });
    await kept.stop(); // the two links share the clock

    const edge = await EdgeDouble.start({ autoPong: false });
    const link = makeLink(edge.url, { heartbeatMs: 100 });
    link.start();
    const c1 = await edge.conns.next();
    await once(link, "connected");
    await nextOf(c1, "relay_hello");
    const down = once<{ code: number }>(link, "disconnected", 2000);
    clock.advance(100); // ping
    await nextOf(c1, "(ws ping)");
    expect(link.stats().connected).toBe(true);
    clock.advance(100); // no pong by the next beat: terminated
    const info = await down;
    expect(info.code).toBe(1006); // terminated, no close handshake
    await expect(c1.closed).resolves.toBeTypeOf("number");
    await reconnectNow();
    await edge.conns.next(2000, "reconnection");
  });

  it("gives up on an edge that never answers relay_hello after helloTimeoutMs, then reconnects", async () => {
    const edge = await EdgeDouble.start({ hello: false });
    const lines: string[] = [];
    const link = makeLink(edge.url, { helloTimeoutMs: 1000, log: createLogger("warn", (l) => lines.push(l)) });
    link.start();
    const c1 = await edge.conns.next();
    await nextOf(c1, "relay_hello");
    const gaveUp = (): boolean => lines.some((l) => l.includes("no hello_ack from the edge"));
    clock.advance(999);
    expect(gaveUp()).toBe(false);
    clock.advance(1);
    expect(gaveUp()).toBe(true);
    await c1.closed;
    await reconnectNow();
    const c2 = await edge.conns.next(2000, "reconnection");
    await nextOf(c2, "relay_hello");
    expect(link.stats()).toMatchObject({ connected: false, reconnects: 1 });
  });

  it("grows the backoff while connections keep failing and resets it after a stable connection", async () => {
    // random 1: each delay is its ceiling, min(max, initial·2^attempt).
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url, { backoff: { initialMs: 20, maxMs: MAX_BACKOFF }, random: () => 1, stableAfterMs: 1000 });
    link.start();
    const drop = async (expectedDelay: number): Promise<void> => {
      const conn = await edge.conns.next();
      await once(link, "connected");
      const down = once(link, "disconnected");
      conn.ws.terminate();
      await down;
      expect(clock.pending()).toEqual([expectedDelay]);
      clock.advance(expectedDelay);
    };
    await drop(20);
    await drop(40); // dropped again at once: doubled
    const conn = await edge.conns.next();
    await once(link, "connected");
    clock.advance(1000); // up long enough: the next drop starts over
    const down = once(link, "disconnected");
    conn.ws.terminate();
    await down;
    expect(clock.pending()).toEqual([20]);
  });

  it("waits the maximum backoff after a 401 instead of spinning, and says why", async () => {
    const edge = await EdgeDouble.start({ refuse: 401 });
    const lines: string[] = [];
    const link = makeLink(edge.url, {
      backoff: { initialMs: 5, maxMs: 300 },
      random: () => 0, // ordinary backoff would retry at once
      log: createLogger("debug", (l) => lines.push(l)),
    });
    link.start();
    await clock.waitForTimer();
    expect(clock.pending()).toEqual([300]);
    clock.advance(299);
    expect(clock.pending()).toEqual([1]); // no attempt before the maximum delay
    clock.advance(1);
    await expect.poll(() => edge.attempts, { timeout: 2000 }).toBe(2);
    await clock.waitForTimer();
    expect(clock.pending()).toEqual([300]); // every time
    await link.stop();
    expect(edge.attempts).toBe(2);
    const errors = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === "error");
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ status: 401 });
    expect(String(errors[0]?.msg)).toMatch(/token/);
    expect(lines.join("\n")).not.toContain("secret-token");
  });

  it("close 4003 (relay_id bound to another token subject): one clear error with both ways out, the maximum backoff, reported in stats", async () => {
    const edge = await EdgeDouble.start({ hello: false });
    const lines: string[] = [];
    const link = makeLink(edge.url, {
      backoff: { initialMs: 5, maxMs: 300 },
      random: () => 0, // ordinary backoff would retry at once
      log: createLogger("debug", (l) => lines.push(l)),
    });
    /** The fleet object's answer to this relay's hello: say why, then close 4003. */
    const refuse = async (): Promise<void> => {
      const conn = await edge.conns.next(2000, "connection");
      await nextOf(conn, "relay_hello");
      conn.ws.send(JSON.stringify({ type: "error", code: "relay_id_taken", message: "relay_id relay-test belongs to another token subject; an admin can release it" }));
      conn.ws.close(4003, "relay_id belongs to another token subject");
      expect(await conn.closed).toBe(4003);
    };
    link.start();
    await refuse();
    await expect.poll(() => clock.pending(), { timeout: 2000 }).toEqual([300]);
    expect(link.stats().refused).toMatchObject({ reason: "relay_id_taken", message: expect.stringContaining('relay_id "relay-test"') });
    clock.advance(299);
    expect(edge.attempts).toBe(1); // nothing before the maximum delay
    clock.advance(1);
    await refuse();
    await expect.poll(() => clock.pending(), { timeout: 2000 }).toEqual([300]); // every time
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const errors = parsed.filter((l) => l.level === "error");
    expect(errors).toHaveLength(1); // once for the streak, not once per attempt
    expect(errors[0]).toMatchObject({ relay_id: "relay-test", code: 4003, retry_in_s: 0.3 });
    expect(String(errors[0]?.msg)).toMatch(/^relay_id "relay-test" is bound to another token subject at the edge \(close 4003\)/);
    expect(String(errors[0]?.msg)).toContain("an admin releases it (DELETE /v1/fleets/f1/relays/relay-test)");
    expect(String(errors[0]?.msg)).toContain("give this relay its own relay_id (--relay-id, RELAY_ID or relay_id in the config)");
    expect(parsed.filter((l) => l.level === "warn")).toEqual([]); // the edge's error frame is not a second alarm
    // An admin released it: the next attempt connects and the refusal is gone.
    edge.opts.hello = true;
    const up = once(link, "connected");
    clock.advance(300);
    await up;
    expect(link.stats()).toMatchObject({ connected: true, refused: null });
  });

  it("holds samples latest-per-drone while the socket is backpressured", async () => {
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url, { maxBufferedBytes: -1 }); // always "over the bound"
    link.start();
    const conn = await edge.conns.next();
    await nextOf(conn, "relay_hello");
    await once(link, "connected");
    for (let i = 0; i < 20; i++) link.push(sample(i % 2 ? "drone_a" : "drone_b"));
    clock.advance(1000);
    expect(link.stats()).toMatchObject({ outboxDepth: 2, updatesSent: 0, framesSent: 0 });
  });

  it("emits every parsed frame from the edge as 'message' and ignores malformed ones", async () => {
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url);
    const frames: EdgeToRelay[] = [];
    link.on("message", (f) => frames.push(f));
    link.start();
    const conn = await edge.conns.next();
    await once(link, "connected");
    conn.ws.send("not json");
    conn.ws.send(JSON.stringify([1, 2]));
    conn.ws.send(JSON.stringify({ type: "command", command_id: "c1" })); // no usable command_id: not answered
    conn.ws.send(JSON.stringify({ type: "from_the_future", x: 1 }));
    conn.ws.send(JSON.stringify({ type: "pong", ts: 5 })); // processed after all of the above
    await expect.poll(() => frames.map((f) => f.type), { timeout: 1000 }).toEqual(["hello_ack", "pong"]);
    expect(link.stats().commandsReceived).toBe(0);
    await nextOf(conn, "relay_hello");
    await barrier(conn);
  });

  it("stop() flushes pending samples, closes with 1000 and resolves within the grace", async () => {
    const edge = await EdgeDouble.start();
    const link = makeLink(edge.url);
    link.start();
    const conn = await edge.conns.next();
    await nextOf(conn, "relay_hello");
    await once(link, "connected");
    link.push(sample("drone_a"));
    link.push(sample("drone_b"));
    const t0 = Date.now();
    await link.stop(); // the window (fake time) never closed: stop() sends the batch itself
    expect(Date.now() - t0).toBeLessThan(1500);
    const { updates } = await nextBatch(conn, 500);
    expect(updates).toHaveLength(2);
    await expect(conn.closed).resolves.toBe(1000);
    expect(link.stats().connected).toBe(false);
    link.push(sample("drone_a")); // ignored after stop
    expect(link.stats().outboxDepth).toBe(0);
  });
});

// ---------------------------------------------------------------- commands

type Exec = (command: RelayCommand, signal: AbortSignal) => Promise<CommandOutcome>;

/** A promise with its resolve, to hold a command "at the drone" until the test lets it go. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

let commandSeq = 0;
function commandFrame(command: Record<string, unknown> & { command: string }, patch: Record<string, unknown> = {}): RelayCommand {
  return { type: "command", command_id: `cmd-${String(++commandSeq).padStart(6, "0")}`, drone_id: "drone_a", timeout_ms: 4500, ...command, ...patch } as RelayCommand;
}
const modify = (patch: Record<string, unknown> = {}) =>
  commandFrame({ command: "modify_waypoint", new_waypoint: { lat: 47.398, lon: 8.546, alt_m: 40 }, modification_reason: "test" }, patch);
const land = (patch: Record<string, unknown> = {}) => commandFrame({ command: "emergency_land", reason: "test" }, patch);

/** A connected link with `execute`; returns the edge's view of the connection. */
async function connectedLink(execute: Exec, opts: Partial<EdgeLinkOptions> = {}, edgeOpts: EdgeDoubleOptions = {}) {
  const edge = await EdgeDouble.start(edgeOpts);
  const link = makeLink(edge.url, { execute, ...opts });
  link.start();
  const conn = await edge.conns.next(2000, "connection");
  await nextOf(conn, "relay_hello");
  await once(link, "connected");
  return { edge, link, conn };
}

async function nextResult(conn: Conn, timeoutMs = 2000) {
  return nextOf(conn, "command_result", timeoutMs);
}

describe("EdgeLink commands", () => {
  it("executes a command at the source and answers command_result acked with its message", async () => {
    const seen: RelayCommand[] = [];
    const { conn } = await connectedLink(async (c) => {
      seen.push(c);
      return { ok: true, message: "flying to the new waypoint" };
    });
    const cmd = modify();
    conn.ws.send(JSON.stringify(cmd));
    expect(await nextResult(conn)).toEqual({ type: "command_result", command_id: cmd.command_id, status: "acked", message: "flying to the new waypoint" });
    expect(seen).toEqual([cmd]);
  });

  it("answers timeout when the drone's service did not answer before the relay's deadline", async () => {
    const { conn } = await connectedLink(async () => ({ ok: false, timedOut: true, message: "service /d1/hold did not answer within 4250 ms" }));
    const cmd = commandFrame({ command: "hold", duration_s: 5 });
    conn.ws.send(JSON.stringify(cmd));
    expect(await nextResult(conn)).toEqual({
      type: "command_result",
      command_id: cmd.command_id,
      status: "timeout",
      message: "service /d1/hold did not answer within 4250 ms",
    });
  });

  it("answers failed with the error message when the source throws, or rejects the command", async () => {
    const executed: string[] = [];
    const { conn } = await connectedLink(async (c) => {
      executed.push(c.command_id);
      if (c.command === "hold") return { ok: false, message: "drone is landed, not airborne" };
      throw new Error("autopilot link lost");
    });
    const a = modify();
    conn.ws.send(JSON.stringify(a));
    expect(await nextResult(conn)).toMatchObject({ command_id: a.command_id, status: "failed", message: "autopilot link lost" });
    const b = commandFrame({ command: "hold", duration_s: 5 });
    conn.ws.send(JSON.stringify(b));
    expect(await nextResult(conn)).toMatchObject({ command_id: b.command_id, status: "failed", message: "drone is landed, not airborne" });
    // A command the protocol's parser refuses is answered too (failed), without reaching the source.
    const c = commandFrame({ command: "barrel_roll" });
    conn.ws.send(JSON.stringify(c));
    expect(await nextResult(conn)).toMatchObject({ command_id: c.command_id, status: "failed", message: expect.stringMatching(/^invalid command: command: Invalid discriminator/) });
    const d = modify({ new_waypoint: { lat: 91, lon: 8.5, alt_m: 40 } });
    conn.ws.send(JSON.stringify(d));
    expect(await nextResult(conn)).toMatchObject({ command_id: d.command_id, status: "failed", message: expect.stringMatching(/^invalid command: new_waypoint\.lat/) });
    expect(executed).toEqual([a.command_id, b.command_id]);
  });

  it("answers failed after its own timeout (clamped to ≥500 ms) when the source never answers, and aborts the signal", async () => {
    let signal: AbortSignal | null = null;
    const { conn, link } = await connectedLink((_c, s) => {
      signal = s;
      return new Promise<CommandOutcome>(() => {}); // never settles
    });
    const cmd = modify({ timeout_ms: 50 }); // below the floor: 500 ms
    conn.ws.send(JSON.stringify(cmd));
    await expect.poll(() => link.stats().commandsInFlight, { timeout: 1000 }).toBe(1);
    clock.advance(499);
    await Promise.resolve();
    expect(link.stats()).toMatchObject({ commandsInFlight: 1, pendingResults: 0 });
    expect((signal as AbortSignal | null)?.aborted).toBe(false);
    clock.advance(1);
    const r = await nextResult(conn, 2000);
    expect(r).toMatchObject({ command_id: cmd.command_id, status: "timeout", message: "timeout at the relay after 500 ms" });
    expect((signal as AbortSignal | null)?.aborted).toBe(true);
    expect(link.stats().commandsInFlight).toBe(0);
  });

  it("keeps a result until command_result_ack and re-sends it after every reconnect", async () => {
    const gate = deferred<CommandOutcome>();
    const { edge, link, conn: c1 } = await connectedLink(() => gate.promise, {}, { ackResults: false });
    const cmd = modify();
    c1.ws.send(JSON.stringify(cmd));
    await expect.poll(() => link.stats().commandsInFlight, { timeout: 1000 }).toBe(1);

    // The uplink drops while the drone is acting; the drone finishes while the relay is offline.
    const down = once(link, "disconnected");
    c1.ws.terminate();
    await down;
    gate.resolve({ ok: true, message: "done while offline" });
    await expect.poll(() => link.stats().pendingResults, { timeout: 1000 }).toBe(1);

    // Reconnect: the result follows the hello. The edge does not ack it...
    await reconnectNow();
    const c2 = await edge.conns.next(3000, "reconnection");
    await nextOf(c2, "relay_hello");
    expect(await nextResult(c2)).toMatchObject({ command_id: cmd.command_id, status: "acked", message: "done while offline" });
    // ...so after the next drop it comes again, and this time the edge acknowledges it.
    edge.opts.ackResults = true;
    const down2 = once(link, "disconnected");
    c2.ws.terminate();
    await down2;
    await reconnectNow();
    const c3 = await edge.conns.next(3000, "second reconnection");
    await nextOf(c3, "relay_hello");
    expect(await nextResult(c3)).toMatchObject({ command_id: cmd.command_id, status: "acked" });
    await expect.poll(() => link.stats().pendingResults, { timeout: 1000 }).toBe(0);
    // Acknowledged: not sent again after another reconnect.
    const down3 = once(link, "disconnected");
    c3.ws.terminate();
    await down3;
    await reconnectNow();
    const c4 = await edge.conns.next(3000, "third reconnection");
    await nextOf(c4, "relay_hello");
    await once(link, "connected");
    await barrier(c4);
  });

  it("executes a repeated command_id once: waits for the in-flight run, then answers from the cached result", async () => {
    let calls = 0;
    const gate = deferred<CommandOutcome>();
    const { conn, link } = await connectedLink(() => {
      calls++;
      return gate.promise;
    });
    const cmd = modify();
    conn.ws.send(JSON.stringify(cmd));
    conn.ws.send(JSON.stringify(cmd)); // edge retry while it runs
    await expect.poll(() => link.stats().duplicateCommands, { timeout: 1000 }).toBe(1);
    gate.resolve({ ok: true, message: "accepted" });
    expect(await nextResult(conn)).toMatchObject({ command_id: cmd.command_id, status: "acked", message: "accepted" });
    await barrier(conn); // one result for both frames
    await expect.poll(() => link.stats().pendingResults, { timeout: 1000 }).toBe(0); // acked by the edge
    conn.ws.send(JSON.stringify(cmd)); // and again after it was acknowledged
    expect(await nextResult(conn)).toMatchObject({ command_id: cmd.command_id, status: "acked", message: "accepted" });
    expect(calls).toBe(1);
    expect(link.stats()).toMatchObject({ commandsReceived: 3, duplicateCommands: 2 });
  });

  it("runs an emergency_land while a slow modify_waypoint is still in flight at the same drone", async () => {
    const slow = deferred<CommandOutcome>();
    const order: string[] = [];
    const { conn } = await connectedLink(async (c) => {
      order.push(`start ${c.command}`);
      if (c.command === "modify_waypoint") return slow.promise;
      return { ok: true, message: "landing in place" };
    });
    const m = modify();
    const l = land();
    conn.ws.send(JSON.stringify(m));
    conn.ws.send(JSON.stringify(l));
    const first = await nextResult(conn);
    expect(first).toMatchObject({ command_id: l.command_id, status: "acked", message: "landing in place" });
    expect(order).toEqual(["start modify_waypoint", "start emergency_land"]);
    slow.resolve({ ok: true });
    expect(await nextResult(conn)).toMatchObject({ command_id: m.command_id, status: "acked" });
  });

  it("refuses commands beyond maxInflightCommands at once, but never an emergency_land", async () => {
    const gate = deferred<CommandOutcome>();
    const { conn } = await connectedLink(async (c) => (c.command === "emergency_land" ? { ok: true } : gate.promise), { maxInflightCommands: 1 });
    const a = modify();
    const b = modify();
    const l = land();
    for (const f of [a, b, l]) conn.ws.send(JSON.stringify(f));
    expect(await nextResult(conn)).toMatchObject({ command_id: b.command_id, status: "failed", message: expect.stringMatching(/relay busy/) });
    expect(await nextResult(conn)).toMatchObject({ command_id: l.command_id, status: "acked" });
    gate.resolve({ ok: true });
    expect(await nextResult(conn)).toMatchObject({ command_id: a.command_id, status: "acked" });
  });

  it("sends an assign_mission's result before the progress the source reports while executing it", async () => {
    let link!: EdgeLink;
    const accepted = deferred<CommandOutcome>();
    const ctx = await connectedLink(async (c) => {
      if (c.command !== "assign_mission") return { ok: false, message: "unexpected" };
      link.pushProgress({ mission_id: c.mission_id, drone_id: c.drone_id, state: "active", waypoint_index: 0, ts: Date.now() });
      link.pushProgress({ mission_id: "m-other", drone_id: "drone_b", state: "completed", ts: Date.now() }); // not held
      return accepted.promise;
    });
    link = ctx.link;
    const cmd = commandFrame({ command: "assign_mission", mission_id: "m-1", waypoints: [{ lat: 47.4, lon: 8.55, alt_m: 40 }], priority: "high" });
    ctx.conn.ws.send(JSON.stringify(cmd));
    expect(await nextOf(ctx.conn, "mission_progress")).toMatchObject({ mission_id: "m-other" });
    accepted.resolve({ ok: true, message: "mission accepted" }); // m-1's report was held until now
    expect(await nextResult(ctx.conn)).toMatchObject({ command_id: cmd.command_id, status: "acked" });
    expect(await nextOf(ctx.conn, "mission_progress")).toMatchObject({ mission_id: "m-1", state: "active", waypoint_index: 0 });
  });

  it("queues mission_progress while offline (bounded, oldest `active` dropped first) and delivers it in order after reconnecting", async () => {
    const port = await freePort();
    const link = makeLink(`http://127.0.0.1:${port}`, { maxProgressQueue: 4 });
    link.start(); // nothing listens yet
    const ts = Date.now();
    const p = (state: MissionProgressEvent["state"], waypoint_index?: number): MissionProgressEvent => ({ mission_id: "m-1", drone_id: "drone_a", state, ts, ...(waypoint_index !== undefined ? { waypoint_index } : {}) });
    for (const e of [p("active", 0), p("active", 1), p("active", 2), p("active", 3), p("completed", 3)]) link.pushProgress(e);
    expect(link.stats()).toMatchObject({ progressQueued: 4, droppedProgress: 1, connected: false });

    const edge = await EdgeDouble.start({ port });
    await reconnectNow();
    const conn = await edge.conns.next(3000, "connection");
    await nextOf(conn, "relay_hello");
    const got: SeenOf<"mission_progress">[] = [];
    for (let i = 0; i < 4; i++) got.push(await nextOf(conn, "mission_progress"));
    expect(got.map((f) => [f.state, f.waypoint_index])).toEqual([
      ["active", 1],
      ["active", 2],
      ["active", 3],
      ["completed", 3],
    ]);
    expect(link.stats().progressQueued).toBe(0);
  });

  it("answers failed when no executor is configured, and stop() abandons running commands cleanly", async () => {
    const edge = await EdgeDouble.start();
    const bare = makeLink(edge.url);
    bare.start();
    const c1 = await edge.conns.next();
    await nextOf(c1, "relay_hello");
    await once(bare, "connected");
    const cmd = modify();
    c1.ws.send(JSON.stringify(cmd));
    expect(await nextResult(c1)).toMatchObject({ status: "failed", message: "this relay does not execute commands" });

    let aborted = false;
    const { conn, link } = await connectedLink((_c, signal) => new Promise<CommandOutcome>(() => signal.addEventListener("abort", () => (aborted = true))));
    conn.ws.send(JSON.stringify(modify()));
    await expect.poll(() => link.stats().commandsInFlight, { timeout: 1000 }).toBe(1);
    const t0 = Date.now();
    await link.stop();
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(aborted).toBe(true);
    expect(link.stats().commandsInFlight).toBe(0);
  });
});

describe("EdgeLink + SimFleet (wired as cli.ts does)", () => {
  it("runs an assign_mission at the simulator: result acked, then progress active → completed, schema-valid", async () => {
    const home = { lat: 47.3977, lon: 8.5456 };
    const fleet = new SimFleet({ drones: 5, rateHz: 10, timeScale: 20, home });
    const target = fleet.snapshot().find((d) => d.status === "flying" && d.battery > 40)!;
    expect(target).toBeDefined();
    // Real time on both sides: the simulator flies on its own timers.
    const { conn, link } = await connectedLink((c, sig) => fleet.execute(c, sig), { droneIds: () => fleet.droneIds(), clock: realClock });
    fleet.onMissionProgress = (p) => link.pushProgress(p);
    await fleet.start((smp) => link.push(smp));
    try {
      const cmd = commandFrame(
        { command: "assign_mission", mission_id: "m-e2e", waypoints: [{ ...offsetM(home, target.x + 15, target.y), alt_m: target.alt }], priority: "normal" },
        { drone_id: target.id },
      );
      conn.ws.send(JSON.stringify(cmd));
      const unknown = commandFrame({ command: "emergency_land" }, { drone_id: "drone_404" });
      conn.ws.send(JSON.stringify(unknown));
      const frames: Seen[] = [];
      const deadline = Date.now() + 5000;
      while (!frames.some((f) => f.type === "mission_progress" && f.state === "completed") && Date.now() < deadline) {
        const f = await conn.frames.next(5000, "mission frames");
        if (f.type !== "telemetry_batch" && f.type !== "(ws ping)") frames.push(f);
      }
      const results = frames.filter((f) => isType(f, "command_result"));
      expect(results).toEqual([
        { type: "command_result", command_id: cmd.command_id, status: "acked", message: "mission m-e2e accepted: 1 waypoint" },
        { type: "command_result", command_id: unknown.command_id, status: "failed", message: "unknown drone" },
      ]);
      const progress = frames.filter((f) => isType(f, "mission_progress"));
      expect(progress.map((p) => [p.state, p.waypoint_index])).toEqual([
        ["active", 0],
        ["completed", 0],
      ]);
      // The edge saw the ack before any progress of that mission.
      expect(frames.findIndex((f) => isType(f, "command_result") && f.command_id === cmd.command_id)).toBeLessThan(frames.findIndex((f) => f.type === "mission_progress"));
    } finally {
      await fleet.stop();
    }
  });
});

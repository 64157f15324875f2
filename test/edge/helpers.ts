/** Helpers for tests that run inside workerd: tokens, sockets with a frame queue, stubs, a clock. */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import type { Clock } from "../../edge/fleet/clock";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import { signToken, type Role } from "../../edge/worker/auth";

export const SECRET = "test-secret-0123456789abcdef";

export function token(role: Role, fleets: string[] | "*", opts: { ttl?: number; sub?: string; secret?: string } = {}) {
  return signToken(opts.secret ?? SECRET, { sub: opts.sub ?? `${role}-user`, role, fleets }, opts.ttl ?? 3600);
}

export function uniqueFleet(prefix = "f"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export function stubFor(fleet: string): DurableObjectStub<FleetHub> {
  return env.FLEET_HUB.get(env.FLEET_HUB.idFromName(fleet));
}

/**
 * A clock the test moves by hand. Put into a fleet's object with useClock, it replaces sleeping
 * (a drone gone silent for 16 s, the 5 s status tick, a command deadline) and reaching into the
 * object's private fields.
 */
export class ManualClock implements Clock {
  constructor(private t: number = Date.now()) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): number {
    return (this.t += ms);
  }
  set(t: number): void {
    this.t = t;
  }
}

/** Put `clock` into the fleet's object; again after an eviction (a new instance starts on the system clock). */
export async function useClock(fleet: string, clock: Clock): Promise<void> {
  await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
    hub.clock = clock;
  });
}

type Frame = { type: string; [k: string]: unknown };
let barrierSeq = 0;

/**
 * A client socket whose incoming frames are queued, read with bounded waits. It answers the
 * edge's flow-control markers (`flow` → `flow_ack`) as a dashboard page does, unless `holdFlow`
 * is set (a page that stopped reading, as the edge sees it); markers are not queued as frames.
 */
export class TestSocket {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | null = null;
  /** Hold flow_acks back: the edge then counts this socket as not reading. */
  holdFlow = false;
  /** Markers received and not answered while `holdFlow` was set. */
  readonly heldFlow: number[] = [];
  /** Bytes of every frame received (markers included). */
  bytesIn = 0;
  /** Flow markers received. */
  markersIn = 0;
  /** Bytes received after the last marker (the edge counts its sends the same way, flow.ts). */
  private sinceMarker = 0;
  private waiters: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => {
      const text = e.data as string;
      this.bytesIn += text.length;
      const f = JSON.parse(text) as Frame;
      this.sinceMarker += text.length;
      if (f.type === "flow" && typeof f.seq === "number") {
        this.markersIn++;
        // The edge's next marker is due markEveryBytes after this one (its own length included).
        this.sinceMarker = 0;
        if (this.holdFlow) this.heldFlow.push(f.seq);
        else this.send({ type: "flow_ack", seq: f.seq });
        return;
      }
      this.frames.push(f);
      this.wake();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    });
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  }

  /** Read again: answer the held markers and go on answering. */
  resumeFlow(): void {
    this.holdFlow = false;
    for (const seq of this.heldFlow.splice(0)) this.send({ type: "flow_ack", seq });
  }

  /** Remove and return the first queued frame matching `pred`, waiting up to `timeoutMs`. */
  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 3000): Promise<Frame> {
    return this.waitFor(() => {
      const i = this.frames.findIndex(pred);
      return i >= 0 ? this.frames.splice(i, 1)[0] : undefined;
    }, timeoutMs);
  }

  /**
   * A barrier for "nothing else came" checks: send `ping`, wait for its `pong`, and remove and
   * return every frame that arrived before it. The object handles a socket's frames in order and
   * a socket delivers in order, so whatever earlier input (on any socket, once its answer was
   * seen) made the object send here came before the pong. No sleeping: when the object does not
   * work at all, the barrier times out instead of passing.
   */
  barrier(timeoutMs = 3000): Promise<Frame[]> {
    const id = `barrier-${++barrierSeq}`;
    this.send({ type: "ping", request_id: id });
    return this.waitFor(() => {
      const i = this.frames.findIndex((f) => f.type === "pong" && f.request_id === id);
      return i >= 0 ? this.frames.splice(0, i + 1).slice(0, i) : undefined;
    }, timeoutMs);
  }

  /**
   * Barriers until one passes with no flow marker arriving during it, and its pong did not bring
   * the bytes since the last marker to `markEveryBytes` (the edge's FlowLimits): every marker the
   * edge sent has then been answered, the edge has read the answers (they went before that
   * barrier's ping), and no new one is due, so none is outstanding. For tests that move a manual
   * clock past markTimeoutMs and expect this socket not to lag. Returns the frames taken.
   */
  async quiesce(markEveryBytes: number): Promise<Frame[]> {
    const got: Frame[] = [];
    for (let i = 0; i < 20; i++) {
      const before = this.markersIn;
      got.push(...(await this.barrier()));
      if (this.markersIn === before && this.sinceMarker < markEveryBytes) return got;
    }
    throw new Error("flow markers kept coming over 20 barriers");
  }

  /**
   * Wait up to `timeoutMs` until `take` returns something. `take` looks and removes in one
   * synchronous step, so concurrent waits never take the same frame.
   */
  private async waitFor<T>(take: () => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = take();
      if (got !== undefined) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; queued: ${JSON.stringify(this.frames.map((f) => f.type))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  nextOfType(type: string, timeoutMs?: number) {
    return this.next((f) => f.type === type, timeoutMs);
  }

  async waitClosed(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("socket did not close");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.closed;
  }

  close() {
    try {
      this.ws.close(1000, "test done");
    } catch {
      /* already closed */
    }
  }
}

/** Open a socket through the Worker's public route (auth included). */
export async function connect(fleet: string, path: "ws" | "relay", tok: string): Promise<TestSocket> {
  const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/${path}`, {
    headers: { Upgrade: "websocket", Authorization: `Bearer ${tok}` },
  });
  if (res.status !== 101 || !res.webSocket) throw new Error(`upgrade failed: ${res.status} ${await res.text()}`);
  const ws = res.webSocket;
  const sock = new TestSocket(ws);
  ws.accept();
  return sock;
}

let seqBase = 1_000;
/** A valid telemetry sample; `over` replaces fields. */
export function sample(droneId: string, over: Record<string, unknown> = {}) {
  return {
    drone_id: droneId,
    seq: seqBase++,
    ts: Date.now(),
    lat: 47.3977,
    lon: 8.5456,
    alt_m: 50,
    heading_deg: 90,
    speed_mps: 8,
    battery_pct: 80,
    armed: true,
    mode: "AUTO.MISSION",
    status: "flying",
    ...over,
  };
}

/** Connect a relay, say hello and return it with the hello_ack. `relayId`/`sub`: another relay (default relay-test, relay-user). */
export async function relay(fleet: string, droneIds: string[] = [], opts: { relayId?: string; sub?: string } = {}) {
  const r = await connect(fleet, "relay", await token("relay", [fleet], opts.sub ? { sub: opts.sub } : {}));
  r.send({ type: "relay_hello", relay_id: opts.relayId ?? "relay-test", source: "sim", drone_ids: droneIds });
  const ack = await r.nextOfType("hello_ack");
  return { r, ack };
}

let batchId = 0;
export async function sendBatch(r: TestSocket, updates: unknown[]) {
  const id = ++batchId;
  r.send({ type: "telemetry_batch", batch_id: id, sent_at: Date.now(), updates });
  return r.next((f) => f.type === "batch_ack" && f.batch_id === id);
}

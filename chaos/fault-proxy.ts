/**
 * A WebSocket-aware fault proxy between the relay and the edge, for the chaos run.
 *
 * The relay is pointed at `http://127.0.0.1:PORT` (`--edge`); every upgrade is forwarded to the
 * edge with the same path and Authorization header, and whole frames are relayed both ways. On
 * command the path misbehaves the way a site uplink does:
 * - `stall()`: frames in both directions are held (in order, bounded) and pings go unanswered, as
 *   with a black-holed route; `resume()` delivers what was held. A stall longer than the relay's
 *   heartbeat (10 s) makes the relay drop the socket and reconnect.
 * - `cut(ms)`: every open pair is terminated and new connections are refused (reset) until
 *   `restore()` or the optional timer.
 * - `delay(ms)`: every frame is delivered `ms` later, order kept.
 * - `duplicate(p)`: each frame is sent twice with probability `p` (seeded), in both directions:
 *   telemetry batches, command frames, results, acks.
 * `restore()` returns to a clean path. Loopback only; every queue and timer is bounded and cleared
 * by `close()`.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import WebSocket, { WebSocketServer, type RawData } from "ws";

export interface FaultProxyStats {
  connections: number;
  open: number;
  refused: number;
  upstreamFailures: number;
  framesToEdge: number;
  framesToRelay: number;
  duplicated: number;
  /** Most frames held at once by a stall. */
  maxHeld: number;
  /** Pairs terminated because a stall held more than the bound. */
  overflowed: number;
}

export interface FaultProxy {
  readonly port: number;
  /** http://127.0.0.1:PORT, to give the relay as --edge. */
  readonly url: string;
  stall(): void;
  resume(): void;
  cut(): void;
  delay(ms: number): void;
  duplicate(probability: number): void;
  /** Back to a clean path: resume, no delay, no duplicates, accept connections. */
  restore(): void;
  mode(): string;
  stats(): FaultProxyStats;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Edge base URL, http://127.0.0.1:PORT. */
  edge: string;
  /** PRNG for duplication decisions (seeded by the driver). */
  random: () => number;
  /** Most bytes held per direction during a stall before the pair is dropped (default 32 MiB). */
  maxHeldBytes?: number;
  log?: (line: string) => void;
}

type Item = { due: number; data: Buffer; binary: boolean };

/** One direction of one pair: an ordered queue drained by a single timer. */
class Lane {
  private readonly q: Item[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly target: WebSocket,
    private readonly p: { stalled: () => boolean; delayMs: () => number; dup: () => boolean; sent: () => void; duplicated: () => void; held: (n: number) => void; overflow: () => void },
    private readonly maxBytes: number,
  ) {}

  push(data: Buffer, binary: boolean): void {
    this.q.push({ due: Date.now() + this.p.delayMs(), data, binary });
    this.bytes += data.length;
    if (this.bytes > this.maxBytes) {
      this.p.overflow();
      return;
    }
    this.pump();
  }

  pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.p.stalled()) {
      this.p.held(this.q.length);
      return;
    }
    const now = Date.now();
    while (this.q.length > 0 && this.q[0]!.due <= now) {
      const it = this.q.shift()!;
      this.bytes -= it.data.length;
      if (this.target.readyState !== WebSocket.OPEN) continue;
      this.target.send(it.data, { binary: it.binary });
      this.p.sent();
      if (this.p.dup()) {
        this.target.send(it.data, { binary: it.binary });
        this.p.duplicated();
      }
    }
    if (this.q.length > 0) this.timer = setTimeout(() => this.pump(), Math.max(1, this.q[0]!.due - now));
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.q.length = 0;
    this.bytes = 0;
  }
}

type Pair = { client: WebSocket; upstream: WebSocket; toEdge: Lane; toRelay: Lane };

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

/** A close code that may be sent on the wire (1005, 1006 and 1015 are reserved for reporting). */
function sendableCode(code: number): number {
  if (code === 1005 || code === 1006 || code === 1015 || code < 1000 || code >= 5000) return 1000;
  return code;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const log = opts.log ?? (() => {});
  const maxHeld = opts.maxHeldBytes ?? 32 * 1024 * 1024;
  const edgeWs = opts.edge.replace(/^http/, "ws").replace(/\/+$/, "");
  let stalled = false;
  let refusing = false;
  let delayMs = 0;
  let dupP = 0;
  const pairs = new Set<Pair>();
  const pending = new Set<WebSocket>();
  const sockets = new Set<Duplex>();
  const st: FaultProxyStats = { connections: 0, open: 0, refused: 0, upstreamFailures: 0, framesToEdge: 0, framesToRelay: 0, duplicated: 0, maxHeld: 0, overflowed: 0 };

  // autoPong off: while stalled the relay's pings must go unanswered, as on a dead route.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, autoPong: false, maxPayload: 2 * 1024 * 1024 });
  const http = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("fault proxy: WebSocket only\n");
  });

  const refuse = (socket: Duplex, status: number, text: string) => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  };

  http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (refusing) {
      st.refused++;
      socket.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const upstream = new WebSocket(`${edgeWs}${req.url ?? "/"}`, { headers, perMessageDeflate: false, handshakeTimeout: 10_000, maxPayload: 2 * 1024 * 1024 });
    pending.add(upstream);
    upstream.once("unexpected-response", (_r, res) => {
      pending.delete(upstream);
      st.upstreamFailures++;
      refuse(socket, res.statusCode ?? 502, res.statusMessage ?? "Bad Gateway");
      res.resume();
      upstream.terminate();
    });
    upstream.once("error", (err) => {
      if (!pending.delete(upstream)) return;
      st.upstreamFailures++;
      log(`upstream connect failed: ${err.message}`);
      refuse(socket, 502, "Bad Gateway");
    });
    upstream.once("open", () => {
      pending.delete(upstream);
      if (refusing) {
        upstream.terminate();
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (client) => bridge(client, upstream));
    });
  });

  function bridge(client: WebSocket, upstream: WebSocket): void {
    st.connections++;
    let pair!: Pair;
    const overflow = () => {
      st.overflowed++;
      log("stall buffer overflow: dropping the connection");
      drop(pair);
    };
    const lane = (target: WebSocket, count: () => void) =>
      new Lane(
        target,
        {
          stalled: () => stalled,
          delayMs: () => delayMs,
          dup: () => dupP > 0 && opts.random() < dupP,
          sent: count,
          duplicated: () => st.duplicated++,
          held: (n) => (st.maxHeld = Math.max(st.maxHeld, n)),
          overflow,
        },
        maxHeld,
      );
    pair = { client, upstream, toEdge: lane(upstream, () => st.framesToEdge++), toRelay: lane(client, () => st.framesToRelay++) };
    pairs.add(pair);
    st.open = pairs.size;
    client.on("message", (d, binary) => pair.toEdge.push(toBuffer(d), binary));
    upstream.on("message", (d, binary) => pair.toRelay.push(toBuffer(d), binary));
    client.on("ping", (d) => {
      if (!stalled && client.readyState === WebSocket.OPEN) client.pong(d);
    });
    const closeOther = (other: WebSocket) => (code: number, reason: Buffer) => {
      pairs.delete(pair);
      st.open = pairs.size;
      pair.toEdge.clear();
      pair.toRelay.clear();
      if (other.readyState === WebSocket.OPEN) other.close(sendableCode(code), reason.toString().slice(0, 120));
      else other.terminate();
    };
    client.on("close", closeOther(upstream));
    upstream.on("close", closeOther(client));
    client.on("error", () => client.terminate());
    upstream.on("error", () => upstream.terminate());
  }

  function drop(p: Pair): void {
    pairs.delete(p);
    st.open = pairs.size;
    p.toEdge.clear();
    p.toRelay.clear();
    p.client.terminate();
    p.upstream.terminate();
  }

  const pumpAll = () => {
    for (const p of pairs) {
      p.toEdge.pump();
      p.toRelay.pump();
    }
  };

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = http.address();
  if (addr === null || typeof addr === "string") throw new Error("fault proxy: no address");

  return {
    port: addr.port,
    url: `http://127.0.0.1:${addr.port}`,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      pumpAll();
    },
    cut: () => {
      refusing = true;
      for (const p of [...pairs]) drop(p);
      for (const u of pending) u.terminate();
    },
    delay: (ms) => {
      delayMs = Math.max(0, ms);
    },
    duplicate: (p) => {
      dupP = Math.min(1, Math.max(0, p));
    },
    restore: () => {
      refusing = false;
      delayMs = 0;
      dupP = 0;
      stalled = false;
      pumpAll();
    },
    mode: () => (refusing ? "cut" : stalled ? "stall" : delayMs > 0 ? `delay ${delayMs} ms` : dupP > 0 ? `duplicate p=${dupP}` : "pass"),
    stats: () => ({ ...st }),
    close: async () => {
      refusing = true;
      for (const p of [...pairs]) drop(p);
      for (const u of pending) u.terminate();
      for (const s of sockets) s.destroy();
      wss.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

/**
 * A small WebSocket → TCP proxy so @neondatabase/serverless (which speaks the Postgres wire protocol
 * over a WebSocket) can reach an ordinary Postgres or PGlite's socket server in development.
 *
 * The driver opens `ws://127.0.0.1:PORT/v1?address=HOST:PORT` when configured with
 * `neonConfig.wsProxy = (host, port) => \`127.0.0.1:${P}/v1?address=${host}:${port}\``
 * (see neonLocalConfig in scripts/db.ts). Each WebSocket becomes one TCP connection to HOST:PORT;
 * binary frames are piped both ways unchanged, and either side closing or failing closes the other.
 *
 * It is an open relay to whatever it allows, so by default it only connects to loopback targets
 * (127.0.0.0/8, ::1, localhost) and only listens on 127.0.0.1.
 */
import { createServer, type IncomingMessage } from "node:http";
import { connect, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";

/** Which targets the proxy may connect to: a list of host names/addresses ("*" for any), or a
 * predicate. The default allows loopback only. */
export type AllowHosts = readonly string[] | ((host: string, port: number) => boolean);

export interface WsProxyOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Target policy; default loopback only. */
  allowHosts?: AllowHosts;
  /** Give up on a TCP connect after this long (default 10 s). */
  connectTimeoutMs?: number;
  /** Called with one line per notable event (refusals, upstream errors); default silent. */
  log?: (line: string) => void;
}

export interface WsProxy {
  /** The port actually listened on. */
  port: number;
  /** Connections currently open (for tests and diagnostics). */
  connections(): number;
  /** Stop listening and close every open connection. */
  close(): Promise<void>;
}

/** Most bytes held for a target before its TCP connection is up, or queued towards a slow peer. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** True for 127.0.0.0/8, ::1, IPv4-mapped loopback and "localhost". Names are not resolved: a
 * DNS answer could point anywhere, so only the literal name "localhost" counts. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const v = isIP(h);
  if (v === 4) return h.startsWith("127.");
  if (v === 6) {
    if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1]!.startsWith("127.");
  }
  return false;
}

/** Parse "host:port" or "[v6]:port" from the `address` query parameter. */
export function parseTarget(address: string | null): { host: string; port: number } | null {
  if (!address) return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s/]+)):(\d{1,5})$/.exec(address);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

function allowed(policy: AllowHosts | undefined, host: string, port: number): boolean {
  if (policy === undefined) return isLoopbackHost(host);
  if (typeof policy === "function") return policy(host, port);
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return policy.some((p) => p === "*" || p.toLowerCase() === h);
}

function refuse(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${status === 403 ? "Forbidden" : status === 404 ? "Not Found" : "Bad Request"}\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function toBuffer(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

/** Start the proxy; resolves once it is listening. */
export async function startWsProxy(opts: WsProxyOptions = {}): Promise<WsProxy> {
  const log = opts.log ?? (() => {});
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const open = new Set<{ ws: WebSocket; tcp: Socket }>();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  const http = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("WebSocket → TCP proxy: upgrade required\n");
  });

  // Upgraded sockets leave the HTTP server's bookkeeping; track them so close() is immediate
  // instead of waiting out WebSocket closing handshakes.
  const sockets = new Set<Duplex>();
  http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const url = new URL(req.url ?? "/", "http://proxy.invalid");
    if (!/^\/v[12]\/?$/.test(url.pathname)) return refuse(socket, 404, "use /v1?address=host:port");
    const target = parseTarget(url.searchParams.get("address"));
    if (!target) return refuse(socket, 400, "address must be host:port");
    if (!allowed(opts.allowHosts, target.host, target.port)) {
      log(`refused target ${target.host}:${target.port} (not allowed)`);
      return refuse(socket, 403, `target ${target.host} is not allowed by this proxy`);
    }
    wss.handleUpgrade(req, socket, head, (ws) => bridge(ws, target.host, target.port));
  });

  function bridge(ws: WebSocket, host: string, port: number): void {
    const tcp = connect({ host, port });
    const pair = { ws, tcp };
    open.add(pair);
    let connected = false;
    let closed = false;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    tcp.setNoDelay(true);
    tcp.setTimeout(connectTimeoutMs, () => {
      if (!connected) shut(1011, `connect to ${host}:${port} timed out`);
    });

    const shut = (code: number, reason: string) => {
      if (closed) return;
      closed = true;
      open.delete(pair);
      if (code !== 1000) log(`${host}:${port}: ${reason}`);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason.slice(0, 120));
      else ws.terminate();
    };

    tcp.on("connect", () => {
      connected = true;
      tcp.setTimeout(0);
      for (const b of pending) tcp.write(b);
      pending = [];
      pendingBytes = 0;
    });
    ws.on("message", (data) => {
      const buf = toBuffer(data);
      if (!connected) {
        pendingBytes += buf.length;
        if (pendingBytes > MAX_BUFFERED_BYTES) return shut(1009, "too much data before the target connected");
        pending.push(buf);
        return;
      }
      // Backpressure: stop reading the WebSocket while the TCP side is saturated.
      if (!tcp.write(buf)) {
        ws.pause();
        tcp.once("drain", () => ws.resume());
      }
    });
    tcp.on("data", (chunk: Buffer) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(chunk, { binary: true }, (err) => {
        if (err) shut(1011, `send to client failed: ${err.message}`);
        else if (tcp.isPaused() && ws.bufferedAmount < MAX_BUFFERED_BYTES / 4) tcp.resume();
      });
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) tcp.pause();
    });
    tcp.on("error", (err) => shut(1011, `upstream error: ${err.message}`));
    tcp.on("close", () => shut(1000, "upstream closed"));
    ws.on("error", (err) => shut(1011, `client error: ${err.message}`));
    ws.on("close", () => shut(1000, "client closed"));
  }

  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      http.off("error", reject);
      resolve();
    });
  });
  const addr = http.address();
  if (addr === null || typeof addr === "string") throw new Error("ws proxy: no TCP address");

  return {
    port: addr.port,
    connections: () => open.size,
    close: async () => {
      for (const { ws, tcp } of open) {
        tcp.destroy();
        ws.terminate();
      }
      open.clear();
      for (const c of wss.clients) c.terminate();
      for (const s of sockets) s.destroy();
      wss.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

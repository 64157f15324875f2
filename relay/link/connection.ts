/**
 * The socket's lifecycle: connect with the bearer token, say `relay_hello`, wait for `hello_ack`,
 * keep the socket honest with a heartbeat, and reconnect with backoff when it closes, until
 * stopped. Every frame the edge sends is parsed here with the protocol's E→R parser; the link
 * gets typed frames only.
 *
 * - Never spins: capped exponential backoff with full jitter; a 401/403 handshake waits the
 *   maximum delay every time, since only a human fixing the token can help. So does a close with
 *   4003 (the relay_id is bound to another token subject): a configuration error, logged once per
 *   streak as an error naming the relay_id and both ways out, and reported as `refusal` (health).
 *   It keeps retrying rather than stopping, because the usual fix is made at the edge (an admin
 *   releases the id) and the relay should then come back within one maximum delay by itself, not
 *   wait for someone to restart it; one hello per maximum delay costs nothing. A connection up
 *   for `stableAfterMs` resets the backoff.
 * - Dead sockets are noticed: a ws-level ping each `heartbeatMs`; no pong by the next one ends it.
 *   No hello_ack within `helloTimeoutMs` ends it too.
 */
import type { IncomingMessage } from "node:http";
import WebSocket from "ws";
import { CLOSE_CODES, LIMITS, parseEdgeToRelay, type EdgeToRelay, type HelloAck, type RelayHello, type RelayMessage } from "../../edge/protocol";
import type { Logger } from "../log";
import type { Clock, Timer } from "./clock";

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

/** What the link's parts need from the connection to send: the ready socket, or nothing. */
export interface Uplink {
  /** True between `hello_ack` and the socket closing. */
  readonly ready: boolean;
  /** Send a frame on the ready socket; false when there is none or it is not open. */
  send(frame: RelayMessage): boolean;
  /** The socket buffers more than the bound: hold telemetry. */
  backpressured(): boolean;
  /** Bytes the socket has not handed to the kernel yet. */
  buffered(): number;
}

export interface ConnectionHandlers {
  /** hello_ack on an open socket: ready now. Called before `frame` for the same hello_ack. */
  ready(ack: HelloAck): void;
  /** Every frame that parsed, hello_ack included. */
  frame(frame: EdgeToRelay): void;
  /** A `command` frame the parser refused, with the command_id it carried (answer it failed). */
  badCommand(commandId: string, reason: string): void;
  /** The socket closed; reconnecting is scheduled after this unless stopped. */
  closed(info: { code: number; reason: string; wasReady: boolean }): void;
  /** A frame reached the kernel (on any socket state): room may have appeared. */
  written(): void;
}

/**
 * Why the edge keeps refusing this relay, when only a change of configuration can help:
 * `token_rejected` (401/403 on the upgrade), `relay_id_taken` (close 4003 after relay_hello).
 */
export type Refusal = { reason: "token_rejected" | "relay_id_taken"; message: string; since: number };

export interface ConnectionOptions {
  url: string;
  token: string;
  /** The relay_id this relay says hello with (for the 4003 message). */
  relayId: string;
  /** The fleet, for the 4003 message's admin route. */
  fleet: string;
  backoff: BackoffOptions;
  stableAfterMs: number;
  heartbeatMs: number;
  helloTimeoutMs: number;
  maxBufferedBytes: number;
  compress: boolean;
  clock: Clock;
  random: () => number;
  log: Logger;
  /** The hello for each new socket (drones are asked every time). */
  hello: () => RelayHello;
  handlers: ConnectionHandlers;
}

type Phase = "idle" | "connecting" | "open" | "ready" | "stopped";

export class Connection implements Uplink {
  private phase: Phase = "idle";
  private ws: WebSocket | null = null;
  private attempt = 0;
  private connectCount = 0;
  /** HTTP status of the last refused handshake (401, 403, 502…), null when none. */
  private refusedStatus: number | null = null;
  /** The edge's standing refusal (a configuration error), until the next outcome differs. */
  private refusalNow: Refusal | null = null;
  /** The socket whose hello the edge acknowledged, for `closed` and the backoff reset. */
  private readySocket: WebSocket | null = null;
  private reconnectTimer: Timer | null = null;
  private heartbeatTimer: Timer | null = null;
  private helloTimer: Timer | null = null;
  private stableTimer: Timer | null = null;

  constructor(private readonly o: ConnectionOptions) {}

  get ready(): boolean {
    return this.phase === "ready" && this.ws !== null;
  }
  get stopped(): boolean {
    return this.phase === "stopped";
  }
  get started(): boolean {
    return this.phase !== "idle" || this.connectCount > 0;
  }
  /** True while the current socket (if any) is open. */
  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }
  /** Connection attempts after the first one. */
  get reconnects(): number {
    return Math.max(0, this.connectCount - 1);
  }
  /** The configuration error the edge answered the last attempt with; null after a hello_ack. */
  get refusal(): Refusal | null {
    return this.refusalNow;
  }

  start(): void {
    this.connect();
  }

  send(frame: RelayMessage): boolean {
    const ws = this.ws;
    if (!ws || !this.ready) return false;
    return this.write(ws, frame);
  }

  backpressured(): boolean {
    return this.buffered() > this.o.maxBufferedBytes;
  }

  buffered(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** First step of stopping: no more reconnects; the socket stays up for a last flush. */
  holdReconnects(): void {
    this.o.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  /** Stopped: timers cleared, nothing reconnects; `close()` ends the socket. */
  markStopped(): void {
    this.phase = "stopped";
    this.holdReconnects();
    this.clearSocketTimers();
  }

  /** Close with 1000 and wait for the close handshake, terminating at `deadline` at the latest. */
  async close(deadline: number): Promise<void> {
    const ws = this.ws;
    if (ws) await closeSocket(ws, Math.max(100, deadline - this.o.clock.now()), this.o.clock);
    this.ws = null;
  }

  private connect(): void {
    if (this.phase === "stopped") return;
    this.phase = "connecting";
    this.connectCount++;
    const ws = new WebSocket(this.o.url, {
      headers: { Authorization: `Bearer ${this.o.token}` },
      handshakeTimeout: 10_000,
      perMessageDeflate: this.o.compress,
      // A relay frame is ≤1 MiB; anything the edge sends us is far smaller.
      maxPayload: LIMITS.relayFrameBytes,
    });
    this.ws = ws;
    this.refusedStatus = null;
    const log = this.o.log;

    ws.on("unexpected-response", (_req, res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      this.refusedStatus = status;
      const fields = { url: this.o.url, status, status_text: res.statusMessage ?? "" };
      if (this.authRefused()) {
        log.error("edge rejected the relay token; check --token/--token-file (retrying at max backoff)", fields);
        this.refusalNow = {
          reason: "token_rejected",
          message: `the edge answered ${status} to the relay token: check --token/--token-file (expired, another fleet, or not a relay token)`,
          since: this.refusalNow?.reason === "token_rejected" ? this.refusalNow.since : this.o.clock.now(),
        };
      } else {
        log.warn("edge refused the WebSocket upgrade", fields);
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
      if (this.phase === "stopped") log.debug("edge link error while stopping", { error: err.message });
      else log.warn("edge link error", { url: this.o.url, error: err.message });
    });
    ws.on("close", (code, reason) => this.onClose(ws, code, reason.toString("utf8")));
  }

  private onOpen(ws: WebSocket): void {
    if (ws !== this.ws) return;
    this.phase = "open";
    this.write(ws, this.o.hello());
    // ws answers pings itself on the edge side; a missing pong means the path or the peer is dead
    // even though TCP has not noticed (NAT timeouts, a yanked LTE modem).
    let alive = true;
    ws.on("pong", () => {
      alive = true;
    });
    const beat = (): void => {
      this.heartbeatTimer = this.o.clock.setTimeout(() => {
        if (!alive) {
          this.o.log.warn("edge missed a heartbeat; terminating the socket", { url: this.o.url, heartbeat_ms: this.o.heartbeatMs });
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
        beat();
      }, this.o.heartbeatMs);
    };
    beat();
    this.helloTimer = this.o.clock.setTimeout(() => {
      this.o.log.warn("no hello_ack from the edge; reconnecting", { url: this.o.url, timeout_ms: this.o.helloTimeoutMs });
      ws.terminate();
    }, this.o.helloTimeoutMs);
  }

  private onMessage(ws: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    if (ws !== this.ws) return;
    if (isBinary) {
      this.o.log.warn("ignoring a binary frame from the edge");
      return;
    }
    const parsed = parseEdgeToRelay(rawToString(data));
    if (!parsed.ok) {
      if ("command_id" in parsed) this.o.handlers.badCommand(parsed.command_id, parsed.error.message);
      else this.o.log.warn("ignoring a malformed frame from the edge", { code: parsed.error.code, message: parsed.error.message.slice(0, 256) });
      return;
    }
    const frame = parsed.value;
    if (frame.type === "hello_ack") this.onHelloAck(ws, frame);
    this.o.handlers.frame(frame);
  }

  private onHelloAck(ws: WebSocket, ack: HelloAck): void {
    if (this.phase !== "open") {
      this.o.log.warn("ignoring a repeated hello_ack");
      return;
    }
    this.o.clock.clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.phase = "ready";
    this.readySocket = ws;
    this.refusalNow = null;
    this.stableTimer = this.o.clock.setTimeout(() => {
      this.attempt = 0;
    }, this.o.stableAfterMs);
    this.o.handlers.ready(ack);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    const wasReady = this.readySocket === ws;
    this.readySocket = null;
    this.ws = null;
    this.clearSocketTimers();
    if (this.phase !== "stopped") this.phase = "idle";
    if (code === CLOSE_CODES.relayIdTaken) this.relayIdTaken();
    else if (!this.authRefused()) this.refusalNow = null; // another outcome: the refusal is no longer known to stand
    this.o.handlers.closed({ code, reason, wasReady });
    if (this.phase === "stopped") return;
    this.scheduleReconnect();
  }

  /** Close 4003: the relay_id belongs to another token subject. Logged as an error once per streak. */
  private relayIdTaken(): void {
    const { relayId, fleet } = this.o;
    const retryS = Math.round(this.o.backoff.maxMs / 100) / 10;
    const message =
      `relay_id "${relayId}" is bound to another token subject at the edge (close 4003), so nothing from this relay is accepted: ` +
      `an admin releases it (DELETE /v1/fleets/${fleet}/relays/${relayId}), or give this relay its own relay_id (--relay-id, RELAY_ID or relay_id in the config)`;
    if (this.refusalNow?.reason === "relay_id_taken") {
      this.o.log.debug("relay_id still bound to another token subject", { relay_id: relayId, retry_in_s: retryS });
      return;
    }
    this.refusalNow = { reason: "relay_id_taken", message, since: this.o.clock.now() };
    this.o.log.error(`${message}; retrying every ${retryS} s`, { relay_id: relayId, fleet, url: this.o.url, code: CLOSE_CODES.relayIdTaken, retry_in_s: retryS });
  }

  private scheduleReconnect(): void {
    // 401/403 and 4003: a retry only helps once someone fixes the configuration (the token, or
    // the relay_id's binding at the edge), so wait the longest every time.
    const configError = this.authRefused() || this.refusalNow?.reason === "relay_id_taken";
    const delay = configError ? this.o.backoff.maxMs : backoffDelay(this.attempt, this.o.backoff, this.o.random);
    this.attempt++;
    this.o.log.debug("reconnecting", { in_ms: delay, attempt: this.attempt });
    this.reconnectTimer = this.o.clock.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private authRefused(): boolean {
    return this.refusedStatus === 401 || this.refusedStatus === 403;
  }

  private clearSocketTimers(): void {
    for (const t of [this.heartbeatTimer, this.helloTimer, this.stableTimer]) this.o.clock.clearTimeout(t);
    this.heartbeatTimer = this.helloTimer = this.stableTimer = null;
  }

  private write(ws: WebSocket, frame: RelayMessage | RelayHello): boolean {
    if (ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame), (err) => {
      if (err) {
        // The socket is failing; 'close' follows and takes back what was in flight.
        this.o.log.debug("send failed", { error: err });
        return;
      }
      if (ws === this.ws) this.o.handlers.written();
    });
    return true;
  }
}

function rawToString(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

/** Close with 1000 and wait for the close handshake, terminating if it takes longer than `ms`. */
function closeSocket(ws: WebSocket, ms: number, clock: Clock): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => {
      ws.terminate();
      resolve();
    }, ms);
    ws.once("close", () => {
      clock.clearTimeout(timer);
      resolve();
    });
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, "relay stopping");
    else ws.terminate();
  });
}

/**
 * The dashboard's WebSocket to the fleet: connects, hands every server frame to the page, and
 * reconnects by itself with capped exponential backoff and jitter. After every (re)connect the
 * `onOpen` hook runs, which is where the page subscribes again: the edge keeps no subscription
 * across sockets.
 *
 * Commands are never queued while the socket is down: a waypoint sent minutes late, after a
 * reconnect, could be worse than none. `send` says false and the page shows the command failed.
 *
 * Close codes: the edge's (CLOSE_CODES) are handed to `onClosed`, which may hold the reconnect
 * (4001, token expired: reconnecting with the same token would only be refused) until the page
 * calls `resume()`. The page's own closes use CLIENT_CLOSE_CODES (4900-4999), never an edge code.
 */
import { DashboardMessage, summarizeIssues, type ServerMessage } from "../../edge/protocol";
import { backoffDelay, CLIENT_CLOSE_CODES, parseServerFrame } from "./frames";

export type ConnState =
  | { kind: "connecting"; attempt: number }
  | { kind: "open"; since: number }
  | { kind: "waiting"; attempt: number; retryAt: number; reason: string }
  | { kind: "denied"; message: string }
  /** Not reconnecting until the page calls resume() (a token being renewed). */
  | { kind: "held"; reason: string }
  | { kind: "stopped" };

export interface FleetSocketOptions {
  url: () => string;
  onFrame(msg: ServerMessage): void;
  /** Runs after every successful (re)connect; `reconnect` is false the first time. */
  onOpen(reconnect: boolean): void;
  onState(state: ConnState): void;
  /** After a connection failed before opening: is the token still accepted? A browser cannot read
   * the HTTP status of a refused WebSocket upgrade, so the page asks over HTTP. */
  checkAuth(): Promise<{ ok: true } | { ok: false; message: string }>;
  /** The edge closed an open socket: "retry" reconnects with backoff, "now" at once (the page
   * changed what it asks for), "hold" waits for resume(). Absent: "retry". */
  onClosed?(code: number, reason: string): "retry" | "now" | "hold";
  now?: () => number;
}

/** Silence after which the page pings; fleet_status alone arrives every 5 s. */
const PING_AFTER_MS = 12_000;
/** Silence after which the socket counts as dead and is replaced. */
const DEAD_AFTER_MS = 25_000;

export class FleetSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private opened = false;
  private everOpened = false;
  private stopped = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private lastFrameAt = 0;
  private pingSeq = 0;
  state: ConnState = { kind: "connecting", attempt: 0 };
  private readonly now: () => number;

  constructor(private readonly opts: FleetSocketOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    this.watchdog = setInterval(() => this.checkAlive(), 4_000);
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    window.removeEventListener("online", this.onOnline);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "signed out");
    this.setState({ kind: "stopped" });
  }

  /** Connect again after a hold (the token was renewed). */
  resume(): void {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN && this.opened;
  }

  /** Validate against the protocol schema and send. False when not connected or invalid
   * (`problem` says why); the caller decides what that means for the command. */
  send(msg: DashboardMessage): { ok: true } | { ok: false; problem: string } {
    const r = DashboardMessage.safeParse(msg);
    if (!r.success) return { ok: false, problem: `invalid ${msg.type}: ${summarizeIssues(r.error)}` };
    if (!this.ws || !this.isOpen) return { ok: false, problem: "not connected to the edge; nothing was sent" };
    this.ws.send(JSON.stringify(msg));
    return { ok: true };
  }

  /** Drop the current socket and connect again now (e.g. the browser came back online). */
  reconnectNow(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.close(CLIENT_CLOSE_CODES.reconnect, "dashboard reconnecting");
    }
    this.connect();
  }

  private readonly onOnline = () => {
    // Held: a token is being renewed; the old one would only be refused.
    if (!this.isOpen && this.state.kind !== "held" && this.state.kind !== "denied") this.reconnectNow();
  };

  private connect(): void {
    if (this.stopped) return;
    this.opened = false;
    this.setState({ kind: "connecting", attempt: this.attempt });
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.opts.url());
    } catch (err) {
      this.scheduleRetry(`cannot open a socket: ${(err as Error).message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.opened = true;
      this.lastFrameAt = this.now();
      const reconnect = this.everOpened;
      this.everOpened = true;
      this.setState({ kind: "open", since: this.now() });
      this.opts.onOpen(reconnect);
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = this.now();
      // The connection works end to end: the next outage starts its backoff from the beginning.
      this.attempt = 0;
      if (typeof ev.data !== "string") return;
      const msg = parseServerFrame(ev.data);
      if (msg) this.opts.onFrame(msg);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const wasOpen = this.opened;
      this.opened = false;
      const reason = wasOpen ? `connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})` : "could not connect";
      if (wasOpen) {
        const next = this.opts.onClosed?.(ev.code, ev.reason) ?? "retry";
        if (this.stopped || this.ws) return; // the page signed out or reconnected meanwhile
        if (next === "hold") this.setState({ kind: "held", reason });
        else if (next === "now") this.connect();
        else this.scheduleRetry(reason);
        return;
      }
      // Never opened: a refused upgrade (bad or expired token) looks the same as a network error.
      this.opts.checkAuth().then(
        (auth) => {
          if (this.stopped || this.ws) return;
          if (!auth.ok) this.setState({ kind: "denied", message: auth.message });
          else this.scheduleRetry(reason);
        },
        () => this.scheduleRetry(reason),
      );
    };
  }

  private scheduleRetry(reason: string): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt++;
    this.setState({ kind: "waiting", attempt: this.attempt, retryAt: this.now() + delay, reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private checkAlive(): void {
    if (!this.ws || !this.isOpen) return;
    const silent = this.now() - this.lastFrameAt;
    if (silent > DEAD_AFTER_MS) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      // Our own code, not the edge's 4001 (token expired): see CLIENT_CLOSE_CODES.
      ws.close(CLIENT_CLOSE_CODES.noFrames, `dashboard heard nothing for ${Math.round(silent / 1000)} s`);
      this.opened = false;
      this.scheduleRetry(`no frames for ${Math.round(silent / 1000)} s`);
    } else if (silent > PING_AFTER_MS) {
      this.ws.send(JSON.stringify({ type: "ping", request_id: `ping-${++this.pingSeq}`, ts: this.now() }));
    }
  }

  private setState(s: ConnState): void {
    this.state = s;
    this.opts.onState(s);
  }
}

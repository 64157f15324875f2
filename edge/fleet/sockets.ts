/**
 * The fleet object's sockets: dashboard and relay WebSockets accepted with the Hibernation API, the
 * attachment each carries so that it survives eviction (who opened it, until when its token is
 * good, its relay_id; for dashboards the socket's id and subscription mode — the subscribed drone
 * list itself is in SQLite, fan-out.ts, since a 16 KiB attachment cannot hold 10,000 ids), the
 * per-token caps on dashboard and relay sockets, the relay count, and typed sending: dashboards
 * get edge→dashboard frames (ServerMessage), relays edge→relay frames (EdgeToRelay). Every send to
 * a dashboard is counted for its flow control (flow.ts).
 *
 * Per-socket state lives in `conns` while the socket is open and nowhere else in this module; a
 * socket is cached only while OPEN, so iterating `getWebSockets()` during a close (which may still
 * list the closing socket) never brings a dropped socket back (the leak issue 18 found).
 */
import { CLOSE_CODES, type EdgeToRelay, type ErrorFrame, type LaggingFrame, type ServerMessage } from "../protocol";
import { FlowState } from "./flow";
import { FLOW_LIMITS, type FlowLimits } from "./limits";
import type { Spans } from "./profile";

/**
 * The identity the Worker has verified, passed with a socket upgrade (the only request the object
 * takes over fetch) as these headers; the Worker fills them typed against `IdentityHeaders`.
 * `exp`: the token's exp claim (seconds since the epoch).
 */
export const IDENTITY_HEADER = { sub: "x-df-sub", role: "x-df-role", exp: "x-df-exp" } as const;
export type IdentityHeaders = { [K in keyof typeof IDENTITY_HEADER as (typeof IDENTITY_HEADER)[K]]: string };
/** `expiresAt`: when the socket's token stops being good (ms, leeway included); null: never said. */
export type Identity = { sub: string; role: string; expiresAt: number | null };

export type DashboardAttachment = {
  kind: "dashboard";
  sub: string;
  role: string;
  /** The socket's id: its subscription rows in SQLite are keyed by it. */
  sid: string;
  /** null: no telemetry; "all": every drone; "list": the drones stored under `sid`. */
  subs: "all" | "list" | null;
  batch: boolean;
  /** Throttle (subscribe_telemetry max_rate_hz); 0 or absent: none. */
  maxRateHz?: number;
  connectedAt: number;
  expiresAt?: number | null;
};
export type RelayAttachment = { kind: "relay"; sub: string; relayId: string | null; connectedAt: number; expiresAt?: number | null };
type Attachment = DashboardAttachment | RelayAttachment;

export type DashboardConn = { att: DashboardAttachment; flow: FlowState };
export type RelayConn = { att: RelayAttachment };
export type Conn = DashboardConn | RelayConn;

export function isDashboard(c: Conn): c is DashboardConn {
  return c.att.kind === "dashboard";
}

/** What Sockets tells the fleet object about flow control (fan-out.ts answers). */
export interface FlowHooks {
  /** The socket just started lagging. */
  lagging(ws: WebSocket): void;
  /** Any other frame to dashboards is about to go: telemetry held for coalescing goes first, so
   * dashboards see frames in the order the object produced them (fan-out.ts). */
  beforeFrames(): void;
}

export class Sockets {
  private readonly conns = new Map<WebSocket, Conn>();
  /** Sockets this object closed or saw close: frames still arriving on them are dropped unread. */
  private readonly closing = new WeakSet<WebSocket>();
  /** Frames that arrived on a socket after it was closed (dropped unread); for the flood checks. */
  framesAfterClose = 0;
  private relays = 0;
  /** Set by the fleet object once fan-out exists. */
  hooks: FlowHooks = { lagging: () => {}, beforeFrames: () => {} };

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly o: {
      /** Most open dashboard sockets per token subject (limits.ts). */
      dashboardsPerToken: number;
      /** Most open relay sockets per token subject (limits.ts). */
      relaysPerToken: number;
      now(): number;
      flowLimits(): FlowLimits;
      /** The object closed a socket itself: forget it now (no close event will say so). */
      drop(ws: WebSocket): void;
      spans: Spans;
    },
  ) {
    // Hibernated sockets come back with the object; the relay count is derived, not stored.
    this.relays = ctx.getWebSockets("relay").length;
  }

  /** Open relay sockets. */
  get relayCount(): number {
    return this.relays;
  }

  /** Whether any socket at all is open (the status tick runs only then, or while drones are live). */
  any(): boolean {
    return this.ctx.getWebSockets().length > 0;
  }

  /** Open dashboard sockets (getWebSockets may still list closing ones; they are left out). */
  dashboards(): WebSocket[] {
    return this.ctx.getWebSockets("dashboard").filter((ws) => ws.readyState === WebSocket.OPEN && !this.closing.has(ws));
  }

  relaySockets(): WebSocket[] {
    return this.ctx.getWebSockets("relay").filter((ws) => ws.readyState === WebSocket.OPEN && !this.closing.has(ws));
  }

  /** Whether the socket is closed or being closed: its frames are not for us any more. */
  isClosing(ws: WebSocket): boolean {
    return this.closing.has(ws) || ws.readyState === WebSocket.CLOSED;
  }

  /**
   * The socket's state, rebuilt from its attachment after the object woke from hibernation.
   * Cached only while the socket is open (see the module comment).
   */
  conn(ws: WebSocket): Conn | undefined {
    const c = this.conns.get(ws);
    if (c) return c;
    // Written by accept() below with serializeAttachment: our own data, not wire input.
    const att = ws.deserializeAttachment() as Attachment | null;
    if (!att) return undefined;
    const made = this.connOf(att);
    if (ws.readyState === WebSocket.OPEN && !this.closing.has(ws)) this.conns.set(ws, made);
    return made;
  }

  /** A new dashboard socket, or the limit when `who.sub` already holds the most allowed here. */
  acceptDashboard(who: Identity, now: number): { client: WebSocket; server: WebSocket; att: DashboardAttachment } | { limit: number } {
    const limit = this.o.dashboardsPerToken;
    if (this.countOf(this.dashboards(), who.sub) >= limit) return { limit };
    const att: DashboardAttachment = { kind: "dashboard", sub: who.sub, role: who.role, sid: crypto.randomUUID(), subs: null, batch: false, connectedAt: now, expiresAt: who.expiresAt };
    return { ...this.accept(att), att };
  }

  /** A new relay socket, or the limit when `who.sub` already holds the most relay sockets allowed. */
  acceptRelay(who: Identity, now: number): { client: WebSocket; server: WebSocket } | { limit: number } {
    const limit = this.o.relaysPerToken;
    if (this.countOf(this.relaySockets(), who.sub) >= limit) return { limit };
    const pair = this.accept({ kind: "relay", sub: who.sub, relayId: null, connectedAt: now, expiresAt: who.expiresAt });
    this.relays = this.relaySockets().length;
    return pair;
  }

  private countOf(sockets: WebSocket[], sub: string): number {
    let n = 0;
    for (const ws of sockets) if (this.conn(ws)?.att.sub === sub) n++;
    return n;
  }

  private accept(att: Attachment): { client: WebSocket; server: WebSocket } {
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [att.kind]);
    server.serializeAttachment(att);
    this.conns.set(server, this.connOf(att));
    return { client: pair[0], server };
  }

  private connOf(att: Attachment): Conn {
    if (att.kind === "relay") return { att };
    // Marker seqs start at the clock so that an ack meant for an earlier instance's marker matches none.
    return { att, flow: new FlowState(this.o.now()) };
  }

  /** Store a changed attachment (subscription, relay_id) so it survives hibernation. */
  save(ws: WebSocket, att: Attachment): void {
    ws.serializeAttachment(att);
  }

  /** Forget a socket that closed or errored. Returns what it was, and whether it was the last relay. */
  drop(ws: WebSocket): { conn: Conn | undefined; lastRelay: boolean } {
    const conn = this.conn(ws);
    this.closing.add(ws);
    this.conns.delete(ws);
    if (conn?.att.kind !== "relay") return { conn, lastRelay: false };
    // getWebSockets() may still list the closing socket; relaySockets() leaves it out.
    const before = this.relays;
    this.relays = this.relaySockets().length;
    return { conn, lastRelay: this.relays === 0 && before > 0 };
  }

  /**
   * Close a socket from this side with a code and reason, and forget it at once. Frames that
   * still arrive on it are dropped unread (see `closing`).
   */
  close(ws: WebSocket, code: number, reason: string): void {
    if (this.closing.has(ws)) return;
    try {
      ws.close(code, reason.slice(0, 120));
    } catch {
      /* already closing: the close event cleans up */
    }
    this.o.drop(ws);
  }

  /** A relay said hello with `relayId`: an older socket of the same relay (not yet timed out) is closed. */
  claimRelayId(ws: WebSocket, att: RelayAttachment, relayId: string): void {
    att.relayId = relayId;
    this.save(ws, att);
    for (const other of this.relaySockets()) {
      if (other === ws) continue;
      const o = this.conn(other);
      if (o?.att.kind === "relay" && o.att.relayId === relayId) this.close(other, CLOSE_CODES.replaced, "replaced by a newer connection of the same relay");
    }
  }

  /** The open socket of a relay by its relay_id (other than `except`). */
  relaySocket(relayId: string, except?: WebSocket): WebSocket | null {
    for (const ws of this.relaySockets()) {
      if (ws === except) continue;
      const c = this.conn(ws);
      if (c?.att.kind === "relay" && c.att.relayId === relayId) return ws;
    }
    return null;
  }

  // ------------------------------------------------------------------ token lifetime

  /** The earliest time an open socket's token expires, or null. */
  earliestExpiry(): number | null {
    let min: number | null = null;
    for (const ws of this.ctx.getWebSockets()) {
      if (this.closing.has(ws)) continue;
      const at = this.conn(ws)?.att.expiresAt;
      if (typeof at === "number" && (min === null || at < min)) min = at;
    }
    return min;
  }

  /** Whether the socket's token has expired at `now`. */
  expired(conn: Conn, now: number): boolean {
    const at = conn.att.expiresAt;
    return typeof at === "number" && now >= at;
  }

  /** Close every socket whose token has expired, with an error frame first and 4001. Returns how many. */
  closeExpired(now: number): number {
    let n = 0;
    for (const ws of this.ctx.getWebSockets()) {
      if (this.closing.has(ws)) continue;
      const c = this.conn(ws);
      if (c && this.expired(c, now)) {
        this.closeForExpiry(ws, c);
        n++;
      }
    }
    return n;
  }

  /** Tell the socket its token expired (code token_expired) and close it with 4001. */
  closeForExpiry(ws: WebSocket, conn: Conn): void {
    const frame: ErrorFrame = { type: "error", code: "token_expired", message: "the token of this socket has expired; reconnect with a new token" };
    this.sendRaw(ws, JSON.stringify(frame), conn);
    this.close(ws, CLOSE_CODES.tokenExpired, "token expired");
  }

  // ------------------------------------------------------------------ sending

  toDashboard(ws: WebSocket, msg: ServerMessage): boolean {
    this.hooks.beforeFrames();
    return this.sendRaw(ws, JSON.stringify(msg));
  }

  toRelay(ws: WebSocket, msg: EdgeToRelay): boolean {
    return this.sendRaw(ws, JSON.stringify(msg));
  }

  /** One frame to every dashboard, serialised once. */
  broadcast(msg: ServerMessage): void {
    const sockets = this.dashboards();
    if (!sockets.length) return;
    this.hooks.beforeFrames();
    const raw = JSON.stringify(msg);
    for (const ws of sockets) this.sendRaw(ws, raw);
  }

  /** Whether a dashboard is lagging (fan-out conflates for it, status skips it). */
  lagging(ws: WebSocket): boolean {
    const c = this.conns.get(ws);
    return c !== undefined && isDashboard(c) && c.flow.laggingSince !== null;
  }

  /** The flow state of an open dashboard socket. */
  flowOf(ws: WebSocket): FlowState | null {
    const c = this.conns.get(ws) ?? this.conn(ws);
    return c && isDashboard(c) && !this.closing.has(ws) ? c.flow : null;
  }

  /** A frame already serialised (built once for many sockets, see fan-out.ts and status.ts). */
  sendRaw(ws: WebSocket, raw: string, known?: Conn): boolean {
    if (this.closing.has(ws)) return false;
    return this.o.spans.span("sends", () => {
      try {
        ws.send(raw);
      } catch {
        // The socket closed between listing and sending; its close handler cleans up.
        return false;
      }
      const c = known ?? this.conns.get(ws) ?? this.conn(ws);
      if (c && isDashboard(c)) this.account(ws, c.flow, raw.length);
      return true;
    });
  }

  /** Count a send against the socket's flow window; send the marker, start lagging or close as it says. */
  private account(ws: WebSocket, flow: FlowState, bytes: number): void {
    const l = this.o.flowLimits();
    let r = flow.onSent(bytes, this.o.now(), l);
    let lagging = r.lagging;
    while (r.marker !== null && !r.close) {
      const marker = r.marker;
      try {
        ws.send(marker);
      } catch {
        return;
      }
      r = flow.onSent(marker.length, this.o.now(), l);
      lagging ||= r.lagging;
    }
    if (r.close) {
      this.close(ws, CLOSE_CODES.tooSlow, `too slow: more than ${l.hardCapBytes} bytes unread`);
      return;
    }
    if (lagging) this.hooks.lagging(ws);
  }

  /** The page's flow_ack: what it confirmed. Returns whether the socket just caught up, or null when the seq is not ours. */
  flowAck(ws: WebSocket, seq: number): { caughtUp: boolean } | null {
    const flow = this.flowOf(ws);
    if (!flow) return null;
    const r = flow.onAck(seq, this.o.now(), this.o.flowLimits());
    if (!r) return null;
    if (r.marker !== null) this.sendRaw(ws, r.marker);
    return { caughtUp: r.caughtUp };
  }

  /** Close dashboards that have lagged for longer than the limit (4002). Returns how many. */
  closeTooSlow(now: number): number {
    const l = this.o.flowLimits();
    let n = 0;
    for (const [ws, c] of this.conns) {
      if (isDashboard(c) && c.flow.tooSlow(now, l)) {
        this.closeSlow(ws, l);
        n++;
      }
    }
    return n;
  }

  closeSlow(ws: WebSocket, l: FlowLimits = this.o.flowLimits()): void {
    this.close(ws, CLOSE_CODES.tooSlow, `too slow: lagging for more than ${Math.round(l.lagCloseMs / 1000)} s`);
  }

  /** A lagging notice (fan-out.ts fills in the counts). */
  lagNotice(ws: WebSocket, frame: LaggingFrame): void {
    this.toDashboard(ws, frame);
  }

  /** Entries held per socket, for the leak checks. */
  get counts(): { conns: number; listed: number } {
    return { conns: this.conns.size, listed: this.ctx.getWebSockets().length };
  }

  /** Frames dropped unread because their socket was already closed. */
  droppedAfterClose(): void {
    this.framesAfterClose++;
  }
}

/** The default flow limits, for the fleet object's field. */
export const defaultFlowLimits = (): FlowLimits => ({ ...FLOW_LIMITS });

/** A dashboard sending relay frames (or the reverse) is refused as forbidden, not "unknown". */
export function refuseOtherRole(err: ErrorFrame, other: "relay" | "dashboard", otherTypes: readonly string[]): ErrorFrame {
  if (err.code !== "unknown_type") return err;
  const m = /unknown message type "(.*)"/.exec(err.message);
  const t = m?.[1];
  if (t !== undefined && t !== "ping" && otherTypes.includes(t)) {
    return { ...err, code: "forbidden", message: `${t} is a ${other} message; this socket may not send it` };
  }
  return err;
}

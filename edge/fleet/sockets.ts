/**
 * The fleet object's sockets: dashboard and relay WebSockets accepted with the Hibernation API, the
 * attachment each carries (who opened it, its subscription, its relay_id) so that it survives
 * eviction, the per-token cap on dashboard sockets, the relay count, and typed sending: dashboards
 * get edge→dashboard frames (ServerMessage), relays edge→relay frames (EdgeToRelay).
 */
import type { EdgeToRelay, ErrorFrame, ServerMessage } from "../protocol";

/**
 * The identity the Worker has verified, passed with a socket upgrade (the only request the object
 * takes over fetch) as these headers; the Worker fills them typed against `IdentityHeaders`.
 */
export const IDENTITY_HEADER = { sub: "x-df-sub", role: "x-df-role" } as const;
export type IdentityHeaders = { [K in keyof typeof IDENTITY_HEADER as (typeof IDENTITY_HEADER)[K]]: string };
export type Identity = { sub: string; role: string };

export type DashboardAttachment = {
  kind: "dashboard";
  sub: string;
  role: string;
  /** null: no telemetry; "all": every drone; else the listed drones. */
  subs: "all" | string[] | null;
  batch: boolean;
  connectedAt: number;
};
export type RelayAttachment = { kind: "relay"; sub: string; relayId: string | null; connectedAt: number };
type Attachment = DashboardAttachment | RelayAttachment;

/** In-memory view of a socket's attachment, with the subscription as a Set for fast filtering. */
export type DashboardConn = { att: DashboardAttachment; subSet: Set<string> | null };
export type RelayConn = { att: RelayAttachment; subSet: null };
export type Conn = DashboardConn | RelayConn;

export function isDashboard(c: Conn): c is DashboardConn {
  return c.att.kind === "dashboard";
}

function connOf(att: Attachment): Conn {
  if (att.kind === "relay") return { att, subSet: null };
  return { att, subSet: Array.isArray(att.subs) ? new Set(att.subs) : null };
}

export class Sockets {
  private readonly conns = new Map<WebSocket, Conn>();
  private relays = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    /** Most open dashboard sockets per token subject (limits.ts). */
    private readonly perToken: number,
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

  dashboards(): WebSocket[] {
    return this.ctx.getWebSockets("dashboard");
  }

  /** The socket's state, rebuilt from its attachment after the object woke from hibernation. */
  conn(ws: WebSocket): Conn | undefined {
    let c = this.conns.get(ws);
    if (!c) {
      // Written by accept() below with serializeAttachment: our own data, not wire input.
      const att = ws.deserializeAttachment() as Attachment | null;
      if (!att) return undefined;
      c = connOf(att);
      this.conns.set(ws, c);
    }
    return c;
  }

  /** A new dashboard socket, or the limit when `who.sub` already holds the most allowed here. */
  acceptDashboard(who: Identity, now: number): { client: WebSocket; server: WebSocket } | { limit: number } {
    let n = 0;
    for (const ws of this.dashboards()) {
      if (this.conn(ws)?.att.sub === who.sub && ws.readyState === WebSocket.OPEN && ++n >= this.perToken) return { limit: this.perToken };
    }
    return this.accept({ kind: "dashboard", sub: who.sub, role: who.role, subs: null, batch: false, connectedAt: now });
  }

  acceptRelay(who: Identity, now: number): { client: WebSocket; server: WebSocket } {
    const pair = this.accept({ kind: "relay", sub: who.sub, relayId: null, connectedAt: now });
    this.relays = this.ctx.getWebSockets("relay").length;
    return pair;
  }

  private accept(att: Attachment): { client: WebSocket; server: WebSocket } {
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server, [att.kind]);
    server.serializeAttachment(att);
    this.conns.set(server, connOf(att));
    return { client: pair[0], server };
  }

  /** Store a changed attachment (subscription, relay_id) so it survives hibernation. */
  save(ws: WebSocket, att: Attachment): void {
    ws.serializeAttachment(att);
  }

  /** Forget a socket that closed or errored. Returns what it was, and whether it was the last relay. */
  drop(ws: WebSocket): { conn: Conn | undefined; lastRelay: boolean } {
    const conn = this.conn(ws);
    this.conns.delete(ws);
    if (conn?.att.kind !== "relay") return { conn, lastRelay: false };
    // getWebSockets() may still list the closing socket; count the others.
    this.relays = this.ctx.getWebSockets("relay").filter((s) => s !== ws && s.readyState === WebSocket.OPEN).length;
    return { conn, lastRelay: this.relays === 0 };
  }

  /** A relay said hello with `relayId`: an older socket of the same relay (not yet timed out) is closed. */
  claimRelayId(ws: WebSocket, att: RelayAttachment, relayId: string): void {
    att.relayId = relayId;
    this.save(ws, att);
    for (const other of this.ctx.getWebSockets("relay")) {
      if (other === ws) continue;
      const o = this.conn(other);
      if (o?.att.kind === "relay" && o.att.relayId === relayId) {
        try {
          other.close(4000, "replaced by a newer connection of the same relay");
        } catch {
          /* already closing */
        }
        this.conns.delete(other);
      }
    }
  }

  /** The open socket of a relay by its relay_id. */
  relaySocket(relayId: string): WebSocket | null {
    for (const ws of this.ctx.getWebSockets("relay")) {
      const c = this.conn(ws);
      if (c?.att.kind === "relay" && c.att.relayId === relayId && ws.readyState === WebSocket.OPEN) return ws;
    }
    return null;
  }

  // ------------------------------------------------------------------ sending

  toDashboard(ws: WebSocket, msg: ServerMessage): boolean {
    return this.sendRaw(ws, JSON.stringify(msg));
  }

  toRelay(ws: WebSocket, msg: EdgeToRelay): boolean {
    return this.sendRaw(ws, JSON.stringify(msg));
  }

  /** One frame to every dashboard, serialised once. */
  broadcast(msg: ServerMessage): void {
    const sockets = this.dashboards();
    if (!sockets.length) return;
    const raw = JSON.stringify(msg);
    for (const ws of sockets) this.sendRaw(ws, raw);
  }

  /** A frame already serialised (built once for many sockets, see fan-out.ts and status.ts). */
  sendRaw(ws: WebSocket, raw: string): boolean {
    try {
      ws.send(raw);
      return true;
    } catch {
      // The socket closed between listing and sending; its close handler cleans up.
      return false;
    }
  }
}

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

/**
 * Dashboard frames into the fleet object: the dashboard socket's side of the protocol. Each frame
 * is checked against the socket's token lifetime, passes the per-socket rate limit (limits.ts)
 * and the size cap, is parsed, and goes to fan-out (subscriptions), the command desk (operator
 * commands), flow control (`flow_ack`) or is answered here (ping). Bad input is answered in-band
 * with an `error` frame (a command's in its own response type, command-desk.ts); the socket stays
 * open except for floods, oversize and an expired token. An operator's emergency_land passes the
 * message limit, and so does a `flow_ack` answering the edge's own marker (the edge asked for it).
 */
import { LIMITS, RELAY_TYPES, parseDashboardMessage, type DashboardMessage } from "../protocol";
import type { Clock } from "./clock";
import { bypassesLimits, type CommandDesk } from "./command-desk";
import type { FanOut } from "./fan-out";
import { MessageLimiter } from "./limits";
import type { Spans } from "./profile";
import { refuseOtherRole, type DashboardConn, type Sockets } from "./sockets";

/** A flow_ack is tiny; only frames this short are looked at before the limiter. */
const FLOW_ACK_MAX_CHARS = 64;

export class DashboardFrames {
  private readonly limiter = new MessageLimiter<WebSocket>();

  constructor(
    private readonly p: {
      clock: Clock;
      sockets: Sockets;
      fanOut: FanOut;
      desk: Pick<CommandDesk, "handle" | "refuseFrame">;
      spans: Spans;
    },
  ) {}

  /** Rate-limit buckets held, for the leak checks. */
  get limiterSize(): number {
    return this.limiter.size;
  }

  /** The socket closed. */
  forget(ws: WebSocket): void {
    this.limiter.forget(ws);
  }

  onFrame(ws: WebSocket, conn: DashboardConn, message: string | ArrayBuffer): void {
    const { sockets } = this.p;
    const now = this.p.clock.now();
    // Nothing is taken on a socket whose token has expired: commands are refused in their own
    // response type (their id stays free), and the socket is closed with 4001.
    if (sockets.expired(conn, now)) {
      this.p.desk.refuseFrame(ws, message, { code: "token_expired", message: "the token of this socket has expired; reconnect with a new token and send the command again" });
      sockets.closeForExpiry(ws, conn);
      return;
    }
    if (typeof message === "string" && message.length <= FLOW_ACK_MAX_CHARS && message.includes("flow_ack") && this.flowAck(ws, message)) return;
    const verdict = this.limiter.take(ws, now);
    // An operator's emergency_land passes every limiter (command-desk.ts: landing always runs).
    if (verdict !== "ok" && !bypassesLimits(conn.att.role, message)) {
      if (verdict === "close") {
        sockets.close(ws, 1008, "rate_limited: too many messages");
      } else {
        const limited = { type: "error", code: "rate_limited", message: "too many messages on this socket; slow down or it will be closed" } as const;
        // A command is refused in its own response type; anything else with an error frame.
        if (!this.p.desk.refuseFrame(ws, message, limited)) sockets.toDashboard(ws, limited);
      }
      return;
    }
    if (typeof message !== "string") {
      sockets.toDashboard(ws, { type: "error", code: "binary_not_supported", message: "send JSON text frames" });
      return;
    }
    // Characters first: only a frame long enough to possibly exceed the cap is encoded to count bytes.
    if (message.length > LIMITS.dashboardFrameBytes / 3 && new TextEncoder().encode(message).length > LIMITS.dashboardFrameBytes) {
      sockets.close(ws, 1009, `frame larger than ${LIMITS.dashboardFrameBytes} bytes`);
      return;
    }
    const parsed = this.p.spans.span("parse", () => parseDashboardMessage(message));
    if (!parsed.ok) {
      // A frame of a command type is answered in that command's response type (command-desk.ts).
      if (!this.p.desk.refuseFrame(ws, message, parsed.error)) sockets.toDashboard(ws, refuseOtherRole(parsed.error, "relay", RELAY_TYPES));
      return;
    }
    this.handle(ws, conn, parsed.value);
  }

  /**
   * A short frame naming flow_ack: handled here, outside the limiter, when it answers the marker
   * in flight. Returns false for anything else (it then goes the normal way, limiter included).
   */
  private flowAck(ws: WebSocket, message: string): boolean {
    const parsed = parseDashboardMessage(message);
    if (!parsed.ok || parsed.value.type !== "flow_ack") return false;
    const r = this.p.sockets.flowAck(ws, parsed.value.seq);
    if (!r) return false;
    if (r.caughtUp) this.p.fanOut.onCaughtUp(ws);
    return true;
  }

  private handle(ws: WebSocket, conn: DashboardConn, msg: DashboardMessage): void {
    switch (msg.type) {
      case "subscribe_telemetry":
        return this.p.fanOut.subscribe(ws, conn, msg);
      case "unsubscribe_telemetry":
        return this.p.fanOut.unsubscribe(ws, conn, msg);
      case "ping":
        this.p.sockets.toDashboard(ws, { type: "pong", request_id: msg.request_id, ts: this.p.clock.now() });
        return;
      case "flow_ack":
        // Not the marker in flight (an earlier instance's, or a repeat): nothing to confirm.
        return;
      case "modify_waypoint":
      case "assign_mission":
      case "emergency_land":
      case "coordination_override":
        return this.p.spans.span("commands", () => this.p.desk.handle({ ws, sub: conn.att.sub, role: conn.att.role }, msg));
      default: {
        const never: never = msg;
        throw new Error(`unhandled dashboard message ${JSON.stringify(never)}`);
      }
    }
  }
}

/**
 * Dashboard frames into the fleet object: the dashboard socket's side of the protocol. Each frame
 * passes the per-socket rate limit (limits.ts) and the size cap, is parsed, and goes to fan-out
 * (subscriptions), the command desk (operator commands) or is answered here (ping). Bad input is
 * answered in-band with an `error` frame; the socket stays open except for floods and oversize.
 */
import { LIMITS, RELAY_TYPES, parseDashboardMessage, type DashboardMessage } from "../protocol";
import type { Clock } from "./clock";
import type { CommandDesk } from "./command-desk";
import type { FanOut } from "./fan-out";
import { MessageLimiter } from "./limits";
import { refuseOtherRole, type DashboardConn, type Sockets } from "./sockets";

export class DashboardFrames {
  private readonly limiter = new MessageLimiter<WebSocket>();

  constructor(
    private readonly p: {
      clock: Clock;
      sockets: Sockets;
      fanOut: FanOut;
      desk: Pick<CommandDesk, "handle">;
      /** The object closed the socket itself: forget it now (no close event will say so). */
      drop(ws: WebSocket): void;
    },
  ) {}

  onFrame(ws: WebSocket, conn: DashboardConn, message: string | ArrayBuffer): void {
    const { sockets } = this.p;
    const verdict = this.limiter.take(ws, this.p.clock.now());
    if (verdict !== "ok") {
      if (verdict === "close") {
        ws.close(1008, "rate_limited: too many messages");
        this.p.drop(ws);
      } else {
        sockets.toDashboard(ws, { type: "error", code: "rate_limited", message: "too many messages on this socket; slow down or it will be closed" });
      }
      return;
    }
    if (typeof message !== "string") {
      sockets.toDashboard(ws, { type: "error", code: "binary_not_supported", message: "send JSON text frames" });
      return;
    }
    // Characters first: only a frame long enough to possibly exceed the cap is encoded to count bytes.
    if (message.length > LIMITS.dashboardFrameBytes / 3 && new TextEncoder().encode(message).length > LIMITS.dashboardFrameBytes) {
      ws.close(1009, `frame larger than ${LIMITS.dashboardFrameBytes} bytes`);
      this.p.drop(ws);
      return;
    }
    const parsed = parseDashboardMessage(message);
    if (!parsed.ok) {
      sockets.toDashboard(ws, refuseOtherRole(parsed.error, "relay", RELAY_TYPES));
      return;
    }
    this.handle(ws, conn, parsed.value);
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
      case "modify_waypoint":
      case "assign_mission":
      case "emergency_land":
      case "coordination_override":
        return this.p.desk.handle({ ws, sub: conn.att.sub, role: conn.att.role }, msg);
      default: {
        const never: never = msg;
        throw new Error(`unhandled dashboard message ${JSON.stringify(never)}`);
      }
    }
  }
}

/**
 * Pure pieces of the dashboard's connection (no DOM, tested in Node): reading server frames and
 * the reconnect delay.
 */
import type { ServerMessage } from "../../edge/protocol";

/** Delay before reconnect attempt `attempt` (0-based): base·2^attempt capped at `capMs`, with
 * "equal jitter" (half fixed, half random) so a fleet of dashboards does not reconnect in step
 * after an edge restart, yet never retries in a tight loop. */
export function backoffDelay(attempt: number, baseMs = 500, capMs = 15_000, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 20));
  return Math.round(exp / 2 + random() * (exp / 2));
}

const SERVER_TYPES: Record<ServerMessage["type"], true> = {
  fleet_status: true,
  telemetry: true,
  telemetry_batch: true,
  link_status: true,
  pong: true,
  subscribed: true,
  waypoint_modification_response: true,
  mission_assignment_response: true,
  emergency_land_response: true,
  coordination_override_response: true,
  hold_response: true,
  command_status: true,
  mission_update: true,
  coordination_event: true,
  analytics_live: true,
  alert: true,
  error: true,
};

/**
 * Parse one server frame. The edge is the protocol's author, so frames are trusted in shape once
 * their `type` is known; anything else (a newer edge's frame type) is ignored rather than thrown.
 */
export function parseServerFrame(raw: string): ServerMessage | null {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof data !== "object" || data === null) return null;
  const t = (data as { type?: unknown }).type;
  if (typeof t !== "string") return null;
  return Object.hasOwn(SERVER_TYPES, t) ? (data as ServerMessage) : null;
}

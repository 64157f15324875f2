/**
 * Pure pieces of the dashboard's connection (no DOM, tested in Node): reading server frames, the
 * reconnect delay, the close codes the page itself uses, what the page does on each close code the
 * edge uses, and the telemetry rate it asks for after being too slow.
 */
import { CLOSE_CODES, parseEdgeToDashboard, type ServerMessage } from "../../edge/protocol";

/**
 * Close codes the dashboard itself sends when it drops a socket (4900-4999, kept apart from the
 * edge's CLOSE_CODES, 4000-4003, so the edge's logs and any proxy can tell who closed and why):
 * 4900 its watchdog heard nothing for too long; 4901 it replaces the socket on purpose (back
 * online, a new token, a lower telemetry rate). Signing out closes with 1000.
 */
export const CLIENT_CLOSE_CODES = {
  /** No frame (not even the 5 s fleet_status, nor a pong) for DEAD_AFTER_MS: the socket is dead. */
  noFrames: 4900,
  /** The page replaces the socket itself. */
  reconnect: 4901,
} as const;

/** What the page does when the edge closes its socket with `code`. */
export type CloseAction =
  /** Reconnect with backoff (network trouble, the edge restarted, a flood or oversize close). */
  | { kind: "retry" }
  /** 4001: the token expired; the same token would be refused. Renew it first, then reconnect. */
  | { kind: "renew" }
  /** 4002: the page read too slowly; reconnect asking for fewer telemetry rounds a second. */
  | { kind: "slow_down"; maxRateHz: number };

/** Slowest rate the page asks for after being too slow: one round every two seconds. */
export const MIN_RATE_HZ = 0.5;
/** First rate after a 4002 when the page was unthrottled. */
export const SLOW_RATE_HZ = 2;

/** The telemetry rate to ask for after a 4002, given the current one (undefined: unthrottled). */
export function slowerRate(current: number | undefined): number {
  if (current === undefined || current > SLOW_RATE_HZ * 2) return SLOW_RATE_HZ;
  return Math.max(MIN_RATE_HZ, current / 2);
}

export function closeAction(code: number, currentRateHz: number | undefined): CloseAction {
  if (code === CLOSE_CODES.tokenExpired) return { kind: "renew" };
  if (code === CLOSE_CODES.tooSlow) return { kind: "slow_down", maxRateHz: slowerRate(currentRateHz) };
  return { kind: "retry" };
}

/** Delay before reconnect attempt `attempt` (0-based): base·2^attempt capped at `capMs`, with
 * "equal jitter" (half fixed, half random) so a fleet of dashboards does not reconnect in step
 * after an edge restart, yet never retries in a tight loop. */
export function backoffDelay(attempt: number, baseMs = 500, capMs = 15_000, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 20));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export type Warn = (message: string) => void;

/** Distinct problems already reported, so a newer edge's frame at 10 Hz warns once, not forever. */
const warned = new Set<string>();
const WARNED_MAX = 100;

/**
 * Parse one server frame with the protocol's E→D schema. A frame that is not JSON, has a type this
 * page does not know (a newer edge), or is malformed is ignored: null, and a console warning with
 * the reason the first time that kind of problem is seen. Never throws.
 */
export function parseServerFrame(raw: string, warn: Warn = (m) => console.warn(m)): ServerMessage | null {
  const r = parseEdgeToDashboard(raw);
  if (r.ok) return r.value;
  // The type (or the first field at fault) keys the warning; the message itself may hold values.
  const key = `${r.error.code}:${r.error.message.split(":")[0] ?? ""}`;
  if (!warned.has(key)) {
    if (warned.size >= WARNED_MAX) warned.clear();
    warned.add(key);
    warn(`ignoring a server frame (${r.error.code}): ${r.error.message}`);
  }
  return null;
}

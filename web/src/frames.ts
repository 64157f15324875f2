/**
 * Pure pieces of the dashboard's connection (no DOM, tested in Node): reading server frames and
 * the reconnect delay.
 */
import { parseEdgeToDashboard, type ServerMessage } from "../../edge/protocol";

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

/**
 * Commands from the edge, as the relay sees them: a light, zod-free check of the `command` frame
 * (the edge validated the content; this guards the relay against a malformed or newer frame), the
 * relay's own timeout, and one runner that turns any source behaviour (answers, throws, hangs)
 * into exactly one outcome.
 */
import type { RelayCommand, Waypoint } from "../../edge/protocol";
import type { CommandOutcome } from "../sources/source";

/** The relay's own deadline for a command: `timeout_ms` from the frame, clamped to this range. */
export const COMMAND_TIMEOUT_RANGE = { minMs: 500, maxMs: 30_000, defaultMs: 5_000 } as const;

export const RELAY_COMMANDS = ["modify_waypoint", "assign_mission", "emergency_land", "hold"] as const;

const COMMAND_ID_RE = /^[A-Za-z0-9_-]{8,64}$/;
const MAX_MESSAGE = 1000;

export function clampTimeout(ms: unknown): number {
  const { minMs, maxMs, defaultMs } = COMMAND_TIMEOUT_RANGE;
  if (typeof ms !== "number" || !Number.isFinite(ms)) return defaultMs;
  return Math.round(Math.min(maxMs, Math.max(minMs, ms)));
}

export type ParsedCommand =
  | { ok: true; command: RelayCommand }
  /** `command_id` is null when the frame has none we could answer to. */
  | { ok: false; command_id: string | null; message: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function readWaypoint(v: unknown): Waypoint | null {
  if (!isObj(v) || !finite(v.lat) || !finite(v.lon) || !finite(v.alt_m)) return null;
  if (Math.abs(v.lat) > 90 || Math.abs(v.lon) > 180) return null;
  return { lat: v.lat, lon: v.lon, alt_m: v.alt_m };
}

/** Check a `command` frame; unknown extra fields are dropped. */
export function parseRelayCommand(frame: Record<string, unknown>): ParsedCommand {
  const id = typeof frame.command_id === "string" && COMMAND_ID_RE.test(frame.command_id) ? frame.command_id : null;
  const bad = (message: string): ParsedCommand => ({ ok: false, command_id: id, message: `invalid command: ${message}` });
  if (!id) return bad("command_id must be 8-64 of A-Z a-z 0-9 _ -");
  if (typeof frame.drone_id !== "string" || frame.drone_id.length === 0 || frame.drone_id.length > 64) return bad("drone_id");
  const base = { type: "command" as const, command_id: id, drone_id: frame.drone_id, timeout_ms: clampTimeout(frame.timeout_ms) };
  switch (frame.command) {
    case "modify_waypoint": {
      const wp = readWaypoint(frame.new_waypoint);
      if (!wp) return bad("new_waypoint must be {lat, lon, alt_m} with finite, in-range numbers");
      const reason = typeof frame.modification_reason === "string" ? frame.modification_reason : "";
      return { ok: true, command: { ...base, command: "modify_waypoint", new_waypoint: wp, modification_reason: reason } };
    }
    case "assign_mission": {
      if (typeof frame.mission_id !== "string" || frame.mission_id.length < 1 || frame.mission_id.length > 64) return bad("mission_id");
      if (!Array.isArray(frame.waypoints) || frame.waypoints.length < 1 || frame.waypoints.length > 100) return bad("waypoints must hold 1-100 points");
      const waypoints: Waypoint[] = [];
      for (const [i, w] of frame.waypoints.entries()) {
        const wp = readWaypoint(w);
        if (!wp) return bad(`waypoints[${i}] must be {lat, lon, alt_m} with finite, in-range numbers`);
        waypoints.push(wp);
      }
      const priority = frame.priority === "low" || frame.priority === "high" || frame.priority === "critical" ? frame.priority : "normal";
      return { ok: true, command: { ...base, command: "assign_mission", mission_id: frame.mission_id, waypoints, priority } };
    }
    case "emergency_land":
      return { ok: true, command: { ...base, command: "emergency_land", ...(typeof frame.reason === "string" ? { reason: frame.reason } : {}) } };
    case "hold": {
      if (!finite(frame.duration_s) || frame.duration_s < 0 || frame.duration_s > 86_400) return bad("duration_s must be a number in 0..86400");
      return { ok: true, command: { ...base, command: "hold", duration_s: frame.duration_s } };
    }
    default:
      return bad(`unknown command ${JSON.stringify(frame.command ?? null).slice(0, 40)}`);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/**
 * Run `execute` with a deadline. Always resolves, exactly once: the source's outcome; `failed`
 * with the error's message when it throws or rejects; `failed` "timeout at the relay after N ms"
 * when it has not answered by then (the signal is aborted so the source can stop waiting).
 */
export async function runWithTimeout(
  execute: (command: RelayCommand, signal: AbortSignal) => Promise<CommandOutcome>,
  command: RelayCommand,
  timeoutMs: number,
  controller: AbortController = new AbortController(),
): Promise<CommandOutcome> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<CommandOutcome>((resolve) => {
    timer = setTimeout(() => {
      const message = `timeout at the relay after ${timeoutMs} ms`;
      resolve({ ok: false, message });
      controller.abort(new Error(message));
    }, timeoutMs);
    // Aborted from outside (the relay stopping): end now rather than at the deadline.
    onAbort = () => resolve({ ok: false, message: `aborted: ${errorMessage(controller.signal.reason)}` });
    if (controller.signal.aborted) onAbort();
    else controller.signal.addEventListener("abort", onAbort, { once: true });
  });
  const run = (async (): Promise<CommandOutcome> => {
    try {
      return normalizeOutcome(await execute(command, controller.signal));
    } catch (err) {
      return { ok: false, message: errorMessage(err).slice(0, MAX_MESSAGE) || "source failed" };
    }
  })();
  try {
    return await Promise.race([run, timeout]);
  } finally {
    clearTimeout(timer);
    if (onAbort) controller.signal.removeEventListener("abort", onAbort);
  }
}

/** Whatever a source returned, as a well-formed outcome with a message of ≤1000 characters. */
export function normalizeOutcome(v: unknown): CommandOutcome {
  if (!isObj(v) || typeof v.ok !== "boolean") return { ok: false, message: "source returned no outcome" };
  const message = typeof v.message === "string" && v.message.length > 0 ? v.message.slice(0, MAX_MESSAGE) : undefined;
  if (v.ok) return message === undefined ? { ok: true } : { ok: true, message };
  return { ok: false, message: message ?? "failed at the drone" };
}

/**
 * What every direction of the wire shares: limits, id formats, the telemetry sample, waypoints,
 * ledger states, error codes, and the one frame parser (`parseFrame`) each direction's parse
 * function is built on. Imports zod only.
 */
import * as z from "zod";

/** Upper bounds that keep every queue and frame bounded. */
export const LIMITS = {
  /** Largest dashboard → edge frame; larger frames close the socket with 1009. */
  dashboardFrameBytes: 64 * 1024,
  /** Largest relay → edge frame. */
  relayFrameBytes: 1024 * 1024,
  /** More alert changes than this in one 5 s tick (a relay gone takes its drones' links at once)
   * go to dashboards as one `alerts` frame instead of an `alert` frame each. */
  alertFramesMax: 20,
  /** Most updates the relay puts in one telemetry_batch. */
  batchUpdates: 500,
  /** Longest the relay holds a batch before sending it. */
  batchWindowMs: 100,
  /** Most drones one fleet object tracks. */
  dronesPerFleet: 10_000,
  /** A drone is stale after this long without telemetry. */
  staleAfterMs: 15_000,
  /** fleet_status cadence. */
  statusIntervalMs: 5_000,
  /** Most per-item errors a batch_ack lists. */
  batchAckErrors: 10,
  /** Most drones in one fleet_status frame; larger fleets are split into parts. */
  statusChunkDrones: 1_000,
} as const;

export const DRONE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const FLEET_ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const COMMAND_ID_RE = /^[A-Za-z0-9_-]{8,64}$/;

// ---------------------------------------------------------------- text at the boundary
// Postgres refuses NUL in text ("invalid byte sequence for encoding UTF8: 0x00") and jsonb
// ("unsupported Unicode escape sequence"), and jsonb refuses lone UTF-16 surrogates; one such
// string in a stored row used to stop a fleet's analytics for good. So every frame a dashboard or
// a relay sends is cleaned when it is parsed: free text (reasons, messages, names, modes) has
// NUL and lone surrogates replaced by U+FFFD, and an id (whatever names a thing: event, mission,
// relay and request ids) with NUL, any other control character or a lone surrogate is refused.
// The Postgres writer applies `sanitizeText` once more to everything it stores.

/** NUL, or a UTF-16 surrogate that is not half of a pair. */
const UNSAFE_TEXT_RE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** What an id may not hold: control characters (C0, DEL) and lone surrogates. */
const UNSAFE_ID_RE = /[\u0000-\u001F\u007F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `s` with NUL and lone surrogates replaced by U+FFFD (the same string when there are none). */
export function sanitizeText(s: string): string {
  UNSAFE_TEXT_RE.lastIndex = 0;
  return UNSAFE_TEXT_RE.test(s) ? s.replace(UNSAFE_TEXT_RE, "\uFFFD") : s;
}

/** Whether `s` may serve as an id: no control characters, no lone surrogates. */
export function isSafeId(s: string): boolean {
  return !UNSAFE_ID_RE.test(s);
}

/** Free text from a client, at most `max` UTF-16 units (at least `min`), cleaned by `sanitizeText`. */
export const FreeText = (max: number, min = 0) => z.string().min(min).max(max).transform(sanitizeText);
/** An id from a client without a stricter format: 1..`max` units, no control characters or lone surrogates. */
export const IdText = (max: number) => z.string().min(1).max(max).refine(isSafeId, "must not contain control characters or lone surrogates");

export const DroneId = z.string().regex(DRONE_ID_RE, "drone id: 1-64 of A-Z a-z 0-9 _ . -");
export const RequestId = IdText(128).optional();
/** A client-made id (UUID recommended); the same id never runs twice. The edge's own commands
 * (`sys-…`) use the same format. */
export const CommandId = z.string().min(8).max(64).regex(/^[A-Za-z0-9_-]+$/, "command_id: 8-64 of A-Z a-z 0-9 _ -");

export const finite = () => z.number().refine(Number.isFinite, "must be a finite number");
/** Milliseconds since the Unix epoch. */
export const EpochMs = z.number().int().min(0);
/** A count or index. */
export const Count = z.number().int().min(0);

export const DRONE_STATUSES = [
  "idle",
  "taking_off",
  "flying",
  "returning",
  "landing",
  "landed",
  "charging",
  "emergency",
] as const;
export const DroneStatus = z.enum(DRONE_STATUSES);

/** One drone's state at one instant, as the relay reports it. `seq` grows per drone. */
export const TelemetrySample = z.object({
  drone_id: DroneId,
  /** Per-drone sequence number; the edge keeps only frames with a higher seq than it has seen. */
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Time of the measurement, ms since the Unix epoch (relay clock). */
  ts: EpochMs,
  lat: finite().min(-90).max(90),
  lon: finite().min(-180).max(180),
  /** Altitude above home (take-off point), metres. */
  alt_m: finite().min(-1000).max(100_000),
  heading_deg: finite().min(0).max(360),
  speed_mps: finite().min(0).max(1000),
  /** Vertical speed, metres per second, positive up. */
  climb_mps: finite().min(-1000).max(1000).optional(),
  battery_pct: finite().min(0).max(100),
  armed: z.boolean(),
  mode: FreeText(32, 1),
  status: DroneStatus,
  /**
   * `false`: the source has no reading of the drone's state (a ROS 2 drone without a state topic),
   * so `armed` and `status` are placeholders. The edge then infers "airborne" from altitude and
   * speed (edge/domain/drone.ts) and dashboards show the state as inferred. Absent: measured.
   */
  state_known: z.boolean().optional(),
});
export type TelemetrySample = z.infer<typeof TelemetrySample>;

const STATUS_SET: ReadonlySet<string> = new Set(DRONE_STATUSES);
const inRange = (v: unknown, lo: number, hi: number): v is number => typeof v === "number" && Number.isFinite(v) && v >= lo && v <= hi;

/**
 * The hot path of telemetry validation (issue 13: zod took ~2 µs an item, most of the fleet
 * object's ingest time at tens of thousands of updates a second). Returns exactly what
 * `TelemetrySample.parse` would (same keys in the same order, unknown keys dropped) for a plain,
 * clean, valid sample, and null for anything else — the caller then asks the schema, which
 * decides and explains. It never accepts what the schema refuses and never alters a value: a mode
 * that `sanitizeText` would change goes to the schema. test/protocol/fast-sample.test.ts holds it
 * to that over random and hostile inputs.
 */
export function fastTelemetrySample(x: unknown): TelemetrySample | null {
  if (typeof x !== "object" || x === null || Object.getPrototypeOf(x) !== Object.prototype) return null;
  const o = x as Record<string, unknown>;
  const { drone_id, seq, ts, lat, lon, alt_m, heading_deg, speed_mps, climb_mps, battery_pct, armed, mode, status, state_known } = o;
  if (typeof drone_id !== "string" || !DRONE_ID_RE.test(drone_id)) return null;
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) return null;
  if (!Number.isSafeInteger(ts) || (ts as number) < 0) return null;
  if (!inRange(lat, -90, 90) || !inRange(lon, -180, 180) || !inRange(alt_m, -1000, 100_000)) return null;
  if (!inRange(heading_deg, 0, 360) || !inRange(speed_mps, 0, 1000) || !inRange(battery_pct, 0, 100)) return null;
  if (climb_mps !== undefined && !inRange(climb_mps, -1000, 1000)) return null;
  if (climb_mps === undefined && "climb_mps" in o) return null;
  if (typeof armed !== "boolean" || typeof status !== "string" || !STATUS_SET.has(status)) return null;
  if (typeof mode !== "string" || mode.length < 1 || mode.length > 32 || sanitizeText(mode) !== mode) return null;
  if (state_known !== undefined && typeof state_known !== "boolean") return null;
  if (state_known === undefined && "state_known" in o) return null;
  const out: TelemetrySample = { drone_id, seq: seq as number, ts: ts as number, lat, lon, alt_m, heading_deg, speed_mps } as TelemetrySample;
  if (climb_mps !== undefined) out.climb_mps = climb_mps;
  out.battery_pct = battery_pct;
  out.armed = armed;
  out.mode = mode;
  out.status = status as TelemetrySample["status"];
  if (state_known !== undefined) out.state_known = state_known;
  return out;
}

/** `TelemetrySample.safeParse` with the fast path first (fastTelemetrySample). */
export function parseTelemetrySample(x: unknown): { success: true; data: TelemetrySample } | { success: false; error: z.ZodError } {
  const fast = fastTelemetrySample(x);
  if (fast) return { success: true, data: fast };
  const r = TelemetrySample.safeParse(x);
  return r.success ? { success: true, data: r.data } : { success: false, error: r.error };
}

/**
 * The ordering rule of telemetry, the same at the edge and in every dashboard: per drone, a sample
 * replaces the one held only when its `seq` is higher. Time plays no part: `ts` is the relay's
 * clock, and a relay never reuses or lowers a drone's seq (it starts above what the edge's
 * hello_ack says it holds), so a lower or equal seq is a duplicate or a late replay.
 */
export function isNewerSample(next: { seq: number }, held: { seq: number } | undefined): boolean {
  return held === undefined || next.seq > held.seq;
}

/** A 3D point from a dashboard. Range checks are safety rules (answered with a rule code), not
 * schema errors. */
export const Waypoint = z.object({ lat: z.number(), lon: z.number(), alt_m: z.number() });
export type Waypoint = z.infer<typeof Waypoint>;
/** A waypoint the edge sends on: it passed the safety rules, so it is finite and on the globe. */
export const CheckedWaypoint = z.object({ lat: finite().min(-90).max(90), lon: finite().min(-180).max(180), alt_m: finite() });

export const MISSION_PRIORITIES = ["low", "normal", "high", "critical"] as const;
export const MissionPriority = z.enum(MISSION_PRIORITIES);
export type MissionPriority = z.infer<typeof MissionPriority>;

/** A mission's life: pending → assigned → active → completed | failed | aborted. */
export const MISSION_STATES = ["pending", "assigned", "active", "completed", "failed", "aborted"] as const;
export const MissionState = z.enum(MISSION_STATES);
export type MissionState = z.infer<typeof MissionState>;

export const COMMAND_TYPES = ["modify_waypoint", "assign_mission", "emergency_land", "coordination_override"] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];
/** Everything the ledger records: operator commands plus the edge's own holds. */
export const LEDGER_COMMANDS = [...COMMAND_TYPES, "hold"] as const;
export const LedgerCommand = z.enum(LEDGER_COMMANDS);
export type LedgerCommand = z.infer<typeof LedgerCommand>;

/** Ledger states: received → rejected | sent → acked | failed | timeout. */
export const COMMAND_STATES = ["received", "rejected", "sent", "acked", "failed", "timeout"] as const;
export const CommandState = z.enum(COMMAND_STATES);
export type CommandState = z.infer<typeof CommandState>;
export const FINAL_STATES: readonly CommandState[] = ["rejected", "acked", "failed", "timeout"];

export const ERROR_CODES = [
  "bad_json",
  "unknown_type",
  "invalid_message",
  "frame_too_large",
  "binary_not_supported",
  "forbidden",
  "unauthorized",
  "unknown_drone",
  "relay_offline",
  "rate_limited",
  "duplicate_command_id",
  "safety_violation",
  "no_candidate",
  "unknown_event",
  "invalid_item",
  "too_many_drones",
  "internal",
  // Trust (issue 18): relay identity and ownership, sample ranges, token lifetime.
  /** A relay socket sent something other than relay_hello (or ping) first; nothing was applied. */
  "hello_required",
  /** relay_hello named a relay_id bound to another token subject. */
  "relay_id_taken",
  /** Telemetry for a drone that belongs to another relay (batch_ack item). */
  "not_owner",
  /** More new drones from this relay token than its per-minute allowance (batch_ack item). */
  "too_many_new_drones",
  /** A sample's seq beyond SEQ_MAX (batch_ack item). */
  "seq_out_of_range",
  /** A timestamp more than TS_MAX_AHEAD_MS ahead of the edge's clock. */
  "ts_out_of_range",
  /** command_result or mission_progress from a relay the command or mission was not sent to. */
  "not_your_command",
  /** The socket's token expired: nothing more is taken on it; reconnect with a new token. */
  "token_expired",
] as const;
export const ErrorCode = z.enum(ERROR_CODES);

/**
 * Close codes the edge uses on its sockets (4000-4999 is the application range of RFC 6455).
 * 1008 (policy: message flood) and 1009 (frame too large) are the standard ones.
 */
export const CLOSE_CODES = {
  /** Relay: a newer socket of the same relay (same relay_id and token subject) took over. */
  replaced: 4000,
  /** Dashboard or relay: the token's `exp` (plus the 30 s clock-skew leeway) passed. Reconnect
   * with a fresh token; reconnecting with the same token is refused with 401. */
  tokenExpired: 4001,
  /** Dashboard: it stayed behind its flow-control window for too long (see `lagging`). */
  tooSlow: 4002,
  /** Relay: relay_hello named a relay_id that belongs to another token subject. */
  relayIdTaken: 4003,
} as const;
export type ErrorCode = z.infer<typeof ErrorCode>;

/** E→D and E→R: a frame the edge could not take, or a fault while handling it. */
export const ErrorFrame = z.object({
  type: z.literal("error"),
  code: ErrorCode,
  message: z.string(),
  request_id: z.string().max(128).optional(),
});
export type ErrorFrame = z.infer<typeof ErrorFrame>;

/** D→E and R→E: liveness probe, answered with `pong`. */
export const Ping = z.object({ type: z.literal("ping"), request_id: RequestId, ts: z.number().optional() });
/** E→D and E→R: the answer to `ping`, with the ping's request_id and the edge clock. */
export const Pong = z.object({ type: z.literal("pong"), request_id: RequestId, ts: EpochMs });
export type Pong = z.infer<typeof Pong>;

// ---------------------------------------------------------------- parsing

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: ErrorFrame };

/**
 * Parse one text frame against a union schema. Never throws: bad input becomes an `error` frame
 * with a code (bad_json, unknown_type, invalid_message) and the request_id when one is readable.
 */
export function parseFrame<S extends z.ZodType<{ type: string }>>(
  schema: S,
  knownTypes: readonly string[],
  raw: string,
): Parsed<z.infer<S>> {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return { ok: false, error: { type: "error", code: "bad_json", message: "frame is not valid JSON" } };
  }
  return parseValue(schema, knownTypes, data);
}

/** `parseFrame` for a frame already read from JSON. */
export function parseValue<S extends z.ZodType<{ type: string }>>(
  schema: S,
  knownTypes: readonly string[],
  data: unknown,
): Parsed<z.infer<S>> {
  const raw = stringField(data, "request_id");
  // Echoed in the error frame: cleaned like any text (the id itself may be what was refused).
  const requestId = raw === undefined ? undefined : sanitizeText(raw.slice(0, 128));
  const t = typeof data === "object" && data !== null ? (data as { type?: unknown }).type : undefined;
  if (typeof t !== "string" || !knownTypes.includes(t)) {
    return {
      ok: false,
      error: {
        type: "error",
        code: "unknown_type",
        message: `unknown message type ${JSON.stringify(t ?? null).slice(0, 64)}`,
        ...(requestId ? { request_id: requestId } : {}),
      },
    };
  }
  const r = schema.safeParse(data);
  if (!r.success) {
    return {
      ok: false,
      error: {
        type: "error",
        code: "invalid_message",
        message: `${t}: ${summarizeIssues(r.error)}`,
        ...(requestId ? { request_id: requestId } : {}),
      },
    };
  }
  return { ok: true, value: r.data };
}

/** A string property of an untrusted value, or undefined. */
export function stringField(data: unknown, key: string): string | undefined {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return undefined;
  const v = (data as Record<string, unknown>)[key];
  return typeof v === "string" ? v : undefined;
}

/** A short, human-readable account of what failed validation. */
export function summarizeIssues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

/**
 * The relay's socket, both ways: R→E (relay to edge, `parseRelayMessage`) and E→R (edge to relay,
 * `parseEdgeToRelay`). Imports zod and ./common only.
 */
import * as z from "zod";
import {
  CheckedWaypoint,
  CommandId,
  COMMAND_ID_RE,
  Count,
  DroneId,
  EpochMs,
  ErrorCode,
  ErrorFrame,
  FreeText,
  IdText,
  LIMITS,
  MissionPriority,
  parseFrame,
  Ping,
  Pong,
  stringField,
  TelemetrySample,
  finite,
  type Parsed,
} from "./common";

// ---------------------------------------------------------------- relay → edge (R→E)

/**
 * Relay identity (issue 18). A relay socket says `relay_hello` before anything else (a `ping`
 * excepted); every other frame first is refused with `hello_required` and nothing is applied.
 * The first hello with a `relay_id` binds that id to the token's subject for good: hellos with it
 * from another subject are refused (`relay_id_taken`, close 4003), the same subject reconnecting
 * replaces its own older socket (close 4000). A drone belongs to the relay that first reported
 * it until that relay has been gone for longer than LIMITS.staleAfterMs, or an admin reassigns it;
 * telemetry for it from any other relay is refused per item (`not_owner`), and a command's
 * `command_result` or a mission's `mission_progress` counts only from the relay it was sent to
 * (`not_your_command`).
 */

/**
 * Highest `seq` the edge takes (Number.MAX_SAFE_INTEGER / 2, rounded down). A relay's seqs are
 * the wall clock in ms or a counter, both far below; a seq near 2^53 would freeze the drone for
 * every later (honest) sample, so such a sample is refused per item (`seq_out_of_range`) and
 * never becomes the stored high-water mark.
 */
export const SEQ_MAX = Math.floor(Number.MAX_SAFE_INTEGER / 2);
/**
 * How far ahead of the edge's clock a relay timestamp (a sample's `ts`, `mission_progress.ts`) may
 * be: one day, beyond any clock that is merely skewed. Later ones are refused (`ts_out_of_range`).
 */
export const TS_MAX_AHEAD_MS = 86_400_000;

/** R→E: first frame after connecting: who the relay is and which drones it serves. */
export const RelayHello = z.object({
  type: z.literal("relay_hello"),
  relay_id: IdText(128),
  source: z.enum(["sim", "ros2"]),
  version: FreeText(64).optional(),
  drone_ids: z.array(DroneId).max(LIMITS.dronesPerFleet),
});
export type RelayHello = z.infer<typeof RelayHello>;
/** R→E: updates gathered over ≤100 ms. Items are checked one by one: bad items are counted and
 * reported in `batch_ack`, the rest are accepted. `batch_id` grows per relay process run. */
export const TelemetryBatch = z.object({
  type: z.literal("telemetry_batch"),
  batch_id: Count,
  /** Relay clock when the frame was sent (ms), for latency measurement. */
  sent_at: z.number().optional(),
  updates: z.array(z.unknown()).max(LIMITS.batchUpdates * 2),
});
export type TelemetryBatch = z.infer<typeof TelemetryBatch>;

/** Most waypoints one intent carries: enough for the edge's 30 s prediction horizon many times
 * over, small enough that every sample may carry it. */
export const INTENT_MAX_WAYPOINTS = 32;

/**
 * What a drone is about to do, as its source knows it (R→E, on a telemetry update; additive:
 * updates without it stay valid). The edge predicts the drone along it before anything else
 * (its own record of acknowledged commands, then dead reckoning), and checks it against the
 * reported motion. The source sends its current intent with every sample that has one: a sample
 * without `intent` means the source knows none now.
 */
export const DroneIntent = z.object({
  /** Which route: a mission id, "patrol", a ROS topic. With `revision`, names one plan. */
  route_id: z.string().min(1).max(64),
  /** Changes whenever the route is replaced or restarted (a reloaded mission, a new command), not
   * when the drone merely progresses along it: a new revision invalidates what the edge stored. */
  revision: Count,
  /** The waypoints still to fly, in order, the first being the one flown to now; for a looping
   * patrol, unrolled as far as the source likes. Empty: the drone holds where it is. */
  waypoints: z.array(CheckedWaypoint).max(INTENT_MAX_WAYPOINTS),
  /** Ground speed the drone flies the route at, m/s (when it is not yet moving). */
  speed_mps: finite().min(0).max(200).optional(),
  /** Seconds the drone hovers where it is before flying on (a loiter at a waypoint). */
  hold_s: finite().min(0).max(86_400).optional(),
});
export type DroneIntent = z.infer<typeof DroneIntent>;

/** One item of `telemetry_batch.updates`: a sample, optionally with the drone's intent. */
export const TelemetryUpdate = TelemetrySample.extend({ intent: DroneIntent.optional() });
export type TelemetryUpdate = z.infer<typeof TelemetryUpdate>;

/**
 * The intent on a raw telemetry update, read apart from the sample: the sample is stored and fanned
 * out without it, the intent goes to collision avoidance. Null when there is none; `invalid` when
 * the update carries one that does not parse (the sample itself still counts: a bad plan must not
 * cost the drone its position).
 */
export function intentOf(update: unknown): DroneIntent | null | "invalid" {
  if (typeof update !== "object" || update === null || !("intent" in update)) return null;
  const raw = (update as { intent?: unknown }).intent;
  if (raw === undefined) return null;
  const r = DroneIntent.safeParse(raw);
  return r.success ? r.data : "invalid";
}

/** `timeout`: the drone-side service did not answer before the relay's own deadline (which ends before
 * the edge's), so the operator sees the final state `timeout` with the service named. */
export const COMMAND_RESULT_STATUSES = ["acked", "failed", "timeout"] as const;
/** R→E: the outcome of a `command` at the drone. Resent after a reconnect until acknowledged. */
export const CommandResult = z.object({
  type: z.literal("command_result"),
  command_id: CommandId,
  status: z.enum(COMMAND_RESULT_STATUSES),
  message: FreeText(1000).optional(),
});
export type CommandResult = z.infer<typeof CommandResult>;

export const PROGRESS_STATES = ["active", "completed", "failed", "aborted"] as const;
/** R→E: a mission's progress as the drone flies it. */
export const MissionProgress = z.object({
  type: z.literal("mission_progress"),
  mission_id: IdText(64),
  drone_id: DroneId,
  state: z.enum(PROGRESS_STATES),
  /** Index of the waypoint being flown to. */
  waypoint_index: Count.optional(),
  message: FreeText(500).optional(),
  ts: EpochMs,
});
export type MissionProgress = z.infer<typeof MissionProgress>;

export const RelayMessage = z.discriminatedUnion("type", [RelayHello, TelemetryBatch, Ping, CommandResult, MissionProgress]);
export type RelayMessage = z.infer<typeof RelayMessage>;

// ---------------------------------------------------------------- edge → relay (E→R)

/** E→R: the answer to `relay_hello`. */
export const HelloAck = z.object({
  type: z.literal("hello_ack"),
  fleet: z.string(),
  /** Highest seq the edge holds per drone, so a reconnecting relay can skip what is known. */
  last_seq: z.record(DroneId, z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
});
export type HelloAck = z.infer<typeof HelloAck>;

/** E→R: what became of one `telemetry_batch`, item by item. */
export const BatchAck = z.object({
  type: z.literal("batch_ack"),
  batch_id: Count,
  accepted: Count,
  duplicates: Count,
  rejected: Count,
  /** First few rejected items: index in `updates` and why. */
  errors: z.array(z.object({ index: Count, code: ErrorCode, message: z.string() })).max(LIMITS.batchAckErrors),
});
export type BatchAck = z.infer<typeof BatchAck>;

/** The commands a relay runs; `hold` is issued only by the edge's collision avoidance. */
export const RELAY_COMMANDS = ["modify_waypoint", "assign_mission", "emergency_land", "hold"] as const;
export type RelayCommandName = (typeof RELAY_COMMANDS)[number];

const commandBase = {
  type: z.literal("command"),
  command_id: CommandId,
  drone_id: DroneId,
  /** Relay clock is not trusted: the edge enforces the deadline; this is advice for the relay's own timeout. */
  timeout_ms: z.number().int().positive(),
};
/** E→R: run a command at a drone. The relay answers `command_result` (it may retry until the edge
 * sends `command_result_ack`). Waypoints are validated by the edge before they get here. */
export const RelayCommand = z.discriminatedUnion("command", [
  z.object({
    ...commandBase,
    command: z.literal("modify_waypoint"),
    new_waypoint: CheckedWaypoint,
    modification_reason: z.string(),
  }),
  z.object({
    ...commandBase,
    command: z.literal("assign_mission"),
    mission_id: z.string().min(1).max(64),
    waypoints: z.array(CheckedWaypoint).min(1).max(100),
    priority: MissionPriority,
  }),
  z.object({ ...commandBase, command: z.literal("emergency_land"), reason: z.string().optional() }),
  z.object({ ...commandBase, command: z.literal("hold"), duration_s: z.number().min(0).max(86_400) }),
]);
export type RelayCommand = z.infer<typeof RelayCommand>;

/** E→R: the edge has the relay's `command_result`; the relay may forget it. */
export const CommandResultAck = z.object({ type: z.literal("command_result_ack"), command_id: CommandId });
export type CommandResultAck = z.infer<typeof CommandResultAck>;

export const EdgeToRelay = z.discriminatedUnion("type", [HelloAck, BatchAck, Pong, RelayCommand, CommandResultAck, ErrorFrame]);
export type EdgeToRelay = z.infer<typeof EdgeToRelay>;

// ---------------------------------------------------------------- type lists and parsers

export const RELAY_TYPES = RelayMessage.options.map((o) => o.shape.type.value);
/** Every E→R frame type; the Record makes the list exhaustive at compile time. */
const EDGE_TO_RELAY_TYPE_SET: Record<EdgeToRelay["type"], true> = {
  hello_ack: true,
  batch_ack: true,
  pong: true,
  command: true,
  command_result_ack: true,
  error: true,
};
export const EDGE_TO_RELAY_TYPES = Object.keys(EDGE_TO_RELAY_TYPE_SET) as EdgeToRelay["type"][];

/** R→E, at the edge. */
export const parseRelayMessage = (raw: string) => parseFrame(RelayMessage, RELAY_TYPES, raw);

/** A failed E→R parse also carries the `command_id` of a bad `command` frame when it is readable,
 * so the relay can answer that command `failed` instead of leaving the edge to time it out. */
export type ParsedEdgeToRelay = Parsed<EdgeToRelay> | { ok: false; error: ErrorFrame; command_id: string };

/** E→R, at the relay. Never throws. */
export function parseEdgeToRelay(raw: string): ParsedEdgeToRelay {
  const r = parseFrame(EdgeToRelay, EDGE_TO_RELAY_TYPES, raw);
  if (r.ok || r.error.code === "bad_json") return r;
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return r;
  }
  const id = stringField(data, "command_id");
  return stringField(data, "type") === "command" && id !== undefined && COMMAND_ID_RE.test(id) ? { ...r, command_id: id } : r;
}

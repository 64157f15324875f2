/**
 * The wire protocol, defined once. Every frame between relay, edge and dashboards is a JSON text
 * frame with a `type` discriminant and snake_case fields. Relay and dashboard code import these
 * schemas; nothing here touches a runtime API, so it loads in workerd, Node and the browser.
 *
 * Direction is in each schema's comment: D→E dashboard to edge, E→D edge to dashboard,
 * R→E relay to edge, E→R edge to relay.
 */
import { z } from "zod";

/** Upper bounds that keep every queue and frame bounded. */
export const LIMITS = {
  /** Largest dashboard → edge frame; larger frames close the socket with 1009. */
  dashboardFrameBytes: 64 * 1024,
  /** Largest relay → edge frame. */
  relayFrameBytes: 1024 * 1024,
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
} as const;

export const DRONE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const FLEET_ID_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const DroneId = z.string().regex(DRONE_ID_RE, "drone id: 1-64 of A-Z a-z 0-9 _ . -");
const RequestId = z.string().min(1).max(128).optional();
const finite = () => z.number().refine(Number.isFinite, "must be a finite number");

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
  ts: z.number().int().min(0),
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
  mode: z.string().min(1).max(32),
  status: DroneStatus,
});
export type TelemetrySample = z.infer<typeof TelemetrySample>;

// ---------------------------------------------------------------- dashboard → edge (D→E)

/** D→E: choose the drones whose `telemetry` this socket receives. `batch: true` asks for
 * `telemetry_batch` frames (one per ingested relay frame) instead of one frame per update. */
export const SubscribeTelemetry = z.object({
  type: z.literal("subscribe_telemetry"),
  request_id: RequestId,
  drone_ids: z.union([z.literal("all"), z.array(DroneId).max(LIMITS.dronesPerFleet)]),
  batch: z.boolean().optional(),
});
/** D→E: stop telemetry for some drones, or all when drone_ids is absent or "all". */
export const UnsubscribeTelemetry = z.object({
  type: z.literal("unsubscribe_telemetry"),
  request_id: RequestId,
  drone_ids: z.union([z.literal("all"), z.array(DroneId).max(LIMITS.dronesPerFleet)]).optional(),
});
/** D→E and R→E: liveness probe, answered with `pong`. */
export const Ping = z.object({ type: z.literal("ping"), request_id: RequestId, ts: z.number().optional() });

// ---------------------------------------------------------------- operator commands (D→E)

/** A client-made id (UUID recommended); the same id never runs twice. */
export const CommandId = z.string().min(8).max(64).regex(/^[A-Za-z0-9_-]+$/, "command_id: 8-64 of A-Z a-z 0-9 _ -");
/** A 3D point. Range checks are safety rules (answered with a rule code), not schema errors. */
export const Waypoint = z.object({ lat: z.number(), lon: z.number(), alt_m: z.number() });
export type Waypoint = z.infer<typeof Waypoint>;
export const MISSION_PRIORITIES = ["low", "normal", "high", "critical"] as const;

/** D→E: move a drone's current target. Answered by `waypoint_modification_response`. */
export const ModifyWaypoint = z.object({
  type: z.literal("modify_waypoint"),
  command_id: CommandId,
  request_id: RequestId,
  drone_id: DroneId,
  new_waypoint: Waypoint,
  modification_reason: z.string().max(500).default(""),
});
/** D→E: give a mission to a drone, or let the edge choose one. Answered by `mission_assignment_response`. */
export const AssignMission = z.object({
  type: z.literal("assign_mission"),
  command_id: CommandId,
  request_id: RequestId,
  drone_id: DroneId.optional(),
  mission: z.object({
    waypoints: z.array(Waypoint).min(1).max(100),
    priority: z.enum(MISSION_PRIORITIES).default("normal"),
    /** Latest completion time, ms since the epoch. */
    deadline: z.number().int().positive().optional(),
  }),
});
/** D→E: land now where the drone is. Never rate-limited or queued. */
export const EmergencyLand = z.object({
  type: z.literal("emergency_land"),
  command_id: CommandId,
  request_id: RequestId,
  drone_id: DroneId,
  reason: z.string().max(500).optional(),
});
export const OVERRIDE_ACTIONS = ["dismiss", "vertical_separation", "hold", "lateral_reroute"] as const;
/** D→E: replace the strategy of a coordination event or dismiss it (operator or admin). */
export const CoordinationOverride = z.object({
  type: z.literal("coordination_override"),
  command_id: CommandId,
  request_id: RequestId,
  event_id: z.string().min(1).max(64),
  action: z.enum(OVERRIDE_ACTIONS),
  reason: z.string().max(500).optional(),
});

export const COMMAND_TYPES = ["modify_waypoint", "assign_mission", "emergency_land", "coordination_override"] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];
export type CommandMessage =
  | z.infer<typeof ModifyWaypoint>
  | z.infer<typeof AssignMission>
  | z.infer<typeof EmergencyLand>
  | z.infer<typeof CoordinationOverride>;

/** Ledger states: received → rejected | sent → acked | failed | timeout. */
export const COMMAND_STATES = ["received", "rejected", "sent", "acked", "failed", "timeout"] as const;
export type CommandState = (typeof COMMAND_STATES)[number];
export const FINAL_STATES: readonly CommandState[] = ["rejected", "acked", "failed", "timeout"];

export const DashboardMessage = z.discriminatedUnion("type", [
  SubscribeTelemetry,
  UnsubscribeTelemetry,
  Ping,
  ModifyWaypoint,
  AssignMission,
  EmergencyLand,
  CoordinationOverride,
]);
export type DashboardMessage = z.infer<typeof DashboardMessage>;

// ---------------------------------------------------------------- relay → edge (R→E)

/** R→E: first frame after connecting: who the relay is and which drones it serves. */
export const RelayHello = z.object({
  type: z.literal("relay_hello"),
  relay_id: z.string().min(1).max(128),
  source: z.enum(["sim", "ros2"]),
  version: z.string().max(64).optional(),
  drone_ids: z.array(DroneId).max(LIMITS.dronesPerFleet),
});
/** R→E: updates gathered over ≤100 ms. Items are checked one by one: bad items are counted and
 * reported in `batch_ack`, the rest are accepted. `batch_id` grows per relay process run. */
export const TelemetryBatch = z.object({
  type: z.literal("telemetry_batch"),
  batch_id: z.number().int().min(0),
  /** Relay clock when the frame was sent (ms), for latency measurement. */
  sent_at: z.number().optional(),
  updates: z.array(z.unknown()).max(LIMITS.batchUpdates * 2),
});

/** R→E: the outcome of a `command` at the drone. Resent after a reconnect until acknowledged. */
export const CommandResult = z.object({
  type: z.literal("command_result"),
  command_id: CommandId,
  status: z.enum(["acked", "failed"]),
  message: z.string().max(1000).optional(),
});
/** R→E: a mission's progress as the drone flies it. */
export const MissionProgress = z.object({
  type: z.literal("mission_progress"),
  mission_id: z.string().min(1).max(64),
  drone_id: DroneId,
  state: z.enum(["active", "completed", "failed", "aborted"]),
  /** Index of the waypoint being flown to. */
  waypoint_index: z.number().int().min(0).optional(),
  message: z.string().max(500).optional(),
  ts: z.number().int().min(0),
});

export const RelayMessage = z.discriminatedUnion("type", [RelayHello, TelemetryBatch, Ping, CommandResult, MissionProgress]);
export type RelayMessage = z.infer<typeof RelayMessage>;

// ---------------------------------------------------------------- edge → relay (E→R)

export type BatchAck = {
  type: "batch_ack";
  batch_id: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  /** First few rejected items: index in `updates` and why. */
  errors: { index: number; code: ErrorCode; message: string }[];
};
/** E→R: run a command at a drone. The relay answers `command_result` (it may retry until the edge
 * sends `command_result_ack`). Waypoints are validated by the edge before they get here. */
export type RelayCommand = {
  type: "command";
  command_id: string;
  drone_id: string;
  /** Relay clock is not trusted: the edge enforces the deadline; this is advice for the relay's own timeout. */
  timeout_ms: number;
} & (
  | { command: "modify_waypoint"; new_waypoint: Waypoint; modification_reason: string }
  | { command: "assign_mission"; mission_id: string; waypoints: Waypoint[]; priority: (typeof MISSION_PRIORITIES)[number] }
  | { command: "emergency_land"; reason?: string }
  | { command: "hold"; duration_s: number }
);
export type CommandResultAck = { type: "command_result_ack"; command_id: string };
export type HelloAck = {
  type: "hello_ack";
  fleet: string;
  /** Highest seq the edge holds per drone, so a reconnecting relay can skip what is known. */
  last_seq: Record<string, number>;
};

// ---------------------------------------------------------------- edge → dashboard (E→D)

export type DroneState = TelemetrySample & {
  /** Edge clock when the latest sample arrived (ms). */
  received_at: number;
  link: "live" | "stale";
};

export type FleetStatus = {
  type: "fleet_status";
  fleet: string;
  ts: number;
  relay_connected: boolean;
  counts: { total: number; live: number; stale: number; armed: number; flying: number; charging: number };
  drones: DroneState[];
  /** Coordination events still active. */
  coordination_events?: CoordinationEventView[];
  /** Present when the drone list is split over several frames (fleets over 1,000 drones). */
  part?: number;
  parts?: number;
};
export type TelemetryFrame = { type: "telemetry" } & TelemetrySample;
export type TelemetryBatchFrame = { type: "telemetry_batch"; updates: TelemetrySample[] };
export type LinkStatus =
  | { type: "link_status"; scope: "relay"; state: "up" | "down"; ts: number; relays: number }
  | { type: "link_status"; scope: "drone"; drone_id: string; state: "live" | "stale"; ts: number; last_seen: number };
export type Pong = { type: "pong"; request_id?: string; ts: number };
export type AlternativeSuggestion = { lat: number; lon: number; alt_m: number; reason: string };
export type CommandCandidate = { drone_id: string; score: number; eta_s: number; battery_after_pct: number; eligible: boolean; reasons: string[] };
/** Fields common to every command answer. `status` is the ledger state; `code` says why it failed. */
type CommandAnswer = {
  command_id: string;
  request_id?: string;
  success: boolean;
  status: CommandState;
  code?: string;
  message: string;
  /** True when this answers a repeated command_id with the first result. */
  duplicate?: boolean;
};
export type WaypointModificationResponse = CommandAnswer & {
  type: "waypoint_modification_response";
  drone_id: string;
  rule?: string;
  alternative_suggestions: AlternativeSuggestion[];
};
export type MissionAssignmentResponse = CommandAnswer & {
  type: "mission_assignment_response";
  drone_id: string | null;
  mission_id: string | null;
  candidates: CommandCandidate[];
};
export type EmergencyLandResponse = CommandAnswer & { type: "emergency_land_response"; drone_id: string };
export type CoordinationOverrideResponse = CommandAnswer & { type: "coordination_override_response"; event_id: string; action: string };
/** Answer to a `hold` the edge issued itself (collision avoidance); stored in the ledger only. */
export type HoldResponse = CommandAnswer & { type: "hold_response"; drone_id: string };
export type CommandResponse =
  | WaypointModificationResponse
  | MissionAssignmentResponse
  | EmergencyLandResponse
  | CoordinationOverrideResponse
  | HoldResponse;
/** Everything the ledger records: operator commands plus the edge's own holds. */
export type LedgerCommand = CommandType | "hold";
/** E→D: a ledger state change, sent to every dashboard so operators see commands until final. */
export type CommandStatusFrame = {
  type: "command_status";
  command_id: string;
  command: LedgerCommand;
  drone_id: string | null;
  status: CommandState;
  code?: string;
  message?: string;
  by: string;
  ts: number;
};
/** E→D: a mission changed. `update.type` keeps the seed's names (waypoint_modified, …). */
export type MissionUpdate = {
  type: "mission_update";
  drone_id: string;
  update:
    | { type: "waypoint_modified"; drone_id: string; new_waypoint: Waypoint; modification_reason: string; timestamp: string }
    | { type: "mission_assigned"; drone_id: string; mission_id: string; waypoints: Waypoint[]; priority: string; timestamp: string }
    | { type: "emergency_land"; drone_id: string; reason: string; timestamp: string }
    | { type: "mission_status"; drone_id: string; mission_id: string; status: string; timestamp: string; message?: string };
};
export const COORDINATION_EVENT_TYPES = ["head_on", "crossing", "overtaking", "converging", "geofence_proximity", "no_fly_proximity"] as const;
/** A coordination (collision-avoidance) event as dashboards see it. */
export type CoordinationEventView = {
  event_id: string;
  key: string;
  event_type: (typeof COORDINATION_EVENT_TYPES)[number];
  drone_ids: string[];
  detected_at: number;
  /** When the first resolution command left for the relay. */
  first_command_at: number | null;
  resolved_at: number | null;
  resolution_time_ms: number | null;
  strategy: "vertical_separation" | "hold" | "lateral_reroute" | "return_inside" | "dismissed";
  status: "active" | "resolved" | "dismissed" | "expired";
  overridden_by: string | null;
  override_reason: string | null;
  time_to_conflict_s: number;
  min_horizontal_m: number;
  min_vertical_m: number;
  attempts: number;
  last_attempt_at: number;
};
/** E→D: a coordination event opened, changed strategy or closed. */
export type CoordinationEventFrame = { type: "coordination_event"; event: CoordinationEventView };
export type Subscribed = { type: "subscribed"; request_id?: string; drone_ids: "all" | string[]; batch: boolean };

// ---------------------------------------------------------------- analytics (E→D)

/** How bad things are right now: emergency (a drone in emergency or at critical battery), warning
 * (any other alert active), normal. */
export type EmergencyStatus = "normal" | "warning" | "emergency";
/** The seed's live metrics, computed every 5 s with the fleet's real size. */
export type LiveAnalytics = {
  fleet: string;
  /** Edge clock, ms since the epoch, and the same instant as ISO 8601 (the seed's `timestamp`). */
  ts: number;
  timestamp: string;
  /** Live drones that are armed. */
  active_drones: number;
  /** Every drone the fleet object knows (live or stale): the fleet's size. */
  total_drones: number;
  live_drones: number;
  /** Mean battery of the live drones, 2 decimals (0 when none is live). */
  fleet_battery_average: number;
  /** Missions assigned to a drone or being flown. */
  active_missions: number;
  coordination_events_active: number;
  /** active_drones / total_drones × 100, 2 decimals. */
  fleet_utilization_percentage: number;
  emergency_status: EmergencyStatus;
  alerts_active: number;
};
/** E→D: live analytics, on the 5 s status tick. Additive: dashboards ignore fields they do not know. */
export type AnalyticsLiveFrame = { type: "analytics_live" } & LiveAnalytics;

export const ALERT_KINDS = ["battery_low", "battery_critical", "link_lost", "geofence_breach", "emergency"] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];
export type AlertSeverity = "warning" | "critical";
/** A threshold alert about one drone. `cleared_at` is null while the condition holds. */
export type AlertView = {
  alert_id: string;
  drone_id: string;
  kind: AlertKind;
  severity: AlertSeverity;
  message: string;
  /** The measured value when relevant (battery %, metres beyond the fence). */
  value: number | null;
  raised_at: number;
  cleared_at: number | null;
};
/** E→D: sent once when a drone enters an alert condition (`raised`) and once when it leaves it
 * (`cleared`), never repeated while the condition holds. Also stored and sent to Postgres. */
export type AlertFrame = { type: "alert"; state: "raised" | "cleared"; alert: AlertView };


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
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];
export type ErrorFrame = { type: "error"; code: ErrorCode; message: string; request_id?: string };

export type ServerMessage =
  | FleetStatus
  | TelemetryFrame
  | TelemetryBatchFrame
  | LinkStatus
  | Pong
  | Subscribed
  | CommandResponse
  | CommandStatusFrame
  | MissionUpdate
  | CoordinationEventFrame
  | AnalyticsLiveFrame
  | AlertFrame
  | ErrorFrame;
export type EdgeToRelay = HelloAck | BatchAck | Pong | RelayCommand | CommandResultAck | ErrorFrame;

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
  const requestId =
    typeof data === "object" && data !== null && typeof (data as { request_id?: unknown }).request_id === "string"
      ? ((data as { request_id: string }).request_id.slice(0, 128))
      : undefined;
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

/** A short, human-readable account of what failed validation. */
export function summarizeIssues(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

export const DASHBOARD_TYPES = DashboardMessage.options.map((o) => o.shape.type.value);
export const RELAY_TYPES = RelayMessage.options.map((o) => o.shape.type.value);

export const parseDashboardMessage = (raw: string) => parseFrame(DashboardMessage, DASHBOARD_TYPES, raw);
export const parseRelayMessage = (raw: string) => parseFrame(RelayMessage, RELAY_TYPES, raw);

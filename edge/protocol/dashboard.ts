/**
 * The dashboard's socket, both ways: D→E (dashboard to edge, `parseDashboardMessage`) and E→D
 * (edge to dashboard, `parseEdgeToDashboard`). Imports zod and ./common only.
 *
 * E→D objects strip keys they do not know (zod's default), so an edge that adds a field does not
 * break an older page; a frame whose `type` is unknown, or whose known fields are malformed, is
 * refused with a reason and the page ignores it.
 */
import * as z from "zod";
import {
  CheckedWaypoint,
  COMMAND_TYPES,
  CommandId,
  CommandState,
  type CommandType,
  Count,
  DroneId,
  EpochMs,
  ErrorFrame,
  FreeText,
  IdText,
  LedgerCommand,
  LIMITS,
  MissionPriority,
  MissionState,
  parseFrame,
  Ping,
  Pong,
  RequestId,
  stringField,
  TelemetrySample,
  Waypoint,
} from "./common";

// ---------------------------------------------------------------- dashboard → edge (D→E)

const DroneSelection = z.union([z.literal("all"), z.array(DroneId).max(LIMITS.dronesPerFleet)]);

/** Highest `max_rate_hz` a subscription may ask for; faster is the same as unthrottled. */
export const MAX_RATE_HZ = 100;

/** D→E: choose the drones whose `telemetry` this socket receives. `batch: true` asks for
 * `telemetry_batch` frames (one per ingested relay frame) instead of one frame per update.
 * `max_rate_hz` throttles the socket: at most that many telemetry rounds per second, each drone
 * once per round with its latest sample (latest-wins; the samples in between are not sent); 0
 * takes the throttle off. `batch` and `max_rate_hz` keep their previous value when absent. */
export const SubscribeTelemetry = z.object({
  type: z.literal("subscribe_telemetry"),
  request_id: RequestId,
  drone_ids: DroneSelection,
  batch: z.boolean().optional(),
  max_rate_hz: z.number().min(0).max(MAX_RATE_HZ).optional(),
});
/** D→E: stop telemetry for some drones, or all when drone_ids is absent or "all". */
export const UnsubscribeTelemetry = z.object({
  type: z.literal("unsubscribe_telemetry"),
  request_id: RequestId,
  drone_ids: DroneSelection.optional(),
});
/**
 * D→E: the answer to a `flow` frame, sent as soon as the page has handled every frame before it.
 * The edge cannot see how much a socket still buffers, so this is how it learns what a dashboard
 * has read: a socket more than the flow window behind gets latest-wins telemetry (`lagging`), and
 * one that stays behind is closed with 4002. Never rate-limited.
 */
export const FlowAck = z.object({ type: z.literal("flow_ack"), seq: Count });

// Commands. Each may come without `command_id` (a client written against the seed sends none):
// the edge then makes one (`edge-…`), runs the command once and answers with that id and
// `idempotent: false` — a retry without an id is a new command. Names and shapes a seed client
// plausibly sends are accepted beside ours and normalised here, at the boundary: waypoint
// spellings (lat|latitude, lon|lng|longitude, alt_m|alt|altitude) and assign_mission's flat form.

/** A refusal that names a missing field and what it must hold; zod's own message otherwise. */
const required = (what: string) => ({ error: (iss: { input?: unknown }) => (iss.input === undefined ? `required (${what})` : undefined) });
/** `schema`, with a message naming the field and its form when it is missing. */
const requiredAs = <S extends z.ZodType<unknown, string>>(schema: S, what: string) => z.string(required(what)).pipe(schema);

/** A client-made id (UUID recommended); absent: the edge makes one and the answer says `idempotent: false`. */
const OptionalCommandId = CommandId.optional();

/** The spellings of each waypoint field the edge accepts; the first is ours. */
export const WAYPOINT_SPELLINGS = { lat: ["lat", "latitude"], lon: ["lon", "lng", "longitude"], alt_m: ["alt_m", "alt", "altitude"] } as const;
type Spelling = (typeof WAYPOINT_SPELLINGS)[keyof typeof WAYPOINT_SPELLINGS][number];
const spellingShape = Object.fromEntries(Object.values(WAYPOINT_SPELLINGS).flat().map((k) => [k, z.number().optional()])) as Record<Spelling, z.ZodOptional<z.ZodNumber>>;

/**
 * A waypoint as a client sends it: `{lat, lon, alt_m}`, or the seed-plausible `alt`, `altitude`,
 * `latitude`, `longitude` (and `lng`), read as `{lat, lon, alt_m}`. Two spellings of one field are
 * taken when they agree and refused, naming both, when they do not. Range checks are safety rules
 * (answered with a rule code), not schema errors.
 */
export const WaypointInput = z.object(spellingShape, required("a point {lat, lon, alt_m}")).transform((v, ctx): Waypoint => {
  const out: Partial<Record<keyof typeof WAYPOINT_SPELLINGS, number>> = {};
  for (const [field, names] of Object.entries(WAYPOINT_SPELLINGS) as [keyof typeof WAYPOINT_SPELLINGS, readonly Spelling[]][]) {
    const given = names.filter((n) => v[n] !== undefined);
    const first = given[0];
    if (first === undefined) {
      ctx.issues.push({ code: "custom", path: [field], input: v, message: `required (${names.join(" or ")}, a number)` });
      continue;
    }
    const clash = given.find((n) => v[n] !== v[first]);
    if (clash !== undefined) {
      ctx.issues.push({ code: "custom", path: [clash], input: v, message: `${first} (${v[first]}) and ${clash} (${v[clash]}) disagree: send one of them` });
      continue;
    }
    out[field] = v[first];
  }
  const { lat, lon, alt_m } = out;
  return lat === undefined || lon === undefined || alt_m === undefined ? z.NEVER : { lat, lon, alt_m };
});

const CommandDroneId = requiredAs(DroneId, "the drone's id");
const MissionWaypoints = z.array(WaypointInput, required("a list of 1-100 points {lat, lon, alt_m}")).min(1).max(100);
/** Latest completion time, ms since the epoch. */
const Deadline = z.number().int().positive();

/** D→E: move a drone's current target. Answered by `waypoint_modification_response`. */
export const ModifyWaypoint = z.object({
  type: z.literal("modify_waypoint"),
  command_id: OptionalCommandId,
  request_id: RequestId,
  drone_id: CommandDroneId,
  new_waypoint: WaypointInput,
  modification_reason: FreeText(500).default(""),
});
/** The mission of an assign_mission. */
export const MissionBody = z.object({
  waypoints: MissionWaypoints,
  priority: MissionPriority.default("normal"),
  deadline: Deadline.optional(),
});
/**
 * D→E: give a mission to a drone, or let the edge choose one. Answered by
 * `mission_assignment_response`. The mission comes as `mission: {waypoints, priority?, deadline?}`
 * or, the seed-like flat form, as `waypoints`, `priority?`, `deadline?` beside `drone_id?`; both at
 * once is refused. Parsed, it is always `mission: {…}`.
 */
export const AssignMission = z
  .object({
    type: z.literal("assign_mission"),
    command_id: OptionalCommandId,
    request_id: RequestId,
    drone_id: DroneId.optional(),
    mission: MissionBody.optional(),
    waypoints: MissionWaypoints.optional(),
    priority: MissionPriority.optional(),
    deadline: Deadline.optional(),
  })
  .transform((v, ctx) => {
    const { mission, waypoints, priority, deadline, ...rest } = v;
    if (mission && (waypoints !== undefined || priority !== undefined || deadline !== undefined)) {
      ctx.issues.push({ code: "custom", path: ["mission"], input: v, message: "send the mission either as mission: {waypoints, priority?, deadline?} or as waypoints, priority?, deadline? at the top level, not both" });
      return z.NEVER;
    }
    if (mission) return { ...rest, mission };
    if (waypoints === undefined) {
      ctx.issues.push({ code: "custom", path: ["waypoints"], input: v, message: "required (waypoints: a list of 1-100 points {lat, lon, alt_m}, or mission: {waypoints, priority?, deadline?})" });
      return z.NEVER;
    }
    return { ...rest, mission: { waypoints, priority: priority ?? "normal", ...(deadline !== undefined ? { deadline } : {}) } };
  });
/** D→E: land now where the drone is. Never rate-limited or queued (operator or admin). */
export const EmergencyLand = z.object({
  type: z.literal("emergency_land"),
  command_id: OptionalCommandId,
  request_id: RequestId,
  drone_id: CommandDroneId,
  reason: FreeText(500).optional(),
});
export const OVERRIDE_ACTIONS = ["dismiss", "vertical_separation", "hold", "lateral_reroute"] as const;
/** D→E: replace the strategy of a coordination event or dismiss it (operator or admin). */
export const CoordinationOverride = z.object({
  type: z.literal("coordination_override"),
  command_id: OptionalCommandId,
  request_id: RequestId,
  event_id: requiredAs(IdText(64), "the coordination event's id, event.event_id of a coordination_event frame"),
  action: z.enum(OVERRIDE_ACTIONS, required(`one of ${OVERRIDE_ACTIONS.join(", ")}`)),
  reason: FreeText(500).optional(),
});

export const CommandMessage = z.discriminatedUnion("type", [ModifyWaypoint, AssignMission, EmergencyLand, CoordinationOverride]);
/** A command as the edge parses it: `command_id` may be absent (a seed-style client). */
export type ParsedCommand = z.infer<typeof CommandMessage>;
/** A command with its id: what the dashboard sends, and what the command desk works with once it
 * has given an id-less command one. */
export type CommandMessage = ParsedCommand & { command_id: string };

export const DashboardMessage = z.discriminatedUnion("type", [
  SubscribeTelemetry,
  UnsubscribeTelemetry,
  Ping,
  FlowAck,
  ModifyWaypoint,
  AssignMission,
  EmergencyLand,
  CoordinationOverride,
]);
/** A D→E frame as parsed (commands possibly without `command_id`). */
export type DashboardMessage = z.infer<typeof DashboardMessage>;

// ---------------------------------------------------------------- edge → dashboard (E→D): drones

export const LINK_STATES = ["live", "stale"] as const;
export const LinkState = z.enum(LINK_STATES);

/** A drone in `fleet_status`: its latest sample, when it arrived and the edge's link verdict. */
export const DroneState = TelemetrySample.extend({
  /** Edge clock when the latest sample arrived (ms). */
  received_at: EpochMs,
  link: LinkState,
});
export type DroneState = z.infer<typeof DroneState>;

export const FleetCounts = z.object({ total: Count, live: Count, stale: Count, armed: Count, flying: Count, charging: Count });

// ---------------------------------------------------------------- coordination (E→D)

export const COORDINATION_EVENT_TYPES = ["head_on", "crossing", "overtaking", "converging", "geofence_proximity", "no_fly_proximity"] as const;
export const COORDINATION_STRATEGIES = ["vertical_separation", "hold", "lateral_reroute", "return_inside", "dismissed"] as const;
export const COORDINATION_EVENT_STATES = ["active", "resolved", "dismissed", "expired"] as const;

/** A coordination (collision-avoidance) event as dashboards see it. */
export const CoordinationEventView = z.object({
  event_id: z.string().min(1).max(64),
  key: z.string(),
  event_type: z.enum(COORDINATION_EVENT_TYPES),
  drone_ids: z.array(DroneId),
  detected_at: EpochMs,
  /** When the first resolution command left for the relay. */
  first_command_at: EpochMs.nullable(),
  resolved_at: EpochMs.nullable(),
  resolution_time_ms: z.number().nullable(),
  strategy: z.enum(COORDINATION_STRATEGIES),
  status: z.enum(COORDINATION_EVENT_STATES),
  overridden_by: z.string().nullable(),
  override_reason: z.string().nullable(),
  time_to_conflict_s: z.number(),
  min_horizontal_m: z.number(),
  min_vertical_m: z.number(),
  attempts: Count,
  last_attempt_at: EpochMs,
});
export type CoordinationEventView = z.infer<typeof CoordinationEventView>;

/** E→D: a coordination event opened, changed strategy or closed. */
export const CoordinationEventFrame = z.object({ type: z.literal("coordination_event"), event: CoordinationEventView });
export type CoordinationEventFrame = z.infer<typeof CoordinationEventFrame>;

// ---------------------------------------------------------------- status and telemetry (E→D)

/** E→D (and GET /status): the fleet's drones and counts, every 5 s and on connect. */
export const FleetStatus = z.object({
  type: z.literal("fleet_status"),
  fleet: z.string(),
  ts: EpochMs,
  relay_connected: z.boolean(),
  counts: FleetCounts,
  drones: z.array(DroneState).max(LIMITS.dronesPerFleet),
  /** Coordination events still active. */
  coordination_events: z.array(CoordinationEventView).optional(),
  /** Present when the drone list is split over several frames (fleets over 1,000 drones). */
  part: z.number().int().min(1).optional(),
  parts: z.number().int().min(1).optional(),
});
export type FleetStatus = z.infer<typeof FleetStatus>;

/** E→D: one accepted sample, for sockets subscribed without `batch`. */
export const TelemetryFrame = TelemetrySample.extend({ type: z.literal("telemetry") });
export type TelemetryFrame = z.infer<typeof TelemetryFrame>;
/** E→D: the accepted samples of one relay frame (or the current state on subscribe). */
export const TelemetryBatchFrame = z.object({
  type: z.literal("telemetry_batch"),
  updates: z.array(TelemetrySample).max(LIMITS.dronesPerFleet),
});
export type TelemetryBatchFrame = z.infer<typeof TelemetryBatchFrame>;

/** E→D: a relay connected or left (`scope: relay`), or a drone went stale or came back. */
export const LinkStatus = z.discriminatedUnion("scope", [
  z.object({ type: z.literal("link_status"), scope: z.literal("relay"), state: z.enum(["up", "down"]), ts: EpochMs, relays: Count }),
  z.object({ type: z.literal("link_status"), scope: z.literal("drone"), drone_id: DroneId, state: LinkState, ts: EpochMs, last_seen: EpochMs }),
]);
export type LinkStatus = z.infer<typeof LinkStatus>;

/** E→D: the socket's telemetry subscription after `subscribe_telemetry` / `unsubscribe_telemetry`. */
export const Subscribed = z.object({
  type: z.literal("subscribed"),
  request_id: RequestId,
  drone_ids: DroneSelection,
  batch: z.boolean(),
  /** The socket's throttle; absent when unthrottled. */
  max_rate_hz: z.number().optional(),
});
export type Subscribed = z.infer<typeof Subscribed>;

/** E→D: flow control; answer with `flow_ack` carrying the same `seq` (see FlowAck). */
export const FlowFrame = z.object({ type: z.literal("flow"), seq: Count });
export type FlowFrame = z.infer<typeof FlowFrame>;
/**
 * E→D: this socket fell behind (`lagging`: more than the flow window unread) and now gets only the
 * latest sample per drone, once it has caught up (`caught_up`, followed by those samples). Big
 * periodic frames (fleet_status) are skipped while lagging. A socket still lagging after the lag
 * limit is closed with 4002. `conflated`: samples replaced by a newer one of the same drone
 * instead of being sent.
 */
export const LaggingFrame = z.object({
  type: z.literal("lagging"),
  state: z.enum(["lagging", "caught_up"]),
  ts: EpochMs,
  /** Drones whose latest sample waits for the socket. */
  pending: Count,
  conflated: Count,
  /** When lagging: how long the socket may stay behind before it is closed (ms). */
  close_after_ms: Count.optional(),
});
export type LaggingFrame = z.infer<typeof LaggingFrame>;

// ---------------------------------------------------------------- command answers (E→D)

/** A safe point near a rejected one, with why it is offered. */
export const AlternativeSuggestion = z.object({ lat: z.number(), lon: z.number(), alt_m: z.number(), reason: z.string() });
export type AlternativeSuggestion = z.infer<typeof AlternativeSuggestion>;
/** One drone ranked for a mission. */
export const CommandCandidate = z.object({
  drone_id: DroneId,
  score: z.number(),
  eta_s: z.number(),
  battery_after_pct: z.number(),
  eligible: z.boolean(),
  reasons: z.array(z.string()),
});
export type CommandCandidate = z.infer<typeof CommandCandidate>;

/**
 * Fields common to every command answer. `status` is the ledger state; `code` says why it failed.
 * Every refusal of a command, whatever went wrong (bad JSON inside a known command type, a
 * malformed field, a rate limit, a role that may not command, an unknown drone, no relay), comes
 * as that command's own response type with `success: false`; only a frame whose type cannot be
 * read at all is answered with a generic `error`.
 */
const commandAnswer = {
  /** The request's command_id, or the one the edge made when it carried none. */
  command_id: CommandId,
  request_id: RequestId,
  success: z.boolean(),
  status: CommandState,
  code: z.string().optional(),
  message: z.string(),
  /** Safe points near a refused one; empty where there are none. */
  alternative_suggestions: z.array(AlternativeSuggestion),
  /** True when this answers a repeated command_id with the first result. */
  duplicate: z.boolean().optional(),
  /** `false` when the request carried no command_id and the edge made this one: a retry without
   * an id runs again. Absent when the client's own id guards the command. */
  idempotent: z.boolean().optional(),
};
export const WaypointModificationResponse = z.object({
  ...commandAnswer,
  type: z.literal("waypoint_modification_response"),
  drone_id: z.string(),
  /** The safety rule that refused the waypoint. */
  rule: z.string().optional(),
});
export type WaypointModificationResponse = z.infer<typeof WaypointModificationResponse>;
export const MissionAssignmentResponse = z.object({
  ...commandAnswer,
  type: z.literal("mission_assignment_response"),
  drone_id: z.string().nullable(),
  mission_id: z.string().nullable(),
  candidates: z.array(CommandCandidate),
  /** Present when a waypoint broke a safety rule. */
  rule: z.string().optional(),
});
export type MissionAssignmentResponse = z.infer<typeof MissionAssignmentResponse>;
export const EmergencyLandResponse = z.object({ ...commandAnswer, type: z.literal("emergency_land_response"), drone_id: z.string() });
export type EmergencyLandResponse = z.infer<typeof EmergencyLandResponse>;
export const CoordinationOverrideResponse = z.object({
  ...commandAnswer,
  type: z.literal("coordination_override_response"),
  event_id: z.string(),
  action: z.string(),
});
export type CoordinationOverrideResponse = z.infer<typeof CoordinationOverrideResponse>;
/** Answer to a `hold` the edge issued itself (collision avoidance); stored in the ledger, and sent
 * only to a dashboard that repeats the hold's command_id. */
export const HoldResponse = z.object({ ...commandAnswer, type: z.literal("hold_response"), drone_id: z.string() });
export type HoldResponse = z.infer<typeof HoldResponse>;
export const CommandResponse = z.discriminatedUnion("type", [
  WaypointModificationResponse,
  MissionAssignmentResponse,
  EmergencyLandResponse,
  CoordinationOverrideResponse,
  HoldResponse,
]);
export type CommandResponse = z.infer<typeof CommandResponse>;

/** The answer type of each operator command. */
export const COMMAND_RESPONSE_TYPES = {
  modify_waypoint: "waypoint_modification_response",
  assign_mission: "mission_assignment_response",
  emergency_land: "emergency_land_response",
  coordination_override: "coordination_override_response",
} as const satisfies Record<CommandType, CommandResponse["type"]>;

/** What can be read of a command frame the edge cannot take whole, to answer it in its own type. */
export type CommandHead = {
  type: CommandType;
  command_id?: string;
  request_id?: string;
  drone_id?: string;
  event_id?: string;
  action?: string;
};

/**
 * The command type and ids of a frame that failed to parse (or was not parsed), so the refusal
 * can come as that command's answer with its ids echoed. Valid JSON is read as an object; text
 * that is not JSON (a truncated frame) is searched for its first `"type"` and the ids. Only ids of
 * a valid form are kept. Null when no command type can be read (or the frame is too large to
 * read): such a frame gets a generic `error`. Never throws.
 */
export function readCommandHead(raw: string): CommandHead | null {
  if (raw.length > LIMITS.dashboardFrameBytes) return null;
  let fields: (key: string) => string | undefined;
  try {
    const data: unknown = JSON.parse(raw);
    if (typeof data !== "object" || data === null || Array.isArray(data)) return null;
    fields = (key) => stringField(data, key);
  } catch {
    // Not JSON: the first value written for each key, if it is a plain string.
    fields = (key) => new RegExp(`"${key}"\\s*:\\s*"([^"\\\\]{1,128})"`).exec(raw)?.[1];
  }
  const type = fields("type");
  if (!(COMMAND_TYPES as readonly string[]).includes(type ?? "")) return null;
  const head: CommandHead = { type: type as CommandType };
  const valid = (key: keyof Omit<CommandHead, "type">, schema: z.ZodType<string>, max: number) => {
    const v = fields(key);
    if (v !== undefined && v.length <= max && schema.safeParse(v).success) head[key] = v;
  };
  valid("command_id", CommandId, 64);
  valid("request_id", IdText(128), 128);
  valid("drone_id", DroneId, 64);
  valid("event_id", IdText(64), 64);
  valid("action", z.enum(OVERRIDE_ACTIONS), 32);
  return head;
}

/** E→D: a ledger state change, sent to every dashboard so operators see commands until final. */
export const CommandStatusFrame = z.object({
  type: z.literal("command_status"),
  command_id: CommandId,
  command: LedgerCommand,
  drone_id: z.string().nullable(),
  status: CommandState,
  code: z.string().optional(),
  message: z.string().optional(),
  /** Token subject of the sender, or `coordinator:<event>` for the edge's own commands. */
  by: z.string(),
  ts: EpochMs,
});
export type CommandStatusFrame = z.infer<typeof CommandStatusFrame>;

/** E→D: a mission changed. `update.type` keeps the seed's names (waypoint_modified, …);
 * `timestamp` is ISO 8601. */
export const MissionUpdate = z.object({
  type: z.literal("mission_update"),
  drone_id: DroneId,
  update: z.discriminatedUnion("type", [
    z.object({ type: z.literal("waypoint_modified"), drone_id: DroneId, new_waypoint: CheckedWaypoint, modification_reason: z.string(), timestamp: z.string() }),
    z.object({
      type: z.literal("mission_assigned"),
      drone_id: DroneId,
      mission_id: z.string(),
      waypoints: z.array(CheckedWaypoint),
      /** One of MISSION_PRIORITIES (the mission store keeps it as text). */
      priority: z.string(),
      timestamp: z.string(),
    }),
    z.object({ type: z.literal("emergency_land"), drone_id: DroneId, reason: z.string(), timestamp: z.string() }),
    z.object({
      type: z.literal("mission_status"),
      drone_id: DroneId,
      mission_id: z.string(),
      status: MissionState,
      timestamp: z.string(),
      message: z.string().optional(),
    }),
  ]),
});
export type MissionUpdate = z.infer<typeof MissionUpdate>;

// ---------------------------------------------------------------- analytics (E→D)

/** How bad things are right now: emergency (a drone in emergency or at critical battery), warning
 * (any other alert active), normal. */
export const EMERGENCY_STATUSES = ["normal", "warning", "emergency"] as const;
export const EmergencyStatus = z.enum(EMERGENCY_STATUSES);
export type EmergencyStatus = z.infer<typeof EmergencyStatus>;

/** The seed's live metrics, computed every 5 s with the fleet's real size. */
export const LiveAnalytics = z.object({
  fleet: z.string(),
  /** Edge clock, ms since the epoch, and the same instant as ISO 8601 (the seed's `timestamp`). */
  ts: EpochMs,
  timestamp: z.string(),
  /** Live drones that are armed. */
  active_drones: Count,
  /** Every drone the fleet object knows (live or stale): the fleet's size. */
  total_drones: Count,
  live_drones: Count,
  /** Mean battery of the live drones, 2 decimals (0 when none is live). */
  fleet_battery_average: z.number(),
  /** Missions assigned to a drone or being flown. */
  active_missions: Count,
  coordination_events_active: Count,
  /** active_drones / total_drones × 100, 2 decimals. */
  fleet_utilization_percentage: z.number(),
  emergency_status: EmergencyStatus,
  alerts_active: Count,
});
export type LiveAnalytics = z.infer<typeof LiveAnalytics>;
/** E→D: live analytics, on the 5 s status tick. Additive: dashboards ignore fields they do not know. */
export const AnalyticsLiveFrame = LiveAnalytics.extend({ type: z.literal("analytics_live") });
export type AnalyticsLiveFrame = z.infer<typeof AnalyticsLiveFrame>;

/** `coordination_unresolved`: collision avoidance cannot resolve a conflict of this drone (the
 * message says why); `airspace_saturated`: fleet-wide (drone_id "fleet"), too many conflicts to
 * resolve calmly, new take-offs are held (edge/fleet/collision-avoidance.ts). */
export const ALERT_KINDS = ["battery_low", "battery_critical", "link_lost", "geofence_breach", "emergency", "coordination_unresolved", "airspace_saturated"] as const;
export const AlertKind = z.enum(ALERT_KINDS);
export type AlertKind = z.infer<typeof AlertKind>;
export const ALERT_SEVERITIES = ["warning", "critical"] as const;
export const AlertSeverity = z.enum(ALERT_SEVERITIES);
export type AlertSeverity = z.infer<typeof AlertSeverity>;
/** A threshold alert about one drone. `cleared_at` is null while the condition holds. */
export const AlertView = z.object({
  alert_id: z.string(),
  drone_id: DroneId,
  kind: AlertKind,
  severity: AlertSeverity,
  message: z.string(),
  /** The measured value when relevant (battery %, metres beyond the fence). */
  value: z.number().nullable(),
  raised_at: EpochMs,
  cleared_at: EpochMs.nullable(),
});
export type AlertView = z.infer<typeof AlertView>;
/** E→D: sent once when a drone enters an alert condition (`raised`) and once when it leaves it
 * (`cleared`), never repeated while the condition holds. Also stored and sent to Postgres. */
export const AlertFrame = z.object({ type: z.literal("alert"), state: z.enum(["raised", "cleared"]), alert: AlertView });
export type AlertFrame = z.infer<typeof AlertFrame>;
/** E→D: the alert changes of one tick when there are more than LIMITS.alertFramesMax (one frame
 * for a thousand drones whose relay went away, not a thousand). */
export const AlertsFrame = z.object({ type: z.literal("alerts"), raised: z.array(AlertView), cleared: z.array(AlertView) });
export type AlertsFrame = z.infer<typeof AlertsFrame>;

// ---------------------------------------------------------------- the E→D union and parsers

export const ServerMessage = z.discriminatedUnion("type", [
  FleetStatus,
  TelemetryFrame,
  TelemetryBatchFrame,
  LinkStatus,
  Pong,
  Subscribed,
  CommandResponse,
  CommandStatusFrame,
  MissionUpdate,
  CoordinationEventFrame,
  AnalyticsLiveFrame,
  AlertFrame,
  AlertsFrame,
  FlowFrame,
  LaggingFrame,
  ErrorFrame,
]);
/** Every frame the edge sends a dashboard. */
export type ServerMessage = z.infer<typeof ServerMessage>;
/** The same union under its direction's name. */
export const EdgeToDashboard = ServerMessage;
export type EdgeToDashboard = ServerMessage;

/** Every D→E frame type; the Record makes the list exhaustive at compile time. */
const DASHBOARD_TYPE_SET: Record<DashboardMessage["type"], true> = {
  subscribe_telemetry: true,
  unsubscribe_telemetry: true,
  ping: true,
  flow_ack: true,
  modify_waypoint: true,
  assign_mission: true,
  emergency_land: true,
  coordination_override: true,
};
export const DASHBOARD_TYPES = Object.keys(DASHBOARD_TYPE_SET) as DashboardMessage["type"][];
/** Every E→D frame type; the Record makes the list exhaustive at compile time. */
const EDGE_TO_DASHBOARD_TYPE_SET: Record<ServerMessage["type"], true> = {
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
  alerts: true,
  flow: true,
  lagging: true,
  error: true,
};
export const EDGE_TO_DASHBOARD_TYPES = Object.keys(EDGE_TO_DASHBOARD_TYPE_SET) as ServerMessage["type"][];

/** D→E, at the edge. */
export const parseDashboardMessage = (raw: string) => parseFrame(DashboardMessage, DASHBOARD_TYPES, raw);
/** E→D, at the dashboard. Never throws. */
export const parseEdgeToDashboard = (raw: string) => parseFrame(ServerMessage, EDGE_TO_DASHBOARD_TYPES, raw);

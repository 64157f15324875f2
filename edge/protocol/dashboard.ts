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
  CommandId,
  CommandState,
  Count,
  DroneId,
  EpochMs,
  ErrorFrame,
  LedgerCommand,
  LIMITS,
  MissionPriority,
  MissionState,
  parseFrame,
  Ping,
  Pong,
  RequestId,
  TelemetrySample,
  Waypoint,
} from "./common";

// ---------------------------------------------------------------- dashboard → edge (D→E)

const DroneSelection = z.union([z.literal("all"), z.array(DroneId).max(LIMITS.dronesPerFleet)]);

/** D→E: choose the drones whose `telemetry` this socket receives. `batch: true` asks for
 * `telemetry_batch` frames (one per ingested relay frame) instead of one frame per update. */
export const SubscribeTelemetry = z.object({
  type: z.literal("subscribe_telemetry"),
  request_id: RequestId,
  drone_ids: DroneSelection,
  batch: z.boolean().optional(),
});
/** D→E: stop telemetry for some drones, or all when drone_ids is absent or "all". */
export const UnsubscribeTelemetry = z.object({
  type: z.literal("unsubscribe_telemetry"),
  request_id: RequestId,
  drone_ids: DroneSelection.optional(),
});

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
    priority: MissionPriority.default("normal"),
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

export const CommandMessage = z.discriminatedUnion("type", [ModifyWaypoint, AssignMission, EmergencyLand, CoordinationOverride]);
export type CommandMessage = z.infer<typeof CommandMessage>;

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
});
export type Subscribed = z.infer<typeof Subscribed>;

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

/** Fields common to every command answer. `status` is the ledger state; `code` says why it failed. */
const commandAnswer = {
  command_id: CommandId,
  request_id: RequestId,
  success: z.boolean(),
  status: CommandState,
  code: z.string().optional(),
  message: z.string(),
  /** True when this answers a repeated command_id with the first result. */
  duplicate: z.boolean().optional(),
};
export const WaypointModificationResponse = z.object({
  ...commandAnswer,
  type: z.literal("waypoint_modification_response"),
  drone_id: z.string(),
  /** The safety rule that refused the waypoint. */
  rule: z.string().optional(),
  alternative_suggestions: z.array(AlternativeSuggestion),
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
  alternative_suggestions: z.array(AlternativeSuggestion).optional(),
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

export const ALERT_KINDS = ["battery_low", "battery_critical", "link_lost", "geofence_breach", "emergency"] as const;
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
  ErrorFrame,
]);
/** Every frame the edge sends a dashboard. */
export type ServerMessage = z.infer<typeof ServerMessage>;
/** The same union under its direction's name. */
export const EdgeToDashboard = ServerMessage;
export type EdgeToDashboard = ServerMessage;

export const DASHBOARD_TYPES = DashboardMessage.options.map((o) => o.shape.type.value);
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
  error: true,
};
export const EDGE_TO_DASHBOARD_TYPES = Object.keys(EDGE_TO_DASHBOARD_TYPE_SET) as ServerMessage["type"][];

/** D→E, at the edge. */
export const parseDashboardMessage = (raw: string) => parseFrame(DashboardMessage, DASHBOARD_TYPES, raw);
/** E→D, at the dashboard. Never throws. */
export const parseEdgeToDashboard = (raw: string) => parseFrame(ServerMessage, EDGE_TO_DASHBOARD_TYPES, raw);

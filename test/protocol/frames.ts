/**
 * Frames as the edge builds them, for the protocol tests. Where a pure domain function makes a
 * frame's content (fleet_status from LiveState, analytics_live from computeLiveMetrics, candidates
 * from rankCandidates, suggestions from validateWaypoint) it is used, so a change there that the
 * schema does not accept fails here; the rest copy the literal the sender writes (named per frame).
 * test/edge/fuzz.test.ts checks the same against a live fleet object's sockets.
 */
import { rankCandidates } from "../../edge/domain/assign";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import { computeLiveMetrics } from "../../edge/domain/live-metrics";
import { LiveState } from "../../edge/domain/live-state";
import { validateWaypoint } from "../../edge/domain/safety";
import type { AlertView, CoordinationEventView, TelemetrySample } from "../../edge/protocol";

export const T0 = 1_800_000_000_000;

export function sample(id: string, seq: number, over: Partial<TelemetrySample> = {}): TelemetrySample {
  return { drone_id: id, seq, ts: T0 + seq, lat: 47.3977, lon: 8.5456, alt_m: 40, heading_deg: 90, speed_mps: 5, climb_mps: 0.5, battery_pct: 80, armed: true, mode: "AUTO.MISSION", status: "flying", ...over };
}

/** A live state holding a few drones, one of them stale. */
export function liveState(): LiveState {
  const s = new LiveState();
  s.ingest(sample("d1", 1), T0);
  s.ingest(sample("d2", 7, { status: "charging", armed: false, battery_pct: 12 }), T0);
  s.ingest(sample("old", 3), T0 - 60_000);
  s.sweepStale(T0);
  return s;
}

export const event: CoordinationEventView = {
  event_id: "ev-mf1x2y3z-1a2b3c4d",
  key: "d1|d2",
  event_type: "head_on",
  drone_ids: ["d1", "d2"],
  detected_at: T0,
  first_command_at: T0,
  resolved_at: null,
  resolution_time_ms: null,
  strategy: "vertical_separation",
  status: "active",
  overridden_by: null,
  override_reason: null,
  time_to_conflict_s: 12.5,
  min_horizontal_m: 3.2,
  min_vertical_m: 0,
  attempts: 1,
  last_attempt_at: T0,
};

export const alert: AlertView = { alert_id: "al-mf1x2y3z-1a2b3c4d", drone_id: "d2", kind: "battery_critical", severity: "critical", message: "d2 battery at 12 %", value: 12, raised_at: T0, cleared_at: null };

const wp = { lat: 47.398, lon: 8.546, alt_m: 40 };

/** Every frame type the edge sends a dashboard, at least once, as the senders build them. */
export function edgeToDashboardFrames(): { name: string; frame: unknown }[] {
  const live = liveState();
  const config = defaultFleetConfig();
  const status = { ...live.status("fleet-a", true, T0), coordination_events: [event] };
  const metrics = computeLiveMetrics({ fleet: "fleet-a", now: T0, drones: live.records(), activeMissions: 1, activeCoordinationEvents: 1, activeAlerts: [alert] });
  const candidates = rankCandidates({
    drones: [...live.records()].map((r) => ({ ...r.sample, link: r.link, busy: false, busy_priority: undefined })),
    mission: { waypoints: [wp], priority: "normal" },
    config,
    now: T0,
  });
  const refused = validateWaypoint({ drone: sample("d1", 1), target: { lat: 48.5, lon: 8.5456, alt_m: 40 }, config, others: [] });
  if (refused.ok) throw new Error("expected the far waypoint to be refused");
  const base = { command_id: "cmd-00000001", success: false, status: "rejected" as const, code: "safety_violation", message: refused.message };
  return [
    { name: "fleet_status (fleet-hub statusSnapshot)", frame: status },
    { name: "fleet_status part (fleet-hub statusFrames)", frame: { ...status, part: 1, parts: 2, drones: status.drones.slice(0, 1) } },
    { name: "telemetry (fleet-hub fanOutTo)", frame: { type: "telemetry", ...sample("d1", 2) } },
    { name: "telemetry_batch (fleet-hub fanOutTo)", frame: { type: "telemetry_batch", updates: [sample("d1", 2), sample("d2", 8)] } },
    { name: "link_status relay", frame: { type: "link_status", scope: "relay", state: "down", ts: T0, relays: 0 } },
    { name: "link_status drone", frame: { type: "link_status", scope: "drone", drone_id: "old", state: "stale", ts: T0, last_seen: T0 - 60_000 } },
    { name: "pong", frame: { type: "pong", request_id: "p-1", ts: T0 } },
    { name: "pong without request_id", frame: { type: "pong", ts: T0 } },
    { name: "subscribed all", frame: { type: "subscribed", request_id: "subscribe", drone_ids: "all", batch: true } },
    { name: "subscribed list", frame: { type: "subscribed", drone_ids: ["d1"], batch: false } },
    { name: "subscribed throttled (fan-out max_rate_hz)", frame: { type: "subscribed", drone_ids: "all", batch: true, max_rate_hz: 2 } },
    { name: "flow (flow-control marker)", frame: { type: "flow", seq: 1_800_000_000_042 } },
    { name: "lagging", frame: { type: "lagging", state: "lagging", ts: T0, pending: 0, conflated: 0, close_after_ms: 30_000 } },
    { name: "lagging caught_up", frame: { type: "lagging", state: "caught_up", ts: T0, pending: 12, conflated: 340 } },
    { name: "waypoint_modification_response refused", frame: { ...base, type: "waypoint_modification_response", drone_id: "d1", rule: refused.rule, alternative_suggestions: refused.alternative_suggestions } },
    { name: "waypoint_modification_response acked, repeated", frame: { command_id: "cmd-00000002", success: true, status: "acked", message: "acknowledged by the drone", type: "waypoint_modification_response", drone_id: "d1", alternative_suggestions: [], request_id: "r-2", duplicate: true } },
    { name: "mission_assignment_response", frame: { command_id: "cmd-00000003", success: true, status: "acked", message: "ok", type: "mission_assignment_response", drone_id: "d1", mission_id: "m-cmd-00000003", candidates, alternative_suggestions: [] } },
    { name: "mission_assignment_response refused by safety", frame: { ...base, type: "mission_assignment_response", drone_id: null, mission_id: null, candidates: [], rule: refused.rule, alternative_suggestions: refused.alternative_suggestions } },
    { name: "emergency_land_response", frame: { command_id: "cmd-00000004", success: false, status: "timeout", code: "timeout", message: "no answer", type: "emergency_land_response", drone_id: "d1", alternative_suggestions: [] } },
    { name: "emergency_land_response to a command without command_id", frame: { command_id: "edge-0b9e7c1e-4a2f-4a51-9d0e-2f6f1c3b8a77", success: true, status: "acked", message: "acknowledged by the drone", type: "emergency_land_response", drone_id: "drone_1", alternative_suggestions: [], idempotent: false } },
    { name: "emergency_land_response refusing a malformed frame (CommandDesk.refuseFrame)", frame: { command_id: "cmd-00000006", request_id: "r-6", success: false, status: "rejected", code: "invalid_message", message: "emergency_land: drone_id: required (the drone's id)", type: "emergency_land_response", drone_id: "", alternative_suggestions: [] } },
    { name: "coordination_override_response", frame: { command_id: "cmd-00000005", success: false, status: "rejected", code: "unknown_event", message: "no coordination event ev-x", type: "coordination_override_response", event_id: "ev-x", action: "hold", alternative_suggestions: [] } },
    { name: "hold_response", frame: { command_id: "sys-mf1x2y3z-0123456789ab", success: true, status: "acked", message: "ok", type: "hold_response", drone_id: "d1", alternative_suggestions: [], duplicate: true } },
    { name: "command_status (command-desk status)", frame: { type: "command_status", command_id: "sys-mf1x2y3z-0123456789ab", command: "hold", drone_id: "d1", status: "sent", by: "coordinator:ev-1", ts: T0 } },
    { name: "command_status final", frame: { type: "command_status", command_id: "cmd-00000001", command: "assign_mission", drone_id: null, status: "rejected", by: "op", ts: T0, code: "no_candidate", message: "no drone can fly this mission now" } },
    { name: "mission_update waypoint_modified", frame: { type: "mission_update", drone_id: "d1", update: { type: "waypoint_modified", drone_id: "d1", new_waypoint: wp, modification_reason: "", timestamp: new Date(T0).toISOString() } } },
    { name: "mission_update mission_assigned", frame: { type: "mission_update", drone_id: "d1", update: { type: "mission_assigned", drone_id: "d1", mission_id: "m-1", waypoints: [wp, wp], priority: "high", timestamp: new Date(T0).toISOString() } } },
    { name: "mission_update emergency_land", frame: { type: "mission_update", drone_id: "d1", update: { type: "emergency_land", drone_id: "d1", reason: "operator", timestamp: new Date(T0).toISOString() } } },
    { name: "mission_update mission_status", frame: { type: "mission_update", drone_id: "d1", update: { type: "mission_status", drone_id: "d1", mission_id: "m-1", status: "completed", timestamp: new Date(T0).toISOString(), message: "done" } } },
    { name: "coordination_event", frame: { type: "coordination_event", event } },
    { name: "coordination_event closed", frame: { type: "coordination_event", event: { ...event, status: "resolved", resolved_at: T0 + 4000, resolution_time_ms: 4000 } } },
    { name: "analytics_live (FleetAnalytics.tick)", frame: { type: "analytics_live", ...metrics } },
    { name: "alert raised", frame: { type: "alert", state: "raised", alert } },
    { name: "alert cleared", frame: { type: "alert", state: "cleared", alert: { ...alert, cleared_at: T0 + 5000 } } },
    { name: "alerts of one tick", frame: { type: "alerts", raised: [alert, { ...alert, alert_id: "al-2", drone_id: "d2" }], cleared: [{ ...alert, alert_id: "al-3", cleared_at: T0 + 5000 }] } },
    { name: "error", frame: { type: "error", code: "invalid_message", message: "modify_waypoint: drone_id: Invalid", request_id: "r-9" } },
  ];
}

/** Every frame type the edge sends a relay, as the senders build them. */
export function edgeToRelayFrames(): { name: string; frame: unknown }[] {
  const cmd = { type: "command", command_id: "cmd-00000001", drone_id: "d1", timeout_ms: 4500 };
  return [
    { name: "hello_ack", frame: { type: "hello_ack", fleet: "fleet-a", last_seq: liveState().lastSeq() } },
    { name: "hello_ack empty", frame: { type: "hello_ack", fleet: "fleet-a", last_seq: {} } },
    { name: "batch_ack", frame: { type: "batch_ack", batch_id: 3, accepted: 2, duplicates: 1, rejected: 1, errors: [{ index: 3, code: "invalid_item", message: "lat: Too big" }] } },
    { name: "pong", frame: { type: "pong", request_id: "p", ts: T0 } },
    { name: "command modify_waypoint", frame: { ...cmd, command: "modify_waypoint", new_waypoint: wp, modification_reason: "" } },
    { name: "command assign_mission", frame: { ...cmd, command: "assign_mission", mission_id: "m-cmd-00000001", waypoints: [wp], priority: "normal" } },
    { name: "command emergency_land", frame: { ...cmd, command: "emergency_land", reason: "operator" } },
    { name: "command emergency_land without reason", frame: { ...cmd, command: "emergency_land" } },
    { name: "command hold (collision avoidance)", frame: { ...cmd, command_id: "sys-mf1x2y3z-0123456789ab", command: "hold", duration_s: 8 } },
    { name: "command_result_ack", frame: { type: "command_result_ack", command_id: "cmd-00000001" } },
    { name: "error", frame: { type: "error", code: "unknown_type", message: 'unknown message type "x"' } },
  ];
}

/** REST bodies: what the Worker answers parses with the schemas the dashboard reads them by. */
import { describe, expect, it } from "vitest";
import { computeLiveMetrics } from "../../edge/domain/live-metrics";
import {
  AlertsBody,
  AnalyticsLiveBody,
  CommandsBody,
  CoordinationBody,
  CoordinationReplayBody,
  DeadLettersBody,
  ErrorBody,
  HourlyBody,
  InsightsBody,
  MissionsBody,
  parseRestBody,
  StatusBody,
} from "../../edge/protocol";
import { alert, event, liveState, T0 } from "./frames";

const iso = (t: number) => new Date(t).toISOString();
const range = { fleet: "fleet-a", from: iso(T0 - 86_400_000), to: iso(T0) };
const liveMetrics = computeLiveMetrics({ fleet: "fleet-a", now: T0, drones: liveState().records(), activeMissions: 0, activeCoordinationEvents: 0, activeAlerts: [alert] });

/** [schema, body as the route answers it, where it is built]. */
const bodies = [
  [StatusBody, { ...liveState().status("fleet-a", false, T0), coordination_events: [] }, "FleetHub.statusSnapshot"],
  [
    CommandsBody,
    {
      commands: [
        { command_id: "cmd-00000001", command: "modify_waypoint", drone_id: "d1", sub: "op", role: "operator", status: "acked", code: null, message: "acknowledged by the drone", relay_id: "relay-1", received_at: T0, sent_at: T0 + 2, finished_at: T0 + 40, deadline_at: T0 + 5002, params: { drone_id: "d1", new_waypoint: { lat: 1, lon: 2, alt_m: 30 }, modification_reason: "" }, latency_ms: 40 },
        { command_id: "cmd-00000002", command: "assign_mission", drone_id: null, sub: "op", role: "operator", status: "rejected", code: "no_candidate", message: "no drone", relay_id: null, received_at: T0, sent_at: null, finished_at: T0, deadline_at: null, params: {}, latency_ms: 0 },
        { command_id: "sys-mf1x2y3z-0123456789ab", command: "hold", drone_id: "d2", sub: "coordinator:ev-1", role: "system", status: "sent", code: null, message: null, relay_id: "relay-1", received_at: T0, sent_at: T0, finished_at: null, deadline_at: T0 + 5000, params: { duration_s: 8 }, latency_ms: null },
      ],
    },
    "CommandLedger.list",
  ],
  [
    MissionsBody,
    { missions: [{ mission_id: "m-cmd-00000003", drone_id: "d1", command_id: "cmd-00000003", status: "active", priority: "normal", waypoints: [{ lat: 47.39, lon: 8.54, alt_m: 40 }], waypoint_index: 0, created_at: T0, assigned_at: T0 + 40, started_at: T0 + 900, completed_at: null, message: null }] },
    "MissionStore.list",
  ],
  [CoordinationBody, { events: [event], last_pass: { ms: 0.734, drones: 2, conflicts: 1, at: T0 } }, "FleetHub /coordination"],
  [CoordinationReplayBody, { event, tracks: { d1: [{ t: T0, lat: 47.39, lon: 8.54, alt_m: 40 }] } }, "Coordinator.replay"],
  [
    AnalyticsLiveBody,
    {
      // The seed's flat fields at the top level, and the same nested in `metrics`.
      ...liveMetrics,
      fleet: "fleet-a",
      metrics: liveMetrics,
      alerts: [alert],
      outbox: {
        pending: { mission: 0, command_audit: 2, snapshot: 14 },
        snapshots_thinned: 0,
        metrics_thinned: 0,
        dead_letters: 1,
        dead_letters_total: 3,
        database: "configured",
        last_flush: { status: "ok", rows: 3, batches: 1, ms: 12, remaining: 0, dead_lettered: 1, at: T0 },
      },
    },
    "routes/analytics.ts /analytics/live",
  ],
  [
    DeadLettersBody,
    {
      fleet: "fleet-a",
      dead_letters: [{ id: 3, kind: "coordination_event", key: "ev-1", body: { event_id: "ev-1", resolution_time_ms: 3e9 }, error: 'value "3000000000" is out of range for type integer', queued_at: T0, dead_at: T0 + 60_000 }],
      kept: 1,
      total: 3,
      dropped: 2,
    },
    "routes/analytics.ts /analytics/dead-letters",
  ],
  [
    HourlyBody,
    { ...range, hours: [{ hour: iso(T0 - 3_600_000), missions_completed: 3, avg_duration_minutes: 12.5, avg_duration: 12.5, coordination: { head_on: { count: 1, avg_resolution_ms: 800 } }, coordination_head_on_count: 1, coordination_head_on_avg_resolution: 800, trends: { missions_completed: { value: 3, previous_hour_value: 2, previous_hour_change_pct: 50, yesterday_value: null, yesterday_change_pct: null } } }] },
    "postgres/reads.ts readHourly",
  ],
  [InsightsBody, { ...range, insights: [{ hour: iso(T0 - 3_600_000), rule: "battery_drain", subject: "d1", severity: "warning", message: "d1 drained fast", data: { pct_per_h: 40 }, created_at: iso(T0) }] }, "postgres/reads.ts readInsights"],
  [AlertsBody, { ...range, alerts: [{ alert_id: "al-1", drone_id: "d1", kind: "link_lost", severity: "critical", message: "silent", value: null, raised_at: iso(T0), cleared_at: null }] }, "postgres/reads.ts readAlerts"],
  [ErrorBody, { error: { code: "invalid_config", message: "floor_m: must be below", errors: ["floor_m: must be below"] } }, "FleetHub.putConfig"],
] as const;

describe("REST bodies", () => {
  it.each(bodies.map(([schema, body, where]) => ({ schema, body, where })))("accepts $where as answered", ({ schema, body }) => {
    const json: unknown = JSON.parse(JSON.stringify(body));
    const r = parseRestBody(schema, json);
    if (!r.ok) throw new Error(r.message);
    expect(r.value).toEqual(json);
  });

  it("refuses a body of the wrong shape with a reason, never throwing", () => {
    expect(parseRestBody(MissionsBody, { missions: [{ mission_id: "m" }] })).toMatchObject({ ok: false, message: expect.stringMatching(/missions\.0\./) });
    expect(parseRestBody(CommandsBody, null).ok).toBe(false);
    expect(parseRestBody(StatusBody, "<html>").ok).toBe(false);
    expect(parseRestBody(ErrorBody, { error: "nope" }).ok).toBe(false);
  });
});

/**
 * The dashboard's pure logic, without a browser: reading server frames, the reconnect delay,
 * merging fleet_status parts and telemetry, plans from mission_update, the command ledger as the
 * page tracks it, and reading the analytics routes' JSON.
 */
import { describe, expect, it } from "vitest";
import type { CommandStatusFrame, CoordinationEventView, DroneState, FleetStatus, TelemetrySample, WaypointModificationResponse } from "../../edge/protocol";
import { parseHourly, toAlertView } from "../../web/src/analytics-data";
import { backoffDelay, parseServerFrame } from "../../web/src/frames";
import { CommandLog, FleetModel, isNewer, type AuditLike } from "../../web/src/model";

const T0 = 1_800_000_000_000;

function sample(id: string, seq: number, over: Partial<TelemetrySample> = {}): TelemetrySample {
  return { drone_id: id, seq, ts: T0 + seq * 1000, lat: 47.3977 + seq * 1e-5, lon: 8.5456, alt_m: 40, heading_deg: 90, speed_mps: 5, battery_pct: 80, armed: true, mode: "AUTO.MISSION", status: "flying", ...over };
}

function state(id: string, seq: number, receivedAt: number, link: "live" | "stale" = "live"): DroneState {
  return { ...sample(id, seq), received_at: receivedAt, link };
}

function status(drones: DroneState[], over: Partial<FleetStatus> = {}): FleetStatus {
  return {
    type: "fleet_status",
    fleet: "f",
    ts: T0,
    relay_connected: true,
    counts: { total: drones.length, live: drones.length, stale: 0, armed: drones.length, flying: drones.length, charging: 0 },
    drones,
    ...over,
  };
}

describe("server frames and reconnect delay", () => {
  it("accepts known frame types and ignores the rest without throwing", () => {
    expect(parseServerFrame(JSON.stringify({ type: "pong", ts: 1 }))).toEqual({ type: "pong", ts: 1 });
    expect(parseServerFrame(JSON.stringify({ type: "analytics_live", total_drones: 3 }))?.type).toBe("analytics_live");
    expect(parseServerFrame(JSON.stringify({ type: "from_the_future" }))).toBeNull();
    expect(parseServerFrame(JSON.stringify({ type: "toString" }))).toBeNull();
    expect(parseServerFrame("{not json")).toBeNull();
    expect(parseServerFrame("42")).toBeNull();
    expect(parseServerFrame(JSON.stringify({ no: "type" }))).toBeNull();
  });

  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelay(0, 500, 15_000, () => 0)).toBe(250);
    expect(backoffDelay(0, 500, 15_000, () => 1)).toBe(500);
    expect(backoffDelay(3, 500, 15_000, () => 1)).toBe(4_000);
    for (let a = 0; a < 40; a++) {
      const d = backoffDelay(a);
      expect(d).toBeGreaterThanOrEqual(Math.min(15_000, 500 * 2 ** a) / 2);
      expect(d).toBeLessThanOrEqual(15_000);
    }
    expect(backoffDelay(1_000, 500, 15_000, () => 0)).toBe(7_500);
  });
});

describe("FleetModel", () => {
  it("keeps the newest sample per drone and a bounded trail", () => {
    const m = new FleetModel();
    expect(m.applySample(sample("a", 2), T0)).toBe(true);
    expect(m.applySample(sample("a", 1), T0 + 10)).toBe(false);
    expect(m.applySample(sample("a", 2), T0 + 20)).toBe(false);
    expect(m.applySample(sample("a", 3), T0 + 30)).toBe(true);
    expect(m.drones.get("a")!.sample.seq).toBe(3);
    expect(m.drones.get("a")!.trail).toHaveLength(2);
    // A restarted counter with a much later timestamp is new data.
    expect(isNewer(sample("a", 0, { ts: T0 + 3_600_000 }), sample("a", 3))).toBe(true);
    for (let i = 4; i < 1000; i++) m.applySample(sample("a", i), T0 + i);
    expect(m.drones.get("a")!.trail.length).toBeLessThanOrEqual(600);
    m.pruneTrails(T0 + 10 * 60_000);
    expect(m.drones.get("a")!.trail).toHaveLength(0);
  });

  it("turns a drone stale after 15 s without data, or when the edge says so", () => {
    const m = new FleetModel();
    m.applySample(sample("a", 1), T0);
    const d = m.drones.get("a")!;
    expect(m.isStale(d, T0 + 14_000)).toBe(false);
    expect(m.isStale(d, T0 + 16_000)).toBe(true);
    m.applyLink({ type: "link_status", scope: "drone", drone_id: "a", state: "stale", ts: T0, last_seen: T0 }, T0);
    expect(m.isStale(d, T0 + 1)).toBe(true);
    expect(m.liveCounts(T0 + 1)).toMatchObject({ total: 1, live: 0, stale: 1, armed: 1, flying: 1 });
  });

  it("ages fleet_status entries by the edge's clock, not the browser's", () => {
    const m = new FleetModel();
    // The browser clock runs 1 h ahead; the sample reached the edge 2 s before the frame was made.
    m.applyStatus(status([state("a", 1, T0 - 2_000)]), T0 + 3_600_000);
    expect(T0 + 3_600_000 - m.drones.get("a")!.seenAt).toBe(2_000);
  });

  it("merges a split fleet_status only when every part arrived", () => {
    const m = new FleetModel();
    m.applyStatus(status([state("old", 1, T0)]), T0);
    expect(m.applyStatus(status([state("a", 1, T0)], { ts: T0 + 5000, part: 1, parts: 2 }), T0 + 5000)).toBe(false);
    // Mid-snapshot nothing is dropped yet.
    expect([...m.drones.keys()].sort()).toEqual(["a", "old"]);
    expect(m.applyStatus(status([state("b", 1, T0)], { ts: T0 + 5000, part: 2, parts: 2 }), T0 + 5000)).toBe(true);
    expect([...m.drones.keys()].sort()).toEqual(["a", "b"]);
    // A new snapshot restarts the collection: a part of another ts does not complete it.
    expect(m.applyStatus(status([state("a", 2, T0)], { ts: T0 + 10_000, part: 1, parts: 2 }), T0 + 10_000)).toBe(false);
    expect(m.applyStatus(status([state("b", 2, T0)], { ts: T0 + 15_000, part: 2, parts: 2 }), T0 + 15_000)).toBe(false);
    expect(m.applyStatus(status([state("a", 3, T0)], { ts: T0 + 15_000, part: 1, parts: 2 }), T0 + 15_000)).toBe(true);
  });

  it("does not let an older fleet_status entry overwrite newer telemetry", () => {
    const m = new FleetModel();
    m.applySample(sample("a", 5), T0);
    m.applyStatus(status([state("a", 4, T0, "stale")]), T0);
    expect(m.drones.get("a")!.sample.seq).toBe(5);
    expect(m.drones.get("a")!.link).toBe("stale");
  });

  it("follows plans through mission_update", () => {
    const m = new FleetModel();
    const wp = (lat: number) => ({ lat, lon: 8.5, alt_m: 40 });
    const ts = new Date(T0).toISOString();
    m.applyMissionUpdate({ type: "mission_update", drone_id: "a", update: { type: "waypoint_modified", drone_id: "a", new_waypoint: wp(1), modification_reason: "", timestamp: ts } }, T0);
    expect(m.plans.get("a")).toMatchObject({ kind: "waypoint", waypoints: [wp(1)] });
    m.applyMissionUpdate({ type: "mission_update", drone_id: "a", update: { type: "mission_assigned", drone_id: "a", mission_id: "m1", waypoints: [wp(2), wp(3)], priority: "normal", timestamp: ts } }, T0);
    expect(m.plans.get("a")).toMatchObject({ kind: "mission", mission_id: "m1", index: 0 });
    // On a mission, a new waypoint replaces the one being flown to; the rest stays.
    m.applyMissionUpdate({ type: "mission_update", drone_id: "a", update: { type: "waypoint_modified", drone_id: "a", new_waypoint: wp(9), modification_reason: "", timestamp: ts } }, T0);
    expect(m.plans.get("a")!.waypoints).toEqual([wp(9), wp(3)]);
    m.applyMissionUpdate({ type: "mission_update", drone_id: "a", update: { type: "mission_status", drone_id: "a", mission_id: "other", status: "completed", timestamp: ts } }, T0);
    expect(m.plans.has("a")).toBe(true);
    m.applyMissionUpdate({ type: "mission_update", drone_id: "a", update: { type: "mission_status", drone_id: "a", mission_id: "m1", status: "completed", timestamp: ts } }, T0);
    expect(m.plans.has("a")).toBe(false);
  });

  it("keeps coordination events current from frames and fleet_status", () => {
    const m = new FleetModel();
    const ev = (id: string, st: CoordinationEventView["status"], at = T0): CoordinationEventView => ({
      event_id: id, key: id, event_type: "head_on", drone_ids: ["a", "b"], detected_at: at, first_command_at: null, resolved_at: null, resolution_time_ms: null,
      strategy: "vertical_separation", status: st, overridden_by: null, override_reason: null, time_to_conflict_s: 20, min_horizontal_m: 5, min_vertical_m: 0, attempts: 1, last_attempt_at: at,
    });
    m.applyEvent(ev("e1", "active"));
    m.applyEvent(ev("e2", "active"));
    expect(m.activeEvents().map((e) => e.event_id).sort()).toEqual(["e1", "e2"]);
    // fleet_status lists only e2 as active: e1 ended while no frame said so.
    m.applyStatus(status([], { coordination_events: [ev("e2", "active")] }), T0);
    expect(m.activeEvents().map((e) => e.event_id)).toEqual(["e2"]);
    expect(m.events.get("e1")!.status).toBe("expired");
    m.applyEvent(ev("e2", "resolved"));
    expect(m.activeEvents()).toEqual([]);
    for (let i = 0; i < 100; i++) m.applyEvent(ev(`old${i}`, "resolved", T0 - 1000 + i));
    expect(m.events.size).toBeLessThanOrEqual(30);
  });

  it("rebuilds waypoint plans from the command audit for a page opened later", () => {
    const m = new FleetModel();
    const row = (id: string, drone: string, command: AuditLike["command"], at: number, params: unknown): AuditLike => ({
      command_id: id, command, drone_id: drone, sub: "op", status: "acked", code: null, message: null, received_at: at, sent_at: at, finished_at: at + 5, params,
    });
    m.setWaypointPlansFromAudit(
      [
        row("1", "a", "modify_waypoint", T0, { new_waypoint: { lat: 1, lon: 2, alt_m: 30 } }),
        row("2", "b", "modify_waypoint", T0, { new_waypoint: { lat: 1, lon: 2, alt_m: 30 } }),
        row("3", "b", "emergency_land", T0 + 1, {}),
      ],
      T0,
    );
    expect(m.plans.get("a")?.waypoints).toEqual([{ lat: 1, lon: 2, alt_m: 30 }]);
    expect(m.plans.has("b")).toBe(false);
  });
});

describe("CommandLog", () => {
  const statusFrame = (id: string, s: CommandStatusFrame["status"], over: Partial<CommandStatusFrame> = {}): CommandStatusFrame => ({
    type: "command_status", command_id: id, command: "modify_waypoint", drone_id: "a", status: s, by: "op", ts: T0, ...over,
  });

  it("moves a command forward to its final state and never back", () => {
    const log = new CommandLog();
    log.track({ command_id: "c1", command: "modify_waypoint", drone_id: "a", summary: "waypoint" }, T0);
    expect(log.items.get("c1")!.status).toBe("pending");
    log.applyStatus(statusFrame("c1", "sent"), T0 + 5);
    const response: WaypointModificationResponse = { type: "waypoint_modification_response", command_id: "c1", drone_id: "a", success: true, status: "acked", message: "ok", alternative_suggestions: [] };
    log.applyResponse(response, T0 + 30);
    log.applyStatus(statusFrame("c1", "acked"), T0 + 31);
    log.applyStatus(statusFrame("c1", "sent"), T0 + 40); // late and out of order
    const t = log.items.get("c1")!;
    expect(t.status).toBe("acked");
    expect(t.history.map((h) => h.status)).toEqual(["pending", "sent", "acked"]);
    expect(t.response).toEqual(response);
  });

  it("records other dashboards' commands and commands that could not be sent", () => {
    const log = new CommandLog();
    log.applyStatus(statusFrame("other", "rejected", { code: "safety_violation", message: "geofence" }), T0);
    expect(log.items.get("other")).toMatchObject({ mine: false, status: "rejected", code: "safety_violation" });
    log.track({ command_id: "c2", command: "emergency_land", drone_id: "a", summary: "" }, T0 + 1);
    log.failLocally("c2", "not connected", T0 + 1);
    expect(log.items.get("c2")).toMatchObject({ status: "failed", code: "not_sent" });
    expect(log.list()[0]!.command_id).toBe("c2");
  });

  it("catches up from the audit after a reconnect and keeps its size bounded", () => {
    const log = new CommandLog();
    log.track({ command_id: "open", command: "modify_waypoint", drone_id: "a", summary: "" }, T0);
    log.applyStatus(statusFrame("open", "sent"), T0);
    const audit = (id: string, s: string): AuditLike => ({ command_id: id, command: "modify_waypoint", drone_id: "a", sub: "op", status: s, code: s === "timeout" ? "timeout" : null, message: null, received_at: T0, sent_at: T0, finished_at: T0 + 5000 });
    log.mergeAudit([audit("open", "timeout"), audit("seen-elsewhere", "acked")], T0 + 6000);
    expect(log.items.get("open")).toMatchObject({ status: "timeout", code: "timeout" });
    expect(log.items.get("seen-elsewhere")!.history.map((h) => h.status)).toEqual(["received", "sent", "acked"]);
    for (let i = 0; i < 200; i++) log.applyStatus(statusFrame(`x${i}`, "acked"), T0 + i);
    expect(log.items.size).toBeLessThanOrEqual(60);
  });
});

describe("analytics JSON", () => {
  it("reads hourly rows with ISO hours, numeric strings and trends", () => {
    const rows = parseHourly({
      fleet: "f",
      from: "2026-11-27T00:00:00.000Z",
      hours: [
        { hour: "2026-11-27T09:00:00.000Z", missions_completed: 3, avg_duration_minutes: "12.5", coordination: { head_on: { count: 1 } }, trends: { missions_completed: { value: 3, previous_hour_change_pct: 50, yesterday_change_pct: null } } },
        { hour: "2026-11-27T08:00:00.000Z", missionsCompleted: 2, fleet_utilization_percentage: null },
        { no_hour: 1 },
      ],
    });
    expect(rows.map((r) => new Date(r.hour).toISOString())).toEqual(["2026-11-27T08:00:00.000Z", "2026-11-27T09:00:00.000Z"]);
    expect(rows[0]!.values).toEqual({ missions_completed: 2 });
    expect(rows[1]!.values).toEqual({ missions_completed: 3, avg_duration_minutes: 12.5 });
    expect(rows[1]!.trends.missions_completed).toEqual({ value: 3, previous_hour_change_pct: 50, yesterday_change_pct: null });
  });

  it("reads alerts from Postgres rows and from the fleet object alike", () => {
    const fromPg = toAlertView({ alert_id: "x", drone_id: "d1", kind: "battery_low", severity: "warning", message: "low", value: 28.5, raised_at: "2026-11-27T09:00:00.000Z", cleared_at: null });
    expect(fromPg).toMatchObject({ alert_id: "x", raised_at: Date.parse("2026-11-27T09:00:00.000Z"), cleared_at: null, value: 28.5 });
    const fromHub = toAlertView({ alert_id: "y", drone_id: "d1", kind: "link_lost", severity: "critical", message: "silent", value: null, raised_at: T0, cleared_at: T0 + 5 });
    expect(fromHub).toMatchObject({ raised_at: T0, cleared_at: T0 + 5, severity: "critical" });
    expect(toAlertView({ alert_id: "z", drone_id: "d1", kind: "made_up", severity: "warning", message: "", raised_at: T0 })).toBeNull();
    expect(toAlertView(null)).toBeNull();
  });
});

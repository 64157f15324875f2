/**
 * The dashboard's pure logic, without a browser: reading server frames, the reconnect delay,
 * merging fleet_status parts and telemetry (ordered by seq, as at the edge), plans from
 * mission_update, the command ledger as the page tracks it, reading the analytics routes' JSON,
 * the words for a drone of unknown state, what each alert kind tells the operator, and what the
 * page does on each close code (renew the token, slow down) and the codes it closes with itself.
 */
import { describe, expect, it } from "vitest";
import { computeLiveMetrics } from "../../edge/domain/live-metrics";
import { LiveState } from "../../edge/domain/live-state";
import {
  AlertsBody,
  HourlyBody,
  isNewerSample,
  parseRestBody,
  type CommandState,
  type CommandStatusFrame,
  type CoordinationEventView,
  type DroneState,
  type FleetStatus,
  type TelemetrySample,
  type WaypointModificationResponse,
} from "../../edge/protocol";
import { parseHourly, toAlertView } from "../../web/src/analytics-data";
import { backoffDelay, parseServerFrame } from "../../web/src/frames";
import {
  choiceFromQuery,
  effectiveBaseMap,
  latOf,
  lonOf,
  makeBaseMap,
  MAX_LAT,
  metresPerPixel,
  NO_BASEMAP,
  parseChoice,
  serializeChoice,
  templateProblem,
  TILE_PX,
  tilesInView,
  tileUrl,
  tileZoomFor,
  worldX,
  worldY,
} from "../../web/src/basemap";
import { declutter } from "../../web/src/declutter";
import { rowWindow } from "../../web/src/virtual";
import { CommandLog, FleetModel, type AuditLike } from "../../web/src/model";
import { sessionFromMe } from "../../web/src/identity";
import { ALERT_KINDS, CLOSE_CODES, type AlertView } from "../../edge/protocol";
import { isAirborne } from "../../edge/domain/drone";
import { signToken } from "../../edge/worker/auth";
import { describeAlert, FLEET_ALERT_ID, parseUnresolved } from "../../web/src/alert-text";
import { CLIENT_CLOSE_CODES, closeAction, MIN_RATE_HZ, slowerRate } from "../../web/src/frames";
import { STATUS_COLORS, stateView, UNKNOWN_STATE_COLOR } from "../../web/src/drone-state";
import { checkRenewal } from "../../web/src/identity";

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
  it("accepts frames as the edge sends them and ignores the rest with a warning, without throwing", () => {
    const warnings: string[] = [];
    const parse = (raw: string) => parseServerFrame(raw, (m) => warnings.push(m));
    expect(parse(JSON.stringify({ type: "pong", ts: 1 }))).toEqual({ type: "pong", ts: 1 });
    const live = new LiveState();
    live.ingest(sample("a", 1), T0);
    const metrics = computeLiveMetrics({ fleet: "f", now: T0, drones: live.records(), activeMissions: 0, activeCoordinationEvents: 0, activeAlerts: [] });
    expect(parse(JSON.stringify({ type: "analytics_live", ...metrics }))).toEqual({ type: "analytics_live", ...metrics });
    expect(parse(JSON.stringify(live.status("f", true, T0)))?.type).toBe("fleet_status");
    expect(warnings).toEqual([]);
    // A known type with malformed fields is not trusted any more than an unknown one.
    for (const raw of [
      JSON.stringify({ type: "analytics_live", total_drones: 3 }),
      JSON.stringify({ type: "telemetry", ...sample("a", 2), lat: "north" }),
      JSON.stringify({ type: "from_the_future" }),
      JSON.stringify({ type: "toString" }),
      "{not json",
      "42",
      JSON.stringify({ no: "type" }),
    ]) {
      expect(parse(raw), raw).toBeNull();
    }
    expect(warnings.join("\n")).toMatch(/invalid_message\): analytics_live: /);
    expect(warnings.join("\n")).toMatch(/unknown_type\): unknown message type "from_the_future"/);
    // The same problem again warns once, not at every frame.
    const n = warnings.length;
    parse(JSON.stringify({ type: "from_the_future" }));
    expect(warnings).toHaveLength(n);
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
    for (let i = 4; i < 1000; i++) m.applySample(sample("a", i), T0 + i);
    expect(m.drones.get("a")!.trail.length).toBeLessThanOrEqual(600);
    m.pruneTrails(T0 + 10 * 60_000);
    expect(m.drones.get("a")!.trail).toHaveLength(0);
  });

  it("orders samples by seq, as the edge does, never by time", () => {
    const m = new FleetModel();
    m.applySample(sample("a", 10), T0);
    // A higher seq wins even when its relay timestamp is older (the relay's clock stepped back).
    expect(m.applySample(sample("a", 11, { ts: T0 - 60_000 }), T0 + 10)).toBe(true);
    expect(m.drones.get("a")!.sample.seq).toBe(11);
    // A lower seq is dropped however much later its timestamp: the edge would have dropped it too.
    expect(m.applySample(sample("a", 5, { ts: T0 + 3_600_000 }), T0 + 20)).toBe(false);
    expect(m.drones.get("a")!.sample.seq).toBe(11);
    // fleet_status entries follow the same rule.
    m.applyStatus(status([{ ...state("a", 4, T0), ts: T0 + 7_200_000 }]), T0 + 30);
    expect(m.drones.get("a")!.sample.seq).toBe(11);
    // The page and the edge's live state agree sample by sample.
    const edge = new LiveState();
    const page = new FleetModel();
    const arrivals = [sample("b", 3), sample("b", 1, { ts: T0 + 99_999 }), sample("b", 7, { ts: T0 - 5 }), sample("b", 7), sample("b", 6), sample("b", 8)];
    for (const [i, s] of arrivals.entries()) {
      const held = edge.get("b")?.sample;
      expect(page.applySample(s, T0 + i), `arrival ${i}`).toBe(edge.ingest(s, T0 + i).outcome === "accepted");
      expect(isNewerSample(s, held), `arrival ${i}`).toBe(page.drones.get("b")!.sample === s);
    }
    expect(page.drones.get("b")!.sample).toEqual(edge.get("b")!.sample);
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
    const audit = (id: string, s: CommandState): AuditLike => ({ command_id: id, command: "modify_waypoint", drone_id: "a", sub: "op", status: s, code: s === "timeout" ? "timeout" : null, message: null, received_at: T0, sent_at: T0, finished_at: T0 + 5000, params: {} });
    log.mergeAudit([audit("open", "timeout"), audit("seen-elsewhere", "acked")], T0 + 6000);
    expect(log.items.get("open")).toMatchObject({ status: "timeout", code: "timeout" });
    expect(log.items.get("seen-elsewhere")!.history.map((h) => h.status)).toEqual(["received", "sent", "acked"]);
    for (let i = 0; i < 200; i++) log.applyStatus(statusFrame(`x${i}`, "acked"), T0 + i);
    expect(log.items.size).toBeLessThanOrEqual(60);
  });
});

describe("analytics JSON", () => {
  it("reads hourly rows with ISO hours, numeric strings and trends", () => {
    const body = parseRestBody(HourlyBody, {
      fleet: "f",
      from: "2026-11-27T00:00:00.000Z",
      to: "2026-11-28T00:00:00.000Z",
      hours: [
        { hour: "2026-11-27T09:00:00.000Z", missions_completed: 3, avg_duration_minutes: "12.5", coordination: { head_on: { count: 1 } }, trends: { missions_completed: { value: 3, previous_hour_change_pct: 50, yesterday_change_pct: null } } },
        { hour: "2026-11-27T08:00:00.000Z", missions_completed: 2, fleet_utilization_percentage: null, trends: {} },
      ],
    });
    if (!body.ok) throw new Error(body.message);
    const rows = parseHourly(body.value.hours);
    expect(rows.map((r) => new Date(r.hour).toISOString())).toEqual(["2026-11-27T08:00:00.000Z", "2026-11-27T09:00:00.000Z"]);
    expect(rows[0]!.values).toEqual({ missions_completed: 2 });
    expect(rows[1]!.values).toEqual({ missions_completed: 3, avg_duration_minutes: 12.5 });
    expect(rows[1]!.trends.missions_completed).toEqual({ value: 3, previous_hour_change_pct: 50, yesterday_change_pct: null });
    // A row without its hour is not an hourly body: the page shows the route as failed instead.
    expect(parseRestBody(HourlyBody, { fleet: "f", from: "", to: "", hours: [{ no_hour: 1, trends: {} }] }).ok).toBe(false);
  });

  it("reads alerts from Postgres rows as the alert frames carry them", () => {
    const body = parseRestBody(AlertsBody, {
      fleet: "f",
      from: "2026-11-27T00:00:00.000Z",
      to: "2026-11-28T00:00:00.000Z",
      alerts: [
        { alert_id: "x", drone_id: "d1", kind: "battery_low", severity: "warning", message: "low", value: 28.5, raised_at: "2026-11-27T09:00:00.000Z", cleared_at: null },
        { alert_id: "y", drone_id: "d1", kind: "link_lost", severity: "critical", message: "silent", value: null, raised_at: "2026-11-27T09:00:00.000Z", cleared_at: "2026-11-27T09:05:00.000Z" },
      ],
    });
    if (!body.ok) throw new Error(body.message);
    const [low, lost] = body.value.alerts.map(toAlertView);
    expect(low).toEqual({ alert_id: "x", drone_id: "d1", kind: "battery_low", severity: "warning", message: "low", value: 28.5, raised_at: Date.parse("2026-11-27T09:00:00.000Z"), cleared_at: null });
    expect(lost).toMatchObject({ raised_at: Date.parse("2026-11-27T09:00:00.000Z"), cleared_at: Date.parse("2026-11-27T09:05:00.000Z"), severity: "critical" });
    expect(toAlertView({ ...body.value.alerts[0]!, raised_at: "yesterday" })).toBeNull();
    // A kind this page does not know is refused with the body, as for frames.
    expect(parseRestBody(AlertsBody, { fleet: "f", from: "", to: "", alerts: [{ ...body.value.alerts[0]!, kind: "made_up" }] }).ok).toBe(false);
  });
});

describe("FleetModel at fleet scale", () => {
  it("sorts ids naturally and only when the set of drones changed", () => {
    const m = new FleetModel();
    for (const id of ["drone_10", "drone_2", "drone_1"]) m.applySample(sample(id, 1), T0);
    const first = m.sortedIds();
    expect(first).toEqual(["drone_1", "drone_2", "drone_10"]);
    m.applySample(sample("drone_2", 2), T0 + 1000);
    expect(m.sortedIds()).toBe(first); // same array: no re-sort for a new sample
    m.applySample(sample("drone_3", 1), T0 + 1000);
    expect(m.sortedIds()).toEqual(["drone_1", "drone_2", "drone_3", "drone_10"]);
    m.applyStatus(status([state("drone_1", 5, T0)]), T0 + 2000);
    expect(m.sortedIds()).toEqual(["drone_1"]);
  });

  it("moves eventsVersion for events only, not for telemetry", () => {
    const m = new FleetModel();
    const v = m.eventsVersion;
    m.applySample(sample("a", 1), T0);
    expect(m.eventsVersion).toBe(v);
    m.applyEvent({ event_id: "e1", event_type: "separation_conflict", status: "active", drone_ids: ["a", "b"] } as unknown as CoordinationEventView);
    expect(m.eventsVersion).toBeGreaterThan(v);
  });
});

describe("base map: Web Mercator and tiles", () => {
  it("projects as slippy-map tile servers do", () => {
    // Zurich at zoom 16: tile 34323/22944 by OpenStreetMap's formula, ytile = (1 − asinh(tan φ)/π)/2 · 2^z.
    const z = 16;
    expect(Math.floor(worldX(8.5456) * 2 ** z)).toBe(34323);
    expect(Math.floor(worldY(47.3977) * 2 ** z)).toBe(22944);
    expect(worldX(-180)).toBe(0);
    expect(worldY(0)).toBeCloseTo(0.5, 12);
    expect(worldY(MAX_LAT)).toBeCloseTo(0, 9);
    for (const lat of [-60, -1.5, 0, 47.3977, 85]) expect(latOf(worldY(lat))).toBeCloseTo(lat, 9);
    for (const lon of [-179.9, 0, 8.5456, 179.9]) expect(lonOf(worldX(lon))).toBeCloseTo(lon, 9);
    // ~1.6 m per pixel at 47.4° N, zoom 16.
    expect(metresPerPixel(47.4, TILE_PX * 2 ** 16)).toBeCloseTo(1.6168, 3);
  });

  it("lists the tiles covering a view, in whole pixels without seams, wrapping the antimeridian", () => {
    const view = { cx: (34323 + 0.5) / 2 ** 16, cy: (22944 + 0.5) / 2 ** 16, zoom: 16, width: 600, height: 300 };
    const tiles = tilesInView(view, 16);
    const xs = [...new Set(tiles.map((t) => t.x))];
    const ys = [...new Set(tiles.map((t) => t.y))];
    expect(xs).toEqual([34322, 34323, 34324]);
    expect(ys).toEqual([22943, 22944, 22945]);
    // The centre tile's centre is the view's centre; tiles abut exactly.
    const mid = tiles.find((t) => t.x === 34323 && t.y === 22944)!;
    expect(mid.sx + mid.sw / 2).toBe(300);
    expect(mid.sy + mid.sh / 2).toBe(150);
    for (const t of tiles) expect([t.sw, t.sh]).toEqual([256, 256]);
    const right = tiles.find((t) => t.x === 34324 && t.y === 22944)!;
    expect(right.sx).toBe(mid.sx + mid.sw);
    // Half a level up: tiles are drawn larger, still seamless.
    const scaled = tilesInView({ ...view, zoom: 16.5 }, 16);
    const row = scaled.filter((t) => t.y === 22944).sort((a, b) => a.sx - b.sx);
    for (let i = 1; i < row.length; i++) expect(row[i]!.sx).toBe(row[i - 1]!.sx + row[i - 1]!.sw);
    // Across the antimeridian the columns wrap; rows beyond the Mercator limit are left out.
    const edge = tilesInView({ cx: 0, cy: 0, zoom: 2, width: 600, height: 600 }, 2);
    expect(edge.filter((t) => t.y === 1).map((t) => t.x)).toEqual([2, 3, 0, 1]);
    expect(Math.min(...edge.map((t) => t.y))).toBe(0);
    expect(tileZoomFor(20.4, 19)).toBe(19);
    expect(tileZoomFor(15.6, 19)).toBe(16);
  });

  it("fills URL templates and refuses ones the page cannot load", () => {
    expect(tileUrl("https://{s}.tile.example/{z}/{x}/{y}.png", 3, 4, 5)).toBe("https://a.tile.example/3/4/5.png");
    expect(tileUrl("/tiles/{z}/{x}/{y}@2x.png?v={z}", 3, 1, 0)).toBe("/tiles/3/1/0@2x.png?v=3");
    expect(templateProblem("https://tile.example/{z}/{x}/{y}.png")).toBeNull();
    expect(templateProblem("/tiles/{z}/{x}/{y}.png")).toBeNull();
    expect(templateProblem("javascript:alert(1)//{z}{x}{y}")).toMatch(/http/);
    expect(templateProblem("https://tile.example/{z}/{x}.png")).toMatch(/\{y\}/);
    expect(templateProblem("https://tile.example/{z}/{x}/{y} .png")).toMatch(/spaces/);
  });

  it("takes the browser's choice over the deployment's, from the address or from storage", () => {
    const deployment = makeBaseMap("https://osm.example/{z}/{x}/{y}.png", "© OpenStreetMap contributors", "19");
    expect(deployment).toEqual({ url: "https://osm.example/{z}/{x}/{y}.png", attribution: "© OpenStreetMap contributors", maxZoom: 19 });
    expect(makeBaseMap("", "x")).toEqual(NO_BASEMAP);
    expect(makeBaseMap("ftp://x/{z}/{x}/{y}")).toEqual(NO_BASEMAP);
    expect(makeBaseMap("/t/{z}/{x}/{y}.png", null, "99").maxZoom).toBe(19);
    expect(effectiveBaseMap(deployment, null)).toBe(deployment);
    expect(effectiveBaseMap(deployment, { mode: "off" })).toEqual(NO_BASEMAP);

    const q = new URLSearchParams({ tiles: "http://127.0.0.1:9/t/{z}/{x}/{y}.png", tiles_attribution: "local", tiles_max_zoom: "17" });
    const fromQuery = choiceFromQuery(q)!;
    expect(effectiveBaseMap(deployment, fromQuery)).toEqual({ url: "http://127.0.0.1:9/t/{z}/{x}/{y}.png", attribution: "local", maxZoom: 17 });
    expect(choiceFromQuery(new URLSearchParams("tiles=off"))).toEqual({ mode: "off" });
    expect(choiceFromQuery(new URLSearchParams("tiles=nonsense"))).toBeUndefined();
    expect(choiceFromQuery(new URLSearchParams("fleet=a"))).toBeUndefined();

    // Stored choices survive a round trip; anything unreadable means "no choice".
    for (const c of [fromQuery, { mode: "off" } as const]) expect(parseChoice(serializeChoice(c))).toEqual(c);
    for (const raw of [null, "", "{", "42", '{"mode":"custom"}', '{"mode":"custom","url":"javascript:x"}', '{"mode":"other"}']) expect(parseChoice(raw), String(raw)).toBeNull();
  });
});

describe("map declutter and table window", () => {
  const opts = { cellPx: 44, clusterMin: 8, labelAllUpTo: 60, maxLabels: 40, labelWidth: (id: string) => id.length * 6, labelHeight: 13, labelDx: 12, labelDy: 4, markerPx: 9 };

  it("labels every drone of a small fleet where a label covers no other label or drone", () => {
    const markers = [
      { id: "drone_0", x: 100, y: 100, priority: false },
      { id: "drone_1", x: 300, y: 100, priority: false }, // its label would cover drone_2
      { id: "drone_2", x: 305, y: 103, priority: false },
      { id: "drone_3", x: 100, y: 300, priority: false },
      { id: "drone_4", x: 130, y: 300, priority: false }, // drone_3's label would cover it
    ];
    const r = declutter(markers, opts);
    expect(r.clusters).toEqual([]);
    expect(r.labels).toEqual(["drone_0", "drone_2", "drone_4"]);
  });

  it("clusters dense spots and labels only the drones that matter in a crowd", () => {
    const markers = Array.from({ length: 1000 }, (_, i) => ({ id: `drone_${i}`, x: (i % 40) * 10 + 5, y: Math.floor(i / 40) * 10 + 5, priority: false, pinned: false }));
    markers[7]!.priority = true; // selected
    markers[7]!.pinned = true;
    markers[500]!.priority = true; // in a coordination event
    markers[501]!.priority = true; // in the same event, right of drone_500: its label would cover drone_501
    const r = declutter(markers, opts);
    expect(r.labels).toEqual(["drone_7", "drone_501"]);
    expect(r.clustered.has("drone_7")).toBe(false);
    expect(r.clusters.length).toBeGreaterThan(0);
    const inClusters = r.clusters.reduce((n, c) => n + c.count, 0);
    expect(inClusters).toBe(r.clustered.size);
    expect(inClusters).toBeGreaterThan(900);
  });

  it("caps labels and always keeps the selected drone's", () => {
    const markers = Array.from({ length: 60 }, (_, i) => ({ id: `d${i}`, x: (i % 6) * 150, y: Math.floor(i / 6) * 40, priority: true, pinned: i === 59 }));
    const r = declutter(markers, { ...opts, maxLabels: 10 });
    expect(r.labels[0]).toBe("d59");
    expect(r.labels).toHaveLength(10);
  });

  it("builds only the rows in view, with overscan, and spacers for the rest", () => {
    expect(rowWindow(0, 250, 25, 1000, 5)).toEqual({ first: 0, count: 15, padTop: 0, padBottom: 985 * 25 });
    const mid = rowWindow(12_500, 250, 25, 1000, 5);
    expect(mid.first).toBe(495);
    expect(mid.count).toBe(20);
    expect(mid.padTop + mid.count * 25 + mid.padBottom).toBe(25_000);
    const end = rowWindow(1e9, 250, 25, 1000, 5);
    expect(end.first + end.count).toBe(1000);
    expect(rowWindow(0, 250, 25, 3)).toEqual({ first: 0, count: 3, padTop: 0, padBottom: 0 });
    expect(rowWindow(0, 250, 25, 0).count).toBe(0);
  });
});

describe("signing in through the identity provider (no token of the page's own)", () => {
  const person = { sub: "ana@example.com", via: "cloudflare-access", provider: "access", groups: ["fleet-ops-zurich"], exp: 2_000_000_000 };

  it("opens the first fleet granted by name, with the highest role that matches it, and sends no token", () => {
    const s = sessionFromMe({ ...person, grants: [{ role: "viewer", fleets: ["zurich-1", "basel"] }, { role: "operator", fleets: ["zurich-*"] }] }, null);
    expect(s).toEqual({ token: "", fleet: "zurich-1", claims: { sub: "ana@example.com", role: "operator", fleets: ["zurich-1", "basel"], exp: 2_000_000_000 } });
  });

  it("takes the fleet asked for and refuses one the person may not open", () => {
    const grants = [{ role: "operator", fleets: ["zurich-*"] }];
    expect(sessionFromMe({ ...person, grants }, "zurich-7")).toMatchObject({ token: "", fleet: "zurich-7", claims: { role: "operator" } });
    expect(sessionFromMe({ ...person, grants }, "geneva")).toMatchObject({ problem: expect.stringMatching(/may not open fleet "geneva"/) });
    expect(sessionFromMe({ ...person, grants }, null)).toMatchObject({ problem: expect.stringMatching(/enter the fleet/) });
  });

  it("falls back to the token form when the answer is no person or only an edge token", () => {
    expect(sessionFromMe({ error: { code: "unauthorized", message: "missing token" } }, null)).toBeNull();
    expect(sessionFromMe({ ...person, via: "token", grants: [] }, null)).toBeNull();
  });
});

describe("a drone of unknown state (state_known: false)", () => {
  // What a ROS 2 relay without a state topic sends: armed/status are placeholders.
  const unknown = (over: Partial<TelemetrySample>) => sample("u", 1, { armed: false, status: "idle", mode: "UNKNOWN", state_known: false, ...over });

  it("is worded as unknown with what is inferred, never as idle or disarmed", () => {
    const flying = stateView(unknown({ alt_m: 40, speed_mps: 6 }));
    expect(flying.known).toBe(false);
    expect(flying.inferredAirborne).toBe(true);
    expect(flying.short).toBe("unknown · airborne (inferred)");
    expect(flying.long).toMatch(/^state unknown · airborne \(inferred from 40 m, 6\.0 m\/s/);
    expect(flying.armed).toBe("unknown");
    expect(flying.mode).toBe("unknown");
    expect(flying.mapSuffix).toBe(" (state unknown, airborne)");
    expect(flying.title).toMatch(/no state/);
    // The same inference as the edge's (collision avoidance, fleet_status counts).
    expect(flying.inferredAirborne).toBe(isAirborne(unknown({ alt_m: 40, speed_mps: 6 })));

    const still = stateView(unknown({ alt_m: 0.4, speed_mps: 0, climb_mps: 0 }));
    expect(still.short).toBe("unknown · no motion (inferred)");
    expect(still.inferredAirborne).toBe(false);
    expect(still.mapSuffix).toBe(" (state unknown)");
    for (const v of [flying, still]) {
      for (const text of [v.short, v.long, v.armed, v.mapSuffix]) expect(text).not.toMatch(/idle|disarmed/i);
    }
    // A climbing drone low over home counts as airborne, as at the edge.
    expect(stateView(unknown({ alt_m: 1, speed_mps: 0, climb_mps: 2 })).inferredAirborne).toBe(true);
  });

  it("keeps the measured words when the state is known", () => {
    expect(stateView(sample("k", 1, { status: "taking_off", armed: true }))).toMatchObject({ known: true, short: "taking off", long: "taking off · armed", armed: "yes", mode: "AUTO.MISSION", mapSuffix: "" });
    expect(stateView(sample("k", 1, { status: "idle", armed: false, state_known: true })).long).toBe("idle · disarmed");
    // Its colour is none of the status colours.
    expect(Object.values(STATUS_COLORS)).not.toContain(UNKNOWN_STATE_COLOR);
  });
});

describe("alerts: what happened, who, and what to do", () => {
  const alert = (over: Partial<AlertView>): AlertView => ({ alert_id: "a1", drone_id: "drone_1", kind: "battery_low", severity: "warning", message: "m", value: null, raised_at: T0, cleared_at: null, ...over });

  it("gives every alert kind a title and an action", () => {
    for (const kind of ALERT_KINDS) {
      const t = describeAlert(alert({ kind }));
      expect(t.title.length, kind).toBeGreaterThan(5);
      expect(t.action.length, kind).toBeGreaterThan(20);
    }
    expect(describeAlert(alert({ kind: "battery_critical" })).drones).toEqual(["drone_1"]);
  });

  // The message as edge/fleet/collision-avoidance.ts words it (alertConditions).
  const unresolved = "collision avoidance cannot resolve head-on drone_1|drone_7 (event ev-42): drone_1 has the right of way (low battery); drone_7 has the right of way (low battery)";

  it("names both drones, the event and the reason of an unresolved conflict, and says what to do", () => {
    expect(parseUnresolved(unresolved)).toEqual({ eventId: "ev-42", drones: ["drone_1", "drone_7"], reason: "drone_1 has the right of way (low battery); drone_7 has the right of way (low battery)" });
    const t = describeAlert(alert({ kind: "coordination_unresolved", severity: "critical", drone_id: "drone_7", message: unresolved }));
    expect(t).toMatchObject({ title: "Collision avoidance cannot resolve a conflict", eventId: "ev-42", fleetWide: false, reason: "drone_1 has the right of way (low battery); drone_7 has the right of way (low battery)" });
    expect(t.drones).toEqual(["drone_7", "drone_1"]);
    expect(t.action).toMatch(/override/i);
    expect(t.action).toMatch(/emergency-land/);
    // With the event at hand its drones and type count.
    const event = { event_id: "ev-42", event_type: "head_on", drone_ids: ["drone_1", "drone_7"] } as CoordinationEventView;
    expect(describeAlert(alert({ kind: "coordination_unresolved", drone_id: "drone_1", message: unresolved }), event)).toMatchObject({ title: "Collision avoidance cannot resolve a conflict: head on", drones: ["drone_1", "drone_7"], eventId: "ev-42" });
    // A geofence conflict names one drone.
    expect(parseUnresolved("collision avoidance cannot resolve geofence-proximity drone_3|@geofence (event ev-9): it refused: failed").drones).toEqual(["drone_3"]);
    // A message in another form still shows, with the alert's own drone.
    expect(describeAlert(alert({ kind: "coordination_unresolved", message: "something else" }))).toMatchObject({ drones: ["drone_1"], eventId: null, reason: null });
  });

  it("shows a saturated airspace as fleet-wide, with the conflicts waiting and the held take-offs", () => {
    const t = describeAlert(alert({ kind: "airspace_saturated", severity: "critical", drone_id: FLEET_ALERT_ID, value: 12, message: "airspace saturated: 30 coordination events, 12 conflicts waiting for a resolution; new take-offs are held" }));
    expect(t).toMatchObject({ title: "Airspace saturated", fleetWide: true, drones: [], eventId: null, reason: "12 conflicts waiting for a resolution" });
    expect(t.action).toMatch(/take-offs are held/);
    expect(t.action).toMatch(/hold or land drones/);
  });
});

describe("close codes", () => {
  it("renews on 4001, slows down on 4002, retries on the rest", () => {
    expect(closeAction(CLOSE_CODES.tokenExpired, undefined)).toEqual({ kind: "renew" });
    expect(closeAction(CLOSE_CODES.tooSlow, undefined)).toEqual({ kind: "slow_down", maxRateHz: 2 });
    expect(closeAction(CLOSE_CODES.tooSlow, 2)).toEqual({ kind: "slow_down", maxRateHz: 1 });
    for (const code of [1000, 1001, 1006, 1008, 1009, 1011, CLOSE_CODES.replaced, CLOSE_CODES.relayIdTaken]) expect(closeAction(code, undefined), String(code)).toEqual({ kind: "retry" });
    // Each 4002 halves the rate, down to one round every two seconds.
    const rates: number[] = [];
    let r: number | undefined;
    for (let i = 0; i < 5; i++) rates.push((r = slowerRate(r)));
    expect(rates).toEqual([2, 1, 0.5, 0.5, 0.5]);
    expect(slowerRate(50)).toBe(2);
    expect(MIN_RATE_HZ).toBe(0.5);
  });

  it("closes with codes of its own, never one the edge uses", () => {
    const edge = new Set<number>(Object.values(CLOSE_CODES));
    for (const code of Object.values(CLIENT_CLOSE_CODES)) {
      expect(edge.has(code)).toBe(false);
      expect(code).toBeGreaterThanOrEqual(4900);
      expect(code).toBeLessThanOrEqual(4999);
    }
  });

  it("takes a renewed token only when it is a person's, current and grants the fleet on screen", async () => {
    const secret = "renewal-test-secret-0123456789abcdef";
    const now = Date.now();
    const good = await signToken(secret, { sub: "op", role: "operator", fleets: ["f1"] }, 600);
    expect(checkRenewal(good, "f1", "operator", now)).toMatchObject({ ok: true, roleChanged: false, claims: { sub: "op", role: "operator" } });
    expect(checkRenewal(good, "f1", "viewer", now)).toMatchObject({ ok: true, roleChanged: true });
    expect(checkRenewal(good, "f2", "operator", now)).toMatchObject({ ok: false, problem: expect.stringMatching(/does not grant fleet "f2"/) });
    const expired = await signToken(secret, { sub: "op", role: "operator", fleets: ["f1"], exp: Math.floor(now / 1000) - 5 });
    expect(checkRenewal(expired, "f1", "operator", now)).toMatchObject({ ok: false, problem: expect.stringMatching(/expired too/) });
    const relay = await signToken(secret, { sub: "r", role: "relay", fleets: ["f1"] }, 600);
    expect(checkRenewal(relay, "f1", "operator", now)).toMatchObject({ ok: false, problem: expect.stringMatching(/relay token/) });
    expect(checkRenewal("nonsense", "f1", "operator", now)).toMatchObject({ ok: false, problem: expect.stringMatching(/not a token/) });
    expect(checkRenewal("  ", "f1", "operator", now)).toMatchObject({ ok: false });
    const any = await signToken(secret, { sub: "adm", role: "admin", fleets: "*" }, 600);
    expect(checkRenewal(any, "f9", "admin", now)).toMatchObject({ ok: true, roleChanged: false });
  });
});

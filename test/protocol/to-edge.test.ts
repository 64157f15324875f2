/** D→E and R→E: what dashboards and relays may send, as the edge parses it. */
import { describe, expect, it } from "vitest";
import { DASHBOARD_TYPES, parseDashboardMessage, parseRelayMessage, RELAY_TYPES, TelemetrySample } from "../../edge/protocol";
import { sample } from "./frames";

const wp = { lat: 47.4, lon: 8.5, alt_m: 50 };

describe("parseDashboardMessage (D→E)", () => {
  it("accepts each frame type and fills defaults", () => {
    const frames = [
      { type: "subscribe_telemetry", drone_ids: "all", batch: true },
      { type: "unsubscribe_telemetry", drone_ids: ["d1"] },
      { type: "ping", request_id: "x", ts: 1 },
      { type: "modify_waypoint", command_id: "cmd-00000001", drone_id: "d1", new_waypoint: wp },
      { type: "assign_mission", command_id: "cmd-00000002", mission: { waypoints: [wp] } },
      { type: "emergency_land", command_id: "cmd-00000003", drone_id: "d1", reason: "r" },
      { type: "coordination_override", command_id: "cmd-00000004", event_id: "ev-1", action: "dismiss" },
      { type: "flow_ack", seq: 7 },
      { type: "subscribe_telemetry", drone_ids: ["d1"], max_rate_hz: 2.5 },
    ];
    expect(new Set(frames.map((f) => f.type))).toEqual(new Set(DASHBOARD_TYPES));
    for (const f of frames) expect(parseDashboardMessage(JSON.stringify(f)).ok, f.type).toBe(true);
    const m = parseDashboardMessage(JSON.stringify(frames[3]));
    expect(m.ok && m.value.type === "modify_waypoint" && m.value.modification_reason).toBe("");
    const a = parseDashboardMessage(JSON.stringify(frames[4]));
    expect(a.ok && a.value.type === "assign_mission" && a.value.mission.priority).toBe("normal");
  });

  it("refuses with a code and a reason, keeping the request_id", () => {
    expect(parseDashboardMessage('{"type":"ping"}')).toEqual({ ok: true, value: { type: "ping" } });
    for (const raw of ["", "null", "1", '"x"', "{}", '{"type":null}', "\u0000", "{".repeat(10000)]) {
      expect(parseDashboardMessage(raw).ok, raw).toBe(false);
    }
    const r = parseDashboardMessage(JSON.stringify({ type: "modify_waypoint", request_id: "r1", command_id: "short", drone_id: "d1", new_waypoint: wp }));
    expect(r).toMatchObject({ ok: false, error: { type: "error", code: "invalid_message", request_id: "r1" } });
    if (!r.ok) expect(r.error.message).toMatch(/^modify_waypoint: command_id/);
    expect(parseDashboardMessage(JSON.stringify({ type: "relay_hello" }))).toMatchObject({ ok: false, error: { code: "unknown_type" } });
  });

  it("replaces NUL and lone surrogates in free text by U+FFFD, and refuses them in ids", () => {
    const r = parseDashboardMessage(JSON.stringify({ type: "emergency_land", command_id: "cmd-00000003", drone_id: "d1", reason: "a\u0000b" }));
    expect(r.ok && r.value.type === "emergency_land" && r.value.reason).toBe("a\uFFFDb");
    expect(parseDashboardMessage(JSON.stringify({ type: "emergency_land", command_id: "cmd-00000003", drone_id: "d\u00001" })).ok).toBe(false);
    // A lone surrogate arrives as a JSON escape; a well-formed pair (an emoji) is kept.
    const m = parseDashboardMessage(`{"type":"modify_waypoint","command_id":"cmd-00000001","drone_id":"d1","new_waypoint":{"lat":47.4,"lon":8.5,"alt_m":50},"modification_reason":"x\\ud800y\\udc00z \\ud83d\\ude81\\u0000"}`);
    expect(m.ok && m.value.type === "modify_waypoint" && m.value.modification_reason).toBe("x\uFFFDy\uFFFDz \u{1F681}\uFFFD");
    const o = parseDashboardMessage(JSON.stringify({ type: "coordination_override", command_id: "cmd-00000004", event_id: "ev-1", action: "dismiss", reason: "\u0000" }));
    expect(o.ok && o.value.type === "coordination_override" && o.value.reason).toBe("\uFFFD");
    for (const event_id of ["ev\u00001", "ev\n1", "ev\ud800"]) {
      const bad = parseDashboardMessage(JSON.stringify({ type: "coordination_override", command_id: "cmd-00000004", event_id, action: "dismiss" }));
      expect(!bad.ok && bad.error.code, JSON.stringify(event_id)).toBe("invalid_message");
    }
    // A request_id is an id too; the refusal echoes it cleaned.
    const p = parseDashboardMessage(JSON.stringify({ type: "ping", request_id: "r\u00001" }));
    expect(p).toMatchObject({ ok: false, error: { code: "invalid_message", request_id: "r\uFFFD1" } });
  });
});

describe("parseRelayMessage (R→E)", () => {
  it("accepts each frame type", () => {
    const frames = [
      { type: "relay_hello", relay_id: "r1", source: "sim", drone_ids: ["d1"] },
      { type: "telemetry_batch", batch_id: 1, sent_at: 5, updates: [sample("d1", 1), { anything: "goes, checked per item" }] },
      { type: "ping" },
      { type: "command_result", command_id: "cmd-00000001", status: "failed", message: "x" },
      { type: "mission_progress", mission_id: "m1", drone_id: "d1", state: "active", waypoint_index: 0, ts: 1 },
    ];
    expect(new Set(frames.map((f) => f.type))).toEqual(new Set(RELAY_TYPES));
    for (const f of frames) expect(parseRelayMessage(JSON.stringify(f)).ok, f.type).toBe(true);
  });

  it("refuses with a code and a reason", () => {
    const r = parseRelayMessage('{"type":"telemetry_batch","batch_id":1.5,"updates":[]}');
    expect(!r.ok && r.error.code).toBe("invalid_message");
    expect(parseRelayMessage(JSON.stringify({ type: "telemetry_batch", batch_id: 1, updates: new Array(1001).fill(0) })).ok).toBe(false);
    expect(parseRelayMessage(JSON.stringify({ type: "subscribe_telemetry", drone_ids: "all" }))).toMatchObject({ ok: false, error: { code: "unknown_type" } });
  });

  it("replaces NUL and lone surrogates in free text by U+FFFD, and refuses them in ids", () => {
    const c = parseRelayMessage(JSON.stringify({ type: "command_result", command_id: "cmd-00000001", status: "failed", message: "bad\u0000\ud800" }));
    expect(c.ok && c.value.type === "command_result" && c.value.message).toBe("bad\uFFFD\uFFFD");
    const p = parseRelayMessage(JSON.stringify({ type: "mission_progress", mission_id: "m1", drone_id: "d1", state: "failed", message: "\u0000", ts: 1 }));
    expect(p.ok && p.value.type === "mission_progress" && p.value.message).toBe("\uFFFD");
    const h = parseRelayMessage(JSON.stringify({ type: "relay_hello", relay_id: "r1", source: "sim", version: "1\u0000", drone_ids: [] }));
    expect(h.ok && h.value.type === "relay_hello" && h.value.version).toBe("1\uFFFD");
    expect(parseRelayMessage(JSON.stringify({ type: "relay_hello", relay_id: "r\u00001", source: "sim", drone_ids: [] })).ok).toBe(false);
    expect(parseRelayMessage(JSON.stringify({ type: "mission_progress", mission_id: "m\u0000", drone_id: "d1", state: "active", ts: 1 })).ok).toBe(false);
    // The flight mode of a telemetry item is free text as well.
    const t = TelemetrySample.safeParse(JSON.parse(JSON.stringify(sample("d1", 1, { mode: "AUTO\u0000" }))));
    expect(t.success && t.data.mode).toBe("AUTO\uFFFD");
  });
});

/** D→E commands as a seed-style client sends them: no command_id, other waypoint spellings, the flat
 * assign_mission; the heads of frames the edge refuses; the audit's paging cursor. */
import { describe, expect, it } from "vitest";
import { auditCursor, COMMAND_RESPONSE_TYPES, COMMAND_TYPES, parseAuditCursor, parseDashboardMessage, readCommandHead } from "../../edge/protocol";

const wp = { lat: 47.4, lon: 8.5, alt_m: 50 };
const parse = (msg: unknown) => parseDashboardMessage(typeof msg === "string" ? msg : JSON.stringify(msg));
/** The refusal's message, or a failure when the frame was accepted. */
function refusal(msg: unknown): string {
  const r = parse(msg);
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(r.value)}`);
  expect(r.error.code).toBe("invalid_message");
  return r.error.message;
}

describe("commands without command_id", () => {
  it("parse for every command type, the id left absent for the desk to make", () => {
    const frames = [
      { type: "modify_waypoint", drone_id: "drone_1", new_waypoint: wp, modification_reason: "seed" },
      { type: "assign_mission", waypoints: [wp] },
      { type: "emergency_land", drone_id: "drone_1" },
      { type: "coordination_override", event_id: "ev-1", action: "hold" },
    ];
    expect(frames.map((f) => f.type).sort()).toEqual([...COMMAND_TYPES].sort());
    for (const f of frames) {
      const r = parse(f);
      if (!r.ok) throw new Error(r.error.message);
      expect((r.value as { command_id?: string }).command_id, f.type).toBeUndefined();
    }
  });

  it("still refuse a command_id of the wrong form", () => {
    expect(refusal({ type: "emergency_land", command_id: "short", drone_id: "d1" })).toMatch(/^emergency_land: command_id/);
  });
});

describe("waypoint spellings", () => {
  it("reads alt, altitude, latitude, longitude and lng as lat, lon, alt_m", () => {
    const spellings = [
      { lat: 47.4, lon: 8.5, alt_m: 50 },
      { lat: 47.4, lon: 8.5, alt: 50 },
      { lat: 47.4, lon: 8.5, altitude: 50 },
      { latitude: 47.4, longitude: 8.5, altitude: 50 },
      { latitude: 47.4, lng: 8.5, alt: 50 },
      // Two spellings that agree are one value.
      { lat: 47.4, latitude: 47.4, lon: 8.5, alt_m: 50, alt: 50 },
    ];
    for (const new_waypoint of spellings) {
      const r = parse({ type: "modify_waypoint", drone_id: "d1", new_waypoint });
      expect(r.ok && r.value.type === "modify_waypoint" && r.value.new_waypoint, JSON.stringify(new_waypoint)).toEqual(wp);
      const m = parse({ type: "assign_mission", mission: { waypoints: [new_waypoint, new_waypoint] } });
      expect(m.ok && m.value.type === "assign_mission" && m.value.mission.waypoints, JSON.stringify(new_waypoint)).toEqual([wp, wp]);
    }
  });

  it("refuses two spellings of one field that disagree, naming both", () => {
    expect(refusal({ type: "modify_waypoint", drone_id: "d1", new_waypoint: { lat: 47.4, latitude: 47.5, lon: 8.5, alt_m: 50 } })).toMatch(/lat \(47\.4\) and latitude \(47\.5\) disagree/);
    expect(refusal({ type: "modify_waypoint", drone_id: "d1", new_waypoint: { lat: 47.4, lon: 8.5, alt_m: 50, altitude: 60 } })).toMatch(/alt_m \(50\) and altitude \(60\) disagree/);
    expect(refusal({ type: "assign_mission", waypoints: [wp, { ...wp, lng: 9 }] })).toMatch(/waypoints\.1\.lng: lon \(8\.5\) and lng \(9\) disagree/);
  });

  it("names a missing coordinate with its spellings, and refuses non-numbers", () => {
    expect(refusal({ type: "modify_waypoint", drone_id: "d1", new_waypoint: { lat: 47.4, lon: 8.5 } })).toMatch(/new_waypoint\.alt_m: required \(alt_m or alt or altitude/);
    expect(refusal({ type: "modify_waypoint", drone_id: "d1" })).toMatch(/new_waypoint: required \(a point \{lat, lon, alt_m\}\)/);
    expect(refusal({ type: "modify_waypoint", drone_id: "d1", new_waypoint: { lat: "47.4", lon: 8.5, alt: 50 } })).toMatch(/new_waypoint\.lat/);
    expect(refusal('{"type":"modify_waypoint","drone_id":"d1","new_waypoint":{"lat":1e400,"lon":8,"alt_m":50}}')).toMatch(/new_waypoint\.lat/);
  });
});

describe("assign_mission forms", () => {
  it("takes the flat seed-like form and gives it the nested shape", () => {
    const r = parse({ type: "assign_mission", drone_id: "drone_2", waypoints: [wp], priority: "high", deadline: 5 });
    expect(r.ok && r.value).toEqual({ type: "assign_mission", drone_id: "drone_2", mission: { waypoints: [wp], priority: "high", deadline: 5 } });
    const d = parse({ type: "assign_mission", waypoints: [wp] });
    expect(d.ok && d.value.type === "assign_mission" && d.value.mission).toEqual({ waypoints: [wp], priority: "normal" });
  });

  it("refuses both forms at once, and neither", () => {
    expect(refusal({ type: "assign_mission", mission: { waypoints: [wp] }, waypoints: [wp] })).toMatch(/mission: send the mission either as mission/);
    expect(refusal({ type: "assign_mission", mission: { waypoints: [wp] }, priority: "high" })).toMatch(/not both/);
    expect(refusal({ type: "assign_mission", drone_id: "d1" })).toMatch(/waypoints: required \(waypoints: a list/);
    expect(refusal({ type: "assign_mission", waypoints: [] })).toMatch(/waypoints/);
  });
});

describe("required fields are named", () => {
  it("coordination_override says which of event_id and action is missing and what they hold", () => {
    const m = refusal({ type: "coordination_override" });
    expect(m).toMatch(/event_id: required \(the coordination event's id/);
    expect(m).toMatch(/action: required \(one of dismiss, vertical_separation, hold, lateral_reroute\)/);
    expect(refusal({ type: "coordination_override", event_id: "ev-1" })).toMatch(/^coordination_override: action: required/);
    // A present but wrong value keeps zod's own account.
    expect(refusal({ type: "coordination_override", event_id: "ev-1", action: "explode" })).not.toMatch(/required/);
  });

  it("so do the drone commands", () => {
    expect(refusal({ type: "emergency_land" })).toBe("emergency_land: drone_id: required (the drone's id)");
    expect(refusal({ type: "modify_waypoint", new_waypoint: wp })).toMatch(/drone_id: required/);
    expect(refusal({ type: "emergency_land", drone_id: "not ok" })).toMatch(/drone id: 1-64/);
  });
});

describe("readCommandHead", () => {
  it("reads the type and ids of a malformed command, valid JSON or not", () => {
    expect(readCommandHead(JSON.stringify({ type: "emergency_land", command_id: "cmd-00000001", request_id: "r1", drone_id: 7 }))).toEqual({ type: "emergency_land", command_id: "cmd-00000001", request_id: "r1" });
    expect(readCommandHead('{"type":"modify_waypoint","request_id":"r2","command_id":"cmd-00000002","drone_id":"drone_1","new_waypoint":{"lat":')).toEqual({ type: "modify_waypoint", request_id: "r2", command_id: "cmd-00000002", drone_id: "drone_1" });
    expect(readCommandHead(JSON.stringify({ type: "coordination_override", event_id: "ev-1", action: "hold" }))).toEqual({ type: "coordination_override", event_id: "ev-1", action: "hold" });
  });

  it("keeps only ids of a valid form", () => {
    expect(readCommandHead(JSON.stringify({ type: "emergency_land", command_id: "x", request_id: "r\u00001", drone_id: "not ok", event_id: "", action: "explode" }))).toEqual({ type: "emergency_land" });
    expect(readCommandHead(JSON.stringify({ type: "emergency_land", request_id: "r".repeat(129) }))).toEqual({ type: "emergency_land" });
  });

  it("is null for anything that is no command", () => {
    for (const raw of ["{", "null", "[]", '"emergency_land"', JSON.stringify({ type: "ping" }), JSON.stringify({ type: "launch" }), '{"type":"ping","x":"\\"type\\":\\"emergency_land\\""', JSON.stringify({ type: "emergency_land", pad: "x".repeat(70 * 1024) })]) {
      expect(readCommandHead(raw), raw.slice(0, 60)).toBeNull();
    }
  });

  it("every command type has its own response type", () => {
    expect(Object.keys(COMMAND_RESPONSE_TYPES).sort()).toEqual([...COMMAND_TYPES].sort());
  });
});

describe("the command audit cursor", () => {
  it("round-trips received_at and command_id, and keeps a bare received_at", () => {
    const c = auditCursor({ received_at: 1_700_000_000_123, command_id: "edge-0b9e7c1e-4a2f" });
    expect(c).toBe("1700000000123:edge-0b9e7c1e-4a2f");
    expect(parseAuditCursor(c)).toEqual({ received_at: 1_700_000_000_123, command_id: "edge-0b9e7c1e-4a2f" });
    expect(parseAuditCursor("1700000000123")).toEqual({ received_at: 1_700_000_000_123 });
    expect(parseAuditCursor(undefined)).toBeUndefined();
    expect(parseAuditCursor("")).toBeUndefined();
    for (const bad of ["abc", "-1", "1.5", "1:", "1:a b", ":x", "99999999999999999"]) expect(parseAuditCursor(bad), bad).toBeNull();
  });
});

/** E→R: every frame the edge sends a relay parses as sent; anything else is refused with a reason. */
import { describe, expect, it } from "vitest";
import { EDGE_TO_RELAY_TYPES, parseEdgeToRelay, type EdgeToRelay } from "../../edge/protocol";
import { edgeToRelayFrames } from "./frames";

describe("parseEdgeToRelay", () => {
  const frames = edgeToRelayFrames();

  it.each(frames)("accepts $name as sent, unchanged", ({ frame }) => {
    const raw = JSON.stringify(frame);
    const r = parseEdgeToRelay(raw);
    if (!r.ok) throw new Error(r.error.message);
    expect(r.value).toEqual(JSON.parse(raw));
  });

  it("covers every E→R frame type", () => {
    const seen = new Set(frames.map((f) => (f.frame as EdgeToRelay).type));
    expect([...EDGE_TO_RELAY_TYPES].sort()).toEqual([...seen].sort());
  });

  it("refuses unknown types and bad JSON with a code", () => {
    for (const raw of ['{"type":"telemetry"}', '{"type":"fleet_status"}', '{"type":"relay_hello"}', "[]", "{}"]) {
      const r = parseEdgeToRelay(raw);
      expect(!r.ok && r.error.code, raw).toBe("unknown_type");
    }
    expect(parseEdgeToRelay("{").ok).toBe(false);
  });

  const cmd = { type: "command", command_id: "cmd-00000001", drone_id: "d1", timeout_ms: 4500 };

  it("refuses a malformed command and names the command_id so the relay can answer it", () => {
    const cases: [unknown, RegExp][] = [
      [{ ...cmd, command: "fly_to_the_moon" }, /command/],
      [{ ...cmd, command: "modify_waypoint", new_waypoint: { lat: 91, lon: 8, alt_m: 40 }, modification_reason: "" }, /new_waypoint\.lat/],
      [{ ...cmd, command: "assign_mission", mission_id: "m", waypoints: [], priority: "normal" }, /waypoints/],
      [{ ...cmd, command: "assign_mission", mission_id: "m", waypoints: [{ lat: 1, lon: 2, alt_m: 3 }], priority: "urgent" }, /priority/],
      [{ ...cmd, command: "hold", duration_s: -1 }, /duration_s/],
      [{ ...cmd, command: "hold", duration_s: 5, timeout_ms: "soon" }, /timeout_ms/],
      [{ ...cmd, drone_id: "", command: "emergency_land" }, /drone_id/],
    ];
    for (const [frame, reason] of cases) {
      const r = parseEdgeToRelay(JSON.stringify(frame));
      expect(r.ok, JSON.stringify(frame)).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe("invalid_message");
        expect(r.error.message).toMatch(reason);
        expect("command_id" in r && r.command_id).toBe("cmd-00000001");
      }
    }
    // No usable command_id: nothing to answer to.
    const r = parseEdgeToRelay(JSON.stringify({ ...cmd, command_id: "short", command: "emergency_land" }));
    expect(r.ok || "command_id" in r).toBe(false);
  });

  it("refuses malformed acks", () => {
    for (const frame of [
      { type: "hello_ack", fleet: "f", last_seq: { d1: -1 } },
      { type: "hello_ack", fleet: "f", last_seq: { "bad id": 1 } },
      { type: "batch_ack", batch_id: 1, accepted: 1, duplicates: 0, rejected: 0 },
      { type: "batch_ack", batch_id: 1, accepted: 0, duplicates: 0, rejected: 11, errors: Array.from({ length: 11 }, (_, i) => ({ index: i, code: "invalid_item", message: "" })) },
      { type: "command_result_ack" },
    ]) {
      const r = parseEdgeToRelay(JSON.stringify(frame));
      expect(!r.ok && r.error.code, JSON.stringify(frame)).toBe("invalid_message");
    }
  });

  it("keeps strings with NUL as they are", () => {
    const r = parseEdgeToRelay(JSON.stringify({ ...cmd, command: "emergency_land", reason: "x\u0000y" }));
    expect(r.ok && r.value.type === "command" && r.value.command === "emergency_land" && r.value.reason).toBe("x\u0000y");
  });
});

/** E→D: every frame the edge sends a dashboard parses as sent; anything else is refused with a reason. */
import { describe, expect, it } from "vitest";
import { EDGE_TO_DASHBOARD_TYPES, parseEdgeToDashboard, type ServerMessage } from "../../edge/protocol";
import { edgeToDashboardFrames, sample, T0 } from "./frames";

describe("parseEdgeToDashboard", () => {
  const frames = edgeToDashboardFrames();

  it.each(frames)("accepts $name as sent, unchanged", ({ frame }) => {
    const raw = JSON.stringify(frame);
    const r = parseEdgeToDashboard(raw);
    if (!r.ok) throw new Error(r.error.message);
    // Nothing the edge sends is dropped or rewritten on the way in.
    expect(r.value).toEqual(JSON.parse(raw));
  });

  it("covers every E→D frame type", () => {
    const seen = new Set(frames.map((f) => (f.frame as ServerMessage).type));
    expect([...EDGE_TO_DASHBOARD_TYPES].sort()).toEqual([...seen].sort());
  });

  it("refuses unknown types, bad JSON and non-objects with a code", () => {
    for (const raw of ['{"type":"from_the_future"}', '{"type":"toString"}', '{"no":"type"}', "42", "null", '"pong"']) {
      const r = parseEdgeToDashboard(raw);
      expect(r.ok, raw).toBe(false);
      if (!r.ok) expect(r.error.code).toBe("unknown_type");
    }
    for (const raw of ["", "{not json", "\u0000"]) {
      const r = parseEdgeToDashboard(raw);
      expect(!r.ok && r.error.code).toBe("bad_json");
    }
    // Relay-only and dashboard-only frame types are not E→D frames.
    for (const type of ["hello_ack", "batch_ack", "command", "subscribe_telemetry", "relay_hello"]) {
      const r = parseEdgeToDashboard(JSON.stringify({ type }));
      expect(!r.ok && r.error.code, type).toBe("unknown_type");
    }
  });

  it("refuses a known frame with malformed fields, naming the field", () => {
    const cases: [unknown, RegExp][] = [
      [{ type: "telemetry", ...sample("d1", 1), lat: 91 }, /^telemetry: lat:/],
      [{ type: "telemetry", ...sample("d1", 1), seq: -1 }, /seq/],
      [{ type: "telemetry_batch", updates: [sample("d1", 1), { drone_id: "d2" }] }, /updates\.1\./],
      [{ type: "fleet_status", fleet: "f", ts: T0, relay_connected: "yes", counts: {}, drones: [] }, /relay_connected/],
      [{ type: "link_status", scope: "planet", state: "up", ts: T0, relays: 1 }, /scope/],
      [{ type: "link_status", scope: "drone", drone_id: "d1", state: "up", ts: T0, last_seen: T0 }, /state/],
      [{ type: "alert", state: "raised", alert: { alert_id: "a", drone_id: "d1", kind: "made_up", severity: "warning", message: "", value: null, raised_at: T0, cleared_at: null } }, /alert\.kind/],
      [{ type: "mission_update", drone_id: "d1", update: { type: "teleported", drone_id: "d1", timestamp: "" } }, /update\.type/],
      [{ type: "command_status", command_id: "c1", command: "modify_waypoint", drone_id: null, status: "sent", by: "op", ts: T0 }, /command_id/],
      [{ type: "error", code: "no_such_code", message: "x" }, /code/],
      [{ type: "pong" }, /ts/],
    ];
    for (const [frame, reason] of cases) {
      const r = parseEdgeToDashboard(JSON.stringify(frame));
      expect(r.ok, JSON.stringify(frame)).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe("invalid_message");
        expect(r.error.message).toMatch(reason);
      }
    }
  });

  it("ignores fields it does not know (a newer edge may add some)", () => {
    const r = parseEdgeToDashboard(JSON.stringify({ type: "pong", ts: T0, added_later: true }));
    expect(r).toEqual({ ok: true, value: { type: "pong", ts: T0 } });
  });

  it("keeps strings with NUL and other control characters as they are, but for the shared telemetry sample", () => {
    // The sample's schema is the one the edge parses relays with: its mode is cleaned (common.ts).
    const r = parseEdgeToDashboard(JSON.stringify({ type: "telemetry", ...sample("d1", 1, { mode: "AUTO\u0000X" }) }));
    expect(r.ok && r.value.type === "telemetry" && r.value.mode).toBe("AUTO\uFFFDX");
    const e = parseEdgeToDashboard(JSON.stringify({ type: "error", code: "internal", message: "a\u0000b\u0007" }));
    expect(e.ok && e.value.type === "error" && e.value.message).toBe("a\u0000b\u0007");
    // A NUL in a drone id breaks the id format, as at the edge.
    expect(parseEdgeToDashboard(JSON.stringify({ type: "telemetry", ...sample("d\u00001", 1) })).ok).toBe(false);
  });

  it("carries the request_id of a refused frame when it is readable", () => {
    const r = parseEdgeToDashboard(JSON.stringify({ type: "pong", request_id: "r-7" }));
    expect(!r.ok && r.error.request_id).toBe("r-7");
  });
});

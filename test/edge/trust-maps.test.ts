/**
 * Issue 18: drone ids are strings a relay chooses, so every map keyed by them is a Map (or an
 * object with own keys only). Drones named after Object.prototype's members went through
 * assignment scoring as NaN (null on the wire) and made the coordination replay answer 500.
 */
import { runInDurableObject, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import { connect, relay, sample, sendBatch, stubFor, token, uniqueFleet, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const NAMES = ["constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf"];
const HOME = { lat: 47.3977, lon: 8.5456 };

describe("drones named after Object.prototype", () => {
  it("are tracked, fanned out, announced in hello_ack and scored by assignment like any other", async () => {
    const fleet = uniqueFleet("maps");
    const op = await connect(fleet, "ws", await token("operator", [fleet]));
    open.push(op);
    await op.nextOfType("fleet_status");
    op.send({ type: "subscribe_telemetry", drone_ids: ["constructor", "toString"] });
    await op.nextOfType("subscribed");
    const { r } = await relay(fleet, NAMES);
    open.push(r);
    const parkedAt = (i: number) => ({ armed: false, status: "landed", speed_mps: 0, alt_m: 0, lat: HOME.lat + i * 1e-4, lon: HOME.lon });
    expect(await sendBatch(r, NAMES.map((id, i) => sample(id, { seq: 10 + i, ...parkedAt(i) })))).toMatchObject({ accepted: NAMES.length });
    const got = [await op.nextOfType("telemetry"), await op.nextOfType("telemetry")].map((f) => f.drone_id).sort();
    expect(got).toEqual(["constructor", "toString"]);
    const st = await stubFor(fleet).getStatus();
    expect(st.drones.map((d) => d.drone_id).sort()).toEqual([...NAMES].sort());
    // A relay coming back learns its drones' seqs, these included.
    r.close();
    const { r: back, ack } = await relay(fleet, NAMES);
    open.push(back);
    expect(ack.last_seq).toEqual(Object.fromEntries(NAMES.map((id, i) => [id, 10 + i])));
    // Assignment: every candidate has a number for a score (NaN went out as null).
    op.send({ type: "assign_mission", command_id: "assign-proto-01", mission: { waypoints: [{ lat: HOME.lat + 0.001, lon: HOME.lon, alt_m: 40 }] } });
    const cmd = await back.nextOfType("command");
    back.send({ type: "command_result", command_id: cmd.command_id, status: "acked" });
    const answer = await op.nextOfType("mission_assignment_response");
    expect(answer).toMatchObject({ success: true });
    const candidates = answer.candidates as { drone_id: string; score: unknown; eligible: boolean }[];
    expect(candidates.map((c) => c.drone_id).sort()).toEqual([...NAMES].sort());
    for (const c of candidates) expect(typeof c.score, c.drone_id).toBe("number");
    // A second mission, with one of them holding an assignment already (the fairness count).
    op.send({ type: "assign_mission", command_id: "assign-proto-02", mission: { waypoints: [{ lat: HOME.lat + 0.002, lon: HOME.lon, alt_m: 40 }] } });
    const second = await back.nextOfType("command");
    back.send({ type: "command_result", command_id: second.command_id, status: "acked" });
    const again = await op.nextOfType("mission_assignment_response");
    for (const c of again.candidates as { score: unknown }[]) expect(typeof c.score).toBe("number");
  });

  it("replay a coordination event between `constructor` and `toString` (no 500)", async () => {
    const fleet = uniqueFleet("maps");
    const { r } = await relay(fleet, ["constructor", "toString"]);
    open.push(r);
    await sendBatch(r, [sample("constructor", { ...HOME }), sample("toString", { lat: HOME.lat + 1e-4, lon: HOME.lon })]);
    // The replay is what is under test, not detection: the event and its tracks are stored as
    // collision avoidance stores them (collision-avoidance.ts).
    const t = Date.now();
    await runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) => {
      const sql = state.storage.sql;
      sql.exec(
        `INSERT INTO coordination_events (event_id, key, event_type, drone_ids, detected_at, first_command_at, resolved_at, resolution_time_ms,
          strategy, status, overridden_by, override_reason, time_to_conflict_s, min_horizontal_m, min_vertical_m, attempts, last_attempt_at)
         VALUES ('ev-proto', 'constructor|toString', 'head_on', ?, ?, NULL, NULL, NULL, 'hold', 'active', NULL, NULL, 4, 10, 0, 1, ?)`,
        JSON.stringify(["constructor", "toString"]),
        t,
        t,
      );
      for (const [id, k] of [["constructor", 0], ["toString", 1], ["constructor", 2]] as const) {
        sql.exec(`INSERT INTO event_tracks (event_id, drone_id, t, lat, lon, alt_m) VALUES ('ev-proto', ?, ?, ?, ?, 50)`, id, t + k, HOME.lat, HOME.lon);
      }
    });
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/coordination/ev-proto`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { tracks: Record<string, unknown[]> };
    expect(Object.keys(body.tracks).sort()).toEqual(["constructor", "toString"]);
    expect(body.tracks.constructor).toHaveLength(2);
    expect(body.tracks.toString).toHaveLength(1);
  });
});

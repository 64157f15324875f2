/**
 * A client written against the seed document (shared/seed.md, "WebSocket Communication Layer")
 * works unchanged: its exact messages, sent over a real dashboard socket through the Worker, are
 * served, and every answer reads as the seed client reads it (`type`, `success`, `message`,
 * `alternative_suggestions`). The seed's client messages, as its server takes them apart:
 *
 *   case 'subscribe_telemetry':   message.drone_ids
 *   case 'modify_waypoint':       const { drone_id, new_waypoint, modification_reason } = message
 *   case 'assign_mission':        message
 *   case 'emergency_land':        message.drone_id
 *   case 'coordination_override': message
 *
 * and its answer `{ type: 'waypoint_modification_response', success, message, alternative_suggestions }`,
 * its broadcast `{ type: 'waypoint_modified', drone_id, new_waypoint, modification_reason, timestamp }`
 * and the fleet status sent on connect. Drones are named as the seed names them (`drone_${i}`).
 * The seed never sends a command_id and leaves the waypoint's spelling open.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connect, ManualClock, relay, sample, sendBatch, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const HOME = { lat: 47.3977, lon: 8.5456 };
/** The latitude `m` metres north of home, and the longitude `m` metres east of it. */
const north = (m: number) => HOME.lat + m / 111_320;
const east = (m: number) => HOME.lon + m / (111_320 * Math.cos((HOME.lat * Math.PI) / 180));
type Frame = { type: string; [k: string]: unknown };

/** The seed's fleet (drone_0 … drone_4 at home, hovering) behind a relay, and a seed client. */
async function seedFleet(role: "operator" | "viewer" = "operator") {
  const fleet = uniqueFleet("seed");
  const { r } = await relay(fleet);
  open.push(r);
  await sendBatch(r, [0, 1, 2, 3, 4].map((i) => sample(`drone_${i}`, { lat: north(i * 60), lon: HOME.lon, alt_m: 40, speed_mps: 0, battery_pct: 90 })));
  const client = await connect(fleet, "ws", await token(role, [fleet]));
  open.push(client);
  return { fleet, r, client };
}

/** The relay acks the next command (optionally one matching `pred`) and returns it. */
async function relayAcks(r: TestSocket, pred: (f: Frame) => boolean = () => true): Promise<Frame> {
  const cmd = await r.next((f) => f.type === "command" && pred(f));
  r.send({ type: "command_result", command_id: cmd.command_id, status: "acked" });
  await r.next((f) => f.type === "command_result_ack" && f.command_id === cmd.command_id);
  return cmd;
}

/** What the seed client reads of an answer. */
function seedView(f: Frame) {
  return { type: f.type, success: f.success, message: typeof f.message, alternative_suggestions: Array.isArray(f.alternative_suggestions) };
}

describe("a seed client's session", () => {
  it("gets the fleet status on connect, then telemetry of the drones it subscribed to", async () => {
    const { r, client } = await seedFleet();
    const status = await client.nextOfType("fleet_status");
    expect((status.drones as { drone_id: string }[]).map((d) => d.drone_id)).toEqual(["drone_0", "drone_1", "drone_2", "drone_3", "drone_4"]);
    client.send(JSON.stringify({ type: "subscribe_telemetry", drone_ids: ["drone_1"] }));
    await client.nextOfType("subscribed");
    await sendBatch(r, [sample("drone_1", { lat: north(60) }), sample("drone_2", { lat: north(120) })]);
    expect(await client.nextOfType("telemetry")).toMatchObject({ drone_id: "drone_1" });
    // drone_1's current state on subscribe and its update, never drone_2's.
    expect((await client.barrier()).filter((f) => f.type === "telemetry" && f.drone_id !== "drone_1")).toEqual([]);
  });

  it("modify_waypoint {drone_id, new_waypoint, modification_reason} in every spelling, twice each: two runs, two ids, both answered", async () => {
    const { r, client } = await seedFleet();
    // 80 m east of drone_1, clear of the other drones (60 m apart along the meridian).
    const target = { lat: north(60), lon: east(80), alt_m: 45 };
    const spellings = [
      { lat: target.lat, lon: target.lon, alt: 45 },
      { latitude: target.lat, longitude: target.lon, altitude: 45 },
      { lat: target.lat, lon: target.lon, alt_m: 45 },
      { lat: target.lat, lng: target.lon, altitude: 45 },
    ];
    const ids = new Set<unknown>();
    for (const new_waypoint of spellings) {
      for (let k = 0; k < 2; k++) {
        client.send(JSON.stringify({ type: "modify_waypoint", drone_id: "drone_1", new_waypoint, modification_reason: "inspect the roof" }));
        const cmd = await relayAcks(r);
        // The relay gets the one spelling it knows.
        expect(cmd.new_waypoint, JSON.stringify(new_waypoint)).toEqual(target);
        const res = await client.nextOfType("waypoint_modification_response");
        expect(seedView(res)).toEqual({ type: "waypoint_modification_response", success: true, message: "string", alternative_suggestions: true });
        expect(res).toMatchObject({ command_id: cmd.command_id, idempotent: false, alternative_suggestions: [] });
        ids.add(res.command_id);
        const mu = await client.nextOfType("mission_update");
        expect(mu.update).toMatchObject({ type: "waypoint_modified", drone_id: "drone_1", new_waypoint: target, modification_reason: "inspect the roof" });
        expect(typeof (mu.update as { timestamp: unknown }).timestamp).toBe("string");
      }
    }
    expect(ids.size).toBe(spellings.length * 2);
  });

  it("a refused waypoint is answered with success false, a message and alternative suggestions", async () => {
    const { r, client } = await seedFleet();
    client.send(JSON.stringify({ type: "modify_waypoint", drone_id: "drone_1", new_waypoint: { lat: north(100), lon: HOME.lon, alt: 500 }, modification_reason: "too high" }));
    const res = await client.nextOfType("waypoint_modification_response");
    expect(seedView(res)).toEqual({ type: "waypoint_modification_response", success: false, message: "string", alternative_suggestions: true });
    expect(res).toMatchObject({ code: "safety_violation", rule: "altitude_ceiling", idempotent: false });
    expect((res.alternative_suggestions as unknown[]).length).toBeGreaterThan(0);
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
  });

  it("two spellings of one field that disagree are refused, naming both, and nothing is sent", async () => {
    const { r, client } = await seedFleet();
    client.send(JSON.stringify({ type: "modify_waypoint", drone_id: "drone_1", new_waypoint: { lat: north(100), latitude: north(200), lon: HOME.lon, alt: 45 }, modification_reason: "which one" }));
    const res = await client.nextOfType("waypoint_modification_response");
    expect(seedView(res)).toEqual({ type: "waypoint_modification_response", success: false, message: "string", alternative_suggestions: true });
    expect(res).toMatchObject({ code: "invalid_message", status: "rejected", drone_id: "drone_1", idempotent: false });
    expect(res.message).toMatch(/lat \(.*\) and latitude \(.*\) disagree/);
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
  });

  it("assign_mission in the flat form {waypoints, priority}, twice: two missions under two ids", async () => {
    const { r, client } = await seedFleet();
    const waypoints = [
      { lat: north(150), lon: HOME.lon, alt: 50 },
      { latitude: north(250), longitude: HOME.lon, altitude: 50 },
    ];
    const missions = new Set<unknown>();
    for (let k = 0; k < 2; k++) {
      client.send(JSON.stringify({ type: "assign_mission", waypoints, priority: "high" }));
      const cmd = await relayAcks(r);
      expect(cmd).toMatchObject({ command: "assign_mission", priority: "high", waypoints: [{ lat: north(150), lon: HOME.lon, alt_m: 50 }, { lat: north(250), lon: HOME.lon, alt_m: 50 }] });
      const res = await client.nextOfType("mission_assignment_response");
      expect(res).toMatchObject({ success: true, idempotent: false, command_id: cmd.command_id, mission_id: cmd.mission_id, drone_id: cmd.drone_id, alternative_suggestions: [] });
      missions.add(res.mission_id);
    }
    expect(missions.size).toBe(2);
  });

  it("emergency_land {drone_id}, twice: the drone is landed twice and both are answered", async () => {
    const { r, client } = await seedFleet();
    const ids: unknown[] = [];
    for (let k = 0; k < 2; k++) {
      client.send(JSON.stringify({ type: "emergency_land", drone_id: "drone_1" }));
      const cmd = await relayAcks(r);
      expect(cmd).toMatchObject({ command: "emergency_land", drone_id: "drone_1" });
      const res = await client.nextOfType("emergency_land_response");
      expect(res).toMatchObject({ success: true, status: "acked", idempotent: false, command_id: cmd.command_id, drone_id: "drone_1", alternative_suggestions: [] });
      ids.push(res.command_id);
      expect(await client.next((f) => f.type === "mission_update" && (f.update as { type: string }).type === "emergency_land")).toBeTruthy();
    }
    expect(new Set(ids).size).toBe(2);
  });

  it("coordination_override without an id is answered in its own type, twice; without its fields the answer names them", async () => {
    const { client } = await seedFleet();
    const ids: unknown[] = [];
    for (let k = 0; k < 2; k++) {
      client.send(JSON.stringify({ type: "coordination_override", event_id: "ev-none", action: "hold" }));
      const res = await client.nextOfType("coordination_override_response");
      expect(res).toMatchObject({ success: false, code: "unknown_event", idempotent: false, event_id: "ev-none", action: "hold", alternative_suggestions: [] });
      ids.push(res.command_id);
    }
    expect(new Set(ids).size).toBe(2);
    client.send(JSON.stringify({ type: "coordination_override" }));
    const res = await client.nextOfType("coordination_override_response");
    expect(res).toMatchObject({ success: false, status: "rejected", code: "invalid_message", alternative_suggestions: [] });
    expect(res.message).toMatch(/event_id: required/);
    expect(res.message).toMatch(/action: required \(one of dismiss, vertical_separation, hold, lateral_reroute\)/);
  });
});

describe("every refusal of a command comes as its own response type", () => {
  it("a malformed body, valid JSON or not, with the request's ids echoed; nothing runs and the id stays free", async () => {
    const { r, client } = await seedFleet();
    client.send(JSON.stringify({ type: "modify_waypoint", request_id: "rq-1", command_id: "seed-malformed-1", drone_id: "drone_1", new_waypoint: "over there" }));
    expect(await client.nextOfType("waypoint_modification_response")).toMatchObject({
      request_id: "rq-1",
      command_id: "seed-malformed-1",
      drone_id: "drone_1",
      success: false,
      status: "rejected",
      code: "invalid_message",
      message: expect.stringMatching(/new_waypoint/),
      alternative_suggestions: [],
    });
    client.send('{"type":"emergency_land","request_id":"rq-2","command_id":"seed-malformed-2","drone_id":"drone_1"');
    expect(await client.nextOfType("emergency_land_response")).toMatchObject({ request_id: "rq-2", command_id: "seed-malformed-2", drone_id: "drone_1", success: false, code: "bad_json", alternative_suggestions: [] });
    client.send(JSON.stringify({ type: "assign_mission", request_id: "rq-3", priority: "urgent", waypoints: [] }));
    const a = await client.nextOfType("mission_assignment_response");
    expect(a).toMatchObject({ request_id: "rq-3", success: false, code: "invalid_message", drone_id: null, mission_id: null, candidates: [], idempotent: false });
    // Only a frame whose type cannot be read stays a generic error.
    client.send('{"request_id":"rq-4","drone_id":"drone_1"');
    expect(await client.nextOfType("error")).toMatchObject({ code: "bad_json" });
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
    // The malformed command reserved nothing: the same id, well formed, runs.
    client.send(JSON.stringify({ type: "emergency_land", command_id: "seed-malformed-2", drone_id: "drone_1" }));
    expect((await relayAcks(r)).command_id).toBe("seed-malformed-2");
    const ok = await client.nextOfType("emergency_land_response");
    expect(ok).toMatchObject({ command_id: "seed-malformed-2", success: true });
    expect(ok.idempotent).toBeUndefined();
  });

  it("authorization, unknown drone and relay offline", async () => {
    const viewer = await seedFleet("viewer");
    viewer.client.send(JSON.stringify({ type: "emergency_land", drone_id: "drone_1" }));
    expect(seedView(await viewer.client.nextOfType("emergency_land_response"))).toEqual({ type: "emergency_land_response", success: false, message: "string", alternative_suggestions: true });
    viewer.client.send(JSON.stringify({ type: "modify_waypoint", drone_id: "drone_1", new_waypoint: { lat: north(10), lon: HOME.lon, alt: 40 }, modification_reason: "" }));
    expect(await viewer.client.nextOfType("waypoint_modification_response")).toMatchObject({ success: false, code: "forbidden", alternative_suggestions: [] });

    const { r, client } = await seedFleet();
    client.send(JSON.stringify({ type: "emergency_land", drone_id: "drone_9" }));
    expect(await client.nextOfType("emergency_land_response")).toMatchObject({ success: false, code: "unknown_drone", drone_id: "drone_9" });
    r.close();
    await client.next((f) => f.type === "link_status" && f.scope === "relay" && f.state === "down");
    client.send(JSON.stringify({ type: "emergency_land", drone_id: "drone_1" }));
    expect(await client.nextOfType("emergency_land_response")).toMatchObject({ success: false, code: "relay_offline", idempotent: false });
  });

  it("a command over the socket's message limit is refused in its own type; emergency_land is not limited at all", async () => {
    const { fleet, r, client } = await seedFleet();
    // The object's clock stands still, so the bucket does not refill: of 551 frames the first 500
    // pass (limits.ts DASHBOARD_MESSAGES.burst), the rest are over the limit.
    await useClock(fleet, new ManualClock());
    for (let i = 0; i < 549; i++) client.send({ type: "ping", request_id: `flood-${i}` });
    client.send(JSON.stringify({ type: "modify_waypoint", request_id: "limited", drone_id: "drone_1", new_waypoint: { lat: north(10), lon: HOME.lon, alt: 40 }, modification_reason: "" }));
    client.send(JSON.stringify({ type: "emergency_land", request_id: "land", drone_id: "drone_1" }));
    const land = await r.next((f) => f.type === "command" && f.command === "emergency_land", 10_000);
    expect(land.drone_id).toBe("drone_1");
    r.send({ type: "command_result", command_id: land.command_id, status: "acked" });
    expect(await client.next((f) => f.type === "emergency_land_response", 10_000)).toMatchObject({ request_id: "land", success: true, command_id: land.command_id });
    expect(await client.next((f) => f.request_id === "limited", 10_000)).toMatchObject({ type: "waypoint_modification_response", success: false, code: "rate_limited", drone_id: "drone_1", idempotent: false });
  });
});

describe("emergency_land in the seed's form while the operator is rate limited", () => {
  it("is served at once, while the commands around it are refused", async () => {
    const { r, client } = await seedFleet();
    // More than max_commands_per_10s (20 by default) on this connection.
    for (let i = 0; i < 30; i++) client.send(JSON.stringify({ type: "modify_waypoint", drone_id: "drone_1", new_waypoint: { lat: north(20 + i), lon: HOME.lon, alt: 40 }, modification_reason: "flood" }));
    client.send(JSON.stringify({ type: "emergency_land", drone_id: "drone_1" }));
    client.send(JSON.stringify({ type: "modify_waypoint", drone_id: "drone_1", new_waypoint: { lat: north(80), lon: HOME.lon, alt: 40 }, modification_reason: "after" }));
    const land = await r.next((f) => f.type === "command" && f.command === "emergency_land", 5000);
    r.send({ type: "command_result", command_id: land.command_id, status: "acked" });
    expect(await client.nextOfType("emergency_land_response", 5000)).toMatchObject({ success: true, command_id: land.command_id, idempotent: false });
    const after = await client.next((f) => f.type === "waypoint_modification_response" && f.code === "rate_limited" && f.success === false);
    expect(seedView(after)).toEqual({ type: "waypoint_modification_response", success: false, message: "string", alternative_suggestions: true });
  });
});

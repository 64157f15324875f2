import { SELF, evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { COMMAND_TIMEOUT_MS } from "../../edge/fleet/command-desk";
import { CommandsBody, parseRestBody } from "../../edge/protocol";
import { connect, ManualClock, relay, sample, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const HOME = { lat: 47.3977, lon: 8.5456 };
const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

let n = 0;
const cid = () => `cmd-${crypto.randomUUID()}-${++n}`.slice(0, 60);

/** A metre offset from home, good enough at this latitude for tests. */
function at(north_m: number, east_m: number, alt_m = 50) {
  return { lat: HOME.lat + north_m / 111_320, lon: HOME.lon + east_m / (111_320 * Math.cos((HOME.lat * Math.PI) / 180)), alt_m };
}

async function setup(opts: { drones?: Record<string, Record<string, unknown>>; role?: "viewer" | "operator" | "admin" } = {}) {
  const fleet = uniqueFleet("cmd");
  const d = await connect(fleet, "ws", await token(opts.role ?? "operator", [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  const { r } = await relay(fleet);
  open.push(r);
  const drones = opts.drones ?? { d1: { ...at(0, 0, 40) } };
  await sendBatch(r, Object.entries(drones).map(([id, over]) => sample(id, over)));
  return { fleet, d, r };
}

/** The relay side: answer the next command frame. */
async function relayAnswers(r: TestSocket, status: "acked" | "failed" | "timeout" = "acked", message?: string) {
  const cmd = await r.nextOfType("command");
  r.send({ type: "command_result", command_id: cmd.command_id, status, ...(message ? { message } : {}) });
  await r.next((f) => f.type === "command_result_ack" && f.command_id === cmd.command_id);
  return cmd;
}

describe("modify_waypoint", () => {
  it("validates, sends to the relay, answers after the ack and broadcasts mission_update", async () => {
    const { d, r, fleet } = await setup();
    const other = await connect(fleet, "ws", await token("viewer", [fleet]));
    open.push(other);
    const id = cid();
    const wp = at(100, 100, 60);
    d.send({ type: "modify_waypoint", command_id: id, request_id: "rq", drone_id: "d1", new_waypoint: wp, modification_reason: "inspect roof" });
    expect(await d.next((f) => f.type === "command_status" && f.command_id === id)).toMatchObject({ status: "sent", by: "operator-user" });
    const cmd = await relayAnswers(r);
    expect(cmd).toMatchObject({ command: "modify_waypoint", drone_id: "d1", new_waypoint: wp, modification_reason: "inspect roof" });
    const res = await d.nextOfType("waypoint_modification_response");
    expect(res).toMatchObject({ command_id: id, request_id: "rq", success: true, status: "acked", alternative_suggestions: [] });
    for (const sock of [d, other]) {
      const mu = await sock.nextOfType("mission_update");
      expect(mu.update).toMatchObject({ type: "waypoint_modified", drone_id: "d1", new_waypoint: wp, modification_reason: "inspect roof" });
    }
  });

  it("never runs the same command_id twice and answers repeats with the first result", async () => {
    const { d, r } = await setup();
    const id = cid();
    const msg = { type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(50, 0, 50), modification_reason: "x" };
    d.send(msg);
    d.send({ ...msg, request_id: "again-in-flight" });
    expect(await d.next((f) => f.type === "command_status" && f.message !== undefined && /in flight/.test(String(f.message)))).toBeTruthy();
    await relayAnswers(r);
    const answers = [await d.nextOfType("waypoint_modification_response"), await d.nextOfType("waypoint_modification_response")];
    expect(answers.every((a) => a.success === true)).toBe(true);
    d.send({ ...msg, request_id: "later" });
    const dup = await d.nextOfType("waypoint_modification_response");
    expect(dup).toMatchObject({ success: true, duplicate: true, request_id: "later" });
    // Every answer above came after the relay would have been sent a second command: none came.
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
  });

  it("rejects each safety rule with its code and valid suggestions", async () => {
    // d1 hovers: a plan-less drone is dead-reckoned (edge/domain/trajectory.ts), and d1 flying east
    // at 8 m/s, 20 m from `low`, would close in on every point `low` could be sent to.
    const { d, fleet } = await setup({ drones: { d1: { ...at(0, 0, 40), battery_pct: 90, speed_mps: 0 }, low: { ...at(0, 20, 40), battery_pct: 21 }, blocker: { ...at(300, 0, 50), speed_mps: 0 } } });
    const admin = await token("admin", [fleet]);
    const cfg = (await (await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/config`, { headers: { Authorization: `Bearer ${admin}` } })).json()) as Record<string, unknown>;
    const zone = [at(600, -100), at(600, 100), at(800, 100), at(800, -100)].map(({ lat, lon }) => ({ lat, lon }));
    const put = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/config`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ ...cfg, no_fly_zones: [{ id: "z1", name: "school", polygon: zone }] }),
    });
    expect(put.status).toBe(200);
    const cases: [string, { lat: number; lon: number; alt_m: number }, string][] = [
      ["d1", { ...at(100, 0), alt_m: 500 }, "altitude_ceiling"],
      ["d1", { lat: 95, lon: 8.5, alt_m: 50 }, "invalid_coordinates"],
      ["d1", at(5000, 0, 50), "geofence"],
      ["d1", at(700, 0, 50), "no_fly_zone"],
      ["low", at(-1400, 1400, 50), "battery"],
      ["d1", at(300, 0, 50), "separation"],
    ];
    for (const [drone, wp, rule] of cases) {
      const id = cid();
      d.send({ type: "modify_waypoint", command_id: id, drone_id: drone, new_waypoint: wp, modification_reason: rule });
      const res = await d.nextOfType("waypoint_modification_response");
      expect(res, rule).toMatchObject({ command_id: id, success: false, status: "rejected", code: "safety_violation", rule });
      const alts = res.alternative_suggestions as { lat: number; lon: number; alt_m: number; reason: string }[];
      if (rule !== "invalid_coordinates") expect(alts.length, rule).toBeGreaterThan(0);
      for (const alt of alts.slice(0, 1)) {
        // A suggestion, sent back, passes (or at worst fails a different rule, never the same one).
        const id2 = cid();
        d.send({ type: "modify_waypoint", command_id: id2, drone_id: drone, new_waypoint: { lat: alt.lat, lon: alt.lon, alt_m: alt.alt_m }, modification_reason: "alt" });
        const s = await d.next((f) => (f.type === "waypoint_modification_response" || f.type === "command_status") && f.command_id === id2);
        if (s.type === "waypoint_modification_response") expect(s.rule, `${rule} suggestion`).not.toBe(rule);
      }
    }
  });

  it("answers schema-invalid coordinates in its own response type with a code, echoing the ids", async () => {
    const { d, r } = await setup();
    for (const lat of ['"NaN"', "1e400"]) {
      const id = cid();
      d.send(`{"type":"modify_waypoint","command_id":"${id}","request_id":"rq","drone_id":"d1","new_waypoint":{"lat":${lat},"lon":8,"alt_m":50}}`);
      expect(await d.nextOfType("waypoint_modification_response"), lat).toMatchObject({ command_id: id, request_id: "rq", drone_id: "d1", success: false, status: "rejected", code: "invalid_message", alternative_suggestions: [] });
    }
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
  });

  it("refuses viewers, unknown drones and drones of another fleet", async () => {
    const { d: viewer } = await setup({ role: "viewer" });
    viewer.send({ type: "modify_waypoint", command_id: cid(), drone_id: "d1", new_waypoint: at(10, 10), modification_reason: "" });
    expect(await viewer.nextOfType("waypoint_modification_response")).toMatchObject({ success: false, code: "forbidden", status: "rejected" });

    const a = await setup({ drones: { only_in_a: at(0, 0) } });
    const b = await setup({ drones: { only_in_b: at(0, 0) } });
    a.d.send({ type: "modify_waypoint", command_id: cid(), drone_id: "only_in_b", new_waypoint: at(10, 10), modification_reason: "" });
    expect(await a.d.nextOfType("waypoint_modification_response")).toMatchObject({ success: false, code: "unknown_drone" });
    b.d.send({ type: "emergency_land", command_id: cid(), drone_id: "ghost" });
    expect(await b.d.nextOfType("emergency_land_response")).toMatchObject({ success: false, code: "unknown_drone" });
  });
});

describe("ledger faults", () => {
  it("fails fast with relay_offline when no relay serves the drone", async () => {
    const { d, r } = await setup();
    r.close();
    await d.next((f) => f.type === "link_status" && f.scope === "relay" && f.state === "down");
    const id = cid();
    d.send({ type: "emergency_land", command_id: id, drone_id: "d1" });
    expect(await d.nextOfType("emergency_land_response")).toMatchObject({ command_id: id, success: false, status: "rejected", code: "relay_offline" });
  });

  it("ends in timeout when the relay drops mid-command, and ignores a late result", async () => {
    const { d, r, fleet } = await setup();
    const clock = new ManualClock();
    await useClock(fleet, clock);
    const id = cid();
    d.send({ type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(80, 0), modification_reason: "" });
    await r.nextOfType("command");
    r.close();
    // Past the deadline without sleeping 5 s: the object's clock moves.
    clock.advance(COMMAND_TIMEOUT_MS + 1);
    await runDurableObjectAlarm(stubFor(fleet));
    expect(await d.nextOfType("waypoint_modification_response")).toMatchObject({ command_id: id, success: false, status: "timeout", code: "timeout" });
    const { r: r2 } = await relay(fleet);
    open.push(r2);
    r2.send({ type: "command_result", command_id: id, status: "acked" });
    await r2.nextOfType("command_result_ack");
    const audit = (await (await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/commands`, { headers: { Authorization: `Bearer ${await token("operator", [fleet])}` } })).json()) as { commands: { command_id: string; status: string }[] };
    expect(audit.commands.find((c) => c.command_id === id)?.status).toBe("timeout");
  });

  it("takes the real result when the relay comes back in time, even across eviction", async () => {
    const { d, r, fleet } = await setup();
    const id = cid();
    d.send({ type: "emergency_land", command_id: id, drone_id: "d1", reason: "smoke" });
    await r.nextOfType("command");
    r.close();
    await evictDurableObject(stubFor(fleet));
    const { r: r2 } = await relay(fleet);
    open.push(r2);
    r2.send({ type: "command_result", command_id: id, status: "acked" });
    expect(await d.next((f) => f.type === "command_status" && f.command_id === id && f.status === "acked")).toBeTruthy();
    expect(await d.nextOfType("mission_update")).toMatchObject({ update: { type: "emergency_land", drone_id: "d1", reason: "smoke" } });
  });

  it("maps a ROS service error to failed with its message", async () => {
    const { d, r } = await setup();
    const id = cid();
    d.send({ type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(60, 0), modification_reason: "" });
    await relayAnswers(r, "failed", "service /d1/modify_waypoint threw: controller busy");
    expect(await d.nextOfType("waypoint_modification_response")).toMatchObject({ success: false, status: "failed", message: /controller busy/ });
  });

  it("ends in timeout, naming the service, when the relay reports that the drone's service did not answer", async () => {
    const { d, r } = await setup();
    const id = cid();
    d.send({ type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(60, 0), modification_reason: "" });
    await relayAnswers(r, "timeout", "service /d1/modify_waypoint did not answer within 4250 ms");
    expect(await d.nextOfType("waypoint_modification_response")).toMatchObject({
      success: false,
      status: "timeout",
      code: "timeout",
      message: /\/d1\/modify_waypoint did not answer/,
    });
  });

  it("never rate-limits emergency_land during a flood of other commands", async () => {
    const { d, r } = await setup();
    for (let i = 0; i < 30; i++) d.send({ type: "modify_waypoint", command_id: cid(), drone_id: "d1", new_waypoint: at(20 + i, 0), modification_reason: "flood" });
    const landId = cid();
    d.send({ type: "emergency_land", command_id: landId, drone_id: "d1" });
    const land = await r.next((f) => f.type === "command" && f.command === "emergency_land", 5000);
    expect(land.command_id).toBe(landId);
    const limited = [];
    for (let i = 0; i < 10; i++) limited.push(await d.next((f) => f.type === "waypoint_modification_response" && f.code === "rate_limited"));
    expect(limited).toHaveLength(10);
  });

  it("records every command with who, role and outcome in the audit", async () => {
    const { d, r, fleet } = await setup();
    const id = cid();
    d.send({ type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(40, 0), modification_reason: "audit" });
    await relayAnswers(r);
    await d.nextOfType("waypoint_modification_response");
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/commands?limit=10`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } });
    const { commands } = (await res.json()) as { commands: Record<string, unknown>[] };
    expect(commands[0]).toMatchObject({ command_id: id, command: "modify_waypoint", drone_id: "d1", sub: "operator-user", role: "operator", status: "acked" });
    expect(typeof commands[0]!.latency_ms).toBe("number");
  });
});

describe("command ids the ledger keeps free (issue 18)", () => {
  it("a viewer's refused command_id is not reserved: an operator's emergency_land with it runs", async () => {
    const { d: viewer, r, fleet } = await setup({ role: "viewer" });
    const id = cid();
    viewer.send({ type: "emergency_land", command_id: id, drone_id: "d1" });
    expect(await viewer.nextOfType("emergency_land_response")).toMatchObject({ command_id: id, success: false, status: "rejected", code: "forbidden" });
    const op = await connect(fleet, "ws", await token("operator", [fleet]));
    open.push(op);
    op.send({ type: "emergency_land", command_id: id, drone_id: "d1" });
    expect(await relayAnswers(r)).toMatchObject({ command_id: id, command: "emergency_land", drone_id: "d1" });
    const land = await op.nextOfType("emergency_land_response");
    expect(land).toMatchObject({ command_id: id, success: true, status: "acked" });
    expect(land.duplicate).toBeUndefined();
    // The audit keeps the viewer's attempt, under an id of the edge's own.
    const audit = await stubFor(fleet).listCommands(10);
    expect(audit.find((c) => c.command_id === id)).toMatchObject({ role: "operator", status: "acked" });
    expect(audit.find((c) => c.role === "viewer")).toMatchObject({ status: "rejected", code: "forbidden", params: { client_command_id: id } });
  });

  it("a viewer repeating an operator's id in flight is refused and leaves that command alone", async () => {
    const { d: op, r, fleet } = await setup();
    const viewer = await connect(fleet, "ws", await token("viewer", [fleet]));
    open.push(viewer);
    const id = cid();
    op.send({ type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(60, 0), modification_reason: "" });
    const cmd = await r.nextOfType("command");
    viewer.send({ type: "emergency_land", command_id: id, drone_id: "d1" });
    expect(await viewer.nextOfType("emergency_land_response")).toMatchObject({ command_id: id, code: "forbidden" });
    // No dashboard is told that the operator's command ended.
    expect((await op.barrier()).filter((f) => f.command_id === id && f.status === "rejected")).toEqual([]);
    r.send({ type: "command_result", command_id: cmd.command_id, status: "acked" });
    expect(await op.nextOfType("waypoint_modification_response")).toMatchObject({ command_id: id, success: true });
  });

  it("relay_offline leaves the id free: the same command runs once a relay is back", async () => {
    const { d, r, fleet } = await setup({ drones: { d1: { ...at(0, 0, 0), status: "idle", armed: false, speed_mps: 0, battery_pct: 95 } } });
    r.close();
    await d.next((f) => f.type === "link_status" && f.scope === "relay" && f.state === "down");
    const land = cid();
    const mission = cid();
    d.send({ type: "emergency_land", command_id: land, drone_id: "d1" });
    expect(await d.nextOfType("emergency_land_response")).toMatchObject({ command_id: land, success: false, code: "relay_offline" });
    d.send({ type: "assign_mission", command_id: mission, waypoints: [at(100, 0, 40)] });
    expect(await d.nextOfType("mission_assignment_response")).toMatchObject({ command_id: mission, success: false, code: "relay_offline" });
    expect(await stubFor(fleet).listMissions(10)).toEqual([]);

    const { r: r2 } = await relay(fleet);
    open.push(r2);
    d.send({ type: "emergency_land", command_id: land, drone_id: "d1" });
    expect((await relayAnswers(r2)).command_id).toBe(land);
    expect(await d.nextOfType("emergency_land_response")).toMatchObject({ command_id: land, success: true, status: "acked" });
    d.send({ type: "assign_mission", command_id: mission, waypoints: [at(100, 0, 40)] });
    expect((await relayAnswers(r2)).command_id).toBe(mission);
    expect(await d.nextOfType("mission_assignment_response")).toMatchObject({ command_id: mission, success: true });
    expect((await stubFor(fleet).listMissions(10)).map((m) => m.command_id)).toEqual([mission]);
  });

  it("rate_limited leaves the id free: the same command runs when the limit has refilled", async () => {
    const { d, r, fleet } = await setup();
    const clock = new ManualClock();
    await useClock(fleet, clock);
    for (let i = 0; i < 20; i++) d.send({ type: "modify_waypoint", command_id: cid(), drone_id: "d1", new_waypoint: at(20 + i, 0), modification_reason: "fill" });
    const id = cid();
    const msg = { type: "modify_waypoint", command_id: id, drone_id: "d1", new_waypoint: at(90, 0), modification_reason: "retry me" };
    d.send(msg);
    expect(await d.next((f) => f.type === "waypoint_modification_response" && f.command_id === id)).toMatchObject({ success: false, code: "rate_limited" });
    clock.advance(10_000);
    d.send(msg);
    const cmd = await r.next((f) => f.type === "command" && f.command_id === id);
    expect(cmd).toMatchObject({ command: "modify_waypoint", modification_reason: "retry me" });
  });
});

describe("the command audit", () => {
  it("pages by a unique cursor: commands sharing a received_at are neither skipped nor repeated", async () => {
    const { d, fleet } = await setup();
    const clock = new ManualClock();
    await useClock(fleet, clock);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = cid();
      ids.push(id);
      d.send({ type: "coordination_override", command_id: id, event_id: "ev-none", action: "hold" });
      await d.next((f) => f.type === "coordination_override_response" && f.command_id === id);
    }
    const url = `https://edge.test/v1/fleets/${fleet}/commands`;
    const headers = { Authorization: `Bearer ${await token("viewer", [fleet])}` };
    const seen: string[] = [];
    let before: string | null | undefined;
    for (let page = 0; page < 10; page++) {
      const res = await SELF.fetch(`${url}?limit=2${before ? `&before=${encodeURIComponent(before)}` : ""}`, { headers });
      const body = parseRestBody(CommandsBody, await res.json());
      if (!body.ok) throw new Error(body.message);
      expect(body.value.commands.every((c) => c.received_at === clock.now())).toBe(true);
      seen.push(...body.value.commands.map((c) => c.command_id));
      before = body.value.next_before;
      if (!before) break;
    }
    expect(seen.sort()).toEqual([...ids].sort());
    // A bare received_at still pages as before: the commands received strictly earlier.
    const bare = async (q: string) => ((await (await SELF.fetch(`${url}?before=${q}`, { headers })).json()) as { commands: unknown[] }).commands.length;
    expect(await bare(String(clock.now()))).toBe(0);
    expect(await bare(String(clock.now() + 1))).toBe(5);
    const bad = await SELF.fetch(`${url}?before=yesterday`, { headers });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("bad_cursor");
  });
});

describe("assign_mission", () => {
  it("picks the best drone, returns ranked candidates and tracks the mission lifecycle", async () => {
    const { d, r, fleet } = await setup({
      drones: {
        near: { ...at(0, 0, 0), battery_pct: 95, status: "idle", armed: false, speed_mps: 0 },
        far: { ...at(-900, -900, 0), battery_pct: 95, status: "idle", armed: false, speed_mps: 0 },
        empty: { ...at(0, 10, 0), battery_pct: 10, status: "idle", armed: false, speed_mps: 0 },
      },
    });
    const id = cid();
    d.send({ type: "assign_mission", command_id: id, mission: { waypoints: [at(200, 0, 50), at(200, 200, 50)], priority: "high" } });
    const cmd = await relayAnswers(r);
    expect(cmd).toMatchObject({ command: "assign_mission", drone_id: "near", priority: "high" });
    const res = await d.nextOfType("mission_assignment_response");
    expect(res).toMatchObject({ success: true, drone_id: "near", mission_id: cmd.mission_id });
    const cands = res.candidates as { drone_id: string; eligible: boolean; reasons: string[] }[];
    expect(cands[0]!.drone_id).toBe("near");
    expect(cands.find((c) => c.drone_id === "empty")).toMatchObject({ eligible: false });
    expect(await d.nextOfType("mission_update")).toMatchObject({ update: { type: "mission_assigned", mission_id: cmd.mission_id } });

    for (const state of ["active", "completed"]) {
      r.send({ type: "mission_progress", mission_id: cmd.mission_id, drone_id: "near", state, ts: Date.now() });
      expect(await d.next((f) => f.type === "mission_update" && (f.update as { status?: string }).status === state)).toBeTruthy();
    }
    const { missions } = (await (await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/missions`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } })).json()) as { missions: Record<string, unknown>[] };
    expect(missions[0]).toMatchObject({ mission_id: cmd.mission_id, status: "completed", drone_id: "near", priority: "high" });
    for (const k of ["created_at", "assigned_at", "started_at", "completed_at"]) expect(typeof missions[0]![k], k).toBe("number");
  });

  it("rejects a mission with a waypoint outside the geofence, and one no drone can fly", async () => {
    const { d } = await setup({ drones: { weak: { ...at(0, 0, 0), battery_pct: 5, status: "idle", armed: false } } });
    d.send({ type: "assign_mission", command_id: cid(), mission: { waypoints: [at(9000, 0, 50)], priority: "normal" } });
    expect(await d.nextOfType("mission_assignment_response")).toMatchObject({ success: false, code: "safety_violation", rule: "geofence" });
    d.send({ type: "assign_mission", command_id: cid(), mission: { waypoints: [at(100, 0, 50)], priority: "normal" } });
    expect(await d.nextOfType("mission_assignment_response")).toMatchObject({ success: false, code: "no_candidate", drone_id: null });
  });
});

describe("fleet configuration", () => {
  it("is readable by all, writable by admin only, validated and versioned, and survives eviction", async () => {
    const fleet = uniqueFleet("cfg");
    const url = `https://edge.test/v1/fleets/${fleet}/config`;
    const admin = { Authorization: `Bearer ${await token("admin", [fleet])}`, "content-type": "application/json" };
    const cfg = (await (await SELF.fetch(url, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } })).json()) as Record<string, unknown>;
    expect(cfg).toMatchObject({ ceiling_m: 120, battery_reserve_pct: 20, separation: { horizontal_m: 30, vertical_m: 10 }, version: 0 });
    const op = await SELF.fetch(url, { method: "PUT", headers: { Authorization: `Bearer ${await token("operator", [fleet])}` }, body: JSON.stringify(cfg) });
    expect(op.status).toBe(403);
    const bad = await SELF.fetch(url, { method: "PUT", headers: admin, body: JSON.stringify({ ...cfg, ceiling_m: -5 }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/ceiling_m/);
    const garbage = await SELF.fetch(url, { method: "PUT", headers: admin, body: "{" });
    expect(garbage.status).toBe(400);
    // Read every body: an unread response keeps the object's request in flight.
    expect(((await garbage.json()) as { error: { code: string } }).error.code).toBe("bad_json");
    await op.text();
    const ok = await SELF.fetch(url, { method: "PUT", headers: admin, body: JSON.stringify({ ...cfg, ceiling_m: 90 }) });
    expect(await ok.json()).toMatchObject({ ceiling_m: 90, version: 1 });
    await evictDurableObject(stubFor(fleet));
    expect(await (await SELF.fetch(url, { headers: admin })).json()).toMatchObject({ ceiling_m: 90, version: 1 });
  });
});

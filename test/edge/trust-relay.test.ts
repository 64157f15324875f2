/**
 * Issue 18, relay identity: what a relay token may claim. Each case was an attack that worked
 * before: a socket without relay_hello injecting telemetry, a hello with another relay's id taking
 * its commands, a second relay token taking over a drone with a higher seq, forged command results
 * and mission progress, seq and ts beyond any sane clock, and one token opening hundreds of sockets
 * or filling the fleet with junk drones. Real sockets through the Worker; negative checks behind
 * barriers (helpers.ts).
 */
import { evictDurableObject, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { RELAY_LIMITS } from "../../edge/fleet/limits";
import { SEQ_MAX, TS_MAX_AHEAD_MS } from "../../edge/protocol";
import { connect, ManualClock, relay, sample, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const HOME = { lat: 47.3977, lon: 8.5456 };
const near = (north_m: number) => ({ lat: HOME.lat + north_m / 111_320, lon: HOME.lon, alt_m: 40 });
/** A parked drone: never airborne, so no detection pass runs over test fleets of thousands. */
const parked = (id: string, i: number, over: Record<string, unknown> = {}) =>
  sample(id, { armed: false, status: "landed", speed_mps: 0, alt_m: 0, lat: 47.3 + (i % 100) * 1e-4, lon: 8.5 + Math.floor(i / 100) * 1e-4, ...over });

async function site(fleet: string, relayId: string, sub: string, drones: string[] = []) {
  const { r, ack } = await relay(fleet, drones, { relayId, sub });
  open.push(r);
  return { r, ack };
}

async function dashboard(fleet: string, role: "viewer" | "operator" | "admin" = "operator") {
  const d = await connect(fleet, "ws", await token(role, [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  return d;
}

async function status(fleet: string) {
  return stubFor(fleet).getStatus();
}

async function adminFetch(fleet: string, method: string, path: string, body?: unknown) {
  const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}${path}`, {
    method,
    headers: { Authorization: `Bearer ${await token("admin", [fleet])}`, "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("relay_hello first", () => {
  it("refuses every frame before the hello with hello_required and applies nothing", async () => {
    const fleet = uniqueFleet("trust");
    const r = await connect(fleet, "relay", await token("relay", [fleet]));
    open.push(r);
    const frames = [
      { type: "telemetry_batch", batch_id: 1, sent_at: Date.now(), updates: [sample("d1")] },
      { type: "command_result", command_id: "cmd-forged-0001", status: "acked" },
      { type: "mission_progress", mission_id: "m-x", drone_id: "d1", state: "completed", ts: Date.now() },
    ];
    for (const f of frames) {
      r.send(f);
      expect(await r.nextOfType("error"), f.type).toMatchObject({ code: "hello_required" });
    }
    // Nothing came but the refusals (no batch_ack, no command_result_ack); a ping is still answered.
    expect((await r.barrier()).map((f) => f.type)).toEqual([]);
    expect((await status(fleet)).counts.total).toBe(0);
    // After the hello the same socket works.
    r.send({ type: "relay_hello", relay_id: "late-hello", source: "sim", drone_ids: [] });
    await r.nextOfType("hello_ack");
    expect(await sendBatch(r, [sample("d1")])).toMatchObject({ accepted: 1 });
  });
});

describe("relay_id bound to the token subject", () => {
  it("refuses another subject's hello with the relay's id (4003); the real relay keeps its socket and its commands", async () => {
    const fleet = uniqueFleet("trust");
    const { r: real } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(real, [sample("d1", near(0))]);
    const evil = await connect(fleet, "relay", await token("relay", [fleet], { sub: "relay-evil" }));
    open.push(evil);
    evil.send({ type: "relay_hello", relay_id: "site-a", source: "sim", drone_ids: ["d1"] });
    expect(await evil.nextOfType("error")).toMatchObject({ code: "relay_id_taken" });
    expect((await evil.waitClosed()).code).toBe(4003);
    // The real relay was not replaced, and a command still goes to it.
    const op = await dashboard(fleet);
    op.send({ type: "emergency_land", command_id: "land-after-hijack", drone_id: "d1" });
    expect(await real.nextOfType("command")).toMatchObject({ command_id: "land-after-hijack", command: "emergency_land" });
    expect(real.closed).toBeNull();
  });

  it("lets the same subject reconnect: the newer socket replaces its own older one (4000)", async () => {
    const fleet = uniqueFleet("trust");
    const { r: first } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(first, [sample("d1", { seq: 50 })]);
    const { r: second, ack } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    expect((await first.waitClosed()).code).toBe(4000);
    expect(ack.last_seq).toEqual({ d1: 50 });
    expect(await sendBatch(second, [sample("d1", { seq: 51 })])).toMatchObject({ accepted: 1 });
  });

  it("lists relays for admins, and releases a relay_id only once its socket is gone", async () => {
    const fleet = uniqueFleet("trust");
    const { r } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(r, [sample("d1")]);
    const listed = await adminFetch(fleet, "GET", "/relays");
    expect(listed.body.relays).toEqual([expect.objectContaining({ relay_id: "site-a", sub: "relay-site-a", connected: true, drones: 1 })]);
    expect((await adminFetch(fleet, "DELETE", "/relays/site-a")).status).toBe(409);
    r.close();
    await r.waitClosed();
    // Once the close is handled (a barrier on another socket), the id can be released and another subject may use it.
    await (await dashboard(fleet)).barrier();
    expect((await adminFetch(fleet, "DELETE", "/relays/site-a")).status).toBe(200);
    const { ack } = await site(fleet, "site-a", "relay-new-owner");
    expect(ack.type).toBe("hello_ack");
    const viewer = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/relays`, { headers: { Authorization: `Bearer ${await token("operator", [fleet])}` } });
    expect(viewer.status).toBe(403);
    await viewer.arrayBuffer();
  });
});

describe("drone ownership", () => {
  it("refuses a second relay token's higher-seq samples for a drone per item (not_owner): dashboards and commands stay with the real relay", async () => {
    const fleet = uniqueFleet("trust");
    const d = await dashboard(fleet);
    d.send({ type: "subscribe_telemetry", drone_ids: ["d1"] });
    await d.nextOfType("subscribed");
    const { r: real } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(real, [sample("d1", { seq: 10, ...near(0) })]);
    expect(await d.nextOfType("telemetry")).toMatchObject({ seq: 10 });
    const { r: evil, ack: evilHello } = await site(fleet, "site-evil", "relay-evil", ["d1"]);
    // The impostor does not even learn the drone's seq.
    expect(evilHello.last_seq).toEqual({});
    const ack = await sendBatch(evil, [sample("d1", { seq: 1e12, lat: 0, lon: 0 }), sample("evil-own", { seq: 1 })]);
    expect(ack).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 0, code: "not_owner" }] });
    expect((await d.barrier()).filter((f) => f.type === "telemetry")).toEqual([]);
    // The real relay's next sample still counts (no frozen seq), and is what dashboards see.
    expect(await sendBatch(real, [sample("d1", { seq: 11, ...near(1) })])).toMatchObject({ accepted: 1 });
    expect(await d.nextOfType("telemetry")).toMatchObject({ seq: 11 });
    expect((await status(fleet)).drones.find((x) => x.drone_id === "d1")).toMatchObject({ seq: 11, lat: near(1).lat });
    // emergency_land for d1 goes to the real relay, and nothing to the impostor.
    d.send({ type: "emergency_land", command_id: "land-d1-real", drone_id: "d1" });
    expect(await real.nextOfType("command")).toMatchObject({ command_id: "land-d1-real" });
    expect((await evil.barrier()).filter((f) => f.type === "command")).toEqual([]);
  });

  it("passes a drone to another relay only after its relay has been gone longer than the stale time, or by an admin", async () => {
    const fleet = uniqueFleet("trust");
    const watcher = await dashboard(fleet);
    const clock = new ManualClock();
    await useClock(fleet, clock);
    const { r: a } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(a, [sample("d1", { seq: 100 })]);
    a.close();
    await a.waitClosed();
    await watcher.barrier();
    const { r: b } = await site(fleet, "site-b", "relay-site-b", ["d1"]);
    // Gone for less than the stale bound: still site-a's.
    expect(await sendBatch(b, [sample("d1", { seq: 200 })])).toMatchObject({ accepted: 0, errors: [{ code: "not_owner" }] });
    clock.advance(15_001);
    expect(await sendBatch(b, [sample("d1", { seq: 201 })])).toMatchObject({ accepted: 1 });
    // site-a is back: the drone is site-b's now.
    const { r: a2, ack: backAck } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    expect(backAck.last_seq).toEqual({});
    expect(await sendBatch(a2, [sample("d1", { seq: 300 })])).toMatchObject({ errors: [{ code: "not_owner" }] });
    // An admin gives it back; site-a's own (lower) counter counts at once.
    const moved = await adminFetch(fleet, "PUT", "/drones/d1/relay", { relay_id: "site-a" });
    expect(moved).toMatchObject({ status: 200, body: { drone_id: "d1", relay_id: "site-a", previous: "site-b" } });
    expect(await sendBatch(a2, [sample("d1", { seq: 5 })])).toMatchObject({ accepted: 1 });
    expect(await sendBatch(b, [sample("d1", { seq: 400 })])).toMatchObject({ errors: [{ code: "not_owner" }] });
    expect((await adminFetch(fleet, "PUT", "/drones/nope/relay", { relay_id: "site-a" })).status).toBe(404);
    expect((await adminFetch(fleet, "PUT", "/drones/d1/relay", { relay_id: 7 })).status).toBe(400);
    // Ownership survives eviction.
    await evictDurableObject(stubFor(fleet));
    await useClock(fleet, clock);
    expect(await sendBatch(b, [sample("d1", { seq: 500 })])).toMatchObject({ errors: [{ code: "not_owner" }] });
    expect(await sendBatch(a2, [sample("d1", { seq: 6 })])).toMatchObject({ accepted: 1 });
  });
});

describe("results and progress only from the relay a command went to", () => {
  it("refuses another relay's command_result (not acknowledged); the real relay's failed is the final state", async () => {
    const fleet = uniqueFleet("trust");
    const { r: real } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(real, [sample("d1", near(0))]);
    const { r: evil } = await site(fleet, "site-evil", "relay-evil");
    const op = await dashboard(fleet);
    op.send({ type: "modify_waypoint", command_id: "wp-forge-0001", drone_id: "d1", new_waypoint: near(30) });
    await real.nextOfType("command");
    evil.send({ type: "command_result", command_id: "wp-forge-0001", status: "acked" });
    expect(await evil.nextOfType("error")).toMatchObject({ code: "not_your_command" });
    expect((await evil.barrier()).filter((f) => f.type === "command_result_ack")).toEqual([]);
    expect((await op.barrier()).filter((f) => f.type === "waypoint_modification_response")).toEqual([]);
    real.send({ type: "command_result", command_id: "wp-forge-0001", status: "failed", message: "controller busy" });
    expect(await real.nextOfType("command_result_ack")).toMatchObject({ command_id: "wp-forge-0001" });
    expect(await op.nextOfType("waypoint_modification_response")).toMatchObject({ status: "failed" });
    const row = (await stubFor(fleet).listCommands(10)).find((c) => c.command_id === "wp-forge-0001");
    expect(row).toMatchObject({ status: "failed", relay_id: "site-a" });
  });

  it("refuses mission_progress for a mission another relay flies, and a ts beyond any sane clock (9e15)", async () => {
    const fleet = uniqueFleet("trust");
    const { r: real } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(real, [sample("d1", { ...near(0), battery_pct: 90 })]);
    const { r: evil } = await site(fleet, "site-evil", "relay-evil");
    const op = await dashboard(fleet);
    op.send({ type: "assign_mission", command_id: "mission-forge-01", drone_id: "d1", mission: { waypoints: [near(40), near(80)] } });
    const cmd = await real.nextOfType("command");
    real.send({ type: "command_result", command_id: cmd.command_id, status: "acked" });
    const assigned = await op.nextOfType("mission_assignment_response");
    const missionId = assigned.mission_id as string;
    evil.send({ type: "mission_progress", mission_id: missionId, drone_id: "d1", state: "completed", ts: Date.now() });
    expect(await evil.nextOfType("error")).toMatchObject({ code: "not_your_command" });
    // The real relay naming another drone for the mission is refused too.
    real.send({ type: "mission_progress", mission_id: missionId, drone_id: "d2", state: "completed", ts: Date.now() });
    expect(await real.nextOfType("error")).toMatchObject({ code: "not_your_command" });
    real.send({ type: "mission_progress", mission_id: missionId, drone_id: "d1", state: "completed", ts: 9e15 });
    expect(await real.nextOfType("error")).toMatchObject({ code: "ts_out_of_range" });
    expect((await op.barrier()).filter((f) => f.type === "mission_update" && (f.update as { type: string }).type === "mission_status")).toEqual([]);
    expect((await stubFor(fleet).listMissions(5)).find((m) => m.mission_id === missionId)?.status).toBe("assigned");
    // The relay flying it is heard.
    real.send({ type: "mission_progress", mission_id: missionId, drone_id: "d1", state: "active", waypoint_index: 0, ts: Date.now() });
    expect(await op.next((f) => f.type === "mission_update" && (f.update as { type: string }).type === "mission_status")).toMatchObject({ update: { status: "active" } });
  });
});

describe("seq and ts beyond any sane clock", () => {
  it("refuses a seq beyond SEQ_MAX per item instead of storing a high-water mark that freezes the drone", async () => {
    const fleet = uniqueFleet("trust");
    const { r } = await site(fleet, "site-a", "relay-site-a", ["d1"]);
    await sendBatch(r, [sample("d1", { seq: 10 })]);
    const ack = await sendBatch(r, [sample("d1", { seq: Number.MAX_SAFE_INTEGER }), sample("d1", { seq: SEQ_MAX + 1 })]);
    expect(ack).toMatchObject({ accepted: 0, rejected: 2, errors: [{ index: 0, code: "seq_out_of_range" }, { index: 1, code: "seq_out_of_range" }] });
    expect(await sendBatch(r, [sample("d1", { seq: 11 })])).toMatchObject({ accepted: 1 });
    await evictDurableObject(stubFor(fleet));
    expect((await status(fleet)).drones[0]).toMatchObject({ drone_id: "d1", seq: 11 });
    expect(await sendBatch(r, [sample("d1", { seq: 12 })])).toMatchObject({ accepted: 1 });
    // The bound itself is a valid seq.
    expect(await sendBatch(r, [sample("d2", { seq: SEQ_MAX })])).toMatchObject({ accepted: 1 });
  });

  it("refuses a sample ts more than a day ahead of the edge's clock (ts_out_of_range)", async () => {
    const fleet = uniqueFleet("trust");
    const { r } = await site(fleet, "site-a", "relay-site-a");
    const ack = await sendBatch(r, [sample("d1", { ts: Date.now() + TS_MAX_AHEAD_MS + 60_000 }), sample("d2", { ts: 9e15 }), sample("d3", { ts: Date.now() + 60_000 })]);
    expect(ack).toMatchObject({ accepted: 1, rejected: 2, errors: [{ index: 0, code: "ts_out_of_range" }, { index: 1, code: "ts_out_of_range" }] });
    expect((await status(fleet)).drones.map((x) => x.drone_id)).toEqual(["d3"]);
  });
});

describe("limits per relay token", () => {
  it("allows a few relay sockets per token subject, then 429 too_many_connections; another subject is not affected", async () => {
    const fleet = uniqueFleet("trust");
    const tok = await token("relay", [fleet], { sub: "relay-greedy" });
    for (let i = 0; i < RELAY_LIMITS.socketsPerSubject; i++) open.push(await connect(fleet, "relay", tok));
    const over = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/relay`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${tok}` } });
    expect(over.status).toBe(429);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe("too_many_connections");
    const { ack } = await site(fleet, "site-other", "relay-other");
    expect(ack.type).toBe("hello_ack");
  });

  it("caps the new drones one token subject may add: 10,000 junk ids leave room, a real relay's drone joins, the allowance refills per minute", async () => {
    const fleet = uniqueFleet("trust");
    const watcher = await dashboard(fleet, "viewer");
    const clock = new ManualClock();
    await useClock(fleet, clock);
    const { r: junk } = await site(fleet, "junk", "relay-junk");
    let accepted = 0;
    let refused = 0;
    for (let k = 0; k < 10; k++) {
      const ack = await sendBatch(junk, Array.from({ length: 1000 }, (_, i) => parked(`junk-${k}-${i}`, i, { seq: 1 })));
      accepted += ack.accepted as number;
      refused += ack.rejected as number;
      if (k === 9) expect((ack.errors as { code: string }[])[0]?.code).toBe("too_many_new_drones");
    }
    expect(accepted).toBe(RELAY_LIMITS.newDronesBurst);
    expect(refused).toBe(10_000 - RELAY_LIMITS.newDronesBurst);
    // Known drones still report (no allowance needed), and another site's drone joins.
    expect(await sendBatch(junk, [parked("junk-0-0", 0, { seq: 2 })])).toMatchObject({ accepted: 1 });
    const { r: real } = await site(fleet, "site-real", "relay-real", ["real-1"]);
    expect(await sendBatch(real, [parked("real-1", 0)])).toMatchObject({ accepted: 1 });
    // A minute later the junk token may add its per-minute allowance, no more.
    clock.advance(60_000);
    const later = await sendBatch(junk, Array.from({ length: 1000 }, (_, i) => parked(`junk-late-${i}`, i)));
    expect(later.accepted).toBe(RELAY_LIMITS.newDronesPerMinute);
    expect((await status(fleet)).counts.total).toBe(RELAY_LIMITS.newDronesBurst + RELAY_LIMITS.newDronesPerMinute + 1);
    await watcher.barrier();
  }, 60_000);
});

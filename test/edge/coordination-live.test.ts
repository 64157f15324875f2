/**
 * Collision avoidance end to end inside workerd: a scripted relay flies drones on conflicting
 * courses, the fleet object detects, sends resolution commands through the ledger, the scripted
 * drones obey them, and separation must never be lost. Time is simulated: each step advances the
 * drones and the object's clock one second and runs one detection pass, so the test does not
 * sleep, and the edge's idea of time (holds, retries) matches the simulated drones'.
 */
import { SELF, evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { connect, ManualClock, relay, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const HOME = { lat: 47.3977, lon: 8.5456 };
const M_LAT = 111_320;
const M_LON = 111_320 * Math.cos((HOME.lat * Math.PI) / 180);
const SEP_H = 30;
const SEP_V = 10;

type Sim = { id: string; x: number; y: number; z: number; heading: number; speed: number; target: { x: number; y: number; z: number } | null; holdS: number; seq: number };

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

function drone(id: string, x: number, y: number, z: number, heading: number, speed = 10): Sim {
  return { id, x, y, z, heading, speed, target: null, holdS: 0, seq: 1 };
}

function toSample(d: Sim) {
  return {
    drone_id: d.id,
    seq: d.seq++,
    ts: Date.now(),
    lat: HOME.lat + d.y / M_LAT,
    lon: HOME.lon + d.x / M_LON,
    alt_m: d.z,
    heading_deg: ((d.heading % 360) + 360) % 360,
    speed_mps: d.holdS > 0 ? 0 : d.speed,
    battery_pct: 90,
    armed: true,
    mode: "AUTO.MISSION",
    status: "flying",
  };
}

/** One simulated second: obey holds and waypoints, else keep course. */
function step(d: Sim): void {
  if (d.holdS > 0) {
    d.holdS -= 1;
    return;
  }
  if (d.target) {
    const dx = d.target.x - d.x;
    const dy = d.target.y - d.y;
    const dz = d.target.z - d.z;
    const dist = Math.hypot(dx, dy);
    d.z += Math.sign(dz) * Math.min(Math.abs(dz), 3);
    if (dist <= d.speed) {
      d.x = d.target.x;
      d.y = d.target.y;
      d.speed = 0;
      return;
    }
    d.heading = (Math.atan2(dx, dy) * 180) / Math.PI;
    d.x += (dx / dist) * d.speed;
    d.y += (dy / dist) * d.speed;
    return;
  }
  const h = (d.heading * Math.PI) / 180;
  d.x += Math.sin(h) * d.speed;
  d.y += Math.cos(h) * d.speed;
}

/** Apply and acknowledge every command the relay has been sent (all of them: behind a barrier). */
async function obey(r: TestSocket, world: Map<string, Sim>): Promise<string[]> {
  const got: string[] = [];
  for (const cmd of (await r.barrier()).filter((f) => f.type === "command")) {
    const d = world.get(cmd.drone_id as string)!;
    if (cmd.command === "hold") d.holdS = cmd.duration_s as number;
    if (cmd.command === "modify_waypoint") {
      const wp = cmd.new_waypoint as { lat: number; lon: number; alt_m: number };
      d.target = { x: (wp.lon - HOME.lon) * M_LON, y: (wp.lat - HOME.lat) * M_LAT, z: wp.alt_m };
      if (d.speed === 0) d.speed = 10;
    }
    got.push(`${cmd.command}:${cmd.drone_id}`);
    r.send({ type: "command_result", command_id: cmd.command_id, status: "acked" });
  }
  return got;
}

/** One simulated second on the object's clock, then the alarm: the detection pass is due. */
async function detect(fleet: string, clock: ManualClock): Promise<void> {
  clock.advance(1_000);
  await runDurableObjectAlarm(stubFor(fleet));
}

function minSeparation(world: Map<string, Sim>): { h: number; v: number; lost: boolean } {
  const ds = [...world.values()];
  let lost = false;
  let h = Infinity;
  let v = Infinity;
  for (let i = 0; i < ds.length; i++)
    for (let j = i + 1; j < ds.length; j++) {
      const dh = Math.hypot(ds[i]!.x - ds[j]!.x, ds[i]!.y - ds[j]!.y);
      const dv = Math.abs(ds[i]!.z - ds[j]!.z);
      h = Math.min(h, dh);
      v = Math.min(v, dv);
      if (dh < SEP_H && dv < SEP_V) lost = true;
    }
  return { h, v, lost };
}

async function fly(fleet: string, clock: ManualClock, r: TestSocket, world: Map<string, Sim>, seconds: number, onStep?: (t: number) => Promise<void>) {
  const commands: string[] = [];
  let lost = false;
  for (let t = 0; t < seconds; t++) {
    await sendBatch(r, [...world.values()].map(toSample));
    await detect(fleet, clock);
    commands.push(...(await obey(r, world)));
    for (const d of world.values()) step(d);
    if (minSeparation(world).lost) lost = true;
    await onStep?.(t);
  }
  return { commands, lost };
}

async function setup(drones: Sim[]) {
  const fleet = uniqueFleet("coord");
  const clock = new ManualClock();
  await useClock(fleet, clock);
  const d = await connect(fleet, "ws", await token("operator", [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  const { r } = await relay(fleet);
  open.push(r);
  const world = new Map(drones.map((x) => [x.id, x]));
  return { fleet, clock, d, r, world };
}

describe("collision avoidance in the fleet object", () => {
  const scenarios: [string, Sim[]][] = [
    ["head_on", [drone("a", -300, 0, 50, 90), drone("b", 300, 0, 50, 270)]],
    ["crossing", [drone("a", -250, 0, 50, 90), drone("b", 0, -250, 50, 0)]],
    ["overtaking", [drone("a", -200, 0, 50, 90, 14), drone("b", -60, 0, 50, 90, 4)]],
  ];
  for (const [type, drones] of scenarios) {
    it(`detects and resolves a ${type} encounter without losing separation`, async () => {
      const { fleet, clock, d, r, world } = await setup(drones);
      const { commands, lost } = await fly(fleet, clock, r, world, 60);
      expect(lost, `separation lost in ${type}`).toBe(false);
      expect(commands.length).toBeGreaterThan(0);
      const ev = await d.next((f) => f.type === "coordination_event");
      expect(ev.event).toMatchObject({ event_type: type, drone_ids: ["a", "b"] });
      const e = ev.event as { first_command_at: number; detected_at: number };
      expect(e.first_command_at).toBe(e.detected_at);
      const closed = await d.next((f) => f.type === "coordination_event" && (f.event as { status: string }).status === "resolved");
      expect((closed.event as { resolution_time_ms: number }).resolution_time_ms).toBeGreaterThanOrEqual(0);
      // The edge's own commands are in the audit, under the coordinator.
      const audit = (await (await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/commands`, { headers: { Authorization: `Bearer ${await token("admin", [fleet])}` } })).json()) as { commands: { sub: string; role: string; status: string }[] };
      expect(audit.commands.some((c) => c.role === "system" && c.sub.startsWith("coordinator:") && c.status === "acked")).toBe(true);
    });
  }

  it("raises nothing for parallel tracks 50 m apart", async () => {
    const { fleet, clock, d, r, world } = await setup([drone("a", -300, 0, 50, 90), drone("b", -300, 50, 50, 90)]);
    const { commands } = await fly(fleet, clock, r, world, 20);
    expect(commands).toEqual([]);
    expect((await d.barrier()).filter((f) => f.type === "coordination_event")).toEqual([]);
  });

  it("honours an operator override and records who made it", async () => {
    const { fleet, clock, d, r, world } = await setup([drone("a", -250, 0, 50, 90), drone("b", 250, 0, 50, 270)]);
    await sendBatch(r, [...world.values()].map(toSample));
    await detect(fleet, clock);
    const ev = (await d.nextOfType("coordination_event")).event as { event_id: string };
    await obey(r, world);
    d.send({ type: "coordination_override", command_id: `ovr-${crypto.randomUUID()}`, event_id: ev.event_id, action: "hold", reason: "tower asks" });
    const res = await d.nextOfType("coordination_override_response");
    expect(res).toMatchObject({ success: true, status: "acked", event_id: ev.event_id, action: "hold" });
    const changed = await d.next((f) => f.type === "coordination_event" && (f.event as { overridden_by: string | null }).overridden_by !== null);
    expect(changed.event).toMatchObject({ strategy: "hold", overridden_by: "operator-user", override_reason: "tower asks" });
    expect(await r.next((f) => f.type === "command" && f.command === "hold")).toBeTruthy();

    d.send({ type: "coordination_override", command_id: `ovr-${crypto.randomUUID()}`, event_id: ev.event_id, action: "dismiss" });
    expect(await d.nextOfType("coordination_override_response")).toMatchObject({ success: true });
    d.send({ type: "coordination_override", command_id: `ovr-${crypto.randomUUID()}`, event_id: ev.event_id, action: "hold" });
    expect(await d.nextOfType("coordination_override_response")).toMatchObject({ success: false, code: "event_closed" });
    d.send({ type: "coordination_override", command_id: `ovr-${crypto.randomUUID()}`, event_id: "nope", action: "hold" });
    expect(await d.nextOfType("coordination_override_response")).toMatchObject({ success: false, code: "unknown_event" });

    const viewer = await connect(fleet, "ws", await token("viewer", [fleet]));
    open.push(viewer);
    viewer.send({ type: "coordination_override", command_id: `ovr-${crypto.randomUUID()}`, event_id: ev.event_id, action: "dismiss" });
    expect(await viewer.nextOfType("coordination_override_response")).toMatchObject({ success: false, code: "forbidden" });
  });

  it("follows an event across eviction of the object, and keeps its replay", async () => {
    const { fleet, clock, d, r, world } = await setup([drone("a", -300, 0, 50, 90), drone("b", 300, 0, 50, 270)]);
    await sendBatch(r, [...world.values()].map(toSample));
    await detect(fleet, clock);
    const ev = (await d.nextOfType("coordination_event")).event as { event_id: string };
    await evictDurableObject(stubFor(fleet));
    // A new instance starts on the system clock: give it the test's clock again.
    await useClock(fleet, clock);
    const status = await stubFor(fleet).getStatus();
    expect(status.coordination_events?.map((e) => e.event_id)).toEqual([ev.event_id]);
    const { lost } = await fly(fleet, clock, r, world, 60);
    expect(lost).toBe(false);
    const events = (await d.barrier()).filter((f) => f.type === "coordination_event").map((f) => f.event as { event_id: string; status: string });
    expect(new Set(events.map((e) => e.event_id))).toEqual(new Set([ev.event_id]));
    expect(events.at(-1)?.status).toBe("resolved");
    const replay = (await (await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/coordination/${ev.event_id}`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } })).json()) as {
      event: { event_id: string };
      tracks: Record<string, unknown[]>;
    };
    expect(replay.event.event_id).toBe(ev.event_id);
    expect(Object.keys(replay.tracks).sort()).toEqual(["a", "b"]);
    const missing = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/coordination/ev-missing`, { headers: { Authorization: `Bearer ${await token("viewer", [fleet])}` } });
    expect(missing.status).toBe(404);
    await missing.text();
  });
});

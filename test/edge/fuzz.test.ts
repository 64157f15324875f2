/**
 * Property-based fuzzing of the protocol parsers and of a live fleet object: random and mutated
 * frames never crash anything, every bad frame is answered with a coded error (or a close for
 * oversize), and rejected frames leave the state unchanged. Also the other way round: every frame
 * and REST body a live fleet object sends parses with the schema its reader uses.
 */
import { runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AlertsBody,
  AnalyticsLiveBody,
  COMMAND_RESPONSE_TYPES,
  CommandsBody,
  CoordinationBody,
  ERROR_CODES,
  ErrorBody,
  HourlyBody,
  InsightsBody,
  MissionsBody,
  parseDashboardMessage,
  parseEdgeToDashboard,
  parseEdgeToRelay,
  parseRelayMessage,
  parseRestBody,
  readCommandHead,
  StatusBody,
} from "../../edge/protocol";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import { connect, relay, sample, sendBatch, stubFor, token, uniqueFleet, type TestSocket } from "./helpers";

const validDashboard = [
  { type: "subscribe_telemetry", drone_ids: "all" },
  { type: "subscribe_telemetry", drone_ids: ["d1", "d2"], batch: true },
  { type: "unsubscribe_telemetry" },
  { type: "ping", request_id: "x" },
  { type: "modify_waypoint", command_id: "cmd-00000001", drone_id: "d1", new_waypoint: { lat: 47.4, lon: 8.5, alt_m: 50 }, modification_reason: "r" },
  { type: "emergency_land", command_id: "cmd-00000002", drone_id: "d1" },
  { type: "assign_mission", command_id: "cmd-00000003", mission: { waypoints: [{ lat: 47.4, lon: 8.5, alt_m: 50 }], priority: "high" } },
  { type: "coordination_override", command_id: "cmd-00000004", event_id: "ev-1", action: "hold" },
];

/** Mutate a valid frame: drop, retype or replace one field, or corrupt its text. */
const mutated = fc
  .tuple(fc.constantFrom(...validDashboard), fc.nat(), fc.anything(), fc.constantFrom("drop", "replace", "truncate", "garble"))
  .map(([msg, n, value, how]) => {
    const keys = Object.keys(msg);
    const k = keys[n % keys.length]!;
    const copy: Record<string, unknown> = structuredClone(msg);
    if (how === "drop") delete copy[k];
    if (how === "replace") copy[k] = value;
    const text = JSON.stringify(copy) ?? "null";
    if (how === "truncate") return text.slice(0, n % Math.max(text.length, 1));
    if (how === "garble") return text.replace(/[:,]/, String.fromCharCode(33 + (n % 90)));
    return text;
  });

/** GET /status through the Worker, checked against its schema. */
async function fleetStatus(fleet: string): Promise<StatusBody> {
  const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/status`, { headers: { Authorization: `Bearer ${await token("admin", [fleet])}` } });
  const r = parseRestBody(StatusBody, await res.json());
  if (!r.ok) throw new Error(`GET /status: ${res.status} ${r.message}`);
  return r.value;
}

const anyFrame = fc.oneof(fc.string(), fc.json(), mutated, fc.anything().map((v) => JSON.stringify(v) ?? "undefined"));

describe("parser fuzzing", () => {
  it("never throws and always answers ok or a coded error", () => {
    fc.assert(
      fc.property(anyFrame, (raw) => {
        for (const parse of [parseDashboardMessage, parseRelayMessage, parseEdgeToDashboard, parseEdgeToRelay]) {
          const r = parse(raw);
          if (!r.ok) {
            expect(ERROR_CODES).toContain(r.error.code);
            expect(r.error.type).toBe("error");
            expect(typeof r.error.message).toBe("string");
          } else {
            expect(typeof r.value.type).toBe("string");
          }
        }
      }),
      { numRuns: 2000, seed: 42 },
    );
  });
});

describe("live object fuzzing", () => {
  it("answers every bad dashboard frame and keeps state and socket", async () => {
    const fleet = uniqueFleet("fuzz");
    const { r } = await relay(fleet);
    await sendBatch(r, [sample("d1", { seq: 10 }), sample("d2", { seq: 10 })]);
    const before = await fleetStatus(fleet);
    expect(before.drones.map((x) => x.drone_id)).toEqual(["d1", "d2"]);
    const d = await connect(fleet, "ws", await token("viewer", [fleet]));
    await d.nextOfType("fleet_status");
    const frames = fc.sample(anyFrame, { numRuns: 300, seed: 7 });
    let answered = 0;
    for (const raw of frames) {
      const parsed = parseDashboardMessage(raw);
      d.send(raw);
      if (!parsed.ok) {
        // A command is refused in its own response type; only a frame of no readable command type
        // gets a generic error.
        // (The viewer's well-formed commands are answered in the same types, with forbidden.)
        const head = readCommandHead(raw);
        const e = head
          ? await d.next((f) => f.type === COMMAND_RESPONSE_TYPES[head.type] && f.code === parsed.error.code && (head.command_id === undefined || f.command_id === head.command_id))
          : await d.nextOfType("error");
        expect(ERROR_CODES).toContain(e.code);
        if (head) expect(e).toMatchObject({ success: false, status: "rejected" });
        answered++;
      }
    }
    d.send({ type: "ping", request_id: "still-here" });
    expect(await d.next((f) => f.type === "pong" && f.request_id === "still-here", 5000)).toBeTruthy();
    expect(d.closed).toBeNull();
    expect(answered).toBeGreaterThan(100);
    const after = await fleetStatus(fleet);
    // Viewers cannot change drones; whatever they sent, the fleet state is the same.
    expect(after.drones).toEqual(before.drones);
    d.close();
    r.close();
  });

  it("counts bad telemetry items from a relay and never lets them into the state", async () => {
    const fleet = uniqueFleet("fuzz");
    const { r } = await relay(fleet);
    const items = fc.sample(
      fc.oneof(
        fc.anything(),
        fc.record({ drone_id: fc.string(), seq: fc.oneof(fc.integer(), fc.double()), lat: fc.double(), lon: fc.double() }),
        fc.constant(sample("good", { seq: 5 })),
      ),
      { numRuns: 200, seed: 11 },
    );
    const ack = await sendBatch(r, items);
    expect((ack.accepted as number) + (ack.rejected as number) + (ack.duplicates as number)).toBe(items.length);
    const st = await fleetStatus(fleet);
    expect(st.drones.map((x) => x.drone_id)).toEqual(["good"]);
    expect(await sendBatch(r, [sample("good", { seq: 6 })])).toMatchObject({ accepted: 1 });
    r.close();
  });
});

/** Every text frame a socket receives from now on, raw, as the edge sent it. */
function record(sock: TestSocket): string[] {
  const raw: string[] = [];
  sock.ws.addEventListener("message", (e) => raw.push(e.data as string));
  return raw;
}

/** Parse every recorded frame with the reader's parser; returns the kinds seen. */
function expectAllParse(raws: readonly string[], parse: (raw: string) => { ok: true; value: { type: string } } | { ok: false; error: { message: string } }): Set<string> {
  const seen = new Set<string>();
  for (const raw of raws) {
    const r = parse(raw);
    if (!r.ok) throw new Error(`${r.error.message} in ${raw.slice(0, 300)}`);
    // The parsed value is the frame as sent: no field the edge sends is unknown to the schema.
    expect(r.value).toEqual(JSON.parse(raw));
    const f = JSON.parse(raw) as { type: string; command?: string; update?: { type: string } };
    seen.add(f.type === "command" ? `command:${f.command}` : f.type === "mission_update" ? `mission_update:${f.update?.type}` : f.type);
  }
  return seen;
}

describe("the wire as sent", () => {
  it("every frame a fleet object sends parses with parseEdgeToDashboard / parseEdgeToRelay", async () => {
    const fleet = uniqueFleet("wire");
    const op = await connect(fleet, "ws", await token("operator", [fleet]));
    const viewer = await connect(fleet, "ws", await token("viewer", [fleet]));
    const toDashboards = [record(op), record(viewer)];
    await op.nextOfType("fleet_status");
    const r = await connect(fleet, "relay", await token("relay", [fleet]));
    const toRelay = record(r);
    r.send({ type: "relay_hello", relay_id: "relay-wire", source: "sim", drone_ids: ["d1", "d2"] });
    await r.nextOfType("hello_ack");
    await op.next((f) => f.type === "link_status");
    op.send({ type: "subscribe_telemetry", request_id: "s1", drone_ids: "all", batch: true });
    viewer.send({ type: "subscribe_telemetry", drone_ids: ["d1"] });
    await op.nextOfType("subscribed");
    await viewer.nextOfType("subscribed");
    const ack = await sendBatch(r, [sample("d1", { seq: 10 }), sample("d2", { seq: 10, climb_mps: -0.5 }), sample("d1", { seq: 5 }), { drone_id: "bad id" }]);
    expect(ack).toMatchObject({ accepted: 2, duplicates: 1, rejected: 1 });
    await op.nextOfType("telemetry_batch");
    await viewer.nextOfType("telemetry");

    // Commands: accepted and acked, refused by safety, assigned, failed at the drone, repeated.
    const wp = { lat: 47.3985, lon: 8.5462, alt_m: 40 };
    op.send({ type: "modify_waypoint", command_id: "cmd-wire-0001", request_id: "m1", drone_id: "d1", new_waypoint: wp });
    const c1 = await r.next((f) => f.type === "command" && f.command_id === "cmd-wire-0001");
    r.send({ type: "command_result", command_id: c1.command_id, status: "acked" });
    await r.nextOfType("command_result_ack");
    await op.nextOfType("waypoint_modification_response");
    await op.next((f) => f.type === "mission_update");
    op.send({ type: "modify_waypoint", command_id: "cmd-wire-0002", drone_id: "d1", new_waypoint: { lat: 48.5, lon: 8.5456, alt_m: 40 } });
    expect(await op.nextOfType("waypoint_modification_response")).toMatchObject({ success: false, code: "safety_violation" });
    op.send({ type: "assign_mission", command_id: "cmd-wire-0003", mission: { waypoints: [wp, { ...wp, lat: 47.399 }], priority: "high" } });
    const c3 = await r.next((f) => f.type === "command" && f.command_id === "cmd-wire-0003");
    r.send({ type: "command_result", command_id: c3.command_id, status: "acked" });
    const assigned = await op.nextOfType("mission_assignment_response");
    r.send({ type: "mission_progress", mission_id: assigned.mission_id, drone_id: c3.drone_id, state: "active", waypoint_index: 0, ts: Date.now() });
    await op.next((f) => f.type === "mission_update" && (f.update as { type: string }).type === "mission_status");
    op.send({ type: "emergency_land", command_id: "cmd-wire-0004", drone_id: "d2", reason: "test" });
    const c4 = await r.next((f) => f.type === "command" && f.command_id === "cmd-wire-0004");
    r.send({ type: "command_result", command_id: c4.command_id, status: "failed", message: "motor" });
    await op.nextOfType("emergency_land_response");
    op.send({ type: "emergency_land", command_id: "cmd-wire-0007", drone_id: "d1" });
    const c7 = await r.next((f) => f.type === "command" && f.command_id === "cmd-wire-0007");
    r.send({ type: "command_result", command_id: c7.command_id, status: "acked" });
    await op.next((f) => f.type === "mission_update" && (f.update as { type: string }).type === "emergency_land");
    op.send({ type: "coordination_override", command_id: "cmd-wire-0005", event_id: "ev-none", action: "hold" });
    await op.nextOfType("coordination_override_response");
    op.send({ type: "modify_waypoint", command_id: "cmd-wire-0001", request_id: "again", drone_id: "d1", new_waypoint: wp });
    expect(await op.next((f) => f.type === "waypoint_modification_response" && f.request_id === "again")).toMatchObject({ duplicate: true });
    viewer.send({ type: "emergency_land", command_id: "cmd-wire-0006", drone_id: "d1" });
    await viewer.nextOfType("emergency_land_response");

    // Errors on both sockets, then pongs as barriers: everything sent before has arrived.
    for (const raw of ["{", JSON.stringify({ type: "nope", request_id: "e1" }), JSON.stringify({ type: "relay_hello" }), JSON.stringify({ type: "modify_waypoint" })]) op.send(raw);
    for (const raw of ["{", JSON.stringify({ type: "subscribe_telemetry" }), JSON.stringify({ type: "telemetry_batch" })]) r.send(raw);
    op.send({ type: "unsubscribe_telemetry", drone_ids: ["d2"] });
    for (const s of [op, viewer, r]) {
      s.send({ type: "ping", request_id: "barrier" });
      await s.next((f) => f.type === "pong" && f.request_id === "barrier");
    }
    r.close();
    await op.next((f) => f.type === "link_status" && f.state === "down");

    const seenByDashboards = new Set(toDashboards.flatMap((raws) => [...expectAllParse(raws, parseEdgeToDashboard)]));
    const seenByRelay = expectAllParse(toRelay, parseEdgeToRelay);
    for (const t of [
      "fleet_status",
      "link_status",
      "subscribed",
      "telemetry",
      "telemetry_batch",
      "command_status",
      "waypoint_modification_response",
      "mission_assignment_response",
      "emergency_land_response",
      "coordination_override_response",
      "mission_update:waypoint_modified",
      "mission_update:mission_assigned",
      "mission_update:mission_status",
      "mission_update:emergency_land",
      "error",
      "pong",
    ]) expect([...seenByDashboards], t).toContain(t);
    for (const t of ["hello_ack", "batch_ack", "command:modify_waypoint", "command:assign_mission", "command:emergency_land", "command_result_ack", "error", "pong"]) {
      expect([...seenByRelay], t).toContain(t);
    }
    op.close();
    viewer.close();
  });

  it("so do the frames of its clocks: status parts, analytics, alerts, coordination, stale links", async () => {
    const fleet = uniqueFleet("wire");
    const op = await connect(fleet, "ws", await token("operator", [fleet]));
    const toDashboard = record(op);
    const r = await connect(fleet, "relay", await token("relay", [fleet]));
    const toRelay = record(r);
    r.send({ type: "relay_hello", relay_id: "relay-wire", source: "sim", drone_ids: [] });
    await r.nextOfType("hello_ack");
    // Two drones hovering closer than the separation minima (a conflict whatever the prediction
    // model, however long after their samples the pass runs), one at low battery, and 1,200 parked
    // drones so fleet_status comes in parts.
    const north = 10 / 111_320;
    await sendBatch(r, [
      sample("a", { speed_mps: 0 }),
      sample("b", { lat: 47.3977 + north, heading_deg: 180, speed_mps: 0 }),
      sample("low", { battery_pct: 25, lat: 47.39 }),
    ]);
    for (let k = 0; k < 2; k++) {
      await sendBatch(r, Array.from({ length: 600 }, (_, i) => sample(`p${k}-${i}`, { armed: false, status: "landed", speed_mps: 0, lat: 47.39 + i * 1e-5 })));
    }
    // Move the object's clock on and run its alarm: a status tick and a detection pass are due.
    const at = async (offsetMs: number) => {
      await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
        hub.clock = { now: () => Date.now() + offsetMs };
      });
      await runDurableObjectAlarm(stubFor(fleet));
    };
    await at(6_000);
    await op.nextOfType("analytics_live");
    await op.nextOfType("coordination_event");
    // Nothing more from the relay then: go silent, so every drone goes stale on the next tick.
    await at(6_000 + 20_000);
    // 1,203 links lost in one tick: one `alerts` frame.
    await op.next((f) => f.type === "alerts" && (f.raised as { kind: string }[]).some((a) => a.kind === "link_lost"));
    const late = await connect(fleet, "ws", await token("viewer", [fleet]));
    const toLate = record(late);
    late.send({ type: "ping", request_id: "barrier" });
    await late.next((f) => f.type === "pong" && f.request_id === "barrier");
    for (const s of [op, r]) {
      s.send({ type: "ping", request_id: "barrier" });
      await s.next((f) => f.type === "pong" && f.request_id === "barrier");
    }
    const seen = new Set([...expectAllParse(toDashboard, parseEdgeToDashboard), ...expectAllParse(toLate, parseEdgeToDashboard)]);
    for (const t of ["fleet_status", "analytics_live", "alert", "alerts", "coordination_event", "command_status"]) expect([...seen], t).toContain(t);
    expect(toLate.filter((raw) => raw.includes('"parts":2'))).toHaveLength(2);
    const toRelaySeen = expectAllParse(toRelay, parseEdgeToRelay);
    expect([...toRelaySeen].some((t) => t.startsWith("command:")), [...toRelaySeen].join()).toBe(true);
    late.close();
    op.close();
    r.close();
  });

  it("every REST body a fleet object answers parses with its schema", async () => {
    const fleet = uniqueFleet("wire");
    const { r } = await relay(fleet);
    await sendBatch(r, [sample("d1", { seq: 1 }), sample("low", { seq: 1, battery_pct: 25 })]);
    // A status tick raises the battery alert; recompute flushes it to Postgres with this hour.
    await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
      hub.clock = { now: () => Date.now() + 6_000 };
    });
    await runDurableObjectAlarm(stubFor(fleet));
    const auth = { Authorization: `Bearer ${await token("admin", [fleet])}` };
    const base = `https://edge.test/v1/fleets/${fleet}`;
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
    const recompute = await SELF.fetch(`${base}/analytics/hourly/recompute?hour=${hour}`, { method: "POST", headers: auth });
    expect(recompute.status).toBe(200);
    await recompute.arrayBuffer();
    const to = encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString());
    for (const [path, schema, nonEmpty] of [
      ["/status", StatusBody, "drones"],
      ["/commands", CommandsBody, null],
      ["/missions", MissionsBody, null],
      ["/coordination", CoordinationBody, null],
      ["/coordination/ev-none", ErrorBody, null],
      ["/analytics/live", AnalyticsLiveBody, "alerts"],
      [`/analytics/hourly?to=${to}`, HourlyBody, "hours"],
      [`/insights?to=${to}`, InsightsBody, null],
      [`/alerts?to=${to}`, AlertsBody, "alerts"],
      ["/analytics/hourly?from=yesterday", ErrorBody, null],
    ] as const) {
      const res = await SELF.fetch(`${base}${path}`, { headers: auth });
      const p = parseRestBody(schema, await res.json());
      if (!p.ok) throw new Error(`${path}: ${res.status} ${p.message}`);
      if (nonEmpty) expect((p.value as Record<string, unknown[]>)[nonEmpty]!.length, path).toBeGreaterThan(0);
    }
    r.close();
  });
});

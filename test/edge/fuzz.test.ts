/**
 * Property-based fuzzing of the protocol parser and of a live fleet object: random and mutated
 * frames never crash anything, every bad frame is answered with a coded error (or a close for
 * oversize), and rejected frames leave the state unchanged.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, parseDashboardMessage, parseRelayMessage } from "../../edge/protocol";
import { connect, relay, sample, sendBatch, stubFor, token, uniqueFleet } from "./helpers";

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

const anyFrame = fc.oneof(fc.string(), fc.json(), mutated, fc.anything().map((v) => JSON.stringify(v) ?? "undefined"));

describe("parser fuzzing", () => {
  it("never throws and always answers ok or a coded error", () => {
    fc.assert(
      fc.property(anyFrame, (raw) => {
        for (const parse of [parseDashboardMessage, parseRelayMessage]) {
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
    const before = await (await stubFor(fleet).fetch("https://fleet/status")).json() as { drones: unknown[] };
    const d = await connect(fleet, "ws", await token("viewer", [fleet]));
    await d.nextOfType("fleet_status");
    const frames = fc.sample(anyFrame, { numRuns: 300, seed: 7 });
    let answered = 0;
    for (const raw of frames) {
      const parsed = parseDashboardMessage(raw);
      d.send(raw);
      if (!parsed.ok) {
        const e = await d.nextOfType("error");
        expect(ERROR_CODES).toContain(e.code);
        answered++;
      }
    }
    d.send({ type: "ping", request_id: "still-here" });
    expect(await d.next((f) => f.type === "pong" && f.request_id === "still-here", 5000)).toBeTruthy();
    expect(d.closed).toBeNull();
    expect(answered).toBeGreaterThan(100);
    const after = await (await stubFor(fleet).fetch("https://fleet/status")).json() as { drones: unknown[] };
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
    const st = await (await stubFor(fleet).fetch("https://fleet/status")).json() as { drones: { drone_id: string }[] };
    expect(st.drones.map((x) => x.drone_id)).toEqual(["good"]);
    expect(await sendBatch(r, [sample("good", { seq: 6 })])).toMatchObject({ accepted: 1 });
    r.close();
  });
});

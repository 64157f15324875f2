/**
 * Issue 13, adaptive batching at the fleet object (edge/fleet/fan-out.ts): relay frames that come
 * faster than the coalescing window reach batch dashboards as fewer, larger frames; every update
 * still arrives exactly once and in order; any other frame (a pong, a status) never overtakes held
 * telemetry. The window is widened here so that back-to-back frames fall inside it on any machine.
 */
import { runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import { connect, relay, sample, stubFor, token, uniqueFleet, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const parked = (id: string, seq: number) => sample(id, { seq, status: "landed", armed: false, alt_m: 0, speed_mps: 0 });

async function dashboard(fleet: string, batch: boolean) {
  const d = await connect(fleet, "ws", await token("operator", [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  d.send({ type: "subscribe_telemetry", drone_ids: "all", batch, request_id: "s" });
  await d.nextOfType("subscribed");
  return d;
}

describe("dashboard telemetry coalescing", () => {
  it("merges frames inside the window, delivers every update once in order, and lets nothing overtake it", async () => {
    const fleet = uniqueFleet("coal");
    await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
      hub.coalesceMs = 400;
    });
    const batch = await dashboard(fleet, true);
    const single = await dashboard(fleet, false);
    const { r } = await relay(fleet, []);
    open.push(r);
    const frames = 12;
    const perFrame = 20;
    for (let f = 0; f < frames; f++) {
      r.send({ type: "telemetry_batch", batch_id: 100 + f, sent_at: Date.now(), updates: Array.from({ length: perFrame }, (_, i) => parked(`c${i}`, 10 + f)) });
    }
    for (let f = 0; f < frames; f++) expect((await r.next((x) => x.type === "batch_ack" && x.batch_id === 100 + f)).accepted).toBe(perFrame);
    // Every frame was acknowledged; the last ones' telemetry may still be held. A pong must not overtake it.
    const before = await batch.barrier();
    const updates = before.filter((x) => x.type === "telemetry_batch").flatMap((x) => x.updates as { drone_id: string; seq: number }[]);
    expect(updates).toHaveLength(frames * perFrame);
    const batchFrames = before.filter((x) => x.type === "telemetry_batch").length;
    // The first frame went at once; the others came inside the window and were merged.
    expect(batchFrames).toBeGreaterThanOrEqual(2);
    expect(batchFrames).toBeLessThan(frames);
    for (let i = 0; i < perFrame; i++) {
      expect(updates.filter((u) => u.drone_id === `c${i}`).map((u) => u.seq)).toEqual(Array.from({ length: frames }, (_, f) => 10 + f));
    }
    // A per-update dashboard gets one frame per update, all of them, in order.
    const singles = (await single.barrier()).filter((x) => x.type === "telemetry");
    expect(singles).toHaveLength(frames * perFrame);
    expect(singles.filter((u) => u.drone_id === "c0").map((u) => u.seq)).toEqual(Array.from({ length: frames }, (_, f) => 10 + f));
    const held = await runInDurableObject(stubFor(fleet), (hub: FleetHub) => hub.internalCounts().held);
    expect(held).toBe(0);
  });

  it("sends at once when the object has not fanned out within the window", async () => {
    const fleet = uniqueFleet("coal");
    await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
      hub.coalesceMs = 0;
    });
    const batch = await dashboard(fleet, true);
    const { r } = await relay(fleet, []);
    open.push(r);
    for (let f = 0; f < 6; f++) r.send({ type: "telemetry_batch", batch_id: 200 + f, sent_at: Date.now(), updates: [parked("z1", 50 + f)] });
    for (let f = 0; f < 6; f++) await r.next((x) => x.type === "batch_ack" && x.batch_id === 200 + f);
    const got = (await batch.barrier()).filter((x) => x.type === "telemetry_batch");
    expect(got).toHaveLength(6);
  });
});

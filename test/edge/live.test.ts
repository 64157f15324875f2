import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { connect, ManualClock, relay, sample, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function dashboard(fleet: string, role: "viewer" | "operator" | "admin" = "viewer") {
  const d = await connect(fleet, "ws", await token(role, [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  return d;
}

describe("live loop", () => {
  it("sends fleet_status on connect, with relay state", async () => {
    const fleet = uniqueFleet();
    const d = await connect(fleet, "ws", await token("viewer", [fleet]));
    open.push(d);
    const st = await d.nextOfType("fleet_status");
    expect(st).toMatchObject({ fleet, relay_connected: false, counts: { total: 0 } });
    const { r } = await relay(fleet);
    open.push(r);
    expect(await d.next((f) => f.type === "link_status" && f.scope === "relay")).toMatchObject({ state: "up" });
    r.close();
    expect(await d.next((f) => f.type === "link_status" && f.scope === "relay")).toMatchObject({ state: "down" });
  });

  it("fans telemetry out only to subscribed dashboards and drones", async () => {
    const fleet = uniqueFleet();
    const all = await dashboard(fleet);
    const one = await dashboard(fleet);
    const none = await dashboard(fleet);
    all.send({ type: "subscribe_telemetry", drone_ids: "all", request_id: "r1" });
    expect(await all.nextOfType("subscribed")).toMatchObject({ request_id: "r1", drone_ids: "all" });
    one.send({ type: "subscribe_telemetry", drone_ids: ["d1"] });
    await one.nextOfType("subscribed");

    const { r } = await relay(fleet, ["d1", "d2"]);
    open.push(r);
    const ack = await sendBatch(r, [sample("d1"), sample("d2")]);
    expect(ack).toMatchObject({ accepted: 2, duplicates: 0, rejected: 0 });

    const got = [await all.nextOfType("telemetry"), await all.nextOfType("telemetry")].map((f) => f.drone_id).sort();
    expect(got).toEqual(["d1", "d2"]);
    expect(await one.nextOfType("telemetry")).toMatchObject({ drone_id: "d1", lat: 47.3977, status: "flying" });
    // The batch was fanned out before its ack; anything more for these sockets precedes the pong.
    expect((await one.barrier()).filter((f) => f.type === "telemetry")).toEqual([]);
    expect((await none.barrier()).filter((f) => f.type === "telemetry")).toEqual([]);

    // Unsubscribe stops the flow.
    one.send({ type: "unsubscribe_telemetry", drone_ids: ["d1"] });
    await one.nextOfType("subscribed");
    await sendBatch(r, [sample("d1")]);
    await all.nextOfType("telemetry");
    expect((await one.barrier()).filter((f) => f.type === "telemetry")).toEqual([]);
  });

  it("batch subscribers get one telemetry_batch frame per ingested relay frame", async () => {
    const fleet = uniqueFleet();
    const d = await dashboard(fleet);
    d.send({ type: "subscribe_telemetry", drone_ids: "all", batch: true });
    await d.nextOfType("subscribed");
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("a"), sample("b"), sample("c")]);
    const b = await d.nextOfType("telemetry_batch");
    expect((b.updates as { drone_id: string }[]).map((u) => u.drone_id)).toEqual(["a", "b", "c"]);
  });

  it("drops duplicate and out-of-order frames instead of fanning them out", async () => {
    const fleet = uniqueFleet();
    const d = await dashboard(fleet);
    d.send({ type: "subscribe_telemetry", drone_ids: "all" });
    await d.nextOfType("subscribed");
    const { r } = await relay(fleet);
    open.push(r);
    expect(await sendBatch(r, [sample("x", { seq: 10 })])).toMatchObject({ accepted: 1 });
    const ack = await sendBatch(r, [sample("x", { seq: 10 }), sample("x", { seq: 9, lat: 1 }), sample("x", { seq: 11, lat: 2 })]);
    expect(ack).toMatchObject({ accepted: 1, duplicates: 2, rejected: 0 });
    const frames = (await d.barrier()).filter((f) => f.type === "telemetry");
    expect(frames.map((f) => f.seq)).toEqual([10, 11]);
    const st = await stubFor(fleet).getStatus();
    expect(st.drones[0]).toMatchObject({ seq: 11, lat: 2 });
  });

  it("counts invalid items in a batch and accepts the rest", async () => {
    const fleet = uniqueFleet();
    const { r } = await relay(fleet);
    open.push(r);
    const id = 4242;
    // 1e400 parses to Infinity; "NaN" and null are not numbers; ids with spaces are invalid.
    r.send(
      `{"type":"telemetry_batch","batch_id":${id},"updates":[` +
        [
          JSON.stringify(sample("ok1")),
          JSON.stringify(sample("bad id")),
          JSON.stringify(sample("nan1", { lat: "NaN" })),
          JSON.stringify(sample("nan2", { lon: null })),
          JSON.stringify(sample("inf")).replace(/"alt_m":50/, '"alt_m":1e400'),
          JSON.stringify(sample("range", { lat: 91 })),
          JSON.stringify(sample("ok2")),
        ].join(",") +
        "]}",
    );
    const ack = await r.next((f) => f.type === "batch_ack" && f.batch_id === id);
    expect(ack).toMatchObject({ accepted: 2, rejected: 5 });
    const errors = ack.errors as { index: number; code: string }[];
    expect(errors.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(["invalid_item"]));
    // The socket still works.
    expect(await sendBatch(r, [sample("ok3")])).toMatchObject({ accepted: 1 });
  });

  it("hello_ack reports the last seq per drone so a relay can resume", async () => {
    const fleet = uniqueFleet();
    const { r } = await relay(fleet);
    await sendBatch(r, [sample("d1", { seq: 77 })]);
    r.close();
    const { r: r2, ack } = await relay(fleet);
    open.push(r2);
    expect(ack.last_seq).toEqual({ d1: 77 });
  });

  it("broadcasts fleet_status from the alarm and marks silent drones stale", async () => {
    const fleet = uniqueFleet();
    const d = await dashboard(fleet);
    const clock = new ManualClock();
    await useClock(fleet, clock);
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1"), sample("d2")]);
    // d2 reports again 10 s later; 6 s after that, d1 has been silent past the 15 s bound and the
    // 5 s tick is due. No sleeping: the object's clock moves.
    clock.advance(10_000);
    await sendBatch(r, [sample("d2")]);
    clock.advance(6_000);
    expect(await runDurableObjectAlarm(stubFor(fleet))).toBe(true);
    // Everything the tick sent: one stale link_status (d1 only), then the fleet_status.
    const tick = await d.barrier();
    expect(tick.filter((f) => f.type === "link_status" && f.state === "stale").map((f) => f.drone_id)).toEqual(["d1"]);
    expect(tick.filter((f) => f.type === "fleet_status").at(-1)).toMatchObject({ relay_connected: true, counts: { total: 2, live: 1, stale: 1 } });
    // The alarm re-arms itself while sockets are open.
    expect(await runDurableObjectAlarm(stubFor(fleet))).toBe(true);
    expect(await runInDurableObject(stubFor(fleet), async (_h, state) => state.storage.getAlarm())).not.toBeNull();
    // A new report brings the drone back.
    d.frames.splice(0);
    await sendBatch(r, [sample("d1")]);
    expect(await d.next((f) => f.type === "link_status" && f.scope === "drone")).toMatchObject({ drone_id: "d1", state: "live" });
  });

  it("announces mass link changes with one fleet_status instead of a link_status per drone", async () => {
    const fleet = uniqueFleet();
    const d = await dashboard(fleet);
    const clock = new ManualClock();
    await useClock(fleet, clock);
    const { r } = await relay(fleet);
    open.push(r);
    const ids = Array.from({ length: 50 }, (_, i) => `m${i}`);
    await sendBatch(r, ids.map((id) => sample(id)));
    // New drones are not link changes.
    expect((await d.barrier()).filter((f) => f.type === "link_status" && f.scope === "drone")).toEqual([]);
    clock.advance(16_000);
    await runDurableObjectAlarm(stubFor(fleet));
    expect(await d.nextOfType("fleet_status")).toMatchObject({ counts: { total: 50, stale: 50 } });
    expect((await d.barrier()).filter((f) => f.type === "link_status")).toEqual([]);
    // All back at once: one fleet_status, every drone live.
    await sendBatch(r, ids.map((id) => sample(id)));
    expect(await d.nextOfType("fleet_status")).toMatchObject({ counts: { total: 50, live: 50 } });
    expect((await d.barrier()).filter((f) => f.type === "link_status")).toEqual([]);
  });

  it("keeps state and subscriptions across eviction of the object", async () => {
    const fleet = uniqueFleet();
    const d = await dashboard(fleet);
    d.send({ type: "subscribe_telemetry", drone_ids: ["d1"] });
    await d.nextOfType("subscribed");
    const { r } = await relay(fleet);
    open.push(r);
    await sendBatch(r, [sample("d1", { seq: 500, battery_pct: 42 }), sample("d2", { seq: 5 })]);
    await d.nextOfType("telemetry");

    await evictDurableObject(stubFor(fleet));

    // The woken object knows its fleet from its own id (ctx.id.name), with nothing passed in.
    const st = await stubFor(fleet).getStatus();
    expect(st.fleet).toBe(fleet);
    expect(st.relay_connected).toBe(true);
    expect(st.drones.map((x) => [x.drone_id, x.seq])).toEqual([
      ["d1", 500],
      ["d2", 5],
    ]);
    // Hibernated sockets still work; seq dedupe survived; the subscription survived.
    const ack = await sendBatch(r, [sample("d1", { seq: 500 }), sample("d1", { seq: 501 }), sample("d2", { seq: 6 })]);
    expect(ack).toMatchObject({ accepted: 2, duplicates: 1 });
    const t = await d.nextOfType("telemetry");
    expect(t).toMatchObject({ drone_id: "d1", seq: 501 });
    expect((await d.barrier()).filter((f) => f.type === "telemetry")).toEqual([]);
  });
});

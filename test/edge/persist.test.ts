/**
 * The live state as stored (edge/fleet/ingest.ts persist, saveLiveState): one UPDATE per write for
 * known drones, an INSERT for new ones, the last sample of a drone that comes twice; each frame
 * written in its own turn at a test's rates, and under heavy load (PERSIST) frames within
 * coalesceMs of the last write sharing the next write, acknowledged before it. Checked across an
 * eviction, where the object has nothing but its storage.
 */
import { evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import { PERSIST } from "../../edge/fleet/ingest";
import { ManualClock, relay, sample, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const parked = (id: string, seq: number, lat = 47.3) => sample(id, { seq, lat, status: "landed", armed: false, alt_m: 0, speed_mps: 0 });

type Row = { drone_id: string; seq: number; relay_id: string | null; lat: number };
async function storedRows(fleet: string): Promise<Row[]> {
  return runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) =>
    state.storage.sql
      .exec<{ drone_id: string; seq: number; relay_id: string | null; sample: string }>(`SELECT drone_id, seq, relay_id, sample FROM drones ORDER BY drone_id`)
      .toArray()
      .map((x) => ({ drone_id: x.drone_id, seq: x.seq, relay_id: x.relay_id, lat: (JSON.parse(x.sample) as { lat: number }).lat })),
  );
}

/** Until the deferred live-state write has run (a positive wait, bounded). */
async function written(fleet: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!(await runInDurableObject(stubFor(fleet), (hub: FleetHub) => hub.internalCounts().liveStateWritePending))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the live-state write never ran");
}

describe("stored live state", () => {
  it("stores known and new drones of one frame and a repeated drone's last sample, and restores them", async () => {
    const fleet = uniqueFleet("persist");
    // The object's clock stands still mid-slot: both frames fall in one 10 s snapshot slot.
    await useClock(fleet, new ManualClock(Math.floor(Date.now() / 10_000) * 10_000 + 5_000));
    const { r } = await relay(fleet, []);
    open.push(r);
    expect((await sendBatch(r, [parked("a", 1), parked("b", 1)])).accepted).toBe(2);
    // a and b known, c and d new; b twice (the later sample wins), d twice.
    const ack = await sendBatch(r, [parked("a", 2, 47.31), parked("b", 2, 47.32), parked("c", 1, 47.33), parked("b", 3, 47.34), parked("d", 5, 47.35), parked("d", 6, 47.36)]);
    expect(ack).toMatchObject({ accepted: 6, rejected: 0 });
    const rows = await runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) =>
      state.storage.sql.exec<{ drone_id: string; seq: number; sample: string }>(`SELECT drone_id, seq, sample FROM drones ORDER BY drone_id`).toArray(),
    );
    expect(rows.map((x) => [x.drone_id, x.seq, (JSON.parse(x.sample) as { lat: number }).lat])).toEqual([
      ["a", 2, 47.31],
      ["b", 3, 47.34],
      ["c", 1, 47.33],
      ["d", 6, 47.36],
    ]);
    // Analytics snapshots of the slot: one per drone, from its first sample in the slot, written
    // together (edge/fleet/outbox.ts addSnapshots).
    const snaps = await runInDurableObject(stubFor(fleet), (_hub: FleetHub, state) =>
      state.storage.sql.exec<{ drone_id: string; lat: number; armed: number; status: string; distance_m: number }>(`SELECT drone_id, lat, armed, status, distance_m FROM outbox_snapshots ORDER BY drone_id`).toArray(),
    );
    expect(snaps).toEqual([
      { drone_id: "a", lat: 47.3, armed: 0, status: "landed", distance_m: 0 },
      { drone_id: "b", lat: 47.3, armed: 0, status: "landed", distance_m: 0 },
      { drone_id: "c", lat: 47.33, armed: 0, status: "landed", distance_m: 0 },
      { drone_id: "d", lat: 47.35, armed: 0, status: "landed", distance_m: 0 },
    ]);
    r.close();
    await evictDurableObject(stubFor(fleet));
    const status = await stubFor(fleet).getStatus();
    expect(status.drones.map((x) => [x.drone_id, x.seq]).sort()).toEqual([
      ["a", 2],
      ["b", 3],
      ["c", 1],
      ["d", 6],
    ]);
  });

  it("under heavy load acknowledges frames that come within PERSIST.coalesceMs at once and stores each drone's latest sample in one later write", async () => {
    const fleet = uniqueFleet("persist");
    expect(PERSIST.coalesceMs).toBeGreaterThan(0);
    // This test's few samples count as heavy load.
    await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
      hub.persist = { ...PERSIST, everyFrameBelowPerS: 0 };
    });
    const { r } = await relay(fleet, []);
    open.push(r);
    // The first frame finds no write within coalesceMs: written in its own turn, before its ack.
    expect((await sendBatch(r, [parked("a", 1, 47.1), parked("b", 1, 47.1)])).accepted).toBe(2);
    expect((await storedRows(fleet)).map((x) => [x.drone_id, x.seq])).toEqual([
      ["a", 1],
      ["b", 1],
    ]);
    // Three frames at once after it: each acknowledged, none written yet; a new drone among them.
    expect((await sendBatch(r, [parked("a", 2, 47.2)])).accepted).toBe(1);
    expect((await sendBatch(r, [parked("a", 3, 47.3), parked("c", 1, 47.3)])).accepted).toBe(2);
    expect((await sendBatch(r, [parked("b", 2, 47.4)])).accepted).toBe(1);
    const before = await runInDurableObject(stubFor(fleet), (hub: FleetHub) => hub.internalCounts().liveStateWritePending);
    const rowsBefore = await storedRows(fleet);
    // Unless the machine stalled for coalesceMs between the frames, the write is still pending.
    if (before) expect(rowsBefore.map((x) => [x.drone_id, x.seq])).toEqual([["a", 1], ["b", 1]]);
    await written(fleet);
    expect(await storedRows(fleet)).toEqual([
      { drone_id: "a", seq: 3, relay_id: "relay-test", lat: 47.3 },
      { drone_id: "b", seq: 2, relay_id: "relay-test", lat: 47.4 },
      { drone_id: "c", seq: 1, relay_id: "relay-test", lat: 47.3 },
    ]);
    r.close();
    await evictDurableObject(stubFor(fleet));
    expect((await stubFor(fleet).getStatus()).drones.map((x) => [x.drone_id, x.seq]).sort()).toEqual([
      ["a", 3],
      ["b", 2],
      ["c", 1],
    ]);
  });

  it("writes every frame in its own turn until the fleet's rate reaches everyFrameBelowPerS, then coalesces", async () => {
    const fleet = uniqueFleet("persist");
    await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
      hub.persist = { coalesceMs: 60_000, everyFrameBelowPerS: 6 };
    });
    const { r } = await relay(fleet, []);
    open.push(r);
    const pending = () => runInDurableObject(stubFor(fleet), (hub: FleetHub) => hub.internalCounts().liveStateWritePending);
    // 2 and then 4 samples within the same second or two: below 6 a second, each frame written at once.
    await sendBatch(r, [parked("a", 1), parked("b", 1)]);
    expect(await pending()).toBe(false);
    await sendBatch(r, [parked("a", 2), parked("b", 2)]);
    expect(await pending()).toBe(false);
    expect((await storedRows(fleet)).map((x) => x.seq)).toEqual([2, 2]);
    // The next frame brings the rate to 6 or more: it waits for the coalesced write.
    await sendBatch(r, [parked("a", 3), parked("b", 3)]);
    expect(await pending()).toBe(true);
    expect((await storedRows(fleet)).map((x) => x.seq)).toEqual([2, 2]);
  });

  it("writes a pending sample before a relay reassignment, so the old relay's sample never lands on top of it", async () => {
    const fleet = uniqueFleet("persist");
    await runInDurableObject(stubFor(fleet), (hub: FleetHub) => {
      hub.persist = { ...PERSIST, everyFrameBelowPerS: 0 };
    });
    const { r } = await relay(fleet, []);
    open.push(r);
    expect((await sendBatch(r, [parked("d1", 10)])).accepted).toBe(1);
    // Within PERSIST.coalesceMs of that write: this one waits.
    expect((await sendBatch(r, [parked("d1", 11, 47.5)])).accepted).toBe(1);
    const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/drones/d1/relay`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${await token("admin", [fleet])}`, "content-type": "application/json" },
      body: JSON.stringify({ relay_id: "site-b" }),
    });
    expect(res.status).toBe(200);
    await written(fleet);
    // The reassignment's row: the new relay, the seq reset (its own lower counter counts).
    expect(await storedRows(fleet)).toEqual([{ drone_id: "d1", seq: -1, relay_id: "site-b", lat: 47.5 }]);
    r.close();
    await evictDurableObject(stubFor(fleet));
    const after = await relay(fleet, ["d1"], { relayId: "site-b", sub: "relay-site-b" });
    open.push(after.r);
    expect(await sendBatch(after.r, [parked("d1", 1)])).toMatchObject({ accepted: 1 });
  });
});

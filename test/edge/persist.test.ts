/**
 * The live state as stored (edge/fleet/ingest.ts persist): one UPDATE per relay frame for known
 * drones, an INSERT for new ones, the last sample of a drone that comes twice in one frame. Checked
 * across an eviction, where the object has nothing but its storage.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { FleetHub } from "../../edge/fleet/fleet-hub";
import { ManualClock, relay, sample, sendBatch, stubFor, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const parked = (id: string, seq: number, lat = 47.3) => sample(id, { seq, lat, status: "landed", armed: false, alt_m: 0, speed_mps: 0 });

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
});

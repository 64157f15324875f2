/**
 * Issue 13, "find where the time goes": the fleet object's profile (edge/fleet/profile.ts) through
 * GET /v1/fleets/:fleet/profile. Each relay frame is one turn; its time is split over the
 * components it ran through (parse, validate, live state, persistence, fan-out, sends, analytics);
 * the components add up to the busy time; `reset=1` starts a new window; only admins read it.
 */
import { SELF } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { PROFILE_COMPONENTS, type ProfileView } from "../../edge/fleet/profile";
import { connect, relay, sample, sendBatch, token, uniqueFleet, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function profile(fleet: string, query = "", role: "admin" | "operator" = "admin"): Promise<{ status: number; body: ProfileView & { error?: { code: string } } }> {
  const res = await SELF.fetch(`https://edge.test/v1/fleets/${fleet}/profile${query}`, { headers: { Authorization: `Bearer ${await token(role, [fleet])}` } });
  return { status: res.status, body: (await res.json()) as ProfileView & { error?: { code: string } } };
}

describe("fleet object profile", () => {
  it("counts each relay frame as a turn and splits its time over the components it ran", async () => {
    const fleet = uniqueFleet("prof");
    const d = await connect(fleet, "ws", await token("operator", [fleet]));
    open.push(d);
    await d.nextOfType("fleet_status");
    d.send({ type: "subscribe_telemetry", drone_ids: "all", batch: true, request_id: "s1" });
    await d.nextOfType("subscribed");
    const { r } = await relay(fleet, []);
    open.push(r);
    await profile(fleet, "?reset=1");
    const frames = 5;
    for (let f = 0; f < frames; f++) {
      const ack = await sendBatch(r, Array.from({ length: 200 }, (_, i) => sample(`p${i}`, { status: "landed", armed: false, alt_m: 0, speed_mps: 0 })));
      expect(ack.accepted).toBe(200);
      await d.nextOfType("telemetry_batch");
    }
    const { status, body } = await profile(fleet);
    expect(status).toBe(200);
    expect(body.kinds.relay_frame.count).toBe(frames);
    expect(body.turns).toBeGreaterThanOrEqual(frames);
    // Local workerd's clock runs during execution: 1,000 validated, stored, fanned-out samples take time.
    expect(body.busy_ms).toBeGreaterThan(0);
    expect(body.longest_turn_ms).toBeGreaterThan(0);
    expect(body.longest_turn_ms).toBeLessThanOrEqual(body.busy_ms);
    for (const c of ["parse", "validate", "live_state", "persistence", "sends", "fanout_serialise", "analytics"] as const) {
      expect(body.components[c].count, c).toBeGreaterThan(0);
    }
    expect(Object.keys(body.components).sort()).toEqual([...PROFILE_COMPONENTS].sort());
    // The longest turn names its own parts; they add up to it.
    const own = Object.values(body.longest_turn_components).reduce((a, b) => a + b, 0);
    expect(Math.abs(own - body.longest_turn_ms)).toBeLessThan(0.05 + body.longest_turn_ms * 0.01);
    // Exclusive time: the parts add up to the whole (rounding aside).
    const sum = PROFILE_COMPONENTS.reduce((a, c) => a + body.components[c].ms, 0);
    expect(Math.abs(sum - body.busy_ms)).toBeLessThan(0.05 + body.busy_ms * 0.01);
  });

  it("reset=1 starts a new window; reset must be 0 or 1; only admins read it", async () => {
    const fleet = uniqueFleet("prof");
    const { r } = await relay(fleet, []);
    open.push(r);
    await sendBatch(r, [sample("q1", { status: "landed", armed: false, alt_m: 0, speed_mps: 0 })]);
    const before = await profile(fleet, "?reset=1");
    expect(before.body.kinds.relay_frame.count).toBeGreaterThanOrEqual(2); // hello + batch
    const after = await profile(fleet);
    expect(after.body.kinds.relay_frame.count).toBe(0);
    expect(after.body.longest_turn_kind).toBeNull();
    expect((await profile(fleet, "?reset=yes")).status).toBe(400);
    const op = await profile(fleet, "", "operator");
    expect(op.status).toBe(403);
  });
});

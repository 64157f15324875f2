/** The fleet object's alarm bookkeeping (edge/fleet/alarm-plan.ts): early detection passes. */
import { describe, expect, it } from "vitest";
import { AlarmPlan, EARLY_PASS_GAP_MS } from "../../edge/fleet/alarm-plan";
import { DETECT_INTERVAL_MS } from "../../edge/fleet/collision-avoidance";

const needs = { status: false, detection: true, deadline: null };

describe("AlarmPlan early passes", () => {
  it("brings the next pass forward to the gap after the last, never closer, and only while passes run", () => {
    const plan = new AlarmPlan();
    expect(plan.soon(0)).toBe(false); // no pass planned yet: nothing to bring forward
    expect(plan.next(0, needs)).toBe(DETECT_INTERVAL_MS);
    expect(plan.take(DETECT_INTERVAL_MS, true).detect).toBe(true);
    const last = DETECT_INTERVAL_MS;
    // 10 ms after that pass a path changed: the next pass comes at the gap, not 500 ms later.
    expect(plan.soon(last + 10)).toBe(true);
    expect(plan.next(last + 10, needs)).toBe(last + EARLY_PASS_GAP_MS);
    // Asking again changes nothing; the early pass does not run before its time.
    expect(plan.soon(last + 20)).toBe(false);
    expect(plan.take(last + 100, true).detect).toBe(false);
    expect(plan.take(last + EARLY_PASS_GAP_MS, true).detect).toBe(true);
    // Long after the last pass, a wanted pass is due at once.
    const t = last + EARLY_PASS_GAP_MS + 450;
    expect(plan.soon(t)).toBe(true);
    expect(plan.take(t, true).detect).toBe(true);
  });
});

/** The fleet object's alarm bookkeeping (edge/fleet/alarm-plan.ts): early detection passes, resolution turns. */
import { describe, expect, it } from "vitest";
import { AlarmPlan, EARLY_PASS_GAP_MS } from "../../edge/fleet/alarm-plan";
import { DETECT_INTERVAL_MS, RESUME_GAP_MS } from "../../edge/fleet/collision-avoidance";

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

describe("AlarmPlan resolution turns", () => {
  it("runs a turn when it is due, never with a pass (the pass makes its own list), and none once nothing waits", () => {
    const plan = new AlarmPlan();
    expect(plan.next(0, needs)).toBe(DETECT_INTERVAL_MS);
    const p = DETECT_INTERVAL_MS;
    expect(plan.take(p, true)).toMatchObject({ detect: true, resume: false });
    // The pass left work: the turn is the next thing the alarm runs, before the next pass.
    plan.resumeAt(p + RESUME_GAP_MS);
    expect(plan.next(p + 1, needs)).toBe(p + RESUME_GAP_MS);
    expect(plan.take(p + 1, true).resume).toBe(false);
    expect(plan.take(p + RESUME_GAP_MS, true)).toMatchObject({ detect: false, resume: true });
    // Taken once: an alarm for something else does not run it again.
    expect(plan.take(p + RESUME_GAP_MS + 1, true).resume).toBe(false);
    expect(plan.next(p + RESUME_GAP_MS + 1, needs)).toBe(2 * p);
    // A turn due together with the pass is not run: the pass redoes the list on a fresh picture.
    plan.resumeAt(2 * p);
    expect(plan.take(2 * p, true)).toMatchObject({ detect: true, resume: false });
    expect(plan.next(2 * p + 1, needs)).toBe(3 * p);
    // Nothing airborne: no turn (nor pass), and it asks for no alarm.
    plan.resumeAt(2 * p + RESUME_GAP_MS);
    expect(plan.take(2 * p + RESUME_GAP_MS, false).resume).toBe(false);
    expect(plan.next(2 * p + RESUME_GAP_MS, { status: false, detection: false, deadline: null })).toBeNull();
  });
});

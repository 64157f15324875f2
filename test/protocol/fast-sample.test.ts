/**
 * The telemetry hot path (edge/protocol/common.ts fastTelemetrySample) against the schema it
 * stands in for: over random, boundary and hostile items it never accepts what
 * `TelemetrySample.safeParse` refuses, and what it accepts equals the schema's output exactly
 * (keys, order, values). It must also really be the path valid samples take, or it saves nothing.
 */
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../edge/domain/random";
import { fastTelemetrySample, parseTelemetrySample, TelemetrySample } from "../../edge/protocol";

const valid = () => ({
  drone_id: "d-1.a_B",
  seq: 12,
  ts: 1_780_000_000_000,
  lat: 47.3977,
  lon: 8.5456,
  alt_m: 50,
  heading_deg: 90,
  speed_mps: 8,
  climb_mps: -1.5,
  battery_pct: 80,
  armed: true,
  mode: "AUTO.MISSION",
  status: "flying",
  state_known: false,
});

const oddValues: unknown[] = [
  undefined, null, true, false, 0, -0, -1, 1, 0.5, -0.5, 90, 90.0001, -90, -90.0001, 180, 180.5, -180.5, 360, 360.1, 100, 100.01, 1000, 1000.5, -1000, -1000.5, 100_000, 100_000.1,
  Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 53 + 2, NaN, Infinity, -Infinity, 1e308, -1e-308,
  "", "x", "d1", "1", "12", "flying", "idle", "FLYING", "a".repeat(32), "a".repeat(33), "a".repeat(64), "a".repeat(65), "_d", ".d", "d\u0000", "AUTO\u0000", "\uD800", "ok\uD83D\uDE00", "mode\uDC00x",
  [], [1], {}, { a: 1 }, Object.create(null),
];
const KEYS = Object.keys(valid());

/** What the fast path gave must be what the schema gives, when it gives anything. */
function agree(item: unknown): "fast" | "slow" {
  const fast = fastTelemetrySample(item);
  const slow = TelemetrySample.safeParse(item);
  if (fast === null) return "slow";
  expect(slow.success, `fast path accepted what the schema refuses: ${JSON.stringify(item)} ${slow.success ? "" : slow.error.message}`).toBe(true);
  if (!slow.success) return "fast";
  expect(JSON.stringify(fast)).toBe(JSON.stringify(slow.data));
  expect(fast).toEqual(slow.data);
  return "fast";
}

describe("fastTelemetrySample", () => {
  it("takes valid samples, with and without the optional fields, and drops unknown keys", () => {
    const v = valid();
    expect(agree(v)).toBe("fast");
    const { climb_mps: _c, state_known: _s, ...bare } = v;
    expect(agree(bare)).toBe("fast");
    expect(agree({ ...v, intent: { waypoints: [] }, extra: "x" })).toBe("fast");
    expect(Object.keys(fastTelemetrySample({ ...v, extra: 1 })!)).toEqual(KEYS);
  });

  it("leaves to the schema whatever it would change or refuse", () => {
    expect(fastTelemetrySample({ ...valid(), mode: "AUTO\u0000" })).toBeNull(); // the schema cleans it
    expect(parseTelemetrySample({ ...valid(), mode: "AUTO\u0000" })).toMatchObject({ success: true, data: { mode: "AUTO\uFFFD" } });
    expect(parseTelemetrySample({ ...valid(), lat: NaN }).success).toBe(false);
    expect(parseTelemetrySample([valid()]).success).toBe(false);
  });

  it("agrees with the schema on every single-field change to odd values", () => {
    for (const k of KEYS) for (const v of oddValues) agree({ ...valid(), [k]: v });
    for (const k of KEYS) {
      const o: Record<string, unknown> = valid();
      delete o[k];
      agree(o);
    }
  });

  it("agrees with the schema over 20,000 random items", () => {
    const rnd = seededRandom(1234);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
    let fast = 0;
    for (let n = 0; n < 20_000; n++) {
      const o: Record<string, unknown> = valid();
      const changes = Math.floor(rnd() * 4); // a third or so stay valid
      for (let c = 0; c < changes; c++) {
        const k = pick(KEYS);
        if (rnd() < 0.15) delete o[k];
        else o[k] = rnd() < 0.5 ? pick(oddValues) : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 7);
      }
      if (agree(o) === "fast") fast++;
    }
    expect(fast).toBeGreaterThan(2_000);
  });
});

import { describe, expect, it } from "vitest";
import { parseTtl } from "../../edge/worker/auth";
import { LiveState } from "../../edge/domain/live-state";
import { parseDashboardMessage, parseRelayMessage } from "../../edge/protocol";
import { sample } from "./helpers";

describe("protocol parsing", () => {
  it("returns typed values or coded errors, never throws", () => {
    expect(parseDashboardMessage('{"type":"ping"}')).toEqual({ ok: true, value: { type: "ping" } });
    for (const raw of ["", "null", "1", '"x"', "{}", '{"type":null}', "\u0000", "{".repeat(10000)]) {
      const r = parseDashboardMessage(raw);
      expect(r.ok, raw).toBe(false);
    }
    const r = parseRelayMessage('{"type":"telemetry_batch","batch_id":1.5,"updates":[]}');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("invalid_message");
  });
});

describe("LiveState", () => {
  it("keeps the highest seq per drone and detects staleness", () => {
    const s = new LiveState(15_000);
    // The edge's clock: samples' ts (Date.now()) must not be more than a day ahead of it.
    const t0 = Date.now();
    expect(s.ingest(sample("a", { seq: 5 }) as never, t0)).toEqual({ outcome: "accepted", becameLive: false });
    expect(s.ingest(sample("a", { seq: 5 }) as never, t0).outcome).toBe("duplicate");
    expect(s.ingest(sample("a", { seq: 4 }) as never, t0).outcome).toBe("duplicate");
    expect(s.ingest(sample("a", { seq: 6 }) as never, t0).outcome).toBe("accepted");
    expect(s.sweepStale(t0 + 15_000)).toHaveLength(0);
    expect(s.sweepStale(t0 + 15_001).map((r) => r.sample.drone_id)).toEqual(["a"]);
    expect(s.sweepStale(t0 + 20_000)).toHaveLength(0);
    expect(s.ingest(sample("a", { seq: 7 }) as never, t0 + 20_000)).toEqual({ outcome: "accepted", becameLive: true });
    expect(s.status("f", false, t0 + 20_000).counts).toMatchObject({ total: 1, live: 1, stale: 0, flying: 1 });
  });

  it("parses ttl strings", () => {
    expect(parseTtl("90s")).toBe(90);
    expect(parseTtl("1h")).toBe(3600);
    expect(parseTtl("2d")).toBe(172800);
    expect(() => parseTtl("soon")).toThrow(/bad ttl/);
  });
});

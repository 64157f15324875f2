import { afterEach, describe, expect, it } from "vitest";
import { connect, relay, sample, sendBatch, token, uniqueFleet, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function dash(fleet: string) {
  const d = await connect(fleet, "ws", await token("operator", [fleet]));
  open.push(d);
  await d.nextOfType("fleet_status");
  return d;
}

describe("bad input from dashboards", () => {
  it("answers each bad frame with a coded error and keeps the socket", async () => {
    const fleet = uniqueFleet();
    const d = await dash(fleet);
    const cases: [string, string, string?][] = [
      ["{not json", "bad_json"],
      [JSON.stringify({ type: "launch_missiles", request_id: "q1" }), "unknown_type", "q1"],
      [JSON.stringify({ nope: 1 }), "unknown_type"],
      [JSON.stringify([1, 2]), "unknown_type"],
      [JSON.stringify({ type: "subscribe_telemetry", drone_ids: 7, request_id: "q2" }), "invalid_message", "q2"],
      [JSON.stringify({ type: "subscribe_telemetry", drone_ids: ["ok", "not ok"] }), "invalid_message"],
      [JSON.stringify({ type: "telemetry_batch", batch_id: 1, updates: [] }), "forbidden"],
      [JSON.stringify({ type: "relay_hello", relay_id: "x", source: "sim", drone_ids: [] }), "forbidden"],
    ];
    for (const [raw, code, rid] of cases) {
      d.send(raw);
      const e = await d.nextOfType("error");
      expect(e.code, raw).toBe(code);
      expect(typeof e.message).toBe("string");
      if (rid) expect(e.request_id).toBe(rid);
    }
    d.send({ type: "ping", request_id: "alive" });
    expect(await d.nextOfType("pong")).toMatchObject({ request_id: "alive" });
  });

  it("rejects binary frames with a coded error", async () => {
    const fleet = uniqueFleet();
    const d = await dash(fleet);
    d.ws.send(new Uint8Array([1, 2, 3]));
    expect(await d.nextOfType("error")).toMatchObject({ code: "binary_not_supported" });
  });

  it("closes a dashboard that sends a frame over 64 KiB with 1009, and the object goes on", async () => {
    const fleet = uniqueFleet();
    const d = await dash(fleet);
    d.send(JSON.stringify({ type: "ping", pad: "x".repeat(70 * 1024) }));
    const closed = await d.waitClosed();
    expect(closed.code).toBe(1009);
    const d2 = await dash(fleet);
    d2.send({ type: "ping" });
    expect(await d2.nextOfType("pong")).toBeTruthy();
  });

  it("a relay sending dashboard frames or garbage gets coded errors and can still ingest", async () => {
    const fleet = uniqueFleet();
    const { r } = await relay(fleet);
    open.push(r);
    r.send({ type: "subscribe_telemetry", drone_ids: "all" });
    expect(await r.nextOfType("error")).toMatchObject({ code: "forbidden" });
    r.send("][");
    expect(await r.nextOfType("error")).toMatchObject({ code: "bad_json" });
    r.send({ type: "telemetry_batch", batch_id: -1, updates: "no" });
    expect(await r.nextOfType("error")).toMatchObject({ code: "invalid_message" });
    expect(await sendBatch(r, [sample("d1")])).toMatchObject({ accepted: 1 });
  });
});

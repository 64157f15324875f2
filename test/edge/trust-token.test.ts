/**
 * Issue 18: a socket lives no longer than its token. The Worker passes the token's exp with the
 * upgrade; the fleet object refuses a command that arrives after exp (+ the Worker's 30 s
 * clock-skew leeway) with token_expired, without reserving its id, and closes the socket at that
 * moment with 4001 so the dashboard renews its token and reconnects.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { TOKEN_LEEWAY_MS } from "../../edge/fleet/limits";
import { CLOSE_CODES } from "../../edge/protocol";
import { connect, ManualClock, relay, sample, sendBatch, stubFor, token, uniqueFleet, useClock, type TestSocket } from "./helpers";

const open: TestSocket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const TTL_S = 120;

/** An operator socket with a token good for TTL_S seconds, a relay serving d1, the object's clock. */
async function setup() {
  const fleet = uniqueFleet("tok");
  const issuedAt = Date.now();
  const op = await connect(fleet, "ws", await token("operator", [fleet], { ttl: TTL_S }));
  open.push(op);
  await op.nextOfType("fleet_status");
  const clock = new ManualClock(issuedAt);
  await useClock(fleet, clock);
  const { r } = await relay(fleet, ["d1"]);
  open.push(r);
  await sendBatch(r, [sample("d1")]);
  // exp is whole seconds: the socket is good until exp + leeway.
  const until = (Math.floor(issuedAt / 1000) + TTL_S) * 1000 + TOKEN_LEEWAY_MS;
  return { fleet, op, r, clock, until };
}

describe("a dashboard socket and its token", () => {
  it("takes commands until exp + leeway, then refuses them with token_expired (the id stays free) and closes with 4001", async () => {
    const { fleet, op, r, clock, until } = await setup();
    clock.set(until - 1);
    op.send({ type: "emergency_land", command_id: "land-in-time-01", request_id: "a", drone_id: "d1" });
    expect(await r.nextOfType("command")).toMatchObject({ command_id: "land-in-time-01" });
    clock.set(until);
    op.send({ type: "emergency_land", command_id: "land-too-late-1", request_id: "b", drone_id: "d1" });
    expect(await op.nextOfType("emergency_land_response")).toMatchObject({ request_id: "b", command_id: "land-too-late-1", success: false, code: "token_expired" });
    expect(await op.nextOfType("error")).toMatchObject({ code: "token_expired" });
    const closed = await op.waitClosed();
    expect(closed).toEqual({ code: CLOSE_CODES.tokenExpired, reason: "token expired" });
    expect((await r.barrier()).filter((f) => f.type === "command")).toEqual([]);
    const audit = await stubFor(fleet).listCommands(10);
    expect(audit.map((c) => c.command_id)).toEqual(["land-in-time-01"]);
    // Renewed: a new socket with a fresh token sends the same id, and it runs.
    const renewed = await connect(fleet, "ws", await token("operator", [fleet], { ttl: 3600 }));
    open.push(renewed);
    await renewed.nextOfType("fleet_status");
    renewed.send({ type: "emergency_land", command_id: "land-too-late-1", drone_id: "d1" });
    expect(await r.nextOfType("command")).toMatchObject({ command_id: "land-too-late-1" });
  });

  it("is closed by the alarm at that moment: a token_expired error, then 4001", async () => {
    const { fleet, op, clock, until } = await setup();
    // The alarm is set for the expiry at the latest.
    const alarm = await runInDurableObject(stubFor(fleet), (_h, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeLessThanOrEqual(until);
    clock.set(until - 1);
    await runDurableObjectAlarm(stubFor(fleet));
    expect(op.closed).toBeNull();
    clock.set(until);
    await runDurableObjectAlarm(stubFor(fleet));
    expect(await op.nextOfType("error")).toMatchObject({ code: "token_expired" });
    expect((await op.waitClosed()).code).toBe(CLOSE_CODES.tokenExpired);
    expect((await stubFor(fleet).internalCounts()).conns).toBe(1);
  });

  it("closes a relay socket at its token's expiry too (4001)", async () => {
    const fleet = uniqueFleet("tok");
    const issuedAt = Date.now();
    const r = await connect(fleet, "relay", await token("relay", [fleet], { ttl: TTL_S }));
    open.push(r);
    r.send({ type: "relay_hello", relay_id: "short-lived", source: "sim", drone_ids: [] });
    await r.nextOfType("hello_ack");
    const clock = new ManualClock(issuedAt);
    await useClock(fleet, clock);
    clock.set((Math.floor(issuedAt / 1000) + TTL_S) * 1000 + TOKEN_LEEWAY_MS);
    r.send({ type: "telemetry_batch", batch_id: 1, updates: [sample("d1")] });
    expect(await r.nextOfType("error")).toMatchObject({ code: "token_expired" });
    expect((await r.waitClosed()).code).toBe(CLOSE_CODES.tokenExpired);
    expect((await stubFor(fleet).getStatus()).counts.total).toBe(0);
  });
});

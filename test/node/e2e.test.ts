/**
 * End to end: the real stack (wrangler dev + workerd, the relay with 5 simulated drones at 5 Hz,
 * Postgres through the local proxy) and a dashboard on a real WebSocket. Kills the relay with
 * SIGKILL mid-stream and checks the dashboard sees the outage and a clean recovery: every drone
 * live again, per-drone seq strictly increasing across the whole run.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { FleetStatus, TelemetryFrame } from "../../edge/protocol";
import { startStack, type Stack } from "../../scripts/stack";
import { createTestDatabase, Dashboard, type Received } from "./support";

const DRONES = 5;
const FLEET = `e2e-${randomUUID().slice(0, 8)}`;



const telemetry = (frames: Received[], since: number) =>
  frames.filter((f) => f.at >= since && f.msg.type === "telemetry").map((f) => f.msg as TelemetryFrame);
const statuses = (frames: Received[], since: number) =>
  frames.filter((f) => f.at >= since && f.msg.type === "fleet_status").map((f) => f.msg as FleetStatus);

describe("local stack end to end", () => {
  let stack: Stack | undefined;
  let dash: Dashboard | undefined;
  const unexpected: string[] = [];

  const context = () =>
    [
      `unexpected exits: ${unexpected.join(", ") || "none"}`,
      dash?.closed ?? "dashboard socket open",
      `frames received: ${dash?.frames.length ?? 0}; types: ${[...new Set(dash?.frames.map((f) => f.msg.type))].join(", ")}`,
      "edge output (last 25 lines):",
      ...(stack?.recentOutput("edge").slice(-25) ?? []),
      "relay output (last 15 lines):",
      ...(stack?.recentOutput("relay").slice(-15) ?? []),
    ].join("\n");

  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  beforeAll(async () => {
    db = await createTestDatabase("df_e2e");
    stack = await startStack({
      fleet: FLEET,
      drones: DRONES,
      rate: 5,
      port: 0,
      databaseUrl: db.url,
      cron: false,
      healthTimeoutMs: 90_000,
      log: () => {},
      output: () => {}, // kept by recentOutput() for failure messages
      onUnexpectedExit: (child, code, signal) => unexpected.push(`${child} (${signal ?? `code ${code}`})`),
    });
  }, 120_000);

  afterAll(async () => {
    dash?.close();
    await stack?.stop();
    await db?.drop();
  }, 60_000);

  it("serves health and the fleet status over HTTP", async () => {
    const s = stack!;
    const health = await fetch(`${s.edgeUrl}/health`, { signal: AbortSignal.timeout(5_000) });
    expect(health.status).toBe(200);
    const status = await fetch(`${s.edgeUrl}/v1/fleets/${FLEET}/status`, {
      headers: { authorization: `Bearer ${s.tokens.operator}` },
      signal: AbortSignal.timeout(5_000),
    });
    expect(status.status).toBe(200);
    expect((await status.json()) as FleetStatus).toMatchObject({ type: "fleet_status", fleet: FLEET });
  });

  it("streams fleet_status and telemetry from every drone, and recovers cleanly from a relay SIGKILL", async () => {
    const s = stack!;
    dash = await Dashboard.open(s.wsUrl, s.tokens.operator);
    const d = dash;
    d.send({ type: "subscribe_telemetry", drone_ids: "all" });

    // 1. Live: fleet_status, and telemetry from all drones.
    const t0 = 0;
    await d.waitFor("a fleet_status frame", 15_000, (f) => statuses(f, t0).length > 0, context);
    await d.waitFor(
      `telemetry from ${DRONES} drones`,
      30_000,
      (f) => new Set(telemetry(f, t0).map((t) => t.drone_id)).size >= DRONES,
      context,
    );
    const drones = [...new Set(telemetry(d.frames, t0).map((t) => t.drone_id))].sort();
    expect(drones).toHaveLength(DRONES);

    // 2. Outage: SIGKILL the relay; the edge must report relay_connected false.
    await s.killRelay("SIGKILL");
    const killedAt = Date.now();
    expect(s.relayRunning()).toBe(false);
    await d.waitFor(
      "fleet_status with relay_connected false after the relay was killed",
      20_000,
      (f) => statuses(f, killedAt).some((st) => !st.relay_connected),
      context,
    );

    // 3. Recovery: a new relay process; every drone live again with fresh telemetry.
    await s.startRelay();
    const restartedAt = Date.now();
    await d.waitFor(
      `telemetry from all ${DRONES} drones after the restart`,
      30_000,
      (f) => new Set(telemetry(f, restartedAt).map((t) => t.drone_id)).size >= DRONES,
      context,
    );
    await d.waitFor(
      "fleet_status with the relay connected and every drone live",
      20_000,
      (f) =>
        statuses(f, restartedAt).some(
          (st) => st.relay_connected && st.counts.live === DRONES && st.drones.every((x) => x.link === "live"),
        ),
      context,
    );

    // 4. Ordering across the whole run: per drone, seq strictly increasing (no duplicates, nothing
    //    backwards), including across the SIGKILL and restart.
    const problems: string[] = [];
    const last = new Map<string, number>();
    for (const t of telemetry(d.frames, t0)) {
      const prev = last.get(t.drone_id);
      if (prev !== undefined && t.seq <= prev) problems.push(`${t.drone_id}: seq ${t.seq} after ${prev}`);
      last.set(t.drone_id, t.seq);
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect([...last.keys()].sort()).toEqual(drones);
    expect(unexpected).toEqual([]);
  }, 120_000);
});

/**
 * The relay's health endpoint and metrics against a real link and an edge double: /metrics in
 * Prometheus text format (prom-client) reflects a forced disconnect (link_up 0, then
 * reconnects_total up) and commands (counts and the latency histogram), beside process and
 * event-loop metrics; /healthz applies its grace period, reports configured drones that send
 * nothing (degraded, logged once), and a relay_id the edge refuses (close 4003) as down at once.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../relay/log";
import { DroneWatch, SILENT_AFTER_MS, startHealthServer, type HealthServer } from "../../relay/health";
import { EdgeLink } from "../../relay/link/link";
import { RelayMetrics } from "../../relay/metrics";
import { FakeClock } from "./relay-clock";
import { DedupEdge } from "./relay-edge-double";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(graceMs: number, watch?: DroneWatch) {
  const edge = await new DedupEdge().start();
  cleanups.push(() => edge.stop());
  // The link's time moves only when a test says so: the link stays down until then.
  const clock = new FakeClock();
  const link = new EdgeLink({
    edge: edge.url,
    fleet: "f1",
    token: "t",
    relayId: "health-test",
    source: "sim",
    droneIds: () => ["d0"],
    backoff: { initialMs: 300, maxMs: 300 },
    random: () => 1,
    clock,
    heartbeatMs: 60_000,
    batchWindowMs: 5,
    execute: async () => ({ ok: true, message: "holding" }),
  });
  cleanups.push(() => link.stop());
  const metrics = new RelayMetrics({ link, samples: () => 7, rosMessages: () => ({ fix: 3, state: 1 }), silentDrones: () => watch?.silentIds().length ?? 0 });
  const server: HealthServer = await startHealthServer({ host: "127.0.0.1", port: 0, graceMs, link, metrics, watch });
  cleanups.push(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const get = async (path: string) => {
    const res = await fetch(base + path);
    return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
  };
  /** `name{labels}` → value from the exposition text. */
  const metric = async (series: string): Promise<number | undefined> => {
    const { text } = await get("/metrics");
    const line = text.split("\n").find((l) => l.startsWith(`dronefleet_relay_${series} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
  };
  const connected = (): Promise<void> => new Promise((r) => link.once("connected", () => r()));
  const disconnected = (): Promise<void> => new Promise((r) => link.once("disconnected", () => r()));
  return { edge, link, clock, get, metric, connected, disconnected };
}

describe("relay health endpoint", () => {
  it("metrics reflect a forced disconnect: link_up 0, then reconnects_total increments", async () => {
    const { edge, link, clock, get, metric, connected, disconnected } = await setup(60_000);
    const up = connected();
    link.start();
    await up;
    link.push({ drone_id: "d0", ts: 1, lat: 1, lon: 1, alt_m: 1, heading_deg: 0, speed_mps: 0, battery_pct: 90, armed: false, mode: "IDLE", status: "idle" });
    clock.advance(0); // the idle link's flush (next macrotask)
    await edge.until(() => edge.accepted.length === 1);

    const m = await get("/metrics");
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(m.text).toContain("# TYPE dronefleet_relay_link_up gauge");
    expect(m.text).toContain("# TYPE dronefleet_relay_reconnects_total counter");
    expect(m.text).toContain('dronefleet_relay_ros_messages_total{topic="fix"} 3');
    // prom-client's process and event-loop metrics, beside ours.
    expect(m.text).toContain("# TYPE process_cpu_seconds_total counter");
    expect(m.text).toContain("# TYPE process_resident_memory_bytes gauge");
    expect(m.text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
    expect(m.text).toContain("# TYPE nodejs_eventloop_lag_p99_seconds gauge");
    expect(await metric("link_up")).toBe(1);
    expect(await metric("reconnects_total")).toBe(0);
    expect(await metric("frames_sent_total")).toBe(1);
    expect(await metric("updates_sent_total")).toBe(1);
    expect(await metric('frames_released_total{release="idle"}')).toBe(1); // at once: the link was idle
    expect(await metric('frames_released_total{release="window"}')).toBe(0);
    expect(await metric("source_samples_total")).toBe(7);
    expect((await get("/healthz")).status).toBe(200);

    // Force a disconnect from the edge's side; the relay notices and reconnects by itself.
    const down = disconnected();
    const back = connected();
    for (const ws of edge.sockets) ws.terminate();
    await down;
    expect(await metric("link_up")).toBe(0);
    const h = await get("/healthz");
    expect(h.status).toBe(200); // within the grace period
    expect(JSON.parse(h.text)).toMatchObject({ status: "degraded", link_up: false });
    clock.advance(300); // the reconnect delay
    await back;
    expect(await metric("link_up")).toBe(1);
    expect(await metric("reconnects_total")).toBe(1);
    expect(JSON.parse((await get("/healthz")).text)).toMatchObject({ status: "ok", link_up: true, reconnects: 1 });
  });

  it("/healthz is 503 once the link has been down longer than the grace period", async () => {
    const { edge, link, get, connected, disconnected } = await setup(0);
    const up = connected();
    link.start();
    await up;
    const down = disconnected();
    await edge.stop();
    await down;
    const h = await get("/healthz");
    expect(h.status).toBe(503);
    expect(JSON.parse(h.text)).toMatchObject({ status: "down", link_up: false, grace_s: 0 });
    expect((await get("/nope")).status).toBe(404);
  });

  it("/healthz is 503 at once, within the grace period, while the edge refuses the relay_id (close 4003), and says what to do", async () => {
    const { edge, link, clock, get, metric, connected } = await setup(60_000);
    edge.takenRelayIds.add("health-test");
    link.start();
    await expect.poll(() => link.stats().refused?.reason, { timeout: 2000 }).toBe("relay_id_taken");
    expect(edge.closedWith).toEqual([4003]);
    const h = await get("/healthz");
    expect(h.status).toBe(503);
    expect(JSON.parse(h.text)).toMatchObject({
      status: "down",
      link_up: false,
      problem: { code: "relay_id_taken", message: expect.stringMatching(/^relay_id "health-test" is bound to another token subject .*DELETE \/v1\/fleets\/f1\/relays\/health-test.*--relay-id/) },
    });
    expect(await metric("link_up")).toBe(0);
    expect(await metric('edge_refusal{reason="relay_id_taken"}')).toBe(1);
    // An admin releases it: the next attempt, one maximum backoff later (300 ms here), connects.
    edge.takenRelayIds.clear();
    const up = connected();
    clock.advance(300);
    await up;
    const ok = await get("/healthz");
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toMatchObject({ status: "ok", problem: null, link_up: true });
    expect((await get("/metrics")).text).not.toContain("dronefleet_relay_edge_refusal{");
  });

  it("counts commands by outcome and records their latency in a histogram", async () => {
    const { edge, link, get, metric, connected } = await setup(60_000);
    const up = connected();
    link.start();
    await up;
    edge.send({ type: "command", command_id: "cmd-metrics-1", drone_id: "d0", timeout_ms: 2000, command: "hold", duration_s: 5 });
    await edge.until(() => edge.results.length === 1);
    expect(await metric('commands_total{command="hold",status="acked"}')).toBe(1);
    expect(await metric('command_latency_seconds_count{command="hold"}')).toBe(1);
    expect(await metric('command_latency_seconds_bucket{le="+Inf",command="hold"}')).toBe(1);
    expect(await metric('command_latency_seconds_bucket{le="0.1",command="hold"}')).toBe(1);
    const { text } = await get("/metrics");
    expect(text).toContain("# TYPE dronefleet_relay_command_latency_seconds histogram");
    expect(text.endsWith("\n")).toBe(true);
  });

  it("/healthz is degraded, with the drone named and logged once, while a configured drone sends nothing", async () => {
    let t = 1_000_000;
    const lines: { level: string; msg: string; count?: number; drones?: { drone_id: string; never_heard?: boolean }[] }[] = [];
    const watch = new DroneWatch({
      droneIds: () => ["d0", "d1"],
      now: () => t,
      log: createLogger("info", (l) => lines.push(JSON.parse(l) as (typeof lines)[number])),
      describe: (id) => ({ topic_age_s: { fix: id === "d1" ? null : 1 } }),
    });
    const { link, get, metric, connected } = await setup(60_000, watch);
    const up = connected();
    link.start();
    await up;
    watch.saw("d0");
    watch.saw("d1");
    expect(JSON.parse((await get("/healthz")).text)).toMatchObject({ status: "ok", silent_drones: 0, silent: [] });
    // d0 keeps sending; d1 goes quiet for longer than the stale time.
    t += SILENT_AFTER_MS;
    watch.saw("d0");
    t += 1;
    const h = await get("/healthz");
    expect(h.status).toBe(200);
    expect(JSON.parse(h.text)).toMatchObject({ status: "degraded", link_up: true, silent_drones: 1, silent: ["d1"] });
    expect(await metric("silent_drones")).toBe(1);
    await get("/healthz");
    watch.check();
    const silent = lines.filter((l) => l.msg.startsWith("drones silent"));
    expect(silent).toHaveLength(1); // once, however often it is polled
    expect(silent[0]).toMatchObject({ level: "warn", count: 1, drones: [{ drone_id: "d1", topic_age_s: { fix: null } }] });
    watch.saw("d1");
    expect(JSON.parse((await get("/healthz")).text)).toMatchObject({ status: "ok", silent_drones: 0 });
    expect(lines.filter((l) => l.msg === "drone heard from again")).toHaveLength(1);
  });
});

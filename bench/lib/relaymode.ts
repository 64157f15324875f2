/**
 * The relay-code mode of `npm run bench`: the real relay instead of the load generator. The
 * simulator (relay/sources/sim, `SimFleet`, the same as `npm run relay -- --source sim`) feeds the
 * real `EdgeLink` of relay/link (its Connection, outbox, batching and sequencing) in this process,
 * against the same `wrangler dev` stack; dashboards subscribe as the dashboard page does
 * (`batch: true`, answering flow markers). Latency = the moment the simulator hands a sample to
 * the link → its receipt at a dashboard, both on this process's clock: that includes the link's
 * batching, which the load generator leaves out.
 *
 * The link is built with its public constructor options only, as relay/cli.ts builds it, so
 * whichever batching the relay's code has (a fixed window, or sending at once when idle) is what
 * is measured; `batchWindowMs` is passed only when the bench is told to.
 */
import { execFileSync } from "node:child_process";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { loadavg } from "node:os";
import type WebSocket from "ws";
import { EdgeLink } from "../../relay/link/link";
import { createLogger } from "../../relay/log";
import { SimFleet, toSample } from "../../relay/sources/sim/sim";
import type { SourceSample } from "../../relay/sources/source";
import { REPO_ROOT } from "../../scripts/dev-vars";
import { closeQuietly, openSocket, scanIdNumber, startsWithBytes, waitFor } from "./loadgen";
import type { Target } from "./phases";
import { summariseProfile, type FleetProfile } from "./profile";
import type { ProcUsage } from "./proc";
import { nowMs, Samples, sleep, summarize, type Spread, type Summary } from "./stats";

/** Per drone, the emission time of its recent samples, found again by their `ts`. */
class TsTracker {
  private readonly ts: Float64Array;
  private readonly at: Float64Array;
  private readonly got: Uint16Array;
  private readonly measured: Uint8Array;
  private readonly count: Uint32Array;
  readonly latency = new Samples();
  delivered = 0;
  sentMeasured = 0;
  unknown = 0;

  constructor(
    readonly drones: number,
    private readonly ring: number,
  ) {
    this.ts = new Float64Array(drones * ring).fill(-1);
    this.at = new Float64Array(drones * ring);
    this.got = new Uint16Array(drones * ring);
    this.measured = new Uint8Array(drones * ring);
    this.count = new Uint32Array(drones);
  }

  emitted(idx: number, ts: number, t: number, measured: boolean): void {
    const s = idx * this.ring + (this.count[idx]! % this.ring);
    this.count[idx] = this.count[idx]! + 1;
    this.ts[s] = ts;
    this.at[s] = t;
    this.got[s] = 0;
    this.measured[s] = measured ? 1 : 0;
    if (measured) this.sentMeasured++;
  }

  received(idx: number, ts: number, t: number): void {
    if (!(idx >= 0 && idx < this.drones)) {
      this.unknown++;
      return;
    }
    // Newest first: a receipt is nearly always of the latest sample or the one before.
    const n = this.count[idx]!;
    for (let k = 1; k <= Math.min(n, this.ring); k++) {
      const s = idx * this.ring + ((n - k) % this.ring);
      if (this.ts[s] === ts) {
        this.got[s] = this.got[s]! + 1;
        if (this.measured[s]) {
          this.delivered++;
          this.latency.push(t - this.at[s]!);
        }
        return;
      }
    }
    this.unknown++;
  }

  missing(dashboards: number): number {
    let m = 0;
    for (let s = 0; s < this.ts.length; s++) if (this.measured[s] && this.got[s]! < dashboards) m += dashboards - this.got[s]!;
    return m;
  }
}

const ID_KEY = Buffer.from('"drone_id":"drone_');
const TS_KEY = Buffer.from('"ts":');
const TELEMETRY = Buffer.from('{"type":"telemetry');

/** Find the next simulator drone's `"drone_id":"drone_<n>"…"ts":<ms>` from `from`; record it; -1 at the end. */
function readIdTs(s: Buffer, from: number, t: number, tr: TsTracker): number {
  return scanIdNumber(s, from, ID_KEY, TS_KEY, (idx, ts) => tr.received(idx, ts, t));
}

/** A dashboard as the page subscribes (batch, answering flow markers). */
class PageDashboard {
  private ws: WebSocket | null = null;
  closedUnexpectedly = false;
  constructor(
    private readonly url: string,
    private readonly tracker: TsTracker,
  ) {}

  async open(timeoutMs = 10_000): Promise<void> {
    const ws = await openSocket(this.url, timeoutMs);
    this.ws = ws;
    ws.on("close", () => {
      if (this.ws) this.closedUnexpectedly = true;
    });
    ws.on("error", () => {
      this.closedUnexpectedly = true;
    });
    const ok = waitFor(ws, (m) => m.type === "subscribed", timeoutMs, "subscribed");
    ws.send(JSON.stringify({ type: "subscribe_telemetry", request_id: "sub", drone_ids: "all", batch: true }));
    await ok;
    ws.on("message", (data: Buffer) => {
      const t = nowMs();
      if (data.length < 64) {
        const m = /^\{"type":"flow","seq":(\d+)/.exec(data.toString());
        if (m) {
          ws.send(`{"type":"flow_ack","seq":${m[1]}}`);
          return;
        }
      }
      if (!startsWithBytes(data, TELEMETRY)) return;
      for (let from = 0; ; ) {
        const next = readIdTs(data, from, t, this.tracker);
        if (next < 0) break;
        from = next;
      }
    });
  }

  close(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) closeQuietly(ws);
  }
}

export interface RelayPointSpec {
  fleet: string;
  drones: number;
  dashboards: number;
  warmMs: number;
  measureMs: number;
  drainMs: number;
  /** Passed to EdgeLink as `batchWindowMs` when set; otherwise the link's own default. */
  batchWindowMs?: number;
  /** The target for this point, if it has one. */
  target?: { p50: number; p99: number };
}

export interface RelayPointResult {
  drones: number;
  dashboards: number;
  target: { p50: number; p99: number } | null;
  /** Samples the simulator emitted in the window, and how many reached every dashboard. */
  sent: number;
  latency_ms: Summary;
  dropped: number;
  expected_deliveries: number;
  /** The link over the window: frames, updates per frame, what the edge refused. */
  link: {
    frames_per_s: number;
    updates_per_frame: number;
    reconnects: number;
    rejected: number;
    batch_window_ms: number | "link default";
    /** Frames of the window by what released them, when the link's stats say (adaptive batching's `framesReleased`). */
    released: Record<string, number> | null;
    warnings: string[];
  };
  server: ProcUsage | null;
  extra: ProcUsage | null;
  client_cpu_pct: number;
  client_loop_delay_p99_ms: number;
  window_s: number;
  load_1m: { start: number; end: number };
  profile: FleetProfile | null;
  profile_note?: string;
  sockets_closed: number;
  /** With --repeat: the runs, the spread of p50 / p99; the figures above are medians. */
  repeat?: number;
  spread?: { p50: Spread; p99: Spread };
  runs?: RelayPointResult[];
  verdict: { ok: boolean; reasons: string[] };
  error?: string;
}

/** Which relay code ran: the commit, and whether relay/link differs from it in the working tree. */
export function relayCodeVersion(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short=10", "HEAD"], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "relay/link", "relay/sources/sim"], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")
      .filter((l) => l.length > 3)
      .map((l) => l.slice(3));
    return dirty.length ? `${head} + uncommitted changes in ${dirty.join(", ")}` : head;
  } catch {
    return "unknown (no git)";
  }
}

/** One point: `drones` simulated drones through one EdgeLink, `dashboards` page-style viewers. */
export async function runRelayPoint(t: Target, spec: RelayPointSpec, relayToken: string, edgeUrl: string, aborted: () => boolean): Promise<RelayPointResult> {
  const load0 = loadavg()[0]!;
  const totalS = (spec.warmMs + spec.measureMs + spec.drainMs) / 1000 + 4;
  const tracker = new TsTracker(spec.drones, Math.max(16, Math.ceil(totalS) + 8));
  const sim = new SimFleet({ drones: spec.drones, rateHz: 1, seed: 1 });
  const warnings: string[] = [];
  const log = createLogger("warn", (line) => {
    if (warnings.length < 5) warnings.push(line.slice(0, 300));
  });
  const link = new EdgeLink({
    edge: edgeUrl,
    fleet: spec.fleet,
    token: relayToken,
    relayId: "bench-relay-code",
    source: "sim",
    version: "bench",
    droneIds: () => sim.droneIds(),
    execute: (command, signal) => sim.execute(command, signal),
    ...(spec.batchWindowMs !== undefined ? { batchWindowMs: spec.batchWindowMs } : {}),
    log,
  });
  sim.onMissionProgress = (p) => link.pushProgress(p);
  const dashboards = Array.from({ length: spec.dashboards }, () => new PageDashboard(t.dashboardUrl(spec.fleet), tracker));
  const loop = monitorEventLoopDelay({ resolution: 5 });
  let measuring = false;
  let connectTimer: NodeJS.Timeout | undefined;
  const connected = new Promise<void>((resolve, reject) => {
    connectTimer = setTimeout(() => reject(new Error("the relay link did not connect within 15 s")), 15_000);
    link.once("connected", () => {
      clearTimeout(connectTimer);
      resolve();
    });
  });
  connected.catch(() => {});
  const base = { drones: spec.drones, dashboards: spec.dashboards, target: spec.target ?? null };
  try {
    await Promise.all(dashboards.map((d) => d.open()));
    link.start();
    await connected;
    await sim.start((s: SourceSample) => {
      const idx = Number(s.drone_id.slice(6));
      tracker.emitted(idx, s.ts, nowMs(), measuring);
      link.push(s);
    });
    await sleep(spec.warmMs);
    if (aborted()) throw new Error("aborted");
    if (t.profile) await t.profile.take(spec.fleet);
    const s0 = link.stats();
    measuring = true;
    t.server.start();
    t.extra?.start();
    const cpu0 = process.cpuUsage();
    loop.enable();
    const m0 = performance.now();
    await sleep(spec.measureMs);
    measuring = false;
    const wall = (performance.now() - m0) / 1000;
    const server = t.server.stop();
    const extra = t.extra?.stop() ?? null;
    const cpu = process.cpuUsage(cpu0);
    loop.disable();
    const s1 = link.stats();
    const view = t.profile ? await t.profile.take(spec.fleet) : null;
    const expected = tracker.sentMeasured * spec.dashboards;
    const until = performance.now() + spec.drainMs;
    while (performance.now() < until && !aborted() && tracker.delivered < expected) await sleep(20);
    const frames = s1.framesSent - s0.framesSent;
    // Read by name: a link without adaptive batching has no such counter.
    const rel0 = (s0 as { framesReleased?: Record<string, number> }).framesReleased;
    const rel1 = (s1 as { framesReleased?: Record<string, number> }).framesReleased;
    const released = rel0 && rel1 ? Object.fromEntries(Object.entries(rel1).map(([k, v]) => [k, v - (rel0[k] ?? 0)])) : null;
    const latency = tracker.latency.summary();
    const dropped = tracker.missing(spec.dashboards);
    const closed = dashboards.filter((d) => d.closedUnexpectedly).length + (s1.reconnects > s0.reconnects ? 1 : 0);
    const reasons: string[] = [];
    if (spec.target && !(latency.p50 <= spec.target.p50)) reasons.push(`p50 ${latency.p50.toFixed(1)} ms > ${spec.target.p50}`);
    if (spec.target && !(latency.p99 <= spec.target.p99)) reasons.push(`p99 ${latency.p99.toFixed(1)} ms > ${spec.target.p99}`);
    if (!spec.target && !(latency.p99 <= 100)) reasons.push(Number.isNaN(latency.p99) ? "nothing received" : `p99 ${Math.round(latency.p99)} ms > 100`);
    if (dropped > 0) reasons.push(`${dropped.toLocaleString("en-US")} not delivered (lost, or > ${spec.drainMs / 1000} s late)`);
    if (closed) reasons.push(`${closed} socket(s) closed or reconnected`);
    return {
      ...base,
      sent: tracker.sentMeasured,
      latency_ms: latency,
      dropped,
      expected_deliveries: expected,
      link: {
        frames_per_s: frames / wall,
        updates_per_frame: frames ? (s1.updatesSent - s0.updatesSent) / frames : 0,
        reconnects: s1.reconnects - s0.reconnects,
        rejected: s1.rejectedByEdge - s0.rejectedByEdge,
        batch_window_ms: spec.batchWindowMs ?? "link default",
        released,
        warnings,
      },
      server,
      extra,
      client_cpu_pct: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 100),
      client_loop_delay_p99_ms: loop.percentile(99) / 1e6,
      window_s: wall,
      load_1m: { start: load0, end: loadavg()[0]! },
      profile: view ? summariseProfile(view) : null,
      ...(t.profile && !view ? { profile_note: t.profile.note ?? "no profile" } : {}),
      sockets_closed: closed,
      verdict: { ok: reasons.length === 0, reasons },
    };
  } catch (err) {
    return {
      ...base,
      sent: 0,
      latency_ms: summarize([]),
      dropped: 0,
      expected_deliveries: 0,
      link: { frames_per_s: 0, updates_per_frame: 0, reconnects: 0, rejected: 0, batch_window_ms: spec.batchWindowMs ?? "link default", released: null, warnings },
      server: null,
      extra: null,
      client_cpu_pct: 0,
      client_loop_delay_p99_ms: 0,
      window_s: 0,
      load_1m: { start: load0, end: loadavg()[0]! },
      profile: null,
      sockets_closed: 0,
      verdict: { ok: false, reasons: [`error: ${(err as Error).message}`] },
      error: (err as Error).message,
    };
  } finally {
    clearTimeout(connectTimer);
    await sim.stop();
    for (const d of dashboards) d.close();
    // Land every drone, so the fleet object's detection passes stop before the next point.
    const ts = Date.now();
    for (const d of sim.snapshot()) link.push(toSample({ ...d, alt: 0, vx: 0, vy: 0, vz: 0, status: "landed", armed: false, mode: "AUTO.LAND" }, sim.home, ts, { intent: false }));
    await link.stop();
  }
}

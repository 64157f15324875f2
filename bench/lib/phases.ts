/**
 * What `npm run bench` measures, one function per phase: a telemetry sweep point, the commands
 * round trips, the end-to-end coordination scenario. Each phase opens its own sockets and closes
 * them in `finally`, so an abort or an error leaves nothing connected.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { offsetM, type LatLon } from "../../edge/domain/geo";
import { LIMITS, type RelayCommand, type TelemetrySample } from "../../edge/protocol";
import { Dashboard, droneId, Generator, gridPosition, hoverSample, RelayConn, Tracker } from "./loadgen";
import type { ProcMeter, ProcUsage } from "./proc";
import { summariseProfile, type FleetProfile, type ProfileReader } from "./profile";
import { RssSampler, SlowDashboard, type SlowResult } from "./slow";
import { median, nowMs, Samples, sleep, spread, summarize, type Spread, type Summary } from "./stats";

export type Design = "ours" | "baseline";
export type Mode = "per_update" | "batch";

/** How to reach one design. */
export interface Target {
  design: Design;
  relayUrl(fleet: string): string;
  dashboardUrl(fleet: string): string;
  /** The server side's processes (workerd; or the Node server). */
  server: ProcMeter;
  /** Other processes the design needs (redis-server for the baseline). */
  extra?: ProcMeter;
  /** Send the drones to the ground after a point so the fleet object stops its detection passes. */
  landAfter: boolean;
  /** The fleet object's profile route (ours only). */
  profile?: ProfileReader;
}

export interface PointSpec {
  drones: number;
  dashboards: number;
  mode: Mode;
  /** Updates per second per drone. */
  hz: number;
  fleet: string;
  warmMs: number;
  measureMs: number;
  drainMs: number;
  /**
   * One more dashboard that subscribes and then never reads (its TCP socket paused): it is not
   * among `dashboards`, and the figures are those of the others. The stream goes on, unmeasured,
   * until `holdMs` after the pause; then it reads what came and reports whether it was closed.
   */
  slow?: { holdMs: number };
}

export type Verdict = { ok: boolean; severe: boolean; reasons: string[] };

export interface PointResult {
  design: Design;
  drones: number;
  dashboards: number;
  mode: Mode;
  hz: number;
  offered_per_s: number;
  /** Updates the server acknowledged as accepted, per second of the measured window. */
  ingested_per_s: number;
  /** Updates sent in the measured window, and how many of them the server acknowledged as accepted. */
  sent: number;
  accepted: number;
  latency_ms: Summary;
  /** Measured updates × dashboards that never arrived within the drain window. */
  dropped: number;
  expected_deliveries: number;
  ack_rtt_ms: Summary;
  unacked_batches: number;
  frames_sent: number;
  server: ProcUsage | null;
  extra: ProcUsage | null;
  client_cpu_pct: number;
  client_loop_delay_p99_ms: number;
  /** The measured window's length, s. */
  window_s: number;
  /** The machine's 1-minute load average when the point started and after it drained. */
  load_1m: { start: number; end: number };
  /** Server RSS once a second from the sockets' opening to the end of the drain, MB (start / max / end). */
  rss_mb?: SlowResult["rss_mb"];
  /** The fleet object's profile over the measured window; null without the route (see profile_note). */
  profile: FleetProfile | null;
  profile_note?: string;
  /** Relay and dashboard sockets the server closed during the point. */
  sockets_closed: number;
  /** The non-reading dashboard of `PointSpec.slow`. */
  slow?: SlowResult;
  /** With --repeat: the runs (each a fresh fleet), the spread of p50 / p99 over them; the figures above are medians. */
  repeat?: number;
  spread?: { p50: Spread; p99: Spread; stall_ms?: Spread };
  runs?: PointResult[];
  verdict: Verdict;
  error?: string;
}

/** Open `items` with at most `limit` handshakes in flight. */
async function openAll<T>(items: T[], open: (t: T) => Promise<unknown>, limit = 20): Promise<void> {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await open(items[i++]!);
  });
  await Promise.all(workers);
}

/** Split drones over relays of ≤1,000 drones each, as one site relay would serve them. */
function relaysFor(drones: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < drones; s += 1000) out.push(Array.from({ length: Math.min(1000, drones - s) }, (_, k) => s + k));
  return out;
}

export function judge(r: Pick<PointResult, "latency_ms" | "dropped" | "expected_deliveries" | "sent" | "accepted" | "sockets_closed">, drainMs: number): Verdict {
  const reasons: string[] = [];
  if (r.sockets_closed > 0) reasons.push(`${r.sockets_closed} socket(s) closed by the server`);
  if (!(r.latency_ms.p99 <= 100)) reasons.push(Number.isNaN(r.latency_ms.p99) ? "nothing received" : `p99 ${Math.round(r.latency_ms.p99)} ms > 100`);
  if (r.dropped > 0) reasons.push(`${r.dropped.toLocaleString("en-US")} not delivered (lost, or > ${drainMs / 1000} s late)`);
  if (r.accepted < 0.97 * r.sent) reasons.push(`acks lag (${Math.round((100 * r.accepted) / Math.max(r.sent, 1))} % acked in time)`);
  const severe = !(r.latency_ms.p99 <= 1000) || r.dropped > 0.01 * r.expected_deliveries || r.accepted < 0.9 * r.sent;
  return { ok: reasons.length === 0, severe, reasons };
}

/** Wait (bounded) until the server side is quiet again, so one point's backlog does not spill into the next. */
export async function settle(t: Target, maxMs = 4000): Promise<void> {
  const until = performance.now() + maxMs;
  while (performance.now() < until) {
    if ((await t.server.cpuNow(150)) < 25) return;
  }
}

/** One sweep point: N dashboards, D drones at `hz`, measured over `measureMs`. */
export async function runPoint(t: Target, spec: PointSpec, home: LatLon, aborted: () => boolean): Promise<PointResult> {
  const holdMs = spec.slow ? Math.max(spec.slow.holdMs, spec.warmMs + spec.measureMs) : 0;
  const totalS = (Math.max(spec.warmMs + spec.measureMs, holdMs) + spec.drainMs) / 1000 + 2;
  const tracker = new Tracker(spec.drones, Math.ceil(spec.hz * totalS) + 8);
  const positions = Array.from({ length: spec.drones }, (_, i) => gridPosition(home, i));
  const groups = relaysFor(spec.drones);
  const relays = groups.map((g, r) => new RelayConn(t.relayUrl(spec.fleet), `bench-relay-${r}`, g.map(droneId)));
  const dashboards = Array.from({ length: spec.dashboards }, () => new Dashboard(t.dashboardUrl(spec.fleet), tracker, spec.mode === "batch"));
  const slow = spec.slow ? new SlowDashboard(t.dashboardUrl(spec.fleet), spec.mode === "batch") : null;
  const rss = new RssSampler(t.server, t.extra);
  const sample = (idx: number, seq: number, ts: number) => hoverSample(positions[idx]!, droneId(idx), seq, ts);
  const gen = new Generator(relays, groups, spec.hz, tracker, sample);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  const offered = spec.drones * spec.hz;
  const load0 = loadavg()[0]!;
  const base = {
    design: t.design,
    drones: spec.drones,
    dashboards: spec.dashboards,
    mode: spec.mode,
    hz: spec.hz,
    offered_per_s: offered,
  };
  try {
    await openAll(dashboards, (d) => d.open());
    rss.start();
    if (slow) await slow.open();
    await openAll(relays, (r) => r.open(), 4);
    gen.start();
    await sleep(spec.warmMs);
    if (aborted()) throw new Error("aborted");
    // Zero the fleet object's counters: what the end of the window reads is the window alone.
    if (t.profile) await t.profile.take(spec.fleet);
    gen.measuring = true;
    t.server.start();
    t.extra?.start();
    const cpu0 = process.cpuUsage();
    loop.enable();
    const m0 = performance.now();
    await sleep(spec.measureMs);
    gen.measuring = false;
    const wall = (performance.now() - m0) / 1000;
    const server = t.server.stop();
    const extra = t.extra?.stop() ?? null;
    const cpu = process.cpuUsage(cpu0);
    loop.disable();
    const view = t.profile ? await t.profile.take(spec.fleet) : null;
    if (slow) {
      // Keep the fleet streaming (unmeasured) until the non-reader has been ignored for holdMs.
      while (!aborted() && nowMs() < slow.pausedAt + spec.slow!.holdMs) await sleep(Math.min(250, slow.pausedAt + spec.slow!.holdMs - nowMs()));
    }
    gen.stop();
    // Drain: every measured update at every dashboard, every measured batch acknowledged.
    const expected = tracker.sentMeasured * spec.dashboards;
    const drainUntil = performance.now() + spec.drainMs;
    while (performance.now() < drainUntil && !aborted()) {
      if (tracker.delivered >= expected && relays.every((r) => r.unacked() === 0)) break;
      await sleep(20);
    }
    const accepted = relays.reduce((a, r) => a + r.acceptedMeasured, 0);
    const ackRtt = new Samples();
    for (const r of relays) for (const v of r.ackRtt.view()) ackRtt.push(v);
    const lost = [...relays, ...dashboards].filter((c) => c.closedUnexpectedly).length;
    const partial = {
      ...base,
      ingested_per_s: accepted / wall,
      sent: tracker.sentMeasured,
      accepted,
      latency_ms: tracker.latency.summary(),
      dropped: tracker.missing(spec.dashboards),
      expected_deliveries: expected,
      ack_rtt_ms: ackRtt.summary(),
      unacked_batches: relays.reduce((a, r) => a + r.unacked(), 0),
      frames_sent: relays.reduce((a, r) => a + r.framesSent, 0),
      sockets_closed: lost,
    };
    const rssMb = rss.stop();
    const slowResult = slow ? await slow.finish(rssMb, 3000) : undefined;
    return {
      ...partial,
      server,
      extra,
      client_cpu_pct: Math.round(((cpu.user + cpu.system) / 1e6 / wall) * 100),
      client_loop_delay_p99_ms: loop.percentile(99) / 1e6,
      window_s: wall,
      load_1m: { start: load0, end: loadavg()[0]! },
      rss_mb: rssMb,
      profile: view ? summariseProfile(view) : null,
      ...(t.profile && !view ? { profile_note: t.profile.note ?? "no profile" } : {}),
      ...(slowResult ? { slow: slowResult } : {}),
      verdict: judge(partial, spec.drainMs),
    };
  } catch (err) {
    const empty = summarize([]);
    return {
      ...base,
      ingested_per_s: 0,
      sent: 0,
      accepted: 0,
      latency_ms: empty,
      dropped: 0,
      expected_deliveries: 0,
      ack_rtt_ms: empty,
      unacked_batches: 0,
      frames_sent: 0,
      server: null,
      extra: null,
      client_cpu_pct: 0,
      client_loop_delay_p99_ms: 0,
      window_s: 0,
      load_1m: { start: load0, end: loadavg()[0]! },
      profile: null,
      sockets_closed: 0,
      verdict: { ok: false, severe: true, reasons: [`error: ${(err as Error).message}`] },
      error: (err as Error).message,
    };
  } finally {
    gen.stop();
    rss.stop();
    slow?.close();
    for (const d of dashboards) d.close();
    if (t.landAfter) await landAll(relays, groups, positions).catch(() => {});
    for (const r of relays) r.close();
  }
}

/**
 * The same point `n` times, each on a fresh fleet, settling in between. The result's figures are
 * the medians over the runs (numbers field by field), its verdict is judged on those medians, and
 * `spread` gives min / median / max of p50 and p99. With n = 1 the one run, unchanged.
 */
export async function runRepeated(t: Target, spec: PointSpec, n: number, home: LatLon, aborted: () => boolean, onRun?: (k: number) => void): Promise<PointResult> {
  const runs: PointResult[] = [];
  for (let k = 0; k < n && !aborted(); k++) {
    onRun?.(k);
    if (k > 0) await settle(t);
    runs.push(await runPoint(t, n > 1 ? { ...spec, fleet: `${spec.fleet}-r${k + 1}` } : spec, home, aborted));
  }
  if (!runs.length) return runPoint(t, spec, home, () => true);
  return n > 1 ? aggregate(runs, spec.drainMs) : runs[0]!;
}

/** Field-wise medians over runs (see runRepeated); strings and flags come from the median-p99 run. */
export function aggregate(runs: PointResult[], drainMs: number): PointResult {
  const good = runs.filter((r) => !r.error);
  const pool = good.length ? good : runs;
  const p99s = pool.map((r) => r.latency_ms.p99);
  const mid = median(p99s);
  // The run whose p99 is nearest the median stands for the others in what cannot be averaged.
  const rep = [...pool].sort((a, b) => Math.abs(a.latency_ms.p99 - mid) - Math.abs(b.latency_ms.p99 - mid) || 0)[0]!;
  const agg = medianFields(rep, pool) as PointResult;
  agg.load_1m = { start: runs[0]!.load_1m.start, end: runs[runs.length - 1]!.load_1m.end };
  agg.repeat = runs.length;
  const stalls = pool.filter((r) => r.profile).map((r) => r.profile!.longest_turn_ms);
  agg.spread = { p50: spread(pool.map((r) => r.latency_ms.p50)), p99: spread(p99s), ...(stalls.length ? { stall_ms: spread(stalls) } : {}) };
  agg.runs = runs;
  agg.verdict = judge(agg, drainMs);
  const failed = runs.filter((r) => r.error);
  if (failed.length) agg.error = `${failed.length} of ${runs.length} runs failed: ${failed[0]!.error}`;
  if (!good.length) agg.verdict = { ok: false, severe: true, reasons: [`error: ${runs[0]!.error}`] };
  return agg;
}

/** `rep` with every number replaced by the median of that number over `all` (recursively). */
function medianFields(rep: unknown, all: unknown[]): unknown {
  if (typeof rep === "number") return median(all.filter((v): v is number => typeof v === "number"));
  if (Array.isArray(rep) || rep === null || typeof rep !== "object") return rep;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rep)) {
    if (k === "runs" || k === "verdict" || k === "slow") {
      out[k] = v;
      continue;
    }
    const others = all.map((o) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined)).filter((x) => x !== undefined && x !== null);
    out[k] = medianFields(v, others);
  }
  return out;
}

/** One last sample per drone, landed and disarmed: the fleet object stops detecting over them. */
async function landAll(relays: RelayConn[], groups: number[][], positions: { lat: number; lon: number }[]): Promise<void> {
  const ts = Date.now();
  for (let r = 0; r < relays.length; r++) {
    const ids = groups[r]!;
    for (let s = 0; s < ids.length; s += LIMITS.batchUpdates) {
      const updates = ids.slice(s, s + LIMITS.batchUpdates).map((i) => ({
        ...hoverSample({ ...positions[i]!, alt_m: 0 }, droneId(i), 1_000_000_000, ts),
        armed: false,
        status: "landed" as const,
        mode: "MANUAL",
      }));
      relays[r]!.sendBatch(updates, false);
    }
  }
  // Let the batches reach the object before the sockets close (bounded).
  const until = performance.now() + 1500;
  while (performance.now() < until && relays.some((r) => r.pendingAcks() > 0)) await sleep(20);
}

// ------------------------------------------------------------------ commands and coordination

type Frame = { type?: string } & Record<string, unknown>;

/** A dashboard used as an operator console: send a command, await its final answer. */
class Console {
  private readonly waiting = new Map<string, (f: Frame, t: number) => void>();
  private ws: Awaited<ReturnType<Dashboard["open"]>> | null = null;

  constructor(private readonly url: string) {}

  async open(): Promise<void> {
    const d = new Dashboard(this.url, null, false);
    this.ws = await d.open(10_000, false);
    this.ws.on("message", (data) => {
      const t = nowMs();
      const s = data.toString();
      if (!s.includes('"command_id"') || s.startsWith('{"type":"command_status"')) return;
      const f = JSON.parse(s) as Frame;
      const id = f.command_id as string | undefined;
      const w = id ? this.waiting.get(id) : undefined;
      if (w) {
        this.waiting.delete(id!);
        w(f, t);
      }
    });
  }

  /** Send and wait for the `responseType` frame for this command (bounded). */
  send(msg: Frame & { command_id: string }, responseType: string, timeoutMs = 5000): Promise<{ frame: Frame; sentAt: number; at: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(msg.command_id);
        reject(new Error(`${msg.type}: no ${responseType} within ${timeoutMs} ms`));
      }, timeoutMs);
      const sentAt = nowMs();
      this.waiting.set(msg.command_id, (frame, at) => {
        clearTimeout(timer);
        if (frame.type !== responseType) reject(new Error(`${msg.type}: got ${frame.type} (${String(frame.message ?? "")})`));
        else resolve({ frame, sentAt, at });
      });
      this.ws!.send(JSON.stringify(msg));
    });
  }

  close(): void {
    this.ws?.close();
    this.ws = null;
  }
}

export interface CommandsResult {
  drones: number;
  dashboards: number;
  modify_waypoint: { rtt_ms: Summary; edge_to_relay_ms: Summary; relay_to_answer_ms: Summary; ok: number; failed: number; failures: string[] };
  assign_mission: { rtt_ms: Summary; ok: number; failed: number; failures: string[] };
  /** The paced series: `commands` (modify_waypoint with assign_mission among them) at `rate_per_s`. */
  series: { rate_per_s: number; commands: number; window_s: number };
  telemetry_latency_ms: Summary;
  /** Split by receipt: the control window before any command (same sockets), the paced series,
   * and the head-on runs after the burst. */
  telemetry_control_ms: Summary;
  control_window_s: number;
  profile_control: FleetProfile | null;
  telemetry_during_commands_ms: Summary;
  telemetry_during_coordination_ms: Summary;
  /** modify_waypoint back to back after the series: a stress figure (no pacing). */
  burst: { commands: number; failed: number; failures: string[]; window_s: number; rtt_ms: Summary; telemetry_ms: Summary; profile: FleetProfile | null };
  /** The fleet object's profile over the paced series. */
  profile: FleetProfile | null;
  profile_note?: string;
  /** The same over the head-on runs after it. */
  profile_coordination?: FleetProfile | null;
  load_1m: { start: number; end: number };
  /** The load generator's event-loop delay p99 per window, ms. */
  client_loop_delay_p99_ms?: { control: number; series: number; burst: number; coordination: number };
  coordination: CoordinationResult;
}

export interface CoordinationResult {
  runs: number;
  /** First closing telemetry frame sent → first resolution `command` at our relay. */
  frame_to_command_ms: Summary;
  /** Edge clock: event detected_at → first_command_at. */
  detect_to_command_edge_ms: Summary;
  /** detected_at (edge clock) → command received at the relay (Date.now here): same machine. */
  detect_to_relay_ms: Summary;
  /** First closing frame sent (Date.now) → detected_at (edge clock): includes waiting for the next pass. */
  frame_to_detect_ms: Summary;
  missed: number;
  event_types: string[];
  strategies: string[];
}

export interface CommandsSpec {
  fleet: string;
  drones: number;
  dashboards: number;
  waypointCommands: number;
  assignCommands: number;
  /** Commands per second in the series (the default rate limit is 2/s per operator socket). */
  ratePerS: number;
  /** Telemetry alone before the series, ms. */
  controlMs: number;
  /** modify_waypoint back to back after the series. */
  burstCommands: number;
  coordinationRuns: number;
  edgeUrl: string;
  adminToken: string;
}

async function api(url: string, token: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(url, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(init.headers ?? {}) }, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${new URL(url).pathname}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
  return body;
}

/**
 * Commands while `drones` stream at 1 Hz to `dashboards` viewers: modify_waypoint and
 * assign_mission round trips from an operator socket, then the head-on coordination scenario.
 */
export async function runCommands(t: Target, spec: CommandsSpec, aborted: () => boolean, progress: (s: string) => void): Promise<CommandsResult> {
  const load0 = loadavg()[0]!;
  const base = `${spec.edgeUrl}/v1/fleets/${spec.fleet}`;
  // The fleet's configuration: home and geofence for valid waypoints; a rate limit that lets one
  // console send the whole series (the default is 20 commands per 10 s per connection).
  const config = (await api(`${base}/config`, spec.adminToken)) as { home: LatLon; version?: number } & Record<string, unknown>;
  const { version: _v, ...rest } = config;
  await api(`${base}/config`, spec.adminToken, { method: "PUT", body: JSON.stringify({ ...rest, max_commands_per_10s: 10_000 }) });
  const home = config.home;

  const tracker = new Tracker(spec.drones, 64);
  const positions = Array.from({ length: spec.drones }, (_, i) => gridPosition(home, i));
  const groups = relaysFor(spec.drones);
  const relays = groups.map((g, r) => new RelayConn(t.relayUrl(spec.fleet), `bench-relay-${r}`, g.map(droneId)));
  const commandSeenAt = new Map<string, number>();
  for (const r of relays) r.onCommand = (cmd, at) => commandSeenAt.set(cmd.command_id, at);
  // Batch mode, as the page subscribes at this size: the figure shows what a turn of the object
  // costs every dashboard (per-update mode's own I/O bursts hide it).
  const viewers = Array.from({ length: spec.dashboards }, () => new Dashboard(t.dashboardUrl(spec.fleet), tracker, true));
  const op = new Console(t.dashboardUrl(spec.fleet));
  const gen = new Generator(relays, groups, 1, tracker, (idx, seq, ts) => hoverSample(positions[idx]!, droneId(idx), seq, ts));
  const pair = new RelayConn(t.relayUrl(spec.fleet), "bench-pair-relay", Array.from({ length: spec.coordinationRuns }, (_, k) => [`pair${k}-a`, `pair${k}-b`]).flat());
  const wp = { rtt: new Samples(), toRelay: new Samples(), back: new Samples(), ok: 0, failed: 0, failures: [] as string[] };
  const am = { rtt: new Samples(), ok: 0, failed: 0, failures: [] as string[] };
  try {
    await openAll(viewers, (d) => d.open());
    await openAll(relays, (r) => r.open(), 4);
    await op.open();
    gen.start();
    // Every drone must be known and live before it can be commanded; their first sighting (a
    // link_status per drone to every dashboard) is not part of the telemetry figure.
    await sleep(1500);
    if (t.profile) await t.profile.take(spec.fleet);
    gen.measuring = true;

    // The load generator's own event-loop delay per window: a high one means the figure is
    // bounded by this process, not by the edge.
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const loopP99 = () => {
      const v = loop.percentile(99) / 1e6;
      loop.reset();
      return v;
    };

    // The control: the same sockets, drones and dashboards, no commands.
    await sleep(spec.controlMs);
    const atControl = tracker.latency.length;
    const loopControl = loopP99();
    const viewControl = t.profile ? await t.profile.take(spec.fleet) : null;

    // Drones nearest home, each moved 10 m inside its own 60 m grid cell at its own altitude:
    // inside the geofence, below the ceiling, clear of every neighbour; south-west of home, away
    // from the missions (north-east of it) and the drones the edge sends to fly them.
    const near = positions
      .map((p, i) => ({ i, d: Math.hypot(p.east, p.north) }))
      .filter((x) => positions[x.i]!.alt_m === 40 && positions[x.i]!.east + positions[x.i]!.north < -60)
      .sort((a, b) => a.d - b.d)
      .slice(0, 200)
      .map((x) => x.i);
    const waypoint = async (k: number, rec: { rtt: Samples; toRelay?: Samples; back?: Samples; ok: number; failed: number; failures: string[] }) => {
      const i = near[k % near.length]!;
      const p = positions[i]!;
      const target = { ...offsetM(p, k % 2 ? 10 : 0, k % 2 ? 0 : 10), alt_m: 40 + (k % 3) * 5 };
      const id = `bench-wp-${randomUUID()}`;
      try {
        const r = await op.send(
          { type: "modify_waypoint", command_id: id, drone_id: droneId(i), new_waypoint: target, modification_reason: "bench" },
          "waypoint_modification_response",
        );
        if (r.frame.success) {
          rec.ok++;
          rec.rtt.push(r.at - r.sentAt);
          const seen = commandSeenAt.get(id);
          if (seen !== undefined) {
            rec.toRelay?.push(seen - r.sentAt);
            rec.back?.push(r.at - seen);
          }
        } else {
          rec.failed++;
          if (rec.failures.length < 5) rec.failures.push(`${String(r.frame.code)}: ${String(r.frame.message)}`);
        }
      } catch (err) {
        rec.failed++;
        if (rec.failures.length < 5) rec.failures.push((err as Error).message);
      }
    };
    const assign = async (k: number) => {
      const id = `bench-am-${randomUUID()}`;
      const w = (e: number, n: number) => ({ ...offsetM(home, e, n), alt_m: 70 });
      try {
        const r = await op.send(
          { type: "assign_mission", command_id: id, mission: { waypoints: [w(100 + 5 * k, 100), w(200, 150 + 5 * k)], priority: "normal" } },
          "mission_assignment_response",
        );
        if (r.frame.success) {
          am.ok++;
          am.rtt.push(r.at - r.sentAt);
        } else {
          am.failed++;
          if (am.failures.length < 5) am.failures.push(`${String(r.frame.code)}: ${String(r.frame.message)}`);
        }
      } catch (err) {
        am.failed++;
        if (am.failures.length < 5) am.failures.push((err as Error).message);
      }
    };

    // The series: modify_waypoint with assign_mission spread among them, one every
    // 1000 / ratePerS ms from one operator socket (the next waits for the answer to the last).
    const total = spec.waypointCommands + spec.assignCommands;
    const gap = 1000 / spec.ratePerS;
    const t0 = nowMs();
    let kw = 0;
    let ka = 0;
    for (let j = 0; j < total && !aborted(); j++) {
      const wait = t0 + j * gap - nowMs();
      if (wait > 1) await sleep(wait);
      const isAssign = Math.floor(((j + 1) * spec.assignCommands) / total) > Math.floor((j * spec.assignCommands) / total);
      progress(`commands: ${j + 1}/${total} (${isAssign ? "assign_mission" : "modify_waypoint"}, ${spec.ratePerS}/s)`);
      if (isAssign) await assign(ka++);
      else await waypoint(kw++, wp);
    }
    const seriesS = (nowMs() - t0) / 1000;
    const atSeries = tracker.latency.length;
    const loopSeries = loopP99();
    const view = t.profile ? await t.profile.take(spec.fleet) : null;

    // The burst: modify_waypoint back to back, as fast as the edge answers.
    const burst = { rtt: new Samples(), ok: 0, failed: 0, failures: [] as string[] };
    const b0 = nowMs();
    for (let k = 0; k < spec.burstCommands && !aborted(); k++) {
      progress(`commands: burst ${k + 1}/${spec.burstCommands}`);
      await waypoint(kw++, burst);
    }
    const burstS = (nowMs() - b0) / 1000;
    const atBurst = tracker.latency.length;
    const loopBurst = loopP99();
    const viewBurst = t.profile ? await t.profile.take(spec.fleet) : null;

    const coordination = await headOn(pair, spec, base, aborted, progress);
    const viewCoord = t.profile ? await t.profile.take(spec.fleet) : null;
    const loopCoord = loopP99();
    loop.disable();
    const lat = tracker.latency.view();
    return {
      drones: spec.drones,
      dashboards: spec.dashboards,
      modify_waypoint: { rtt_ms: wp.rtt.summary(), edge_to_relay_ms: wp.toRelay.summary(), relay_to_answer_ms: wp.back.summary(), ok: wp.ok, failed: wp.failed, failures: wp.failures },
      assign_mission: { rtt_ms: am.rtt.summary(), ok: am.ok, failed: am.failed, failures: am.failures },
      series: { rate_per_s: spec.ratePerS, commands: total, window_s: seriesS },
      telemetry_latency_ms: tracker.latency.summary(),
      telemetry_control_ms: summarize(lat.subarray(0, atControl)),
      control_window_s: spec.controlMs / 1000,
      profile_control: viewControl ? summariseProfile(viewControl) : null,
      telemetry_during_commands_ms: summarize(lat.subarray(atControl, atSeries)),
      telemetry_during_coordination_ms: summarize(lat.subarray(atBurst)),
      burst: {
        commands: burst.ok + burst.failed,
        failed: burst.failed,
        failures: burst.failures,
        window_s: burstS,
        rtt_ms: burst.rtt.summary(),
        telemetry_ms: summarize(lat.subarray(atSeries, atBurst)),
        profile: viewBurst ? summariseProfile(viewBurst) : null,
      },
      profile: view ? summariseProfile(view) : null,
      ...(t.profile && !view ? { profile_note: t.profile.note ?? "no profile" } : {}),
      profile_coordination: viewCoord ? summariseProfile(viewCoord) : null,
      load_1m: { start: load0, end: loadavg()[0]! },
      client_loop_delay_p99_ms: { control: loopControl, series: loopSeries, burst: loopBurst, coordination: loopCoord },
      coordination,
    };
  } finally {
    gen.stop();
    op.close();
    for (const d of viewers) d.close();
    if (t.landAfter) await landAll(relays, groups, positions).catch(() => {});
    for (const r of relays) r.close();
    pair.close();
  }
}

/**
 * Two drones 300 m apart at the same altitude hover, then turn towards each other at 10 m/s each
 * (a head-on conflict 13 s ahead, inside the 30 s horizon). Measured: that first closing frame →
 * the first resolution `command` at the relay, and the edge's own detected_at → first_command_at.
 */
async function headOn(pair: RelayConn, spec: CommandsSpec, base: string, aborted: () => boolean, progress: (s: string) => void): Promise<CoordinationResult> {
  const config = (await api(`${base}/config`, spec.adminToken)) as { home: LatLon };
  const home = config.home;
  await pair.open();
  let firstCommand: { at: number; atDate: number } | null = null;
  let watch = new Set<string>();
  pair.onCommand = (cmd: RelayCommand, at: number) => {
    if (watch.has(cmd.drone_id) && !firstCommand) firstCommand = { at, atDate: Date.now() };
  };
  const seq = new Map<string, number>();
  const sampleAt = (id: string, east: number, north: number, heading: number, speed: number): TelemetrySample => {
    const s = (seq.get(id) ?? 0) + 1;
    seq.set(id, s);
    return { ...hoverSample({ ...offsetM(home, east, north), alt_m: 100 }, id, s, Date.now()), heading_deg: heading, speed_mps: speed };
  };
  // The command series left plans the load generator's drones never fly (it acks and hovers):
  // until the edge drops them (three contradicting samples) they are conflicts it works on first,
  // most urgent first, and a head-on pair would queue behind them. Measured is the pair alone:
  // wait (≤ 10 s) until no event is active.
  const settleUntil = performance.now() + 10_000;
  let activeLeft = 0;
  while (performance.now() < settleUntil && !aborted()) {
    const list = (await api(`${base}/coordination?limit=1000`, spec.adminToken)) as { events: { status: string }[] };
    activeLeft = list.events.filter((e) => e.status === "active").length;
    if (activeLeft === 0) break;
    await sleep(500);
  }
  if (activeLeft) progress(`coordination: ${activeLeft} events of the command series still active after 10 s; head-on runs start anyway`);
  const e2e = new Samples();
  const runs: { a: string; b: string; t0Date: number; cmdDate: number | null }[] = [];
  let missed = 0;
  for (let k = 0; k < spec.coordinationRuns && !aborted(); k++) {
    progress(`coordination: head-on run ${k + 1}/${spec.coordinationRuns}`);
    const a = `pair${k}-a`;
    const b = `pair${k}-b`;
    const north = -700 + k * 150;
    let ea = -150;
    let eb = 150;
    watch = new Set([a, b]);
    firstCommand = null;
    // Hover first, so the conflict starts with the closing frame and not with the first sighting.
    for (let h = 0; h < 3; h++) {
      pair.sendBatch([sampleAt(a, ea, north, 90, 0), sampleAt(b, eb, north, 270, 0)], false);
      await sleep(400);
    }
    const t0Date = Date.now();
    const t0 = pair.sendBatch([sampleAt(a, ea, north, 90, 10), sampleAt(b, eb, north, 270, 10)], false);
    const until = performance.now() + 4000;
    let last = performance.now();
    while (!firstCommand && performance.now() < until && !aborted()) {
      await sleep(10);
      if (performance.now() - last >= 1000) {
        // Keep flying the course at 1 Hz until the edge acts.
        const dt = (performance.now() - last) / 1000;
        last = performance.now();
        ea += 10 * dt;
        eb -= 10 * dt;
        pair.sendBatch([sampleAt(a, ea, north, 90, 10), sampleAt(b, eb, north, 270, 10)], false);
      }
    }
    const fc = firstCommand as { at: number; atDate: number } | null;
    if (fc) e2e.push(fc.at - t0);
    else missed++;
    runs.push({ a, b, t0Date, cmdDate: fc?.atDate ?? null });
    // The drones obey: they stop and hover where they are.
    pair.sendBatch([sampleAt(a, ea, north, 90, 0), sampleAt(b, eb, north, 270, 0)], false);
    await sleep(300);
  }
  const events = ((await api(`${base}/coordination?limit=200`, spec.adminToken)) as { events: { drone_ids: string[]; detected_at: number; first_command_at: number | null; event_type: string; strategy: string }[] }).events;
  const edge = new Samples();
  const toRelay = new Samples();
  const toDetect = new Samples();
  const types = new Set<string>();
  const strategies = new Set<string>();
  for (const run of runs) {
    const ev = events
      .filter((e) => e.drone_ids.includes(run.a) && e.drone_ids.includes(run.b))
      .sort((x, y) => x.detected_at - y.detected_at)[0];
    if (!ev) continue;
    types.add(ev.event_type);
    strategies.add(ev.strategy);
    toDetect.push(ev.detected_at - run.t0Date);
    if (ev.first_command_at !== null) edge.push(ev.first_command_at - ev.detected_at);
    if (run.cmdDate !== null) toRelay.push(run.cmdDate - ev.detected_at);
  }
  return {
    runs: runs.length,
    frame_to_command_ms: e2e.summary(),
    detect_to_command_edge_ms: edge.summary(),
    detect_to_relay_ms: toRelay.summary(),
    frame_to_detect_ms: toDetect.summary(),
    missed,
    event_types: [...types],
    strategies: [...strategies],
  };
}

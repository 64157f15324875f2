/**
 * `npm run bench [-- --quick] [--repeat N] [--drones 10,100,1000,5000] [--dashboards 1,10,100] [--only ours|baseline|sweep|ramp|relay|slow|commands|separation]`
 *
 * Starts the local stack once (wrangler dev + embedded Postgres, no simulated relay) and the
 * seed-style baseline (bench/baseline/server.ts, Node ws + Redis pub/sub through ioredis), then
 * drives both with the same load generator (bench/lib/loadgen.ts) in this process: a telemetry
 * sweep and a rate ramp (each point `--repeat` times, verdicts on the median), then ours only: the
 * real relay code (bench/lib/relaymode.ts), a dashboard that never reads (bench/lib/slow.ts),
 * command round trips and the head-on coordination scenario; plus in-process timings of
 * detection and ranking, and the fleet object's own profile of every measured window
 * (bench/lib/profile.ts). A progress line on stderr; a markdown report on stdout; JSON and
 * markdown under bench/results/. Bounded in time (a budget computed from the plan); every child
 * process group is killed in `finally`, also on Ctrl-C.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { detectionBenchmark, rankBenchmarkCase } from "../test/fixtures/fleets";
import { renderSeparation, separationSuite } from "./lib/separation";
import { signToken } from "../edge/worker/auth";
import { defaultFleetConfig } from "../edge/domain/fleet-config";
import { REPO_ROOT, resolveAuthSecret } from "../scripts/dev-vars";
import { killProcessGroup, startStack, type Stack } from "../scripts/stack";
import { Redis } from "ioredis";
import { aggregate, runCommands, runPoint, runRepeated, settle, type Design, type Mode, type PointResult, type Target } from "./lib/phases";
import { findByName, findDescendants, listeningPorts, ProcMeter } from "./lib/proc";
import { ProfileReader } from "./lib/profile";
import { relayCodeVersion, runRelayPoint, type RelayPointResult } from "./lib/relaymode";
import { breakPoints, renderMarkdown, type AnalyticsResult, type BenchReport, type MicroResult, type RampStep } from "./lib/report";
import { median, Samples, sleep, spread } from "./lib/stats";

const USAGE = `Usage: npm run bench [-- --quick] [--repeat N] [--drones 10,100,1000,5000] [--dashboards 1,10,100] [--only ours|baseline|sweep|ramp|relay|slow|commands|separation]

  --quick           drones 10,100,1000 × dashboards 1,10, short windows (~1.5 min; the report
                    says its windows are short)
  --repeat N        run every sweep point, ramp step, relay-code point and slow-dashboard point
                    N times (1..9, default 1); the report gives min / median / max of p50 and p99
                    and judges the medians
  --drones LIST     sweep drone counts (1 Hz each); default 10,100,1000,5000
  --dashboards LIST sweep dashboard counts; default 1,10,100
  --only WHAT       ours (the edge), baseline (seed design: Node ws + Redis), sweep (only the
                    sweep, both designs), ramp (only our
                    rate ramp), relay (only the real relay code against the edge), slow (only
                    the dashboard that never reads, with its control), commands (only the
                    command series and the head-on runs), or separation (only the
                    in-process separation figure, no stack). With any but separation, the separation figure and the
                    in-process timings are not run.
  --ramp LIST|none  ramp steps in updates/s into one fleet (1,000 drones × 10 dashboards);
                    default 2500,5000,10000,15000,20000,30000,40000 (quick: 2500,5000)
  --ramp-modes LIST batch,per_update (default both; quick: batch): the modes the ramp runs
  --direct          our sockets (relay, dashboards) go to the workerd runtime itself instead of
                    through wrangler dev's proxy workerd in front of it (a local-only hop that
                    a deployed Worker does not have); the report says so
  --relay-batch-window MS   pass batchWindowMs to the relay's EdgeLink (default: the link's own)
  -h, --help        this help

Needs Redis at 127.0.0.1:6379 for the baseline (skipped with a message when absent).
Writes bench/results/latest.{json,md} and a timestamped copy.`;

type Only = Design | "sweep" | "ramp" | "relay" | "slow" | "commands" | "separation";

type Options = {
  quick: boolean;
  repeat: number;
  drones: number[];
  dashboards: number[];
  /** `separation`: only the in-process separation figure (no stack, no baseline). */
  only: Only | null;
  relayBatchWindowMs: number | undefined;
  /** Our sockets straight to the runtime workerd, not through wrangler dev's proxy. */
  direct: boolean;
  /** Ramp steps instead of the plan's; [] for none. */
  ramp: number[] | null;
  rampModes: Mode[] | null;
};

function parseList(v: string, what: string, max: number): number[] {
  const out = v.split(",").map((x) => Number(x.trim()));
  if (!out.length || out.some((n) => !Number.isInteger(n) || n < 1 || n > max)) fail(`bad --${what} "${v}" (comma-separated integers 1..${max})`);
  return [...new Set(out)].sort((a, b) => a - b);
}

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n\n${USAGE}\n`);
  process.exit(2);
}

function parse(): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        quick: { type: "boolean", default: false },
        drones: { type: "string" },
        dashboards: { type: "string" },
        only: { type: "string" },
        repeat: { type: "string" },
        ramp: { type: "string" },
        "ramp-modes": { type: "string" },
        direct: { type: "boolean", default: false },
        "relay-batch-window": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (values.only !== undefined && !["ours", "baseline", "sweep", "ramp", "relay", "slow", "commands", "separation"].includes(values.only)) fail(`bad --only "${values.only}"`);
  const quick = values.quick ?? false;
  const repeat = values.repeat === undefined ? 1 : Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 9) fail(`bad --repeat "${values.repeat}" (an integer 1..9)`);
  const rm = values["ramp-modes"];
  const rampModes = rm === undefined ? null : rm.split(",").map((x) => x.trim());
  if (rampModes && !(rampModes.length && rampModes.every((m) => m === "batch" || m === "per_update"))) fail(`bad --ramp-modes "${rm}" (batch, per_update or both)`);
  const bw = values["relay-batch-window"];
  const relayBatchWindowMs = bw === undefined ? undefined : Number(bw);
  if (relayBatchWindowMs !== undefined && !(Number.isInteger(relayBatchWindowMs) && relayBatchWindowMs >= 0 && relayBatchWindowMs <= 1000)) fail(`bad --relay-batch-window "${bw}" (ms, 0..1000)`);
  return {
    quick,
    repeat,
    drones: values.drones ? parseList(values.drones, "drones", 10_000) : quick ? [10, 100, 1000] : [10, 100, 1000, 5000],
    dashboards: values.dashboards ? parseList(values.dashboards, "dashboards", 500) : quick ? [1, 10] : [1, 10, 100],
    only: (values.only as Only | undefined) ?? null,
    relayBatchWindowMs,
    rampModes: rampModes as Mode[] | null,
    direct: values.direct === true,
    ramp: values.ramp === undefined ? null : values.ramp === "none" ? [] : parseList(values.ramp, "ramp", 100_000),
  };
}

/**
 * Windows and counts. The full run measures every window for at least 20 s (steady state, not a
 * fresh fleet's first seconds); --quick keeps them short (1.2 s; 3 s for the relay-code points)
 * and says so in the report. The slow dashboard stays unread for `slowHoldMs`: in the full run
 * long enough for the edge's lag limit (30 s after it falls 4 MiB behind) to act.
 */
function plan(o: Options) {
  const p = o.quick
    ? { warmMs: 400, measureMs: 1200, drainMs: 1000, rampMeasureMs: 1200, relayMeasureMs: 3000, slowHoldMs: 6000, ramp: [2500, 5000], rampModes: ["batch"] as Mode[], waypoint: 30, assign: 10, cmdRate: 20, controlMs: 2000, burst: 20, coordRuns: 2, detectRuns: 10, rankIters: 200, analyticsRuns: 1 }
    : { warmMs: 2000, measureMs: 20_000, drainMs: 3000, rampMeasureMs: 20_000, relayMeasureMs: 20_000, slowHoldMs: 55_000, ramp: [2500, 5000, 10_000, 15_000, 20_000, 30_000, 40_000], rampModes: ["batch", "per_update"] as Mode[], waypoint: 370, assign: 30, cmdRate: 20, controlMs: 20_000, burst: 200, coordRuns: 5, detectRuns: 30, rankIters: 1000, analyticsRuns: 3 };
  return { ...p, ...(o.ramp ? { ramp: o.ramp } : {}), ...(o.rampModes ? { rampModes: o.rampModes } : {}) };
}
type Plan = ReturnType<typeof plan>;

/** The relay-code points and the issue's targets for them. */
const RELAY_POINTS: { drones: number; dashboards: number; target?: { p50: number; p99: number } }[] = [
  { drones: 10, dashboards: 1, target: { p50: 5, p99: 20 } },
  { drones: 100, dashboards: 1 },
  { drones: 1000, dashboards: 10 },
];

/**
 * The time budget of the measuring phases, from the plan: every point's warm-up, window and
 * drain plus its set-up and settling, with room for a loaded machine. Past it, the rest is skipped.
 */
function budgetMs(p: Plan, o: Options, sweepPoints: number, rampModes: number, wantOurs: boolean): number {
  const per = (measureMs: number) => p.warmMs + measureMs + p.drainMs + 4000;
  let ms = sweepPoints * per(p.measureMs) * o.repeat;
  ms += rampModes * p.ramp.length * per(p.rampMeasureMs) * o.repeat;
  if (wantOurs) {
    ms += RELAY_POINTS.length * per(p.relayMeasureMs) * o.repeat;
    ms += (per(p.measureMs) + Math.max(p.slowHoldMs, p.warmMs + p.measureMs) + p.drainMs + 8000) * o.repeat;
    ms += o.quick ? 25_000 : 90_000; // commands and coordination
    ms += o.quick ? 15_000 : 40_000; // analytics
  }
  return Math.round(ms * 1.4 + 30_000);
}

/** One stderr line, rewritten in place on a terminal; plain lines (phase changes only) otherwise. */
class Progress {
  private readonly t0 = performance.now();
  private last = "";
  private readonly tty = process.stderr.isTTY === true;
  set(text: string): void {
    const s = Math.round((performance.now() - this.t0) / 1000);
    const line = `[bench ${String(Math.floor(s / 60))}:${String(s % 60).padStart(2, "0")}] ${text}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    else if (text.split(":")[0] !== this.last.split(":")[0]) process.stderr.write(`${line}\n`);
    this.last = text;
  }
  note(text: string): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`bench: ${text}\n`);
    if (this.tty && this.last) this.set(this.last);
  }
  done(): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
  }
}

function micro(p: ReturnType<typeof plan>): MicroResult {
  for (let i = 0; i < 3; i++) detectionBenchmark(1000);
  const det = new Samples();
  let last = { ms: 0, pairsChecked: 0, conflicts: 0 };
  for (let i = 0; i < p.detectRuns; i++) {
    last = detectionBenchmark(1000);
    det.push(last.ms);
  }
  const { run } = rankBenchmarkCase(defaultFleetConfig(), 1000);
  for (let i = 0; i < 50; i++) run();
  const rank = new Samples();
  for (let i = 0; i < p.rankIters; i++) {
    const t = performance.now();
    run();
    rank.push(performance.now() - t);
  }
  return {
    detection_1000: { ...det.summary(), pairs_checked: last.pairsChecked, conflicts: last.conflicts, runs: p.detectRuns },
    rank_1000: { ...rank.summary(), iterations: p.rankIters },
  };
}

async function redisReachable(): Promise<string | null> {
  const c = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on("error", () => {});
  try {
    await c.connect();
    const pong = await Promise.race([c.ping(), sleep(1000).then(() => "timeout")]);
    return pong === "PONG" ? null : `PING answered ${String(pong)}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    c.disconnect();
  }
}

/** Start the baseline server as its own process group; resolves with its port. */
async function startBaseline(children: ChildProcess[], onExit?: (msg: string) => void): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, ["--import", "tsx", resolve(REPO_ROOT, "bench/baseline/server.ts"), "--port", "0"], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.push(proc);
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on("line", (l) => {
    stderr.push(l);
    if (stderr.length > 50) stderr.shift();
  });
  const port = await new Promise<number>((ok, no) => {
    const timer = setTimeout(() => no(new Error(`baseline server did not start within 20 s: ${stderr.join(" | ")}`)), 20_000);
    proc.once("exit", (code, sig) => {
      clearTimeout(timer);
      const msg = `baseline server exited (${sig ?? `code ${code}`}): ${stderr.slice(-8).join(" | ").slice(0, 600)}`;
      no(new Error(msg));
      // After start-up too: a crash mid-run must show in the report, not only as refused sockets.
      onExit?.(msg);
    });
    createInterface({ input: proc.stdout! }).on("line", (l) => {
      const m = /^LISTENING (\d+)/.exec(l);
      if (m) {
        clearTimeout(timer);
        ok(Number(m[1]));
      }
    });
  });
  return { proc, port };
}

function gitCommit(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

/**
 * The separation figure (bench/lib/separation.ts): the scenario suite with random seeds, relay
 * restarts and random missions, collision avoidance on and off, in-process on a simulated clock.
 */
async function separation(quick: boolean, detection: { p50: number; max: number; conflicts: number }): Promise<{ md: string; json: string }> {
  const seeds = quick ? [1, 2] : [1, 2, 3, 4, 5, 6, 7, 8];
  const scale = quick ? { seconds: 40, patrolDrones: 24 } : { seconds: 60, patrolDrones: 40 };
  const on = await separationSuite(seeds, true, scale);
  const off = await separationSuite(seeds, false, scale);
  return { md: renderSeparation(on, off, detection), json: `${JSON.stringify({ seeds, scale, on, off, detection }, null, 2)}\n` };
}

function writeSeparation(r: { md: string; json: string }): void {
  const dir = join(REPO_ROOT, "bench/results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "separation-latest.md"), r.md);
  writeFileSync(join(dir, "separation-latest.json"), r.json);
}

async function main(): Promise<number> {
  const opts = parse();
  const p = plan(opts);
  if (opts.only === "separation") {
    process.stderr.write("bench: in-process separation figure\n");
    const m = micro(p);
    const sep = await separation(opts.quick, { p50: m.detection_1000.p50, max: m.detection_1000.max, conflicts: m.detection_1000.conflicts });
    writeSeparation(sep);
    process.stdout.write(sep.md);
    process.stderr.write("bench: results in bench/results/separation-latest.{json,md}\n");
    return 0;
  }
  const progress = new Progress();
  const started = new Date();
  const t0 = performance.now();
  const abort = new AbortController();
  const aborted = () => abort.signal.aborted;
  const children: ChildProcess[] = [];
  let stack: Stack | undefined;
  let persistDir: string | undefined;
  let separationReport: { md: string; json: string } | null = null;
  const report: BenchReport = {
    meta: {
      started_at: started.toISOString(),
      duration_s: 0,
      quick: opts.quick,
      repeat: opts.repeat,
      window_s: { sweep: p.measureMs / 1000, ramp: p.rampMeasureMs / 1000, relay: p.relayMeasureMs / 1000 },
      args: process.argv.slice(2),
      node: process.version,
      cpus: cpus()[0]?.model.trim() ?? "unknown",
      cores: cpus().length,
      loadavg_at_start: loadavg(),
      loadavg_at_end: [],
      git_commit: gitCommit(),
      notes: [],
    },
    micro: null,
    sweep: [],
    skipped: [],
    ramp: [],
    max_sustained_per_s: {},
    relay: null,
    slow: null,
    commands: null,
    analytics: null,
    breaks: [],
    errors: [],
  };
  if (opts.quick) report.meta.notes.push(`Quick run: measured windows are short (${p.measureMs / 1000} s per sweep point and ramp step, ${p.relayMeasureMs / 1000} s per relay-code point), so p99 rests on few samples and may catch or miss a single stall; the full run measures ≥ 20 s per window.`);

  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    progress.note(`${sig}: stopping${interrupts > 1 ? " now" : " after cleaning up (again to force)"}`);
    abort.abort(new Error(sig));
    if (interrupts > 1) {
      for (const c of children) if (c.pid) try { process.kill(-c.pid, "SIGKILL"); } catch { /* already gone */ }
      void stack?.stop().finally(() => process.exit(130));
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Bounded: starting is bounded by startStack's health timeout; once both designs are up, the
  // measuring phases get a budget computed from the plan, after which the rest is skipped and
  // what was measured reported.
  let watchdog: NodeJS.Timeout | undefined;
  let stopping = false;
  const startBudget = (ms: number) => {
    progress.note(`time budget of the measuring phases: ${Math.round(ms / 1000)} s`);
    watchdog = setTimeout(() => {
      report.errors.push(`time budget of ${Math.round(ms / 1000)} s reached: remaining phases skipped`);
      abort.abort(new Error("budget"));
    }, ms);
  };

  try {
    if (opts.only === null) {
      progress.set("in-process: detection and ranking over 1,000 drones");
      report.micro = micro(p);
      progress.set("in-process: separation with collision avoidance on and off");
      const d = report.micro.detection_1000;
      separationReport = await separation(opts.quick, { p50: d.p50, max: d.max, conflicts: d.conflicts });
      writeSeparation(separationReport);
    }

    const wantOurs = opts.only !== "baseline";
    const loadgenOurs = opts.only === null || opts.only === "ours" || opts.only === "ramp" || opts.only === "sweep";
    let wantBaseline = opts.only === null || opts.only === "baseline" || opts.only === "sweep";
    if (wantBaseline) {
      const why = await redisReachable();
      if (why) {
        progress.note(`no Redis at 127.0.0.1:6379 (${why}): the baseline (seed design) is skipped`);
        report.meta.notes.push(`Baseline skipped: no Redis at 127.0.0.1:6379 (${why}).`);
        wantBaseline = false;
      }
    }

    const found = resolveAuthSecret();
    if (!found) throw new Error("no AUTH_SECRET: add it to .dev.vars or set AUTH_SECRET");
    const targets: Target[] = [];
    let ours: Target | undefined;
    let edgeUrl = "";
    let adminToken = "";
    let relayToken = "";
    if (wantOurs && !aborted()) {
      progress.set("starting the local stack (wrangler dev + Postgres)");
      const edgeOut: string[] = [];
      // BENCH_EDGE_LOG=FILE: every line the stack's children print, for looking into a run.
      const edgeLog = process.env.BENCH_EDGE_LOG;
      // The fleet objects' SQLite on tmpfs when there is one: local-disk fsync on every output
      // gate is a wrangler-dev artefact (deployed objects replicate instead), and the baseline's
      // Redis does not fsync either.
      if (existsSync("/dev/shm")) {
        persistDir = mkdtempSync("/dev/shm/dronefleet-bench-");
        report.meta.notes.push("wrangler dev --persist-to on tmpfs (/dev/shm).");
      }
      stack = await startStack({
        ...(persistDir ? { persistTo: persistDir } : {}),
        relay: false,
        cron: false,
        // DATABASE_URL: that Postgres (as npm start does); otherwise embedded PGlite in memory, so
        // the bench never touches .data/ of a running `npm start`.
        ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : { pgliteDir: "memory://" }),
        authSecret: found.secret,
        signal: abort.signal,
        log: (l) => edgeOut.push(`[stack] ${l}`),
        onUnexpectedExit: (child, code, sig) => {
          const msg = `${child} exited during the run (${sig ?? `code ${code}`}); last output: ${edgeOut.slice(-5).join(" | ")}`;
          report.errors.push(msg);
          progress.note(msg);
        },
        output: (_c, l) => {
          if (edgeLog) appendFileSync(edgeLog, `${l}\n`);
          edgeOut.push(l);
          if (edgeOut.length > 200) edgeOut.shift();
        },
      });
      edgeUrl = stack.edgeUrl;
      const sign = (role: "relay" | "viewer" | "operator" | "admin") => signToken(found.secret, { sub: `bench-${role}`, role, fleets: "*" }, 3600 * 4);
      relayToken = await sign("relay");
      const opTok = await sign("operator");
      adminToken = await sign("admin");
      // wrangler dev runs two workerd processes: its dev proxy (listening on the edge port) in
      // front of the runtime that hosts our Worker and the fleet objects. Measured separately.
      const port = stack.port;
      const split = () => {
        const all = findDescendants(process.pid, "workerd");
        const proxy = all.filter((pid) => cmdline(pid).includes(`entry=127.0.0.1:${port}`));
        return { runtime: all.filter((pid) => !proxy.includes(pid)), proxy };
      };
      let procs = split();
      const refresh = () => {
        if (![...procs.runtime, ...procs.proxy].every(isAlive)) procs = split();
        return procs;
      };
      if (!procs.runtime.length) report.meta.notes.push("workerd process not found under this process: no CPU/RSS for ours.");
      let ws = edgeUrl.replace(/^http/, "ws");
      if (opts.direct) {
        const port = await runtimeEntryPort(procs.runtime);
        if (!port) throw new Error("--direct: no port of the workerd runtime answers /health as the edge");
        ws = `ws://127.0.0.1:${port}`;
        report.meta.notes.push(`--direct: relay and dashboard sockets go to the workerd runtime (127.0.0.1:${port}), not through wrangler dev's proxy workerd (a local-only hop; its CPU is still measured, it is near idle then).`);
      }
      ours = {
        design: "ours",
        relayUrl: (f) => `${ws}/v1/fleets/${f}/relay?access_token=${relayToken}`,
        // Operator tokens: the same socket serves the viewers and the commands console.
        dashboardUrl: (f) => `${ws}/v1/fleets/${f}/ws?access_token=${opTok}`,
        server: new ProcMeter(() => refresh().runtime),
        extra: new ProcMeter(() => refresh().proxy),
        landAfter: true,
        profile: new ProfileReader(edgeUrl, adminToken),
      };
      if (loadgenOurs) targets.push(ours);
    }
    if (wantBaseline && !aborted()) {
      progress.set("starting the baseline (Node ws + Redis pub/sub through ioredis)");
      const b = await startBaseline(children, (msg) => {
        if (stopping) return;
        report.errors.push(msg);
        progress.note(msg);
      });
      const redisPids = findByName("redis-server");
      targets.push({
        design: "baseline",
        relayUrl: () => `ws://127.0.0.1:${b.port}/relay`,
        dashboardUrl: () => `ws://127.0.0.1:${b.port}/ws`,
        server: new ProcMeter(() => (b.proc.exitCode === null ? [b.proc.pid!] : [])),
        ...(redisPids.length ? { extra: new ProcMeter(() => redisPids) } : {}),
        landAfter: false,
      });
    }

    const runId = `b${Date.now().toString(36)}`;
    // Every bench fleet is new, so it has the default configuration (home, geofence).
    const home = defaultFleetConfig().home;
    const severe: { design: Design; mode: Mode; drones: number; dashboards: number }[] = [];
    const modesFor = (t: Target, drones: number): Mode[] => (t.design === "ours" && drones >= 1000 ? ["per_update", "batch"] : ["per_update"]);
    const points: { t: Target; mode: Mode; drones: number; dashboards: number }[] = [];
    for (const drones of opts.only === "ramp" ? [] : opts.drones)
      for (const dashboards of opts.dashboards)
        for (const t of targets)
          for (const mode of modesFor(t, drones)) {
            // In --quick, batch mode only where it matters most: the headline point.
            if (opts.quick && mode === "batch" && !(drones === 1000 && dashboards === 10)) continue;
            points.push({ t, mode, drones, dashboards });
          }
    const ramps: { t: Target; mode: Mode }[] = [];
    if (p.ramp.length && opts.only !== "sweep") for (const t of targets) for (const mode of t.design === "ours" ? p.rampModes : (["per_update"] as Mode[])) ramps.push({ t, mode });
    startBudget(budgetMs(p, opts, points.length, ramps.length, ours !== undefined));
    const rep = (k: number) => (opts.repeat > 1 ? ` (run ${k + 1}/${opts.repeat})` : "");

    // 1. Sweep.
    for (const [i, pt] of points.entries()) {
      if (aborted()) break;
      const dominated = severe.find((s) => s.design === pt.t.design && s.mode === pt.mode && s.drones <= pt.drones && s.dashboards <= pt.dashboards);
      if (dominated) {
        report.skipped.push({ design: pt.t.design, mode: pt.mode, drones: pt.drones, dashboards: pt.dashboards, why: `broke badly at ${dominated.drones} × ${dominated.dashboards}` });
        continue;
      }
      const label = `sweep ${i + 1}/${points.length}: ${pt.t.design} ${pt.drones} drones × ${pt.dashboards} dashboards ${pt.mode === "batch" ? "batch" : "per-update"}`;
      const r = await runRepeated(pt.t, { drones: pt.drones, dashboards: pt.dashboards, mode: pt.mode, hz: 1, fleet: `${runId}-${pt.drones}-${pt.dashboards}-${pt.mode === "batch" ? "b" : "u"}`, warmMs: p.warmMs, measureMs: p.measureMs, drainMs: p.drainMs }, opts.repeat, home, aborted, (k) => progress.set(`${label}${rep(k)}`));
      report.sweep.push(r);
      if (r.error) report.errors.push(`${pt.t.design} ${pt.drones}×${pt.dashboards}: ${r.error}`);
      if (r.verdict.severe) severe.push({ design: pt.t.design, mode: pt.mode, drones: pt.drones, dashboards: pt.dashboards });
      await settle(pt.t);
    }

    // 2. Ramp: the most updates/s one fleet object (or the baseline server) sustains with 10 dashboards.
    for (const { t, mode } of ramps) {
      const key = `${t.design}|${mode}`;
      report.max_sustained_per_s[key] = null;
      for (const rate of p.ramp) {
        if (aborted()) break;
        const label = `ramp: ${t.design} ${mode === "batch" ? "batch" : "per-update"} ${rate.toLocaleString("en-US")} updates/s`;
        const r = await runRepeated(t, { drones: 1000, dashboards: 10, mode, hz: rate / 1000, fleet: `${runId}-ramp-${rate}-${mode === "batch" ? "b" : "u"}`, warmMs: p.warmMs, measureMs: p.rampMeasureMs, drainMs: p.drainMs }, opts.repeat, home, aborted, (k) => progress.set(`${label}${rep(k)}`));
        const step: RampStep = { design: t.design, mode, rate, result: r };
        report.ramp.push(step);
        await settle(t);
        if (!r.verdict.ok) break;
        report.max_sustained_per_s[key] = rate;
      }
    }

    // 3. The real relay code (EdgeLink fed by the simulator) against the same stack.
    if (ours && !aborted() && (opts.only === null || opts.only === "ours" || opts.only === "relay")) {
      const code = relayCodeVersion();
      report.relay = { relay_code: code, batch_window_ms: opts.relayBatchWindowMs ?? "link default", points: [] };
      for (const pt of RELAY_POINTS) {
        if (aborted()) break;
        const runs: RelayPointResult[] = [];
        for (let k = 0; k < opts.repeat && !aborted(); k++) {
          progress.set(`relay code: ${pt.drones} simulated drones × ${pt.dashboards} dashboards${rep(k)}`);
          if (k > 0) await settle(ours);
          runs.push(
            await runRelayPoint(
              ours,
              { fleet: `${runId}-relay-${pt.drones}-${pt.dashboards}-r${k + 1}`, drones: pt.drones, dashboards: pt.dashboards, warmMs: Math.max(p.warmMs, 1500), measureMs: p.relayMeasureMs, drainMs: p.drainMs, ...(opts.relayBatchWindowMs !== undefined ? { batchWindowMs: opts.relayBatchWindowMs } : {}), ...(pt.target ? { target: pt.target } : {}) },
              relayToken,
              edgeUrl,
              aborted,
            ),
          );
        }
        if (!runs.length) break;
        const r = aggregateRelay(runs);
        report.relay.points.push(r);
        if (r.error) report.errors.push(`relay code ${pt.drones}×${pt.dashboards}: ${r.error}`);
        await settle(ours);
      }
    }

    // 4. A dashboard that never reads, at 1,000 drones × 10 dashboards: against the same point
    // without it, run just before on the same stack.
    if (ours && !aborted() && (opts.only === null || opts.only === "ours" || opts.only === "slow")) {
      const spec = { drones: 1000, mode: "per_update" as Mode, hz: 1, warmMs: p.warmMs, measureMs: p.measureMs, drainMs: p.drainMs };
      const control = await runRepeated(ours, { ...spec, dashboards: 10, fleet: `${runId}-slow-control` }, opts.repeat, home, aborted, (k) => progress.set(`slow dashboard: control, 1,000 drones × 10 reading dashboards${rep(k)}`));
      await settle(ours);
      if (!aborted()) {
        const slowRuns: PointResult[] = [];
        for (let k = 0; k < opts.repeat && !aborted(); k++) {
          progress.set(`slow dashboard: 9 reading + 1 never reading, unread for ${p.slowHoldMs / 1000} s${rep(k)}`);
          if (k > 0) await settle(ours);
          slowRuns.push(await runPoint(ours, { ...spec, dashboards: 9, fleet: `${runId}-slow-r${k + 1}`, slow: { holdMs: p.slowHoldMs } }, home, aborted));
        }
        const slow = slowRuns.length > 1 ? aggregate(slowRuns, p.drainMs) : slowRuns[0];
        if (slow) {
          report.slow = { control, slow, p99_rise_pct: control.latency_ms.p99 > 0 ? (100 * (slow.latency_ms.p99 - control.latency_ms.p99)) / control.latency_ms.p99 : null };
          if (slow.error) report.errors.push(`slow dashboard: ${slow.error}`);
        }
        await settle(ours);
      }
    }

    // 5. Commands and coordination while 1,000 drones stream (ours).
    if (ours && !aborted() && (opts.only === null || opts.only === "ours" || opts.only === "commands")) {
      progress.set("commands: starting 1,000 drones");
      try {
        report.commands = await runCommands(
          ours,
          { fleet: `${runId}-cmd`, drones: 1000, dashboards: 10, waypointCommands: p.waypoint, assignCommands: p.assign, ratePerS: p.cmdRate, controlMs: p.controlMs, burstCommands: p.burst, coordinationRuns: p.coordRuns, edgeUrl, adminToken },
          aborted,
          (s) => progress.set(s),
        );
      } catch (err) {
        report.errors.push(`commands: ${(err as Error).message}`);
      }
    }

    // 6. Analytics: the analytics hook's flush of 1,000 drones × 6 snapshots plus events into the
    // stack's Postgres, then the hourly aggregation of that hour.
    if (stack && !aborted() && (opts.only === null || opts.only === "ours")) {
      progress.set("analytics: flush into Postgres and hourly aggregation");
      report.analytics = await analytics(stack, p.analyticsRuns, runId).catch((err: Error) => ({
        flush_rows_per_s: null,
        flush_ms: null,
        flush_rows: null,
        hourly_ms: null,
        note: `failed: ${err.message.slice(0, 200)}`,
      }));
    }

    report.breaks = breakPoints(report.sweep, report.skipped);
    return 0;
  } catch (err) {
    if (!aborted()) report.errors.push((err as Error).message);
    else report.errors.push(`stopped: ${(abort.signal.reason as Error)?.message ?? "aborted"}`);
    return 1;
  } finally {
    clearTimeout(watchdog);
    stopping = true;
    progress.set("stopping the stack and the baseline");
    for (const c of children) await killProcessGroup(c).catch(() => {});
    await stack?.stop().catch(() => {});
    if (persistDir) rmSync(persistDir, { recursive: true, force: true });
    report.meta.duration_s = Math.round((performance.now() - t0) / 1000);
    report.meta.loadavg_at_end = loadavg();
    if (!report.breaks.length) report.breaks = breakPoints(report.sweep, report.skipped);
    progress.done();
    const md = renderMarkdown(report);
    const dir = join(REPO_ROOT, "bench/results");
    mkdirSync(dir, { recursive: true });
    const stamp = started.toISOString().replace(/[:.]/g, "-");
    const json = `${JSON.stringify(report, null, 2)}\n`;
    writeFileSync(join(dir, "latest.json"), json);
    writeFileSync(join(dir, "latest.md"), md);
    writeFileSync(join(dir, `${stamp}${opts.quick ? "-quick" : ""}.json`), json);
    writeFileSync(join(dir, `${stamp}${opts.quick ? "-quick" : ""}.md`), md);
    process.stdout.write(md);
    if (separationReport) process.stdout.write(`\n${separationReport.md}`);
    process.stderr.write(`bench: results in bench/results/latest.{json,md} (${report.meta.duration_s} s)\n`);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Relay-code runs of one point: medians field by field (as phases.ts's aggregate), with the spread. */
function aggregateRelay(runs: RelayPointResult[]): RelayPointResult {
  if (runs.length === 1) return runs[0]!;
  const good = runs.filter((r) => !r.error);
  const pool = good.length ? good : runs;
  const med = (f: (r: RelayPointResult) => number) => median(pool.map(f));
  const rep = [...pool].sort((a, b) => Math.abs(a.latency_ms.p99 - med((r) => r.latency_ms.p99)) - Math.abs(b.latency_ms.p99 - med((r) => r.latency_ms.p99)))[0]!;
  const lat = { ...rep.latency_ms };
  for (const k of ["n", "p50", "p95", "p99", "max", "mean"] as const) lat[k] = med((r) => r.latency_ms[k]);
  const reasons: string[] = [];
  const t = rep.target;
  if (t && !(lat.p50 <= t.p50)) reasons.push(`median p50 ${lat.p50.toFixed(1)} ms > ${t.p50}`);
  if (t && !(lat.p99 <= t.p99)) reasons.push(`median p99 ${lat.p99.toFixed(1)} ms > ${t.p99}`);
  if (!t && !(lat.p99 <= 100)) reasons.push(Number.isNaN(lat.p99) ? "nothing received" : `median p99 ${Math.round(lat.p99)} ms > 100`);
  const dropped = med((r) => r.dropped);
  if (dropped > 0) reasons.push(`median ${dropped} not delivered`);
  const failed = runs.filter((r) => r.error);
  return {
    ...rep,
    latency_ms: lat,
    dropped,
    load_1m: { start: runs[0]!.load_1m.start, end: runs[runs.length - 1]!.load_1m.end },
    verdict: good.length ? { ok: reasons.length === 0, reasons } : { ok: false, reasons: [`error: ${runs[0]!.error}`] },
    repeat: runs.length,
    spread: { p50: spread(pool.map((r) => r.latency_ms.p50)), p99: spread(pool.map((r) => r.latency_ms.p99)) },
    runs,
    ...(failed.length ? { error: `${failed.length} of ${runs.length} runs failed: ${failed[0]!.error}` } : {}),
  };
}

/** The shape of bench/lib/analytics.ts's hook, as far as the bench uses it. */
type AnalyticsHook = {
  benchAnalytics(db: unknown, opts: { fleet: string; drones: number; snapshotsPerDrone: number }): Promise<{ flush: { rows: number; ms: number }; hourly: { ms: number } }>;
};

/**
 * bench/lib/analytics.ts (the analytics hook), loaded lazily by URL: a broken or missing hook costs only
 * its rows, and the edge's workerd-typed modules stay out of the bench's Node type check.
 */
async function analytics(stack: Stack, runs: number, runId: string): Promise<AnalyticsResult> {
  const at = (path: string) => new URL(path, import.meta.url).href;
  const [hook, client, { applyNeonLocalConfig }, { Pool }] = await Promise.all([
    import(at("./lib/analytics.ts")) as Promise<AnalyticsHook>,
    import(at("../edge/postgres/client.ts")) as Promise<{ drizzleFor(pool: unknown): unknown }>,
    import("../scripts/db"),
    import("@neondatabase/serverless"),
  ]);
  const { benchAnalytics } = hook;
  const { drizzleFor } = client;
  applyNeonLocalConfig(stack.proxyPort);
  const pool = new Pool({ connectionString: stack.databaseUrl, max: 1, connectionTimeoutMillis: 15_000 });
  pool.on("error", () => {});
  try {
    const flush = new Samples();
    const hourly = new Samples();
    let rows = 0;
    for (let i = 0; i < runs; i++) {
      const r = await benchAnalytics(drizzleFor(pool), { fleet: `${runId}-analytics-${i}`, drones: 1000, snapshotsPerDrone: 6 });
      flush.push(r.flush.ms);
      hourly.push(r.hourly.ms);
      rows = r.flush.rows;
    }
    const f = flush.summary();
    return {
      flush_rows: rows,
      flush_ms: f.p50,
      flush_rows_per_s: rows / (f.p50 / 1000),
      hourly_ms: hourly.summary().p50,
      note: `${rows.toLocaleString("en-US")} rows per flush, median of ${runs}, ${stack.databaseKind === "pglite" ? "embedded PGlite" : "DATABASE_URL"}`,
    };
  } finally {
    await pool.end().catch(() => {});
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);


/**
 * The runtime workerd's own HTTP port (Miniflare's entry socket, behind wrangler dev's proxy):
 * the one of its loopback listening ports that answers /health as the edge.
 */
async function runtimeEntryPort(pids: readonly number[]): Promise<number | null> {
  for (const pid of pids) {
    for (const port of listeningPorts(pid)) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
        const body = (await r.json().catch(() => null)) as { service?: unknown } | null;
        if (r.ok && body?.service === "dronefleet-edge") return port;
      } catch {
        // not HTTP (inspector, debug port)
      }
    }
  }
  return null;
}

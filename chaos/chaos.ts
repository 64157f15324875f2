/**
 * The chaos run: the local stack under load while a seeded driver injects faults, then the
 * invariants (chaos/invariants.ts) as a table. `npm run chaos` (chaos/run.ts) runs the full
 * profile; test/node/chaos.test.ts runs the short one inside `npm test`.
 *
 * Topology (loopback only):
 *   relay (sim) ──ws──▶ fault proxy (chaos/fault-proxy.ts) ──ws──▶ edge (wrangler dev)
 *   dashboards ──ws──▶ edge;   edge ──ws──▶ launcher's ws→tcp proxy ──tcp──▶ pg proxy (chaos/pg-proxy.ts) ──▶ Postgres
 *
 * Two seeded drivers run side by side: one for the relay's path and processes (kill -9 and restart
 * the relay; cut, stall, delay, duplicate on the proxy; restart wrangler dev, which also evicts the
 * fleet object: its in-memory state is gone, its SQLite storage and alarms persist), one for
 * Postgres (stop it in the middle of a cron flush, before or right after the COMMIT; stop it
 * around a flush; slow it down during one). Faults on the first driver are sequential: each one
 * ends, then the run measures how long until every drone sent fresh telemetry to a dashboard.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "@neondatabase/serverless";
import { applyNeonLocalConfig, startDatabase, type Database, tcpReachable } from "../scripts/db";
import { freePort, startStack, type Stack } from "../scripts/stack";
import { startWsProxy } from "../scripts/wsproxy";
import { ChaosDashboard, Operator, type Frame } from "./clients";
import { startFaultProxy, type FaultProxy } from "./fault-proxy";
import {
  checkAckedInAudit,
  checkFinalStates,
  checkNoDoubleExecution,
  checkPostgres,
  checkRecovery,
  checkSeq,
  checkSnapshots,
  checkTokens,
  FINAL_STATES,
  type Check,
  type EdgeLists,
  type FaultRecord,
  type LedgerEntry,
  type PgRows,
} from "./invariants";
import { startPgProxy, type PgProxy } from "./pg-proxy";
import { between, seeded, shuffled } from "./rng";

export type Profile = "full" | "short";

export interface ChaosOptions {
  profile?: Profile;
  seed?: number;
  /** Seconds of fault injection (setup and checks come on top). */
  durationS?: number;
  drones?: number;
  dashboards?: number;
  /** Telemetry per drone, Hz. */
  rate?: number;
  log?: (line: string) => void;
  /** Abort: faults stop, the run throws, everything started is stopped. */
  signal?: AbortSignal;
  /** Write every output line of the relay and the edge here (for a failure's post-mortem). */
  logFile?: string;
}

export interface ChaosReport {
  profile: Profile;
  seed: number;
  drones: number;
  dashboards: number;
  rate: number;
  duration_s: number;
  started_at: string;
  wall_s: number;
  database: "postgres" | "pglite";
  bounds_ms: Record<string, number>;
  faults: FaultRecord[];
  checks: Check[];
  numbers: Record<string, unknown>;
  pass: boolean;
}

/**
 * Stated recovery bounds: every drone live again (fresh telemetry at a dashboard) this long after
 * the fault ended. What sets them is the relay's reconnect backoff: capped exponential with full
 * jitter, at most 30 s per wait, and its attempt counter only resets after 10 s connected, so
 * faults in quick succession can leave the relay waiting up to 30 s once the path is back.
 * 35 s = that cap + reconnect, hello and first batch. The edge gets 10 s more: after a wrangler
 * dev restart the fleet object starts cold. Postgres faults do not stop telemetry; their rows say
 * which relay-path fault overlapped the measurement.
 */
export const RECOVERY_BOUNDS_MS: Record<string, number> = {
  relay_kill: 35_000,
  proxy_cut: 35_000,
  proxy_stall: 35_000,
  proxy_stall_long: 35_000,
  proxy_delay: 35_000,
  proxy_duplicate: 35_000,
  edge_restart: 45_000,
  pg_down_mid_flush: 35_000,
  pg_down_at_commit: 35_000,
  pg_down: 35_000,
  pg_slow: 35_000,
};

const PROFILES: Record<Profile, { durationS: number; drones: number; dashboards: number; rate: number; net: string[]; pg: string[]; gap: [number, number]; cmdMs: number }> = {
  full: {
    durationS: 120,
    drones: 200,
    dashboards: 3,
    rate: 1,
    net: ["relay_kill", "proxy_cut", "proxy_stall", "proxy_stall_long", "proxy_delay", "proxy_duplicate", "edge_restart"],
    pg: ["pg_down_mid_flush", "pg_down_at_commit", "pg_slow", "pg_down"],
    gap: [2_000, 6_000],
    cmdMs: 800,
  },
  short: {
    durationS: 45,
    drones: 30,
    dashboards: 3,
    rate: 2,
    net: ["relay_kill", "proxy_cut", "proxy_stall", "proxy_delay", "proxy_duplicate", "edge_restart"],
    pg: ["pg_down_mid_flush", "pg_down_at_commit", "pg_slow"],
    gap: [1_000, 3_000],
    cmdMs: 600,
  },
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


/** Run `fn` with a pool on `url`, reached directly (not through the fault proxy). */
async function withPg<T>(url: string, fn: (pool: Pool) => Promise<T>): Promise<T> {
  const proxy = await startWsProxy();
  applyNeonLocalConfig(proxy.port);
  const pool = new Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 10_000 });
  pool.on("error", () => {});
  try {
    return await fn(pool);
  } finally {
    await pool.end().catch(() => {});
    await proxy.close();
  }
}

export async function runChaos(opts: ChaosOptions = {}): Promise<ChaosReport> {
  const profile = opts.profile ?? "full";
  const p = PROFILES[profile];
  const seed = opts.seed ?? 1;
  const durationS = opts.durationS ?? p.durationS;
  const drones = opts.drones ?? p.drones;
  const nDash = Math.max(2, opts.dashboards ?? p.dashboards);
  const rate = opts.rate ?? p.rate;
  const log = opts.log ?? ((l: string) => process.stderr.write(`[chaos] ${l}\n`));
  const t0 = Date.now();
  const since = () => Math.round((Date.now() - t0) / 100) / 10;
  const runId = randomUUID().slice(0, 6);
  const fleet = `chaos-${runId}`;
  const rNet = seeded(seed * 2 + 1);
  const rPg = seeded(seed * 3 + 7);
  const rOps = seeded(seed + 11);
  const rDup = seeded(seed + 13);
  const droneIds = Array.from({ length: drones }, (_, i) => `drone_${i}`);

  const lines: { source: string; text: string }[] = [];
  const executions = new Map<string, number>();
  let suppressed = 0;
  const unexpected: string[] = [];
  const onRelayLine = (line: string) => {
    if (!line.startsWith("{")) return;
    try {
      const rec = JSON.parse(line) as { msg?: string; command_id?: string };
      if (rec.msg === "sim command" && rec.command_id) executions.set(rec.command_id, (executions.get(rec.command_id) ?? 0) + 1);
      else if (rec.msg?.startsWith("command already executing") || rec.msg?.startsWith("repeated command")) suppressed++;
    } catch {
      // Not JSON (a stack trace continuation): kept for the token scan only.
    }
  };

  let dbName: string | null = null;
  let adminUrl: string | null = null;
  let pglite: Database | null = null;
  let pgliteDir: string | null = null;
  let realUrl: string;
  let pgProxy: PgProxy | null = null;
  let net: FaultProxy | null = null;
  let stack: Stack | null = null;
  const dashes: ChaosDashboard[] = [];
  let operator: Operator | null = null;
  let stopping = false;

  try {
    // ---------------------------------------------------------------- database behind the pg proxy
    const base = process.env.CHAOS_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
    const bu = new URL(base);
    let target: { host: string; port: number };
    let kind: "postgres" | "pglite";
    if (await tcpReachable(bu.hostname, Number(bu.port || 5432))) {
      kind = "postgres";
      dbName = `df_chaos_${runId}`;
      adminUrl = base;
      await withPg(base, (pool) => pool.query(`create database ${dbName}`));
      const u = new URL(base);
      u.pathname = `/${dbName}`;
      realUrl = u.toString();
      target = { host: bu.hostname, port: Number(bu.port || 5432) };
    } else {
      kind = "pglite";
      pgliteDir = mkdtempSync(join(tmpdir(), "dronefleet-chaos-pg-"));
      pglite = await startDatabase({ dataDir: pgliteDir, log: (l) => log(`pglite: ${l}`) });
      realUrl = pglite.url;
      target = { host: pglite.host, port: pglite.port };
    }
    pgProxy = await startPgProxy(target, log);
    const stackDb = new URL(realUrl);
    stackDb.hostname = "127.0.0.1";
    stackDb.port = String(pgProxy.port);
    log(`database: ${kind} (${dbName ?? pgliteDir}), reached through the pg proxy on ${pgProxy.port}`);

    // ---------------------------------------------------------------- stack with the relay behind the fault proxy
    const port = await freePort();
    net = await startFaultProxy({ edge: `http://127.0.0.1:${port}`, random: rDup, log });
    log(`starting the stack: fleet ${fleet}, ${drones} drones at ${rate} Hz, edge port ${port}, relay via ${net.url}`);
    stack = await startStack({
      fleet,
      drones,
      rate,
      port,
      databaseUrl: stackDb.toString(),
      cron: false,
      relayEdgeUrl: net.url,
      relayEnv: { RELAY_LOG_LEVEL: "debug", RELAY_HEALTH_PORT: "off" },
      healthTimeoutMs: 120_000,
      log: (l) => log(`stack: ${l}`),
      output: (child, line) => {
        if (lines.length < 500_000) lines.push({ source: child, text: line });
        if (child === "relay") onRelayLine(line);
      },
      onUnexpectedExit: (child, code, signal) => {
        unexpected.push(`${child} (${signal ?? `code ${code}`}) at ${since()} s`);
        log(`${child} exited unexpectedly (${signal ?? `code ${code}`})`);
      },
    });
    const s = stack;
    const tokens = Object.values(s.tokens);
    // Alert thresholds high enough that batteries cross them during the run (so alerts reach
    // Postgres too), and a command rate limit above the operator's pace.
    const cfg = await fetch(`${s.edgeUrl}/v1/fleets/${fleet}/config`, {
      method: "PUT",
      headers: { authorization: `Bearer ${s.tokens.admin}`, "content-type": "application/json" },
      body: JSON.stringify({ thresholds: { battery_low_pct: 75, battery_critical_pct: 45 }, max_commands_per_10s: 200 }),
      signal: AbortSignal.timeout(15_000),
    });
    if (cfg.status !== 200) throw new Error(`PUT /config: HTTP ${cfg.status} ${await cfg.text()}`);

    // ---------------------------------------------------------------- dashboards
    const freshWaiters = new Set<(drone: string, at: number) => void>();
    for (let i = 0; i < nDash; i++) {
      const role = i === nDash - 1 ? "operator" : "viewer";
      // d0 authenticates the way the browser dashboard must (?access_token=), so the log scan
      // also covers URLs with a token in them; the others send the header.
      const d = new ChaosDashboard(`d${i}-${role}`, s.wsUrl, s.tokens[role], i % 2 === 1, i === 0);
      d.onFresh = (drone, at) => {
        for (const w of freshWaiters) w(drone, at);
      };
      dashes.push(d);
      d.start();
    }
    operator = new Operator(dashes[nDash - 1]!, rOps, runId);

    /** Resolve with the time from `from` until every drone had fresh telemetry at some dashboard,
     * or null after `boundMs` (+5 s of grace, so an overrun is measured rather than cut off). */
    const waitLive = (from: number, boundMs: number): Promise<number | null> =>
      new Promise((resolve) => {
        const left = new Set(droneIds);
        for (const d of dashes) for (const id of droneIds) if ((d.lastFreshAt.get(id) ?? 0) > from) left.delete(id);
        if (left.size === 0) return resolve(Date.now() - from);
        const w = (drone: string, at: number) => {
          if (at <= from) return;
          left.delete(drone);
          if (left.size === 0) finish(at - from);
        };
        const timer = setTimeout(() => finish(null), boundMs + 5_000);
        const finish = (v: number | null) => {
          clearTimeout(timer);
          freshWaiters.delete(w);
          resolve(v);
        };
        freshWaiters.add(w);
      });

    const startLive = await waitLive(0, 90_000);
    if (startLive === null) throw new Error(`not every drone became live within 90 s; relay output:\n${s.recentOutput("relay").slice(-20).join("\n")}`);
    log(`all ${drones} drones live at ${since()} s; injecting faults for ${durationS} s (seed ${seed})`);

    // ---------------------------------------------------------------- load: commands and cron flushes
    operator.start(p.cmdMs);
    let cronChain: Promise<unknown> = Promise.resolve();
    const cronResults: string[] = [];
    /** Fire the flush cron; runs are serialised like the launcher's driver. */
    const flush = (): Promise<string> => {
      const run = cronChain.then(() =>
        s.runCron("* * * * *").then(
          (st) => `HTTP ${st}`,
          (e: unknown) => `error: ${(e as Error).message}`,
        ),
      );
      cronChain = run;
      void run.then((r) => cronResults.push(r));
      return run;
    };
    const flushLoop = async () => {
      while (!stopping) {
        await sleep(between(rPg, 6_000, 10_000));
        if (!stopping) await flush();
      }
    };

    const faults: FaultRecord[] = [];
    /** Relay-path faults with their window (fault and recovery), to tell which ones a Postgres
     * fault's liveness measurement overlapped. */
    const netWindows: { kind: string; from: number; to: number }[] = [];
    const injectNet = async (kind: string): Promise<void> => {
      const start = Date.now();
      const window = { kind, from: start, to: Infinity };
      netWindows.push(window);
      const at = since();
      let detail = "";
      switch (kind) {
        case "relay_kill": {
          await s.killRelay("SIGKILL");
          const down = Math.round(between(rNet, 500, 3_000));
          await sleep(down);
          await s.startRelay();
          detail = `SIGKILL, new process after ${down} ms`;
          break;
        }
        case "proxy_cut": {
          net!.cut();
          const ms = Math.round(between(rNet, 2_000, 6_000));
          await sleep(ms);
          net!.restore();
          detail = `connections reset and refused for ${ms} ms`;
          break;
        }
        case "proxy_stall":
        case "proxy_stall_long": {
          net!.stall();
          const ms = Math.round(kind === "proxy_stall" ? between(rNet, 2_000, 5_000) : between(rNet, 14_000, 20_000));
          await sleep(ms);
          const held = net!.stats().maxHeld;
          net!.resume();
          detail = `frames held and pings unanswered for ${ms} ms (up to ${held} frames held)`;
          break;
        }
        case "proxy_delay": {
          const d = Math.round(between(rNet, 300, 1_500));
          const ms = Math.round(between(rNet, 4_000, 8_000));
          net!.delay(d);
          await sleep(ms);
          net!.restore();
          detail = `+${d} ms per frame for ${ms} ms`;
          break;
        }
        case "proxy_duplicate": {
          const pr = Math.round(between(rNet, 0.5, 1) * 100) / 100;
          const ms = Math.round(between(rNet, 4_000, 8_000));
          const before = net!.stats().duplicated;
          net!.duplicate(pr);
          await sleep(ms);
          net!.restore();
          detail = `each frame twice with p=${pr} for ${ms} ms (${net!.stats().duplicated - before} duplicated)`;
          break;
        }
        case "edge_restart": {
          const down = Math.round(between(rNet, 500, 2_000));
          await s.restartEdge(down);
          detail = `wrangler dev stopped, restarted after ${down} ms, healthy after ${((Date.now() - start) / 1000).toFixed(1)} s (fleet object evicted)`;
          break;
        }
        default:
          throw new Error(`unknown fault ${kind}`);
      }
      const end = Date.now();
      const bound = RECOVERY_BOUNDS_MS[kind] ?? 35_000;
      const rec = await waitLive(end, bound);
      window.to = Date.now();
      faults.push({ kind, at_s: at, duration_ms: end - start, detail, recovery_ms: rec, bound_ms: bound });
      log(`${kind} at ${at} s: ${detail}; all drones live ${rec === null ? "NOT within the bound" : `after ${(rec / 1000).toFixed(1)} s`}`);
    };

    const injectPg = async (kind: string): Promise<void> => {
      const start = Date.now();
      const at = since();
      let detail = "";
      const pg = pgProxy!;
      switch (kind) {
        case "pg_down_mid_flush":
        case "pg_down_at_commit": {
          const commit = kind === "pg_down_at_commit";
          const fired = pg.downOn(commit ? /(^|[^a-z_])commit([^a-z_]|$)/i : /insert into/i, { forward: commit, timeoutMs: 25_000 });
          const run = flush();
          const ok = await fired;
          const hold = Math.round(between(rPg, 2_000, 5_000));
          if (ok) await sleep(hold);
          pg.up();
          const r = await run;
          detail = ok
            ? `Postgres stopped ${commit ? "right after the COMMIT was sent" : "at an INSERT of the flush"}, back after ${hold} ms; that flush: ${r}`
            : `no flush write seen within 25 s (not injected); flush: ${r}`;
          break;
        }
        case "pg_slow": {
          const ms = Math.round(between(rPg, 100, 400));
          pg.slow(ms);
          const r = await flush();
          await sleep(Math.max(0, 3_000 - (Date.now() - start)));
          pg.up();
          detail = `+${ms} ms per packet each way during a flush (${r}), ${((Date.now() - start) / 1000).toFixed(1)} s`;
          break;
        }
        case "pg_down": {
          pg.down();
          const r = await flush();
          const ms = Math.round(between(rPg, 2_000, 5_000));
          await sleep(ms);
          pg.up();
          detail = `Postgres refused connections for ${((Date.now() - start) / 1000).toFixed(1)} s around a flush (${r})`;
          break;
        }
        default:
          throw new Error(`unknown fault ${kind}`);
      }
      const end = Date.now();
      const bound = RECOVERY_BOUNDS_MS[kind] ?? 35_000;
      const rec = await waitLive(end, bound);
      // Postgres faults do not stop telemetry; a slow recovery here is a relay-path fault's.
      const overlapped = [...new Set(netWindows.filter((w) => w.from < Date.now() && w.to > start).map((w) => w.kind))];
      if (overlapped.length) detail += `; liveness window overlapped by ${overlapped.join(", ")}`;
      faults.push({ kind, at_s: at, duration_ms: end - start, detail, recovery_ms: rec, bound_ms: bound });
      log(`${kind} at ${at} s: ${detail}`);
    };

    const deadline = Date.now() + durationS * 1000;
    /** Every kind once in a seeded order (even past the deadline), then more rounds while time is left. */
    const driver = async (kinds: string[], r: () => number, inject: (k: string) => Promise<void>, gap: [number, number]) => {
      for (let round = 0; round === 0 || Date.now() < deadline; round++) {
        for (const k of shuffled(r, kinds)) {
          await sleep(between(r, gap[0], gap[1]));
          if (opts.signal?.aborted || (round > 0 && Date.now() >= deadline)) return;
          await inject(k);
        }
      }
    };
    const flushing = flushLoop();
    await Promise.all([driver(p.net, rNet, injectNet, p.gap), driver(p.pg, rPg, injectPg, [p.gap[0] * 2, p.gap[1] * 2])]);
    stopping = true;
    if (opts.signal?.aborted) throw new Error("chaos run interrupted");
    net.restore();
    pgProxy.up();
    operator.stop();
    log(`faults done at ${since()} s; settling`);

    // ---------------------------------------------------------------- settle
    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${s.edgeUrl}/v1/fleets/${fleet}${path}`, { headers: { authorization: `Bearer ${s.tokens.admin}` }, signal: AbortSignal.timeout(15_000) });
      if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    };
    const ledger = async (): Promise<LedgerEntry[]> => {
      const out: LedgerEntry[] = [];
      let before: string | null = null;
      for (let page = 0; page < 50; page++) {
        const r: { commands: LedgerEntry[]; next_before?: string | null } = await api(`/commands?limit=1000${before !== null ? `&before=${encodeURIComponent(before)}` : ""}`);
        out.push(...r.commands);
        before = r.next_before ?? null;
        if (before === null || r.commands.length < 1000) break;
      }
      return out;
    };
    // Answers owed to the operator (it re-sends after reconnects), then every command final.
    const settleBy = Date.now() + 20_000;
    while (Date.now() < settleBy && operator.unanswered().length > 0) await sleep(250);
    while (Date.now() < settleBy && (await ledger()).some((c) => !FINAL_STATES.has(c.status))) await sleep(500);
    // Stop the relay cleanly: its log is complete, and nothing new happens to missions.
    await s.killRelay("SIGTERM");

    // ---------------------------------------------------------------- final flush until Postgres matches
    let lastOutbox: unknown = null;
    const readEdge = async (): Promise<EdgeLists> => {
      const cmds = await ledger();
      const missions = (await api<{ missions: { mission_id: string; status: string }[] }>("/missions?limit=1000")).missions;
      const events = (await api<{ events: { event_id: string; status: string; detected_at: number }[] }>("/coordination?limit=1000")).events;
      const live = await api<{ alerts: { alert_id: string; cleared_at: number | null }[]; outbox: { pending: Record<string, number>; snapshots_thinned: number; last_flush: unknown } }>("/analytics/live");
      lastOutbox = live.outbox;
      const alerts = new Map<string, boolean>();
      for (const d of dashes) for (const f of d.alerts) {
        const a = f.alert as { alert_id: string; cleared_at: number | null };
        alerts.set(a.alert_id, (alerts.get(a.alert_id) ?? false) || f.state === "cleared" || a.cleared_at !== null);
      }
      for (const a of live.alerts) if (!alerts.has(a.alert_id)) alerts.set(a.alert_id, a.cleared_at !== null);
      const pend = live.outbox.pending;
      return {
        missions: new Map(missions.map((m) => [m.mission_id, m.status])),
        events: new Map(events.map((e) => [e.event_id, e.status])),
        eventsListedFrom: events.length >= 1000 ? Math.min(...events.map((e) => e.detected_at)) : null,
        alerts,
        audit: new Map(cmds.filter((c) => FINAL_STATES.has(c.status)).map((c) => [c.command_id, c.status])),
        outboxPending: (pend.mission ?? 0) + (pend.coordination_event ?? 0) + (pend.alert ?? 0) + (pend.command_audit ?? 0),
        snapshotsThinned: live.outbox.snapshots_thinned,
      };
    };
    const readPg = () =>
      withPg(realUrl, async (pool): Promise<PgRows> => {
        const q = async <R>(sql: string) => (await pool.query(sql, [fleet])).rows as R[];
        const missions = await q<{ mission_id: string; status: string }>(`select mission_id, status from missions where fleet_id = $1`);
        const events = await q<{ event_id: string; status: string; t: string }>(`select event_id, status, (extract(epoch from created_at) * 1000)::bigint::text as t from coordination_events where fleet_id = $1`);
        const alerts = await q<{ alert_id: string; cleared: boolean }>(`select alert_id, cleared_at is not null as cleared from alerts where fleet_id = $1`);
        const audit = await q<{ command_id: string; status: string }>(`select command_id, status from command_audit where fleet_id = $1`);
        const snaps = await q<{ drone_id: string; t: string }>(`select drone_id, (extract(epoch from snapshot_time) * 1000)::bigint::text as t from drone_telemetry_snapshots where fleet_id = $1`);
        const dups = await q<{ n: string }>(`select (
            (select count(*) from (select 1 from missions where fleet_id = $1 group by mission_id having count(*) > 1) a) +
            (select count(*) from (select 1 from coordination_events where fleet_id = $1 group by event_id having count(*) > 1) b) +
            (select count(*) from (select 1 from alerts where fleet_id = $1 group by alert_id having count(*) > 1) c) +
            (select count(*) from (select 1 from command_audit where fleet_id = $1 group by command_id having count(*) > 1) d) +
            (select count(*) from (select 1 from drone_telemetry_snapshots where fleet_id = $1 group by drone_id, snapshot_time having count(*) > 1) e)
          )::text as n`);
        const snapshots = new Map<string, Set<number>>();
        for (const r of snaps) {
          let set = snapshots.get(r.drone_id);
          if (!set) snapshots.set(r.drone_id, (set = new Set()));
          set.add(Number(r.t));
        }
        return {
          missions: new Map(missions.map((m) => [m.mission_id, m.status])),
          events: new Map(events.map((e) => [e.event_id, e.status])),
          eventTimes: new Map(events.map((e) => [e.event_id, Number(e.t)])),
          alerts: new Map(alerts.map((a) => [a.alert_id, a.cleared])),
          audit: new Map(audit.map((a) => [a.command_id, a.status])),
          snapshots,
          snapshotRows: snaps.length,
          duplicateKeys: Number(dups[0]?.n ?? 0),
        };
      });

    let edgeLists: EdgeLists | null = null;
    let pgRows: PgRows | null = null;
    let rounds = 0;
    const finalFlushAt = Date.now();
    const flushBy = Date.now() + 60_000;
    for (;;) {
      rounds++;
      await flush();
      edgeLists = await readEdge();
      pgRows = await readPg();
      if (checkPostgres(edgeLists, pgRows).pass || Date.now() > flushBy) break;
      await sleep(2_000);
    }
    log(`final flush: ${rounds} round(s), ${((Date.now() - finalFlushAt) / 1000).toFixed(1)} s`);

    // ---------------------------------------------------------------- checks
    const finalLedger = await ledger();
    const answers: Frame[] = dashes.flatMap((d) => d.answers.map((a) => a.frame));
    const statuses: Frame[] = dashes.flatMap((d) => d.statuses);
    const observed = new Map<string, Set<number>>();
    for (const d of dashes) for (const [drone, set] of d.slots) {
      let o = observed.get(drone);
      if (!o) observed.set(drone, (o = new Set()));
      for (const x of set) o.add(x);
    }
    for (const d of dashes) d.stop();
    const checks: Check[] = [
      checkFinalStates(finalLedger, [...operator.sent.values()], answers, statuses),
      checkNoDoubleExecution(finalLedger, executions, suppressed),
      checkAckedInAudit(finalLedger, answers, statuses, pgRows.audit),
      checkSeq(dashes.map((d) => d.stats)),
      checkRecovery(faults),
      checkPostgres(edgeLists, pgRows),
      checkSnapshots(observed, pgRows, edgeLists.snapshotsThinned, t0, finalFlushAt - 10_000),
      checkTokens(lines.filter((l) => l.source === "relay" || l.source === "edge"), tokens),
    ];
    if (unexpected.length) checks.push({ name: "no process exited unexpectedly", pass: false, numbers: unexpected.join(", "), problems: unexpected });
    const report: ChaosReport = {
      profile,
      seed,
      drones,
      dashboards: nDash,
      rate,
      duration_s: durationS,
      started_at: new Date(t0).toISOString(),
      wall_s: Math.round((Date.now() - t0) / 1000),
      database: kind,
      bounds_ms: RECOVERY_BOUNDS_MS,
      faults,
      checks,
      numbers: {
        commands_sent_by_operator: operator.sent.size,
        command_repeats_by_operator: [...operator.sent.values()].reduce((n, c) => n + c.repeats, 0),
        dashboard_reconnects: dashes.map((d) => `${d.name}: ${d.stats.connects - 1}`).join(", "),
        relay_path: net.stats(),
        postgres_path: pgProxy.stats(),
        cron_runs: cronResults.length,
        cron_failures: cronResults.filter((r) => r !== "HTTP 200").length,
        final_flush_rounds: rounds,
        final_outbox: lastOutbox,
        cron_results_last: cronResults.slice(-5),
        relay_log_lines: lines.filter((l) => l.source === "relay").length,
      },
      pass: checks.every((c) => c.pass),
    };
    await flushing.catch(() => {});
    return report;
  } finally {
    stopping = true;
    if (opts.logFile) {
      try {
        writeFileSync(opts.logFile, lines.map((l) => `[${l.source}] ${l.text}`).join("\n") + "\n");
      } catch (err) {
        log(`cannot write ${opts.logFile}: ${(err as Error).message}`);
      }
    }
    operator?.stop();
    for (const d of dashes) d.stop();
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        log(`cleanup ${what}: ${(err as Error).message}`);
      }
    };
    await attempt("stack", async () => stack?.stop());
    await attempt("fault proxy", async () => net?.close());
    await attempt("pg proxy", async () => pgProxy?.close());
    if (dbName && adminUrl) await attempt("database", () => withPg(adminUrl!, (pool) => pool.query(`drop database if exists ${dbName} with (force)`)));
    await attempt("pglite", async () => pglite?.close());
    if (pgliteDir) rmSync(pgliteDir, { recursive: true, force: true });
  }
}

/** The report as Markdown: the invariants table, the faults table, the numbers. */
export function formatReport(r: ChaosReport): string {
  const L: string[] = [];
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  L.push(`# Chaos run: ${r.pass ? "PASS" : "FAIL"}`);
  L.push("");
  L.push(`\`npm run chaos -- --seed ${r.seed} --duration ${r.duration_s} --drones ${r.drones} --dashboards ${r.dashboards}\`${r.profile === "short" ? " (short profile, as in `npm test`)" : ""}`);
  L.push(`${r.started_at}; ${r.drones} simulated drones at ${r.rate} Hz, ${r.dashboards} dashboards, ${r.duration_s} s of faults, ${r.wall_s} s wall time; Postgres: ${r.database}.`);
  L.push("");
  L.push("| invariant | result | numbers |");
  L.push("|---|---|---|");
  for (const c of r.checks) L.push(`| ${esc(c.name)} | ${c.pass ? "pass" : "**FAIL**"} | ${esc(c.numbers)} |`);
  const failed = r.checks.filter((c) => !c.pass);
  if (failed.length) {
    L.push("");
    L.push("Problems:");
    for (const c of failed) for (const p of c.problems) L.push(`- ${c.name}: ${p}`);
  }
  L.push("");
  L.push("| fault | at (s) | what | all drones live again after | bound |");
  L.push("|---|---|---|---|---|");
  for (const f of r.faults) {
    L.push(`| ${f.kind} | ${f.at_s} | ${esc(f.detail)} | ${f.recovery_ms === null ? "**not within the bound**" : `${(f.recovery_ms / 1000).toFixed(1)} s`} | ${f.bound_ms / 1000} s |`);
  }
  L.push("");
  L.push("Numbers: " + Object.entries(r.numbers).map(([k, v]) => `${k} = ${typeof v === "object" ? JSON.stringify(v) : String(v)}`).join("; "));
  return L.join("\n") + "\n";
}

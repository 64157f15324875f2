/** The markdown report of one bench run (stdout and bench/results/*.md). */
import type { CommandsResult, Design, Mode, PointResult } from "./phases";
import { fmt, type Summary } from "./stats";

export interface MicroResult {
  detection_1000: Summary & { pairs_checked: number; conflicts: number; runs: number };
  rank_1000: Summary & { iterations: number };
}

export interface RampStep {
  design: Design;
  mode: Mode;
  rate: number;
  result: PointResult;
}

export interface AnalyticsResult {
  flush_rows_per_s: number | null;
  flush_rows: number | null;
  flush_ms: number | null;
  hourly_ms: number | null;
  note: string;
}

export interface BenchReport {
  meta: {
    started_at: string;
    duration_s: number;
    quick: boolean;
    args: string[];
    node: string;
    cpus: string;
    cores: number;
    loadavg_at_start: number[];
    git_commit: string | null;
    notes: string[];
  };
  micro: MicroResult | null;
  sweep: PointResult[];
  skipped: { design: Design; mode: Mode; drones: number; dashboards: number; why: string }[];
  ramp: RampStep[];
  max_sustained_per_s: Record<string, number | null>;
  commands: CommandsResult | null;
  analytics: AnalyticsResult | null;
  breaks: string[];
  errors: string[];
}

const modeName = (m: Mode) => (m === "batch" ? "batch" : "per-update");
const ms = (s: Summary | undefined, k: keyof Summary = "p99") => (s && s.n ? fmt(s[k]) : "–");
const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? "–" : `${fmt(a / b)}×`;

function find(r: BenchReport, design: Design, mode: Mode, drones: number, dashboards: number): PointResult | undefined {
  return r.sweep.find((p) => p.design === design && p.mode === mode && p.drones === drones && p.dashboards === dashboards && p.hz === 1);
}

function cpu(p: PointResult | undefined): number | null {
  if (!p?.server) return null;
  return p.server.cpu_pct + (p.extra?.cpu_pct ?? 0);
}

/** Where a design stops holding: the smallest failing sweep points. */
export function breakPoints(sweep: PointResult[], skipped: BenchReport["skipped"]): string[] {
  const out: string[] = [];
  const keys = [...new Set(sweep.map((p) => `${p.design}|${p.mode}`))];
  for (const key of keys) {
    const [design, mode] = key.split("|") as [Design, Mode];
    const pts = sweep.filter((p) => p.design === design && p.mode === mode && p.hz === 1);
    const bad = pts.filter((p) => !p.verdict.ok);
    const minimal = bad.filter((p) => !bad.some((q) => q !== p && q.drones <= p.drones && q.dashboards <= p.dashboards));
    const label = `${design} (${modeName(mode)})`;
    if (!minimal.length) {
      out.push(`${label}: holds at every point measured (p99 ≤ 100 ms, nothing dropped).`);
      continue;
    }
    const where = minimal.map((p) => `${p.drones.toLocaleString("en-US")} drones × ${p.dashboards} dashboards (${p.verdict.reasons.join(", ")})`).join("; ");
    const nSkipped = skipped.filter((s) => s.design === design && s.mode === mode).length;
    out.push(`${label}: breaks at ${where}${nSkipped ? `; ${nSkipped} larger point(s) not run` : ""}.`);
  }
  return out;
}

export function renderMarkdown(r: BenchReport): string {
  const L: string[] = [];
  const m = r.meta;
  L.push(`# npm run bench${m.quick ? " -- --quick" : ""}`);
  L.push("");
  L.push(`${m.started_at} · ${m.duration_s} s · ${m.cores} × ${m.cpus} · load average at start ${m.loadavg_at_start.map((v) => v.toFixed(2)).join(" ")} · Node ${m.node}${m.git_commit ? ` · ${m.git_commit.slice(0, 10)}` : ""}`);
  for (const n of m.notes) L.push(`> ${n}`);
  L.push("");

  // Headline numbers against the targets.
  const o = find(r, "ours", "per_update", 1000, 10);
  const ob = find(r, "ours", "batch", 1000, 10);
  const b = find(r, "baseline", "per_update", 1000, 10);
  const c = r.commands;
  const maxO = r.max_sustained_per_s["ours|batch"] ?? null;
  const maxOu = r.max_sustained_per_s["ours|per_update"] ?? null;
  const maxB = r.max_sustained_per_s["baseline|per_update"] ?? null;
  const notes: string[] = [];
  L.push("## Headline (targets from ARCHITECTURE.md)");
  L.push("");
  L.push("| what | ours | baseline (seed design) | ours / baseline | our target | seed target |");
  L.push("|---|---|---|---|---|---|");
  L.push(`| relay → dashboard p50 / p99, 1,000 drones × 1 Hz, 10 dashboards (ms) | ${ms(o?.latency_ms, "p50")} / ${ms(o?.latency_ms)}${ob ? ` (batch: ${ms(ob.latency_ms, "p50")} / ${ms(ob.latency_ms)})` : ""} | ${ms(b?.latency_ms, "p50")} / ${ms(b?.latency_ms)} | ${ratio(o?.latency_ms.p99, b?.latency_ms.p99)} | p99 < 50 | < 100 |`);
  L.push(`| server CPU at that point (% of a core; ours: workerd + dev proxy; baseline: node + redis) | ${fmt(cpu(o))}${ob ? ` (batch: ${fmt(cpu(ob))})` : ""} | ${fmt(cpu(b))} | ${ratio(cpu(o), cpu(b))} | | |`);
  L.push(`| server RSS at that point (MB) | ${fmt(o?.server ? o.server.rss_mb + (o.extra?.rss_mb ?? 0) : null)} | ${fmt(b?.server ? b.server.rss_mb + (b.extra?.rss_mb ?? 0) : null)} | | | |`);
  const rampTop = (design: Design, mode: Mode) => Math.max(0, ...r.ramp.filter((s) => s.design === design && s.mode === mode).map((s) => s.rate));
  const maxCell = (v: number | null, design: Design, mode: Mode) =>
    v === null ? (rampTop(design, mode) ? "< lowest step" : "–") : `${v >= rampTop(design, mode) ? "≥ " : ""}${v.toLocaleString("en-US")}`;
  L.push(`| most drone updates/s into one fleet object, 10 dashboards | ${maxCell(maxO, "ours", "batch")} (batch)${maxOu !== null || rampTop("ours", "per_update") ? `, ${maxCell(maxOu, "ours", "per_update")} (per-update)` : ""} | ${maxCell(maxB, "baseline", "per_update")} | ${ratio(maxO, maxB)} | ≥ 5,000 | 100+ drones |`);
  if (c) {
    const mw = c.modify_waypoint;
    L.push(`| modify_waypoint round trip p50 / p99 (ms), ${c.drones.toLocaleString("en-US")} drones streaming | ${ms(mw.rtt_ms, "p50")} / ${ms(mw.rtt_ms)} (n=${mw.rtt_ms.n}${mw.failed ? `, ${mw.failed} failed` : ""}) | not built | | p99 < 50 | < 500 |`);
    const am = c.assign_mission;
    L.push(`| assign_mission round trip p50 / p99 (ms), edge picks among ${c.drones.toLocaleString("en-US")} | ${ms(am.rtt_ms, "p50")} / ${ms(am.rtt_ms)} (n=${am.rtt_ms.n}${am.failed ? `, ${am.failed} failed` : ""}) | not built | | | < 2,000 |`);
  }
  if (r.micro) {
    L.push(`| mission assignment, rank 1,000 drones in-process p50 / p99 (ms) | ${fmt(r.micro.rank_1000.p50)} / ${fmt(r.micro.rank_1000.p99)} | | | < 10 | < 2,000 |`);
    L.push(`| one detection pass over 1,000 drones in-process p50 / p99 (ms) | ${fmt(r.micro.detection_1000.p50)} / ${fmt(r.micro.detection_1000.p99)} | | | < 20 | |`);
  }
  if (c) {
    const k = c.coordination;
    L.push(`| coordination: closing frame sent → resolution command at relay, p50 / max (ms) | ${ms(k.frame_to_command_ms, "p50")} / ${ms(k.frame_to_command_ms, "max")} (n=${k.frame_to_command_ms.n}${k.missed ? `, ${k.missed} missed` : ""}) | not built | | < 500 | < 3,000 |`);
    L.push(`| coordination: detected_at → command at relay, p50 / max (ms) | ${ms(k.detect_to_relay_ms, "p50")} / ${ms(k.detect_to_relay_ms, "max")} (edge-internal ${ms(k.detect_to_command_edge_ms, "p50")}) | | | | |`);
  }
  if (r.analytics) {
    const a = r.analytics;
    L.push(`| flush of 1,000 drones × 6 snapshots + events into Postgres: ms (rows/s) | ${a.flush_ms === null ? "–" : `${fmt(a.flush_ms)} (${fmt(a.flush_rows_per_s)} rows/s)`} | | | < 5,000 | |`);
    L.push(`| hourly aggregation of that hour (ms) | ${a.hourly_ms === null ? "–" : fmt(a.hourly_ms)} | | | < 2,000 | |`);
    if (a.note) notes.push(`Analytics: ${a.note}.`);
  }
  L.push("");
  for (const n of notes) L.push(n);
  if (notes.length) L.push("");

  if (r.breaks.length) {
    L.push("## Where each design breaks (p99 > 100 ms, dropped updates, or acks lagging)");
    L.push("");
    for (const line of r.breaks) L.push(`- ${line}`);
    L.push("");
  }

  L.push("## Sweep: drones at 1 Hz × dashboards subscribed to all");
  L.push("");
  L.push("| drones | dash | design | mode | ingested/s | p50 ms | p95 ms | p99 ms | max ms | dropped | server CPU % | server RSS MB | client CPU % | verdict |");
  L.push("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
  for (const p of r.sweep.filter((x) => x.hz === 1)) {
    const srv = p.server ? `${p.server.cpu_pct}${p.extra ? ` + ${p.extra.cpu_pct}` : ""}` : "–";
    const rss = p.server ? `${p.server.rss_mb}${p.extra ? ` + ${p.extra.rss_mb}` : ""}` : "–";
    const clientBound = p.client_cpu_pct >= 85 ? " †" : "";
    L.push(
      `| ${p.drones.toLocaleString("en-US")} | ${p.dashboards} | ${p.design} | ${modeName(p.mode)} | ${fmt(p.ingested_per_s)} | ${ms(p.latency_ms, "p50")} | ${ms(p.latency_ms, "p95")} | ${ms(p.latency_ms, "p99")} | ${ms(p.latency_ms, "max")} | ${p.dropped.toLocaleString("en-US")} | ${srv} | ${rss} | ${p.client_cpu_pct}${clientBound} | ${p.verdict.ok ? "ok" : `**breaks**: ${p.verdict.reasons.join(", ")}`} |`,
    );
  }
  for (const s of r.skipped) {
    L.push(`| ${s.drones.toLocaleString("en-US")} | ${s.dashboards} | ${s.design} | ${modeName(s.mode)} | | | | | | | | | | not run: ${s.why} |`);
  }
  L.push("");

  const pairs = r.sweep.filter((p) => p.design === "ours" && p.hz === 1);
  const ratios = pairs
    .map((p) => ({ p, b: find(r, "baseline", "per_update", p.drones, p.dashboards) }))
    .filter((x) => x.b);
  if (ratios.length) {
    L.push("## Ours / baseline at each point (below 1× = ours lower)");
    L.push("");
    L.push("| drones | dash | ours mode | p99 ours / baseline | server CPU ours / baseline |");
    L.push("|---:|---:|---|---:|---:|");
    for (const { p, b: bb } of ratios) {
      L.push(`| ${p.drones.toLocaleString("en-US")} | ${p.dashboards} | ${modeName(p.mode)} | ${ratio(p.latency_ms.p99, bb!.latency_ms.p99)} | ${ratio(cpu(p), cpu(bb))} |`);
    }
    L.push("");
  }

  if (r.ramp.length) {
    L.push("## Ramp: one fleet object, 1,000 drones, 10 dashboards, rising rate");
    L.push("");
    L.push("| design | mode | offered/s | ingested/s | p50 ms | p99 ms | ack p99 ms | server CPU % | client CPU % | verdict |");
    L.push("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (const s of r.ramp) {
      const p = s.result;
      L.push(
        `| ${s.design} | ${modeName(s.mode)} | ${s.rate.toLocaleString("en-US")} | ${fmt(p.ingested_per_s)} | ${ms(p.latency_ms, "p50")} | ${ms(p.latency_ms)} | ${ms(p.ack_rtt_ms)} | ${p.server ? `${p.server.cpu_pct}${p.extra ? ` + ${p.extra.cpu_pct}` : ""}` : "–"} | ${p.client_cpu_pct}${p.client_cpu_pct >= 85 ? " †" : ""} | ${p.verdict.ok ? "sustained" : `**not sustained**: ${p.verdict.reasons.join(", ")}`} |`,
      );
    }
    L.push("");
  }

  if (c) {
    L.push(`## Commands and coordination (ours; ${c.drones.toLocaleString("en-US")} drones at 1 Hz, ${c.dashboards} dashboards)`);
    L.push("");
    L.push("| what | n | p50 ms | p99 ms | max ms |");
    L.push("|---|---:|---:|---:|---:|");
    const row = (what: string, s: Summary) => L.push(`| ${what} | ${s.n} | ${ms(s, "p50")} | ${ms(s, "p99")} | ${ms(s, "max")} |`);
    row("modify_waypoint: console → answer", c.modify_waypoint.rtt_ms);
    row("… console → `command` at relay (auth, ledger, safety checks)", c.modify_waypoint.edge_to_relay_ms);
    row("… relay `command_result` → answer at console", c.modify_waypoint.relay_to_answer_ms);
    row("assign_mission (edge ranks the fleet): console → answer", c.assign_mission.rtt_ms);
    row("telemetry relay → dashboard meanwhile", c.telemetry_latency_ms);
    row("head-on: closing frame sent → first resolution command at relay", c.coordination.frame_to_command_ms);
    row("… closing frame → detected_at (waits for the next 500 ms pass)", c.coordination.frame_to_detect_ms);
    row("… detected_at → first_command_at (edge clock)", c.coordination.detect_to_command_edge_ms);
    row("… detected_at → command at relay", c.coordination.detect_to_relay_ms);
    L.push("");
    const fails = [...c.modify_waypoint.failures, ...c.assign_mission.failures];
    if (fails.length) L.push(`Command failures: ${fails.map((f) => `\`${f}\``).join("; ")}`);
    if (c.coordination.event_types.length) L.push(`Coordination events: ${c.coordination.event_types.join(", ")}; strategies: ${c.coordination.strategies.join(", ")}.`);
    L.push("");
  }
  if (r.micro) {
    L.push(`In-process: detectionBenchmark(1000) over ${r.micro.detection_1000.runs} runs (${r.micro.detection_1000.pairs_checked} pairs reached the narrow phase, ${r.micro.detection_1000.conflicts} conflicts); rankBenchmarkCase(1000) over ${r.micro.rank_1000.iterations} iterations.`);
    L.push("");
  }
  L.push("Server CPU and RSS: ours = the workerd runtime hosting the Worker and fleet objects + wrangler dev's proxy workerd in front of it (local only); baseline = its Node server + redis-server. % of one core over the measured window. † the load generator (this process) used most of a core: that point may be bounded by the client too.");
  if (r.errors.length) {
    L.push("");
    L.push("## Errors");
    for (const e of r.errors) L.push(`- ${e}`);
  }
  return `${L.join("\n")}\n`;
}

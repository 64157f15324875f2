/** The markdown report of one bench run (stdout and bench/results/*.md). */
import type { CommandsResult, Design, Mode, PointResult } from "./phases";
import type { FleetProfile } from "./profile";
import type { RelayPointResult } from "./relaymode";
import { fmt, type Spread, type Summary } from "./stats";

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
    /** Runs per point (--repeat). */
    repeat: number;
    /** Measured window per point, s. */
    window_s: { sweep: number; ramp: number; relay: number };
    args: string[];
    node: string;
    cpus: string;
    cores: number;
    loadavg_at_start: number[];
    loadavg_at_end: number[];
    git_commit: string | null;
    notes: string[];
  };
  micro: MicroResult | null;
  sweep: PointResult[];
  skipped: { design: Design; mode: Mode; drones: number; dashboards: number; why: string }[];
  ramp: RampStep[];
  max_sustained_per_s: Record<string, number | null>;
  /** The real relay code (EdgeLink + simulator) against the edge. */
  relay: { relay_code: string; batch_window_ms: number | "link default"; points: RelayPointResult[] } | null;
  /** One dashboard never reading, against the same point without it. */
  slow: { control: PointResult; slow: PointResult; p99_rise_pct: number | null } | null;
  commands: CommandsResult | null;
  analytics: AnalyticsResult | null;
  breaks: string[];
  errors: string[];
}

const modeName = (m: Mode) => (m === "batch" ? "batch" : "per-update");
const ms = (s: Summary | undefined, k: keyof Summary = "p99") => (s && s.n ? fmt(s[k]) : "–");
const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? "–" : `${fmt(a / b)}×`;

const load = (l: { start: number; end: number } | undefined) => (l ? `${l.start.toFixed(2)} → ${l.end.toFixed(2)}` : "–");
/** A median with its range over the runs, when there were several. */
const withSpread = (s: Summary | undefined, k: "p50" | "p99", sp: Spread | undefined) => (sp && s?.n ? `${fmt(s[k])} (${fmt(sp.min)}–${fmt(sp.max)})` : ms(s, k));
const stall = (pr: FleetProfile | null | undefined) => {
  if (!pr) return "–";
  const why = (pr.longest_turn_top ?? []).slice(0, 2).map((c) => `${c.name} ${fmt(c.ms)}`).join(", ");
  return `${fmt(pr.longest_turn_ms)}${pr.longest_turn_kind ? ` (${pr.longest_turn_kind}${why ? `: ${why}` : ""})` : ""}`;
};
const topOf = (pr: FleetProfile | null | undefined, k = 3) =>
  pr ? pr.top.slice(0, k).map((c) => `${c.name} ${fmt(c.ms_per_s)} ms/s (${Math.round(c.pct_of_busy)} %)`).join(", ") || "idle" : "–";
/** A count (a median of counts may be x.5). */
const count = (v: number) => (Number.isInteger(v) ? v.toLocaleString("en-US") : fmt(v));
const pct = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? "–" : `${v >= 0 ? "+" : ""}${fmt(v)} %`);

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
  L.push(
    `${m.started_at} · ${m.duration_s} s · ${m.cores} × ${m.cpus} · load average at start ${m.loadavg_at_start.map((v) => v.toFixed(2)).join(" ")}, at end ${(m.loadavg_at_end ?? []).map((v) => v.toFixed(2)).join(" ") || "–"} · Node ${m.node}${m.git_commit ? ` · ${m.git_commit.slice(0, 10)}` : ""}`,
  );
  L.push("");
  L.push(`Windows: ${m.window_s.sweep} s per sweep point, ${m.window_s.ramp} s per ramp step, ${m.window_s.relay} s per relay-code point${m.quick ? " (**short: quick run**)" : ""}; ${m.repeat} run${m.repeat > 1 ? "s" : ""} per point${m.repeat > 1 ? " (figures are medians, ranges min–max, verdicts on the medians)" : ""}. Load = the machine's 1-minute load average at the start and end of each point (2 cores: above 2 the figures are upper bounds).`);
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
  const rp = (d: number, n: number) => r.relay?.points.find((x) => x.drones === d && x.dashboards === n);
  for (const [d, n] of [[10, 1], [1000, 10]] as const) {
    const x = rp(d, n);
    if (x) L.push(`| real relay code (EdgeLink + simulator) → dashboard p50 / p99, ${d.toLocaleString("en-US")} drones × ${n} dashboard${n > 1 ? "s" : ""} (ms) | ${ms(x.latency_ms, "p50")} / ${ms(x.latency_ms)} | | | ${x.target ? `p50 ≤ ${x.target.p50}, p99 ≤ ${x.target.p99}` : ""} | |`);
  }
  if (r.slow) L.push(`| one dashboard never reading: the other nine's p99 vs all ten reading (ms) | ${ms(r.slow.slow.latency_ms)} vs ${ms(r.slow.control.latency_ms)} (${pct(r.slow.p99_rise_pct)}) | | | rise ≤ 10 % | |`);
  const noCmd = find(r, "ours", "per_update", 1000, 10) ?? r.slow?.control;
  if (c?.telemetry_control_ms) {
    const ctl = c.telemetry_control_ms;
    const rise = (x: Summary) => pct(ctl.p99 > 0 ? (100 * (x.p99 - ctl.p99)) / ctl.p99 : null);
    L.push(
      `| telemetry p99 while commands run (${c.series.commands} at ${c.series.rate_per_s}/s, ${fmt(c.series.window_s)} s) vs the ${fmt(c.control_window_s)} s before them, same sockets (ms) | ${ms(c.telemetry_during_commands_ms)} vs ${ms(ctl)} (${rise(c.telemetry_during_commands_ms)}); burst of ${c.burst.commands} back to back ${ms(c.burst.telemetry_ms)} (${rise(c.burst.telemetry_ms)})${noCmd ? `; sweep point ${ms(noCmd.latency_ms)}` : ""} | | | within 20 % | |`,
    );
  }
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
  L.push("| drones | dash | design | mode | ingested/s | p50 ms | p95 ms | p99 ms | max ms | dropped | server CPU % | server RSS MB | client CPU % | load 1m | stall ms | verdict |");
  L.push("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
  for (const p of r.sweep.filter((x) => x.hz === 1)) {
    const srv = p.server ? `${p.server.cpu_pct}${p.extra ? ` + ${p.extra.cpu_pct}` : ""}` : "–";
    const rss = p.server ? `${p.server.rss_mb}${p.extra ? ` + ${p.extra.rss_mb}` : ""}` : "–";
    const clientBound = p.client_cpu_pct >= 85 ? " †" : "";
    L.push(
      `| ${p.drones.toLocaleString("en-US")} | ${p.dashboards} | ${p.design} | ${modeName(p.mode)} | ${fmt(p.ingested_per_s)} | ${withSpread(p.latency_ms, "p50", p.spread?.p50)} | ${ms(p.latency_ms, "p95")} | ${withSpread(p.latency_ms, "p99", p.spread?.p99)} | ${ms(p.latency_ms, "max")} | ${count(p.dropped)} | ${srv} | ${rss} | ${p.client_cpu_pct}${clientBound} | ${load(p.load_1m)} | ${p.design === "ours" ? stall(p.profile) : ""} | ${p.verdict.ok ? "ok" : `**breaks**: ${p.verdict.reasons.join(", ")}`} |`,
    );
  }
  for (const s of r.skipped) {
    L.push(`| ${s.drones.toLocaleString("en-US")} | ${s.dashboards} | ${s.design} | ${modeName(s.mode)} | | | | | | | | | | | | not run: ${s.why} |`);
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
    L.push("| design | mode | offered/s | ingested/s | p50 ms | p99 ms | ack p99 ms | server CPU % | client CPU % | load 1m | stall ms | verdict |");
    L.push("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
    for (const s of r.ramp) {
      const p = s.result;
      L.push(
        `| ${s.design} | ${modeName(s.mode)} | ${s.rate.toLocaleString("en-US")} | ${fmt(p.ingested_per_s)} | ${withSpread(p.latency_ms, "p50", p.spread?.p50)} | ${withSpread(p.latency_ms, "p99", p.spread?.p99)} | ${ms(p.ack_rtt_ms)} | ${p.server ? `${p.server.cpu_pct}${p.extra ? ` + ${p.extra.cpu_pct}` : ""}` : "–"} | ${p.client_cpu_pct}${p.client_cpu_pct >= 85 ? " †" : ""} | ${load(p.load_1m)} | ${s.design === "ours" ? stall(p.profile) : ""} | ${p.verdict.ok ? "sustained" : `**not sustained**: ${p.verdict.reasons.join(", ")}`} |`,
      );
    }
    L.push("");
  }

  if (r.relay) {
    const rr = r.relay;
    L.push("## The real relay code: EdgeLink fed by the simulator (relay/link + relay/sources/sim)");
    L.push("");
    L.push(`Relay code ${rr.relay_code}; batchWindowMs: ${rr.batch_window_ms === "link default" ? "the link's default (not passed)" : `${rr.batch_window_ms} ms`}. Dashboards subscribe as the page does (\`batch: true\`). Latency = the simulator hands the sample to the link → its receipt at a dashboard (same process clock): the link's batching included.`);
    L.push("");
    L.push("| drones | dash | p50 ms | p95 ms | p99 ms | max ms | dropped | link frames/s | updates/frame | server CPU % | client CPU % | load 1m | stall ms | target | verdict |");
    L.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|");
    for (const x of rr.points) {
      const srv = x.server ? `${x.server.cpu_pct}${x.extra ? ` + ${x.extra.cpu_pct}` : ""}` : "–";
      L.push(
        `| ${x.drones.toLocaleString("en-US")} | ${x.dashboards} | ${withSpread(x.latency_ms, "p50", x.spread?.p50)} | ${ms(x.latency_ms, "p95")} | ${withSpread(x.latency_ms, "p99", x.spread?.p99)} | ${ms(x.latency_ms, "max")} | ${count(x.dropped)} | ${fmt(x.link.frames_per_s)} | ${fmt(x.link.updates_per_frame)} | ${srv} | ${x.client_cpu_pct}${x.client_cpu_pct >= 85 ? " †" : ""} | ${load(x.load_1m)} | ${stall(x.profile)} | ${x.target ? `p50 ≤ ${x.target.p50}, p99 ≤ ${x.target.p99}` : "p99 ≤ 100"} | ${x.verdict.ok ? "ok" : `**misses**: ${x.verdict.reasons.join(", ")}`} |`,
      );
    }
    const rel = rr.points.filter((x) => x.link.released);
    if (rel.length) L.push(`\nFrames by what released them (the link's \`framesReleased\`): ${rel.map((x) => `${x.drones.toLocaleString("en-US")} × ${x.dashboards}: ${Object.entries(x.link.released!).map(([k, v]) => `${k} ${v}`).join(", ")}`).join("; ")}.`);
    else L.push("\nThe link reports no `framesReleased` (fixed-window batching).");
    const warn = rr.points.flatMap((x) => x.link.warnings);
    if (warn.length) L.push(`\nRelay warnings: ${warn.slice(0, 3).map((w) => `\`${w}\``).join("; ")}`);
    L.push("");
  }

  if (r.slow) {
    const { control, slow } = r.slow;
    const x = slow.slow;
    L.push("## One dashboard that never reads (1,000 drones × 1 Hz, per-update)");
    L.push("");
    L.push("| run | reading dashboards | p50 ms | p99 ms | max ms | dropped | server CPU % | load 1m | stall ms | verdict |");
    L.push("|---|---:|---:|---:|---:|---:|---:|---|---:|---|");
    for (const [name, p] of [["all reading (control)", control], ["one paused", slow]] as const) {
      L.push(
        `| ${name} | ${p.dashboards} | ${withSpread(p.latency_ms, "p50", p.spread?.p50)} | ${withSpread(p.latency_ms, "p99", p.spread?.p99)} | ${ms(p.latency_ms, "max")} | ${count(p.dropped)} | ${p.server ? `${p.server.cpu_pct}${p.extra ? ` + ${p.extra.cpu_pct}` : ""}` : "–"} | ${load(p.load_1m)} | ${stall(p.profile)} | ${p.verdict.ok ? "ok" : `**breaks**: ${p.verdict.reasons.join(", ")}`} |`,
      );
    }
    L.push("");
    L.push(`The other nine's p99 against all ten reading: ${pct(r.slow.p99_rise_pct)} (target: rise ≤ 10 %).`);
    if (x) {
      const series = (v: { start: number | null; max: number | null; end: number | null } | null) => (v ? `${fmt(v.start)} / ${fmt(v.max)} / ${fmt(v.end)}` : "–");
      L.push(`Unread for ${fmt(x.unread_s)} s. RSS start / max / end (MB): workerd runtime ${series(x.rss_mb.server)}; wrangler's proxy workerd ${series(x.rss_mb.extra)}. The control, over its shorter run (${fmt(control.window_s)} s window): runtime ${series(control.rss_mb?.server ?? null)}, proxy ${series(control.rss_mb?.extra ?? null)}.`);
      L.push(
        `Edge: ${x.lagging_after_s === null ? "no `lagging` notice received" : `declared it lagging ${fmt(x.lagging_after_s)} s after the pause (its notice's ts)`}; ${x.closed ? `closed it with ${x.closed.code}${x.closed.reason ? ` "${x.closed.reason}"` : ""}` : "it was still open when the bench read it again"}${x.close_due_after_s !== null ? ` (its rule closes at ${fmt(x.close_due_after_s)} s after the pause)` : ""}. Read after resuming: ${x.frames_after_resume.toLocaleString("en-US")} frames, ${fmt(x.bytes_after_resume / 1048576)} MiB.`,
      );
      if (!x.closed && x.lagging_after_s === null) L.push("(Unread for less time than the edge's rule needs to act: it declares a socket lagging once 4 MiB are unconfirmed, ~15 s at this rate, and closes it 30 s later. The full run leaves it unread for 55 s.)");
    }
    L.push("");
  }

  const profiled: { phase: string; point: string; pr: FleetProfile | null; note?: string }[] = [];
  for (const p of r.sweep.filter((x) => x.design === "ours")) profiled.push({ phase: "sweep", point: `${p.drones.toLocaleString("en-US")} × ${p.dashboards} ${modeName(p.mode)}`, pr: p.profile, ...(p.profile_note ? { note: p.profile_note } : {}) });
  for (const st of r.ramp.filter((x) => x.design === "ours")) profiled.push({ phase: "ramp", point: `${st.rate.toLocaleString("en-US")}/s ${modeName(st.mode)}`, pr: st.result.profile, ...(st.result.profile_note ? { note: st.result.profile_note } : {}) });
  for (const x of r.relay?.points ?? []) profiled.push({ phase: "relay code", point: `${x.drones.toLocaleString("en-US")} × ${x.dashboards}`, pr: x.profile, ...(x.profile_note ? { note: x.profile_note } : {}) });
  if (r.slow) {
    profiled.push({ phase: "slow dashboard", point: "control, 10 reading", pr: r.slow.control.profile, ...(r.slow.control.profile_note ? { note: r.slow.control.profile_note } : {}) });
    profiled.push({ phase: "slow dashboard", point: "9 reading + 1 paused", pr: r.slow.slow.profile, ...(r.slow.slow.profile_note ? { note: r.slow.slow.profile_note } : {}) });
  }
  if (c?.profile_control !== undefined) profiled.push({ phase: "commands", point: `${c.drones.toLocaleString("en-US")} × ${c.dashboards}, control (no commands)`, pr: c.profile_control });
  if (c) profiled.push({ phase: "commands", point: `${c.drones.toLocaleString("en-US")} × ${c.dashboards}, command series (${c.series?.rate_per_s ?? "–"}/s)`, pr: c.profile, ...(c.profile_note ? { note: c.profile_note } : {}) });
  if (c?.burst) profiled.push({ phase: "commands", point: `${c.drones.toLocaleString("en-US")} × ${c.dashboards}, burst`, pr: c.burst.profile });
  if (c?.profile_coordination) profiled.push({ phase: "commands", point: `${c.drones.toLocaleString("en-US")} × ${c.dashboards}, head-on runs`, pr: c.profile_coordination });
  if (profiled.length) {
    L.push("## The fleet object's time per measured window (GET /v1/fleets/:fleet/profile)");
    L.push("");
    const notes = [...new Set(profiled.filter((x) => !x.pr && x.note).map((x) => x.note!))];
    if (profiled.every((x) => !x.pr)) {
      L.push(`No profile figures: ${notes.join("; ") || "not read"}. Stall and breakdown show "–".`);
    } else {
      L.push("Busy: time inside turns, in % of one core. Stall: the longest single turn (the longest every socket of the fleet waited) and its kind. Components: exclusive time, ms per second of window (% of busy).");
      L.push("");
      L.push("| phase | point | busy % | turns/s | stall ms | top components |");
      L.push("|---|---|---:|---:|---:|---|");
      for (const x of profiled) {
        L.push(`| ${x.phase} | ${x.point} | ${x.pr ? fmt(x.pr.busy_pct) : "–"} | ${x.pr ? fmt(x.pr.turns / Math.max(x.pr.window_ms / 1000, 1e-3)) : "–"} | ${stall(x.pr)} | ${x.pr ? topOf(x.pr, 4) : `– (${x.note ?? "not read"})`} |`);
      }
      if (notes.length) L.push(`\nNot read for some points: ${notes.join("; ")}.`);
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
    if (c.burst) {
      row(`modify_waypoint back to back (burst, ${fmt(c.burst.window_s)} s): console → answer`, c.burst.rtt_ms);
    }
    row("telemetry relay → dashboard, whole phase", c.telemetry_latency_ms);
    if (c.telemetry_control_ms) row(`… received in the ${fmt(c.control_window_s)} s before any command (the control)`, c.telemetry_control_ms);
    if (c.telemetry_during_commands_ms) {
      row(`… received during the command series (${c.series ? `${c.series.commands} at ${c.series.rate_per_s}/s, ${fmt(c.series.window_s)} s` : ""})`, c.telemetry_during_commands_ms);
      if (c.burst) row("… received during the burst", c.burst.telemetry_ms);
      row("… received during the head-on runs", c.telemetry_during_coordination_ms);
    }
    if (noCmd) row(`… the same point without commands (${noCmd === r.slow?.control ? "slow-dashboard control" : "sweep"})`, noCmd.latency_ms);
    row("head-on: closing frame sent → first resolution command at relay", c.coordination.frame_to_command_ms);
    row("… closing frame → detected_at (waits for the next 500 ms pass)", c.coordination.frame_to_detect_ms);
    row("… detected_at → first_command_at (edge clock)", c.coordination.detect_to_command_edge_ms);
    row("… detected_at → command at relay", c.coordination.detect_to_relay_ms);
    L.push("");
    const fails = [...c.modify_waypoint.failures, ...c.assign_mission.failures];
    if (fails.length) L.push(`Command failures: ${fails.map((f) => `\`${f}\``).join("; ")}`);
    const lp = c.client_loop_delay_p99_ms;
    if (lp) L.push(`Load generator's event-loop delay p99 (ms): control ${fmt(lp.control)}, series ${fmt(lp.series)}, burst ${fmt(lp.burst)}, head-on runs ${fmt(lp.coordination)}; load 1m ${fmt(c.load_1m.start)} → ${fmt(c.load_1m.end)}.`);
    if (c.burst?.failed) L.push(`Burst failures: ${c.burst.failures.map((f) => `\`${f}\``).join("; ")}`);
    if (c.profile) L.push(`Fleet object over the command series: busy ${fmt(c.profile.busy_pct)} %, stall ${fmt(c.profile.longest_turn_ms)} ms (${c.profile.longest_turn_kind ?? "–"}); ${topOf(c.profile, 4)}.`);
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

/**
 * The chaos run's short profile (chaos/chaos.ts) inside `npm test`: the real stack (wrangler dev,
 * Postgres behind a fault proxy, the relay behind another) with 30 drones at 2 Hz, three dashboards
 * and a stream of commands, while a seeded driver kills and restarts the relay, cuts, stalls,
 * delays and duplicates its link, restarts the edge, and stops or slows Postgres during flushes.
 * Every invariant must hold. The report goes to test-artifacts/chaos-short.md (the full run's to
 * chaos/results/ is written by `npm run chaos` only).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { formatReport, runChaos } from "../../chaos/chaos";

describe("chaos (short profile)", () => {
  it("keeps every invariant while faults are injected", async () => {
    const lines: string[] = [];
    const report = await runChaos({ profile: "short", seed: Number(process.env.CHAOS_SEED ?? 7), log: (l) => lines.push(l) });
    const md = formatReport(report);
    const dir = resolve(import.meta.dirname, "../../test-artifacts");
    mkdirSync(dir, { recursive: true });
    writeFileSync(resolve(dir, "chaos-short.md"), md);
    const failed = report.checks.filter((c) => !c.pass).map((c) => `${c.name}: ${c.numbers}\n  ${c.problems.join("\n  ")}`);
    expect(failed, `${md}\nrun log:\n${lines.slice(-40).join("\n")}`).toEqual([]);
    // Each kind of fault was actually injected.
    const kinds = new Set(report.faults.map((f) => f.kind));
    for (const k of ["relay_kill", "proxy_cut", "proxy_stall", "proxy_delay", "proxy_duplicate", "edge_restart"]) expect(kinds, md).toContain(k);
    expect(report.faults.some((f) => f.kind.startsWith("pg_") && !f.detail.includes("not injected")), md).toBe(true);
  }, 360_000);
});

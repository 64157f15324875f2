/**
 * `npm run chaos [-- --seed N --duration 120 --drones 200 --dashboards 3 --rate 1 --profile full|short]`
 *
 * Runs the local stack under load while faults are injected at seeded random moments (see
 * chaos/chaos.ts), prints the invariants table and writes chaos/results/latest.md and .json.
 * Bounded: it stops by itself (faults for --duration seconds, then at most ~2 minutes of settling
 * and checks); Ctrl-C stops the stack cleanly. Exit code 0 when every invariant holds, 1 otherwise.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatReport, runChaos, type Profile } from "./chaos";

const USAGE = `Usage: npm run chaos [-- --seed N --duration S --drones N --dashboards N --rate HZ --profile full|short]
  --seed N         fault schedule seed (default 1)
  --duration S     seconds of fault injection (default 120; short profile 60)
  --drones N       simulated drones (default 200; short 30)
  --dashboards N   dashboard clients, the last one sends commands (default 3)
  --rate HZ        telemetry per drone (default 1; short 2)
  --profile P      full (default) or short (what npm test runs)
  --out DIR        where latest.md/.json go (default chaos/results)`;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`chaos: --${name} must be a positive number (got ${v})\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        seed: { type: "string" },
        duration: { type: "string" },
        drones: { type: "string" },
        dashboards: { type: "string" },
        rate: { type: "string" },
        profile: { type: "string" },
        out: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + "\n");
    return 0;
  }
  const profile = (values.profile ?? "full") as Profile;
  if (profile !== "full" && profile !== "short") {
    process.stderr.write(`chaos: --profile must be full or short\n${USAGE}\n`);
    return 2;
  }
  const report = await runChaos({
    profile,
    seed: num(values.seed, "seed"),
    durationS: num(values.duration, "duration"),
    drones: num(values.drones, "drones"),
    dashboards: num(values.dashboards, "dashboards"),
    rate: num(values.rate, "rate"),
    signal: abort.signal,
    logFile: join(tmpdir(), "dronefleet-chaos-latest.log"),
  });
  const md = formatReport(report);
  process.stdout.write("\n" + md);
  const out = values.out ?? join(dirname(fileURLToPath(import.meta.url)), "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "latest.md"), md);
  writeFileSync(join(out, "latest.json"), JSON.stringify(report, null, 2) + "\n");
  process.stderr.write(`[chaos] wrote ${join(out, "latest.md")} and latest.json\n`);
  return report.pass ? 0 : 1;
}

// Ctrl-C: the current fault ends, runChaos stops everything it started and throws; a second
// Ctrl-C exits at once (the stack's exit hook still kills its process groups).
const abort = new AbortController();
process.on("SIGINT", () => {
  if (abort.signal.aborted) process.exit(130);
  process.stderr.write("[chaos] interrupted; stopping (Ctrl-C again to exit now)\n");
  process.exitCode = 130;
  abort.abort();
});

main().then(
  (code) => process.exit(process.exitCode === 130 ? 130 : code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

/**
 * `npm run relay -- --edge URL --fleet F --token T --source sim|ros2 [...]` (see USAGE), and
 * `npm run relay -- doctor [--config FILE]` (see doctor.ts).
 *
 * Wires a DroneSource to an EdgeLink (with a disk outbox when configured) and owns the process:
 * JSON logs on stderr, a stats line every 10 s, the health endpoint, clean shutdown on
 * SIGINT/SIGTERM. Exit codes: 0 clean stop, --help or --print-config; 1 runtime failure (e.g.
 * rclnodejs missing, outbox directory locked) or a failed doctor check; 2 bad arguments.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { formatConfig, parseRelayArgs, USAGE, type ParseDeps, type RelayConfig } from "./config";
import { DiskOutbox } from "./link/disk-outbox";
import { formatReport, runDoctor } from "./sources/ros2/doctor";
import { DroneWatch, startHealthServer, type HealthServer } from "./health";
import { EdgeLink } from "./link/link";
import { createLogger, type Logger } from "./log";
import { RelayMetrics } from "./metrics";
import { getProfile } from "./sources/ros2/profiles/index";
import { Ros2Source } from "./sources/ros2/ros2";
import { SimFleet } from "./sources/sim/sim";
import type { DroneSource } from "./sources/source";

const STATS_EVERY_MS = 10_000;
/** How often configured drones are checked for silence (health.ts DroneWatch). */
const WATCH_EVERY_MS = 1_000;
/** A stop that takes longer than this (a wedged ROS node) exits anyway. */
const SHUTDOWN_DEADLINE_MS = 5_000;

function readVersion(): string | undefined {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));
    const v = typeof pkg === "object" && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return typeof v === "string" ? v.slice(0, 64) : undefined;
  } catch {
    // The version is informational only (relay_hello); a missing package.json must not stop us.
    return undefined;
  }
}

function createSource(cfg: RelayConfig, log: Logger): DroneSource {
  switch (cfg.source) {
    case "sim":
      return new SimFleet({ drones: cfg.drones, rateHz: cfg.rateHz ?? 1, seed: cfg.seed, scenario: cfg.scenario, log });
    case "ros2":
      return new Ros2Source({
        droneIds: cfg.droneIds ?? Array.from({ length: cfg.drones }, (_, i) => `drone_${i}`),
        rateHz: cfg.rateHz,
        topics: cfg.topics,
        services: cfg.services,
        profile: getProfile(cfg.profile, { autopilot: cfg.mavros.autopilot, holdMode: cfg.mavros.holdMode }),
        perDrone: cfg.perDrone,
        qos: cfg.qos,
        ...(cfg.intentTopic !== undefined ? { intentTopic: cfg.intentTopic } : {}),
        log,
      });
    default: {
      const never: never = cfg.source;
      throw new Error(`unknown source ${String(never)}`);
    }
  }
}

const parseDeps: ParseDeps = {
  env: process.env,
  readFile: (p) => readFileSync(p, "utf8"),
  defaultRelayId: `${hostname()}-${process.pid}`,
};

async function doctor(argv: string[]): Promise<number> {
  const parsed = parseRelayArgs(argv, parseDeps);
  if (parsed.kind === "help") {
    process.stdout.write("Usage: npm run relay -- doctor [--config FILE] [flags as for the relay]\n");
    return 0;
  }
  const results = await runDoctor({ env: process.env, parsed });
  process.stdout.write(formatReport(results));
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "doctor") return doctor(argv.slice(1));
  const parsed = parseRelayArgs(argv, parseDeps);
  if (parsed.kind === "help") {
    process.stdout.write(USAGE + "\n");
    return 0;
  }
  if (parsed.kind === "error") {
    process.stderr.write(`relay: ${parsed.message}\nRun with --help for usage.\n`);
    return 2;
  }
  if (parsed.kind === "print-config") {
    process.stdout.write(formatConfig(parsed.config));
    return 0;
  }
  const cfg = parsed.config;
  const log = createLogger(cfg.logLevel, undefined, { relay_id: cfg.relayId });
  process.on("uncaughtException", (err) => {
    log.error("uncaught exception", { error: err, stack: err.stack });
    process.exit(1);
  });
  process.on("unhandledRejection", (reason) => {
    log.error("unhandled rejection", { error: reason instanceof Error ? reason : String(reason) });
    process.exit(1);
  });

  let store: DiskOutbox | undefined;
  if (cfg.outbox.dir !== null) {
    try {
      store = new DiskOutbox({ dir: cfg.outbox.dir, maxBytes: cfg.outbox.maxBytes, fsyncMs: cfg.outbox.fsyncMs, log });
    } catch (err) {
      log.error("cannot open the outbox directory", { dir: cfg.outbox.dir, error: err });
      return 1;
    }
  } else {
    log.info("outbox in memory only: set link.outbox.dir (or --outbox-dir) to keep unacknowledged telemetry and results across restarts");
  }

  const source = createSource(cfg, log);
  const link = new EdgeLink({
    edge: cfg.edge,
    fleet: cfg.fleet,
    token: cfg.token,
    relayId: cfg.relayId,
    source: cfg.source,
    version: readVersion(),
    droneIds: () => source.droneIds(),
    // Commands from the edge run at the source; mission progress goes back through the link.
    execute: (command, signal) => source.execute(command, signal),
    store,
    batchWindowMs: cfg.batchWindowMs,
    maxFramesPerSecond: cfg.maxFramesPerSecond,
    log,
  });
  source.onMissionProgress = (p) => link.pushProgress(p);
  let totalSamples = 0;
  const watch = new DroneWatch({
    droneIds: () => source.droneIds(),
    log,
    ...(source.topicAges ? { describe: (id: string) => ({ topic_age_s: source.topicAges?.(id) ?? {} }) } : {}),
  });
  const metrics = new RelayMetrics({
    link,
    samples: () => totalSamples,
    silentDrones: () => watch.silentIds().length,
    ...(source.rosMessageCounts ? { rosMessages: () => source.rosMessageCounts?.() ?? {} } : {}),
  });
  let health: HealthServer | null = null;
  if (cfg.health.enabled) {
    try {
      health = await startHealthServer({ host: cfg.health.host, port: cfg.health.port, graceMs: cfg.health.graceMs, link, metrics, watch, log });
    } catch (err) {
      // Monitoring must not take the relay down with it: run on, loudly.
      log.error("health endpoint could not start; running without it", { host: cfg.health.host, port: cfg.health.port, error: err });
    }
  }
  // The token is deliberately absent from this line (and from every other).
  log.info("relay starting", {
    url: link.url,
    fleet: cfg.fleet,
    source: cfg.source,
    drones: source.droneIds().length,
    rate_hz: cfg.rateHz ?? "on_fix",
    outbox: cfg.outbox.dir ?? "memory",
    batch_window_ms: cfg.batchWindowMs,
    max_frames_per_second: cfg.maxFramesPerSecond,
    health: health ? `http://${cfg.health.host}:${health.port}` : "off",
  });

  let samples = 0;
  let lastStatsAt = Date.now();
  const statsTimer = setInterval(() => {
    const now = Date.now();
    const rate = (samples * 1000) / Math.max(1, now - lastStatsAt);
    samples = 0;
    lastStatsAt = now;
    log.info("stats", { ...link.stats(), samples_per_s: Math.round(rate * 10) / 10, silent_drones: watch.silentIds().length });
  }, STATS_EVERY_MS);
  // A drone that sends nothing is logged (once) even when nobody polls /healthz.
  const watchTimer = setInterval(() => watch.check(), WATCH_EVERY_MS);

  let stopping: Promise<number> | null = null;
  const shutdown = (why: string): Promise<number> => {
    stopping ??= (async () => {
      log.info("relay stopping", { reason: why });
      clearInterval(statsTimer);
      clearInterval(watchTimer);
      const force = setTimeout(() => {
        log.error("shutdown took too long; exiting", { deadline_ms: SHUTDOWN_DEADLINE_MS });
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS);
      force.unref();
      try {
        await source.stop();
      } catch (err) {
        log.warn("source did not stop cleanly", { error: err });
      }
      await link.stop();
      try {
        store?.close();
      } catch (err) {
        log.error("outbox did not close cleanly", { error: err });
      }
      await health?.close();
      clearTimeout(force);
      log.info("relay stopped", { ...link.stats() });
      return 0;
    })();
    return stopping;
  };
  // Resolves with the exit code once a signal has stopped everything.
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      void shutdown(sig).then(resolve);
    };
    // `on`, not `once`: systemd signals every process of the unit and a wrapper may forward the
    // same SIGTERM; a second signal must not kill the process halfway through its shutdown (the
    // shutdown deadline still bounds it).
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });

  // Source first: if it cannot start (rclnodejs missing, ROS not sourced) there is nothing to
  // connect for. Samples pushed before the link is up wait in its outbox.
  try {
    await source.start((s) => {
      samples++;
      totalSamples++;
      watch.saw(s.drone_id);
      link.push(s);
    });
  } catch (err) {
    log.error("source failed to start", { source: cfg.source, error: err });
    await shutdown("source failed");
    return 1;
  }
  log.info("source running", { source: cfg.source, drones: source.droneIds().length });
  link.start();
  return stopped;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit explicitly: a native addon (rclnodejs) may keep handles open after a clean stop.
    // stderr/stdout writes to pipes and files are synchronous on Linux, so nothing is cut off.
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`relay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

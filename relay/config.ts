/**
 * Relay configuration: command-line flags, environment and an optional YAML or JSON file, each
 * validated on its own with zod (so an error names the key as it was written: `--drones`,
 * `RELAY_RATE`, or `link.outbox.max_bytes` in the file), then merged and checked as a whole into
 * one `RelayConfig`. Pure apart from the injected file reader, so every rule is unit-testable and
 * cli.ts stays a thin shell.
 *
 * Precedence, highest first: flags, environment, the config file (`--config` or RELAY_CONFIG),
 * defaults. See deploy/relay.example.yaml for every file key with its default.
 */
import { parseArgs } from "node:util";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import * as z from "zod";
import { DRONE_ID_RE, FLEET_ID_RE, LIMITS, RelayHello } from "../edge/protocol";
import { DEFAULT_OUTBOX_FSYNC_MS, DEFAULT_OUTBOX_MAX_BYTES } from "./link/disk-outbox";
import { DEFAULT_MAX_FRAMES_PER_SECOND } from "./link/link";
import { isLogLevel, type LogLevel } from "./log";
import { intentReaderFor } from "./sources/ros2/intent";
import { getProfile, PROFILE_NAMES } from "./sources/ros2/profiles/index";
import type { Autopilot } from "./sources/ros2/profiles/mavros";
import { DEFAULT_QOS, QOS_NAMES, type QosName } from "./sources/ros2/rcl";
import { DEFAULT_SERVICES, DEFAULT_TOPICS, TOPIC_KEYS, type DroneNames, type ProfileName, type ServiceTemplates, type TopicKey, type TopicTemplates } from "./sources/ros2/ros2";
import { isScenarioName, SCENARIO_DEFAULT_DRONES, SCENARIO_NAMES, type ScenarioName } from "./sources/sim/scenarios";
import type { SourceKind } from "./sources/source";

export interface RelayConfig {
  edge: string;
  fleet: string;
  /** Secret: never log it. */
  token: string;
  source: SourceKind;
  drones: number;
  /** Samples per drone per second; undefined for ros2 means "on each fix". */
  rateHz: number | undefined;
  relayId: string;
  /** Explicit drone ids (ros2 namespaces); otherwise drone_0..drone_{drones-1}. */
  droneIds: string[] | undefined;
  seed: number | undefined;
  /** sim: conflict scenario (relay/sources/sim/scenarios.ts) instead of the patrol fleet. */
  scenario: ScenarioName | undefined;
  topics: Partial<TopicTemplates> | undefined;
  /** ros2: service name templates (config file only). */
  services: Partial<ServiceTemplates> | undefined;
  /** ros2: subscription QoS per topic kind (config file only); unset kinds use sensor_data. */
  qos: Partial<Record<TopicKey, QosName>> | undefined;
  logLevel: LogLevel;
  /** ros2: topic layout and command mapping. */
  profile: ProfileName;
  /** ros2 with the mavros profile. */
  mavros: { autopilot: Autopilot; holdMode: string | undefined };
  /** ros2: names for single drones (the config file's `drones:` list entries with topics/services/intent_topic). */
  perDrone: Record<string, DroneNames> | undefined;
  /**
   * ros2: the route topic template (config file `intent_topic`, with {drone}); false: no routes;
   * undefined: the profile's (`/{drone}/route` nav_msgs/msg/Path, or MAVROS's waypoint list).
   */
  intentTopic: string | false | undefined;
  /** The window bound of adaptive batching (link.batch_window_ms), ms. */
  batchWindowMs: number;
  /** The frame-rate cap of adaptive batching (link.max_frames_per_second); 0: the fixed window. */
  maxFramesPerSecond: number;
  /** dir null: the outbox is in memory only (latest sample per drone, lost on restart). */
  outbox: { dir: string | null; maxBytes: number; fsyncMs: number };
  health: { enabled: boolean; host: string; port: number; graceMs: number };
  /** Where the token came from (--print-config shows this, never the token). */
  tokenFrom: { kind: "file"; path: string } | { kind: "flag" | "env" | "config" };
  configFile: string | undefined;
}

export type ParseResult =
  | { kind: "help" }
  | { kind: "error"; message: string }
  | { kind: "ok"; config: RelayConfig }
  /** `--print-config`: show the effective configuration (see formatConfig) instead of running. */
  | { kind: "print-config"; config: RelayConfig };

export const MAX_DRONES = 20_000;
export const DEFAULT_HEALTH_PORT = 9464;
export const DEFAULT_HEALTH_GRACE_MS = 30_000;
/** link.batch_window_ms: the default (LIMITS.batchWindowMs) and the range accepted. */
export const DEFAULT_BATCH_WINDOW_MS = LIMITS.batchWindowMs;
export const BATCH_WINDOW_RANGE_MS = [1, 1000] as const;
/** link.max_frames_per_second: the range accepted (the default is the link's). */
export const MAX_FRAMES_RANGE = [0, 1000] as const;

export const USAGE = `Usage: npm run relay -- --edge URL --fleet F --token T --source sim|ros2 [options]
       npm run relay -- doctor [--config FILE]       check ROS 2, interfaces, edge and token

Bridges a drone fleet (ROS 2 or simulated) to the edge over one WebSocket.

Required (flag, environment or config file):
  --edge URL          edge base URL, http(s):// or ws(s)://            (env RELAY_EDGE)
  --fleet F           fleet id                                          (env RELAY_FLEET)
  --token T           relay token; prefer --token-file, flags show in ps (env RELAY_TOKEN)
  --token-file PATH   read the token from a file (first line, trimmed)  (env RELAY_TOKEN_FILE)
  --source sim|ros2   simulated fleet or ROS 2 topics via rclnodejs     (env RELAY_SOURCE)

Options:
  --config FILE       YAML or JSON file (.json is read as JSON); keys in deploy/relay.example.yaml
                                                                        (env RELAY_CONFIG)
  --profile P         ros2 topic layout: default|mavros (default default) (env RELAY_PROFILE)
  --drones N          number of drones, 1..${MAX_DRONES} (default 5; with --scenario: 2, swarm 12)
                                                                        (env RELAY_DRONES)
  --drone-ids A,B     ros2: drone ids / topic namespaces (default drone_0..drone_{N-1})
                                                                        (env RELAY_DRONE_IDS)
  --rate HZ           samples per drone per second, 1..10 (sim default 1; ros2 default: on each fix)
                                                                        (env RELAY_RATE)
  --relay-id ID       identity announced to the edge (default hostname-pid) (env RELAY_ID)
  --seed N            sim: random seed (default 1)
  --scenario S        sim: fly a conflict scenario, ${SCENARIO_NAMES.join("|")}
  --log-level L       debug|info|warn|error (default info)              (env RELAY_LOG_LEVEL)
  --outbox-dir DIR    keep unacknowledged telemetry and command results on disk here, so they
                      survive a restart ("memory": in memory only; default $STATE_DIRECTORY/outbox
                      under systemd, else memory)                       (env RELAY_OUTBOX_DIR)
  --outbox-max-bytes N  bound on the disk outbox, e.g. 256MiB (default) (env RELAY_OUTBOX_MAX_BYTES)
  --batch-window-ms MS  telemetry goes at once while the link is idle; while a frame awaits its
                      ack, updates wait for that ack at most this long, ${BATCH_WINDOW_RANGE_MS[0]}..${BATCH_WINDOW_RANGE_MS[1]}
                      (default ${DEFAULT_BATCH_WINDOW_MS})                        (env RELAY_BATCH_WINDOW_MS)
  --max-frames-per-second N  frames at most this often while updates stream (a frame every
                      1000/N ms), ${MAX_FRAMES_RANGE[0]}..${MAX_FRAMES_RANGE[1]}; 0: updates wait the whole window (default ${DEFAULT_MAX_FRAMES_PER_SECOND})
                                                                        (env RELAY_MAX_FRAMES_PER_SECOND)
  --health-host H     health endpoint address (default 127.0.0.1)      (env RELAY_HEALTH_HOST)
  --health-port P     health endpoint port, 0 = any free port, off = none (default ${DEFAULT_HEALTH_PORT})
                                                                        (env RELAY_HEALTH_PORT)
  --print-config      print the effective configuration (token masked) and exit
  -h, --help          show this help

Precedence: flags > environment > config file > defaults.
Logs are JSON lines on stderr; a stats line every 10 s. SIGINT/SIGTERM stop cleanly.
Health: GET /healthz (200 while the link is up or within its grace period, else 503; "degraded"
also while a configured drone sends no position for longer than 15 s) and GET /metrics
(Prometheus, with process and event-loop metrics) on the health endpoint.
ROS 2: rclnodejs is loaded only once ROS 2 is sourced (ROS_DISTRO, AMENT_PREFIX_PATH); subscription
QoS per topic is the config file's qos: (default sensor_data, which hears best-effort publishers).`;

// ------------------------------------------------------------------ one table for flags and env

type Field = { path: readonly string[]; flag: string; env?: string };

/** Every setting reachable from the command line and/or the environment. */
const FIELDS: readonly Field[] = [
  { path: ["edge"], flag: "edge", env: "RELAY_EDGE" },
  { path: ["fleet"], flag: "fleet", env: "RELAY_FLEET" },
  { path: ["token"], flag: "token", env: "RELAY_TOKEN" },
  { path: ["token_file"], flag: "token-file", env: "RELAY_TOKEN_FILE" },
  { path: ["source"], flag: "source", env: "RELAY_SOURCE" },
  { path: ["profile"], flag: "profile", env: "RELAY_PROFILE" },
  { path: ["drones"], flag: "drones", env: "RELAY_DRONES" },
  { path: ["drone_ids"], flag: "drone-ids", env: "RELAY_DRONE_IDS" },
  { path: ["rate"], flag: "rate", env: "RELAY_RATE" },
  { path: ["relay_id"], flag: "relay-id", env: "RELAY_ID" },
  { path: ["seed"], flag: "seed" },
  { path: ["scenario"], flag: "scenario" },
  { path: ["log_level"], flag: "log-level", env: "RELAY_LOG_LEVEL" },
  { path: ["link", "outbox", "dir"], flag: "outbox-dir", env: "RELAY_OUTBOX_DIR" },
  { path: ["link", "outbox", "max_bytes"], flag: "outbox-max-bytes", env: "RELAY_OUTBOX_MAX_BYTES" },
  { path: ["link", "batch_window_ms"], flag: "batch-window-ms", env: "RELAY_BATCH_WINDOW_MS" },
  { path: ["link", "max_frames_per_second"], flag: "max-frames-per-second", env: "RELAY_MAX_FRAMES_PER_SECOND" },
  { path: ["health", "host"], flag: "health-host", env: "RELAY_HEALTH_HOST" },
  { path: ["health", "port"], flag: "health-port", env: "RELAY_HEALTH_PORT" },
];

/** Top-level file keys also accepted with hyphens (the flags' spelling, as older configs use). */
const FILE_ALIASES: Record<string, string> = {
  "token-file": "token_file",
  "drone-ids": "drone_ids",
  "relay-id": "relay_id",
  "log-level": "log_level",
};

// ------------------------------------------------------------------ the schema of one layer

const numeric = (v: unknown): unknown => (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v);

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };
/** "256MiB", "1 GB", "65536" → bytes; anything else is left for zod to reject. */
const size = (v: unknown): unknown => {
  if (typeof v !== "string") return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = SIZE_UNITS[(m?.[2] || "b").toLowerCase()];
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : v;
};

const str = (what = "expected a non-empty string") => z.string({ error: what }).min(1, { error: what });
const int = (min: number, max: number, what: string) =>
  z.preprocess(numeric, z.number({ error: what }).int({ error: what }).min(min, { error: what }).max(max, { error: what }));
const bool = z.preprocess((v) => (v === "true" ? true : v === "false" ? false : v), z.boolean({ error: "expected true or false" }));

const DroneEntry = z.union(
  [
    z.string(),
    z.strictObject({
      id: z.string({ error: "expected a drone id" }),
      topics: z.record(z.string(), z.unknown()).optional(),
      services: z.record(z.string(), z.unknown()).optional(),
      intent_topic: z.union([z.literal(false), str("expected a topic name, or false for none")], { error: "expected a topic name, or false for none" }).optional(),
    }),
  ],
  { error: "expected a drone id or {id, topics?, services?, intent_topic?}" },
);

const LayerSchema = z
  .strictObject({
    edge: str("expected a URL"),
    fleet: str(),
    token: z.string({ error: "expected a string" }),
    token_file: str("expected a file path"),
    source: z.enum(RelayHello.shape.source.options, { error: "expected sim or ros2" }),
    profile: z.enum(PROFILE_NAMES, { error: `expected ${PROFILE_NAMES.join(" or ")}` }),
    drones: z.union([int(1, MAX_DRONES, `expected an integer in 1..${MAX_DRONES}`), z.array(DroneEntry)], {
      error: `expected an integer in 1..${MAX_DRONES} or a list of drones`,
    }),
    drone_ids: z.union([z.string(), z.array(z.string())], { error: "expected a list of drone ids" }),
    rate: z.preprocess(numeric, z.number({ error: "expected a number in 1..10" }).min(1, { error: "expected a number in 1..10" }).max(10, { error: "expected a number in 1..10" })),
    relay_id: z.string({ error: "expected a string" }).min(1, { error: "expected 1..128 characters" }).max(128, { error: "expected 1..128 characters" }),
    seed: int(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "expected an integer"),
    scenario: z.string({ error: "expected a scenario name" }),
    log_level: z.string({ error: "expected debug, info, warn or error" }).refine(isLogLevel, { error: "expected debug, info, warn or error" }),
    topics: z.record(z.string(), z.unknown(), { error: "expected a mapping of topic kind to name" }),
    services: z.record(z.string(), z.unknown(), { error: "expected a mapping of service kind to name" }),
    intent_topic: z.union([z.literal(false), str("expected a topic template containing {drone}, or false for none")], {
      error: "expected a topic template containing {drone}, or false for none",
    }),
    qos: z.union([z.enum(QOS_NAMES), z.record(z.string(), z.unknown())], {
      error: `expected ${QOS_NAMES.join(", ")}, or a mapping of topic kind to one of them`,
    }),
    mavros: z
      .strictObject({
        autopilot: z.enum(["px4", "ardupilot"], { error: "expected px4 or ardupilot" }),
        hold_mode: str("expected a mode name such as AUTO.LOITER"),
      })
      .partial(),
    link: z
      .strictObject({
        outbox: z
          .strictObject({
            dir: z.union([z.null(), str("expected a directory path, or null for memory only")], { error: "expected a directory path, or null for memory only" }),
            max_bytes: z.preprocess(size, z.number({ error: "expected a positive number of bytes (e.g. 268435456 or 256MiB)" }).int().min(65_536, { error: "expected a positive number of bytes, at least 64KiB" })),
            fsync_ms: int(10, 60_000, "expected a positive number of milliseconds (10..60000)"),
          })
          .partial(),
        batch_window_ms: int(BATCH_WINDOW_RANGE_MS[0], BATCH_WINDOW_RANGE_MS[1], `expected milliseconds in ${BATCH_WINDOW_RANGE_MS[0]}..${BATCH_WINDOW_RANGE_MS[1]}`),
        max_frames_per_second: int(MAX_FRAMES_RANGE[0], MAX_FRAMES_RANGE[1], `expected frames per second in ${MAX_FRAMES_RANGE[0]}..${MAX_FRAMES_RANGE[1]} (0: the fixed window)`),
      })
      .partial(),
    health: z
      .strictObject({
        enabled: bool,
        host: str("expected a host address such as 127.0.0.1"),
        port: z.union([z.literal("off"), int(0, 65_535, "expected a port in 0..65535, or off")], { error: "expected a port in 0..65535, or off" }),
        grace_ms: int(0, 86_400_000, "expected a non-negative number of milliseconds"),
      })
      .partial(),
  })
  .partial();
type Layer = z.infer<typeof LayerSchema>;

class UsageError extends Error {}

export interface ParseDeps {
  env: Record<string, string | undefined>;
  readFile: (path: string) => string;
  /** Default relay id (hostname-pid in the CLI). */
  defaultRelayId: string;
}

/** Parse argv (without node and script) into a config, a help request, or a usage error. */
export function parseRelayArgs(argv: string[], deps: ParseDeps): ParseResult {
  try {
    const options: Record<string, { type: "string" } | { type: "boolean"; short?: string }> = {};
    for (const f of FIELDS) options[f.flag] = { type: "string" };
    const { values } = parseArgs({
      args: argv,
      options: { ...options, config: { type: "string" }, "print-config": { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) return { kind: "help" };

    const flagRaw: Record<string, unknown> = {};
    const envRaw: Record<string, unknown> = {};
    const given = values as Record<string, string | boolean | undefined>;
    for (const f of FIELDS) {
      const v = given[f.flag];
      if (typeof v === "string") setPath(flagRaw, f.path, v);
      const e = f.env ? deps.env[f.env] : undefined;
      if (e !== undefined && e !== "") setPath(envRaw, f.path, e);
    }
    const flags = validateLayer(flagRaw, (path) => `--${fieldFor(path)?.flag ?? path.join(".")}`);
    const env = validateLayer(envRaw, (path) => fieldFor(path)?.env ?? path.join("."));

    const configValue = values.config;
    const configFile = typeof configValue === "string" ? configValue : deps.env.RELAY_CONFIG || undefined;
    const file = configFile === undefined ? {} : readConfigFile(configFile, deps.readFile);

    const config = resolve({ flags, env, file }, configFile, deps);
    return values["print-config"] === true ? { kind: "print-config", config } : { kind: "ok", config };
  } catch (err) {
    if (err instanceof UsageError) return { kind: "error", message: err.message };
    // node:util parseArgs reports unknown flags and missing values as TypeErrors with a code.
    if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS")) {
      return { kind: "error", message: err.message };
    }
    throw err;
  }
}

function fieldFor(path: readonly PropertyKey[]): Field | undefined {
  return FIELDS.find((f) => f.path.length === path.length && f.path.every((p, i) => p === path[i]));
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let o = obj;
  for (const [i, k] of path.entries()) {
    if (i === path.length - 1) {
      o[k] = value;
    } else {
      const next = o[k];
      if (typeof next === "object" && next !== null) o = next as Record<string, unknown>;
      else {
        const created: Record<string, unknown> = {};
        o[k] = created;
        o = created;
      }
    }
  }
}

/** Validate one layer; the first problem becomes a UsageError naming the key via `name`. */
function validateLayer(raw: unknown, name: (path: readonly PropertyKey[]) => string, prefix = ""): Layer {
  const r = LayerSchema.safeParse(raw, { reportInput: true });
  if (r.success) return r.data;
  const messages = r.error.issues.map((iss) => {
    if (iss.code === "unrecognized_keys") {
      const keys = iss.keys.map((k) => `"${k}"`).join(", ");
      return `${iss.path.length > 0 ? `${name(iss.path)}: ` : ""}unknown key${iss.keys.length > 1 ? "s" : ""} ${keys}`;
    }
    const input = "input" in iss ? iss.input : undefined;
    const got = typeof input === "string" || typeof input === "number" || typeof input === "boolean" ? `, got ${JSON.stringify(input)}` : "";
    return `${name(iss.path)}: ${iss.message}${got}`;
  });
  throw new UsageError(prefix + messages.slice(0, 3).join("; ") + (messages.length > 3 ? ` (and ${messages.length - 3} more)` : ""));
}

/** Read and validate the config file: YAML, or JSON for a .json name. */
function readConfigFile(path: string, readFile: (p: string) => string): Layer {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new UsageError(`cannot read --config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let data: unknown;
  if (/\.json$/i.test(path)) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`--config ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    try {
      data = parseYaml(text);
    } catch (err) {
      throw new UsageError(`--config ${path} is not valid YAML: ${(err instanceof Error ? err.message : String(err)).split("\n")[0]}`);
    }
  }
  if (data === null || data === undefined) data = {};
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new UsageError(`--config ${path} must hold a mapping of keys to values`);
  // Accept the flags' hyphenated spelling for top-level keys, but report errors as written.
  const normalized: Record<string, unknown> = {};
  const spelled: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    const key = FILE_ALIASES[k] ?? k;
    if (Object.hasOwn(normalized, key)) throw new UsageError(`--config ${path}: "${k}" and "${spelled[key]}" are the same setting; give it once`);
    normalized[key] = v;
    spelled[key] = k;
  }
  const name = (p: readonly PropertyKey[]): string => p.map((seg, i) => (i === 0 ? (spelled[String(seg)] ?? String(seg)) : String(seg))).join(".");
  return validateLayer(normalized, name, `--config ${path}: `);
}

type Layers = { flags: Layer; env: Layer; file: Layer };

function resolve(layers: Layers, configFile: string | undefined, deps: ParseDeps): RelayConfig {
  const order: [Layer, "flag" | "env" | "config"][] = [
    [layers.flags, "flag"],
    [layers.env, "env"],
    [layers.file, "config"],
  ];
  const pick = <T>(get: (l: Layer) => T | undefined): T | undefined => {
    for (const [l] of order) {
      const v = get(l);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const fileName = configFile ? ` in ${configFile}` : "";
  const filePrefix = configFile ? `--config ${configFile}: ` : "";
  const required = <T>(get: (l: Layer) => T | undefined, flag: string, env?: string): T => {
    const v = pick(get);
    if (v === undefined || v === "") throw new UsageError(`missing --${flag}${env ? ` (or ${env})` : ""}${configFile ? `, and no "${flag.replaceAll("-", "_")}"${fileName}` : ""}`);
    return v;
  };

  const edge = required((l) => l.edge, "edge", "RELAY_EDGE");
  let url: URL;
  try {
    url = new URL(edge);
  } catch {
    throw new UsageError(`--edge must be a URL, got "${edge}"`);
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) throw new UsageError(`--edge must be http(s):// or ws(s)://, got ${url.protocol}`);

  const fleet = required((l) => l.fleet, "fleet", "RELAY_FLEET");
  if (!FLEET_ID_RE.test(fleet)) throw new UsageError(`--fleet must match ${FLEET_ID_RE}, got "${fleet}"`);

  const { token, tokenFrom } = resolveToken(order, deps.readFile);

  const source = required((l) => l.source, "source", "RELAY_SOURCE");

  const scenarioRaw = pick((l) => l.scenario);
  if (scenarioRaw !== undefined && !isScenarioName(scenarioRaw)) throw new UsageError(`--scenario must be one of ${SCENARIO_NAMES.join(", ")}, got "${scenarioRaw}"`);
  if (scenarioRaw !== undefined && source !== "sim") throw new UsageError("--scenario is for --source sim");
  const scenario = scenarioRaw;

  // Drones: a count, a list of ids (drone_ids, or a `drones:` list in the file, whose entries may
  // carry their own topic and service names). The highest layer that lists ids wins.
  let droneIds: string[] | undefined;
  let perDrone: Record<string, DroneNames> | undefined;
  let count: number | undefined;
  for (const [l] of order) {
    if (count === undefined && typeof l.drones === "number") count = l.drones;
    if (droneIds !== undefined) continue;
    if (l.drone_ids !== undefined && Array.isArray(l.drones)) throw new UsageError("give the drones either as drone_ids or as a drones: list, not both");
    if (l.drone_ids !== undefined) {
      droneIds = (Array.isArray(l.drone_ids) ? l.drone_ids : l.drone_ids.split(",")).map((s) => s.trim()).filter((s) => s.length > 0);
    } else if (Array.isArray(l.drones)) {
      droneIds = [];
      for (const [i, d] of l.drones.entries()) {
        if (typeof d === "string") {
          droneIds.push(d.trim());
          continue;
        }
        droneIds.push(d.id);
        const names: DroneNames = {};
        if (d.topics) names.topics = readTemplates(d.topics, `${filePrefix}drones[${i}].topics`, "topic", DEFAULT_TOPICS, false, d.id);
        if (d.services) names.services = readTemplates(d.services, `${filePrefix}drones[${i}].services`, "service", DEFAULT_SERVICES, false, d.id);
        if (d.intent_topic !== undefined) names.intentTopic = d.intent_topic === false ? false : topicName(d.intent_topic.replaceAll("{drone}", d.id), `${filePrefix}drones[${i}].intent_topic`);
        if (names.topics || names.services || names.intentTopic !== undefined) (perDrone ??= {})[d.id] = names;
      }
    }
  }
  if (droneIds !== undefined) {
    const bad = droneIds.find((id) => !DRONE_ID_RE.test(id));
    if (bad !== undefined) throw new UsageError(`--drone-ids: "${bad}" is not a valid drone id (${DRONE_ID_RE})`);
    if (droneIds.length === 0 || droneIds.length > MAX_DRONES) throw new UsageError(`--drone-ids must list 1..${MAX_DRONES} ids`);
    const dup = droneIds.find((id, i) => droneIds?.indexOf(id) !== i);
    if (dup !== undefined) throw new UsageError(`--drone-ids: "${dup}" is listed twice`);
    if (source === "sim") throw new UsageError("--drone-ids is for --source ros2; the simulator names its drones drone_0..");
  }
  const drones = droneIds?.length ?? count ?? (scenario ? SCENARIO_DEFAULT_DRONES[scenario] : 5);

  const rate = pick((l) => l.rate);
  const relayId = pick((l) => l.relay_id) ?? deps.defaultRelayId.slice(0, 128);
  const seed = pick((l) => l.seed);
  const logLevel = (pick((l) => l.log_level) ?? "info") as LogLevel;
  const profile = pick((l) => l.profile) ?? "default";

  const file = layers.file;
  const topics = file.topics === undefined ? undefined : readTemplates(file.topics, `${filePrefix}topics`, "topic", DEFAULT_TOPICS, true);
  const services = file.services === undefined ? undefined : readTemplates(file.services, `${filePrefix}services`, "service", DEFAULT_SERVICES, true);
  const qos = file.qos === undefined ? undefined : readQos(file.qos, `${filePrefix}qos`);
  const intentTopic = file.intent_topic === undefined || file.intent_topic === false ? file.intent_topic : intentTemplate(file.intent_topic, `${filePrefix}intent_topic`);

  const outboxDirRaw = pick((l) => l.link?.outbox?.dir);
  const stateDir = deps.env.STATE_DIRECTORY?.split(":")[0];
  const outboxDir =
    outboxDirRaw === null || outboxDirRaw === "memory" ? null : (outboxDirRaw ?? (stateDir ? `${stateDir.replace(/\/+$/, "")}/outbox` : null));
  const healthPort = pick((l) => l.health?.port);
  const healthEnabled = healthPort === "off" ? false : (pick((l) => l.health?.enabled) ?? true);

  return {
    edge,
    fleet,
    token,
    source,
    drones,
    rateHz: rate ?? (source === "sim" ? 1 : undefined),
    relayId,
    droneIds,
    seed,
    scenario,
    topics,
    services,
    qos,
    logLevel,
    profile,
    mavros: { autopilot: pick((l) => l.mavros?.autopilot) ?? "px4", holdMode: pick((l) => l.mavros?.hold_mode) },
    perDrone,
    intentTopic,
    batchWindowMs: pick((l) => l.link?.batch_window_ms) ?? DEFAULT_BATCH_WINDOW_MS,
    maxFramesPerSecond: pick((l) => l.link?.max_frames_per_second) ?? DEFAULT_MAX_FRAMES_PER_SECOND,
    outbox: {
      dir: outboxDir,
      maxBytes: pick((l) => l.link?.outbox?.max_bytes) ?? DEFAULT_OUTBOX_MAX_BYTES,
      fsyncMs: pick((l) => l.link?.outbox?.fsync_ms) ?? DEFAULT_OUTBOX_FSYNC_MS,
    },
    health: {
      enabled: healthEnabled,
      host: pick((l) => l.health?.host) ?? "127.0.0.1",
      port: typeof healthPort === "number" ? healthPort : DEFAULT_HEALTH_PORT,
      graceMs: pick((l) => l.health?.grace_ms) ?? DEFAULT_HEALTH_GRACE_MS,
    },
    tokenFrom,
    configFile,
  };
}

/**
 * `topics`/`services` (and a drone's own): known keys, non-empty strings; templates must contain
 * {drone} (a per-drone name may, and gets it replaced).
 */
function readTemplates<K extends string>(
  v: Record<string, unknown>,
  where: string,
  what: "topic" | "service",
  defaults: Record<K, string>,
  template: boolean,
  droneId?: string,
): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [k, t] of Object.entries(v)) {
    if (!Object.hasOwn(defaults, k)) {
      throw new UsageError(`${where}: unknown ${what} "${k}" (expected ${Object.keys(defaults).join(", ")})`);
    }
    if (template && (typeof t !== "string" || !t.includes("{drone}"))) throw new UsageError(`${where}.${k}: ${what} "${k}" must be a string containing {drone}`);
    if (typeof t !== "string" || t.trim() === "") throw new UsageError(`${where}.${k}: ${what} "${k}" must be a non-empty string`);
    out[k as K] = droneId === undefined ? t : t.replaceAll("{drone}", droneId);
  }
  return out;
}

/** A ROS topic name as ROS 2 accepts it: absolute or relative, no empty or trailing segment. */
const TOPIC_NAME_RE = /^(~\/|\/)?[A-Za-z_{][A-Za-z0-9_{}]*(\/[A-Za-z_{][A-Za-z0-9_{}]*)*$/;

function topicName(t: string, where: string): string {
  if (!TOPIC_NAME_RE.test(t)) throw new UsageError(`${where}: "${t}" is not a valid ROS topic name (letters, digits and _ in /-separated parts)`);
  return t;
}

/** `intent_topic`: a template with {drone}, so each drone gets its own route topic. */
function intentTemplate(t: string, where: string): string {
  if (!t.includes("{drone}")) throw new UsageError(`${where}: "${t}" must contain {drone} (each drone has its own route topic; name single drones in drones[].intent_topic)`);
  return topicName(t, where);
}

/** `qos: sensor_data` (every topic) or `qos: {fix: default, …}` (known topic kinds, known profiles). */
function readQos(v: QosName | Record<string, unknown>, where: string): Partial<Record<TopicKey, QosName>> {
  if (typeof v === "string") return Object.fromEntries(TOPIC_KEYS.map((k) => [k, v]));
  const out: Partial<Record<TopicKey, QosName>> = {};
  for (const [k, q] of Object.entries(v)) {
    if (!(TOPIC_KEYS as readonly string[]).includes(k)) throw new UsageError(`${where}: unknown topic "${k}" (expected ${TOPIC_KEYS.join(", ")})`);
    if (typeof q !== "string" || !(QOS_NAMES as readonly string[]).includes(q)) {
      throw new UsageError(`${where}.${k}: expected ${QOS_NAMES.join(", ")}${typeof q === "string" ? `, got "${q}"` : ""}`);
    }
    out[k as TopicKey] = q as QosName;
  }
  return out;
}

/** The highest layer that names a token (inline or file) wins; one layer may not name both. */
function resolveToken(
  order: [Layer, "flag" | "env" | "config"][],
  readFile: (p: string) => string,
): { token: string; tokenFrom: RelayConfig["tokenFrom"] } {
  for (const [l, kind] of order) {
    if (l.token !== undefined && l.token_file !== undefined) {
      const names = { flag: "--token or --token-file", env: "RELAY_TOKEN or RELAY_TOKEN_FILE", config: "token or token_file in the config file" };
      throw new UsageError(`give either ${names[kind]}, not both`);
    }
    if (l.token !== undefined) {
      if (l.token.trim() === "") throw new UsageError("--token is empty");
      return { token: l.token.trim(), tokenFrom: { kind } };
    }
    const path = l.token_file;
    if (path !== undefined) {
      let text: string;
      try {
        text = readFile(path);
      } catch (err) {
        throw new UsageError(`cannot read --token-file ${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const token = text.split(/\r?\n/, 1)[0]?.trim() ?? "";
      if (token === "") throw new UsageError(`--token-file ${path} is empty`);
      return { token, tokenFrom: { kind: "file", path } };
    }
  }
  throw new UsageError("missing --token (or --token-file, RELAY_TOKEN, RELAY_TOKEN_FILE)");
}

/**
 * The effective configuration as a config file (YAML, the file's keys), for `--print-config`.
 * The token is never shown: a token file is named instead, an inline token is masked.
 */
export function formatConfig(cfg: RelayConfig): string {
  const doc: Record<string, unknown> = {
    edge: cfg.edge,
    fleet: cfg.fleet,
    ...(cfg.tokenFrom.kind === "file" ? { token_file: cfg.tokenFrom.path } : { token: `<redacted, from ${cfg.tokenFrom.kind}>` }),
    source: cfg.source,
  };
  if (cfg.source === "ros2") {
    doc.profile = cfg.profile;
    const profile = getProfile(cfg.profile, { autopilot: cfg.mavros.autopilot, holdMode: cfg.mavros.holdMode });
    if (cfg.profile === "mavros") doc.mavros = { autopilot: cfg.mavros.autopilot, ...(cfg.mavros.holdMode ? { hold_mode: cfg.mavros.holdMode } : {}) };
    const ids = cfg.droneIds ?? Array.from({ length: cfg.drones }, (_, i) => `drone_${i}`);
    doc.drones = ids.map((id) => {
      const own = cfg.perDrone?.[id];
      if (!own) return id;
      const { intentTopic, ...names } = own;
      return { id, ...names, ...(intentTopic !== undefined ? { intent_topic: intentTopic } : {}) };
    });
    doc.topics = { ...profile.defaultTopics, ...cfg.topics };
    doc.services = { ...profile.defaultServices, ...cfg.services };
    doc.intent_topic = cfg.intentTopic ?? intentReaderFor(cfg.profile).defaultTopic;
    doc.qos = Object.fromEntries(TOPIC_KEYS.map((k) => [k, cfg.qos?.[k] ?? DEFAULT_QOS]));
  } else {
    doc.drones = cfg.drones;
    if (cfg.scenario) doc.scenario = cfg.scenario;
    if (cfg.seed !== undefined) doc.seed = cfg.seed;
  }
  if (cfg.rateHz !== undefined) doc.rate = cfg.rateHz;
  doc.relay_id = cfg.relayId;
  doc.log_level = cfg.logLevel;
  doc.link = { outbox: { dir: cfg.outbox.dir, max_bytes: cfg.outbox.maxBytes, fsync_ms: cfg.outbox.fsyncMs }, batch_window_ms: cfg.batchWindowMs, max_frames_per_second: cfg.maxFramesPerSecond };
  doc.health = { enabled: cfg.health.enabled, host: cfg.health.host, port: cfg.health.port, grace_ms: cfg.health.graceMs };
  const source = cfg.configFile ? `# effective configuration (flags > environment > ${cfg.configFile} > defaults)\n` : "# effective configuration (flags > environment > defaults)\n";
  return source + stringifyYaml(doc);
}

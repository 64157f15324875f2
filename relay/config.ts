/**
 * Relay configuration: command-line flags, environment and an optional JSON file, merged and
 * validated into one `RelayConfig`. Pure apart from the injected file reader, so every rule is
 * unit-testable and cli.ts stays a thin shell.
 *
 * Precedence, highest first: flags, environment (RELAY_EDGE, RELAY_FLEET, RELAY_TOKEN), the
 * `--config` file, defaults. The file uses the flags' names as keys (plus `topics`).
 */
import { parseArgs } from "node:util";
import { DRONE_ID_RE, FLEET_ID_RE } from "../edge/protocol";
import { isLogLevel, type LogLevel } from "./log";
import { DEFAULT_SERVICES, DEFAULT_TOPICS, type ServiceTemplates, type TopicTemplates } from "./ros2";
import type { SourceKind } from "./source";

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
  topics: Partial<TopicTemplates> | undefined;
  /** ros2: service name templates (config file only). */
  services: Partial<ServiceTemplates> | undefined;
  logLevel: LogLevel;
}

export type ParseResult =
  | { kind: "help" }
  | { kind: "error"; message: string }
  | { kind: "ok"; config: RelayConfig };

export const MAX_DRONES = 20_000;

export const USAGE = `Usage: npm run relay -- --edge URL --fleet F --token T --source sim|ros2 [options]

Bridges a drone fleet (ROS 2 or simulated) to the edge over one WebSocket.

Required (flag, environment or config file):
  --edge URL          edge base URL, http(s):// or ws(s)://            (env RELAY_EDGE)
  --fleet F           fleet id                                          (env RELAY_FLEET)
  --token T           relay token; prefer --token-file, flags show in ps (env RELAY_TOKEN)
  --token-file PATH   read the token from a file (first line, trimmed)
  --source sim|ros2   simulated fleet or ROS 2 topics via rclnodejs

Options:
  --drones N          number of drones, 1..${MAX_DRONES} (default 5)
  --rate HZ           samples per drone per second, 1..10 (sim default 1; ros2 default: on each fix)
  --drone-ids A,B     ros2: drone ids / topic namespaces (default drone_0..drone_{N-1})
  --relay-id ID       identity announced to the edge (default hostname-pid)
  --seed N            sim: random seed (default 1)
  --log-level L       debug|info|warn|error (default info)
  --config FILE       JSON file with the same keys as the flags, e.g. {"edge": "...", "token-file": "..."},
                      plus "topics": {"fix": "/{drone}/fix", ...} and
                      "services": {"modify_waypoint": "/{drone}/modify_waypoint", ...} for ros2
  -h, --help          show this help

Precedence: flags > environment > config file > defaults.
Logs are JSON lines on stderr; a stats line every 10 s. SIGINT/SIGTERM stop cleanly.`;

const FLAG_KEYS = [
  "edge",
  "fleet",
  "token",
  "token-file",
  "source",
  "drones",
  "rate",
  "drone-ids",
  "relay-id",
  "seed",
  "log-level",
] as const;
type FlagKey = (typeof FLAG_KEYS)[number];
/** One layer of settings, values as strings (the file's numbers and arrays are stringified). */
type Layer = Partial<Record<FlagKey, string>>;

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
    const options = Object.fromEntries(FLAG_KEYS.map((k) => [k, { type: "string" as const }])) as Record<FlagKey, { type: "string" }>;
    const { values } = parseArgs({
      args: argv,
      options: { ...options, config: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) return { kind: "help" };
    const flags: Layer = {};
    for (const k of FLAG_KEYS) {
      const v = values[k];
      if (typeof v === "string") flags[k] = v;
    }
    const file = typeof values.config === "string" ? readConfigFile(values.config, deps.readFile) : { layer: {}, topics: undefined, services: undefined };
    const env: Layer = {};
    if (deps.env.RELAY_EDGE) env.edge = deps.env.RELAY_EDGE;
    if (deps.env.RELAY_FLEET) env.fleet = deps.env.RELAY_FLEET;
    if (deps.env.RELAY_TOKEN) env.token = deps.env.RELAY_TOKEN;
    return { kind: "ok", config: { ...resolve([flags, env, file.layer], file.topics, deps), services: file.services } };
  } catch (err) {
    if (err instanceof UsageError) return { kind: "error", message: err.message };
    // node:util parseArgs reports unknown flags and missing values as TypeErrors with a code.
    if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS")) {
      return { kind: "error", message: err.message };
    }
    throw err;
  }
}

function readConfigFile(
  path: string,
  readFile: (p: string) => string,
): { layer: Layer; topics: Partial<TopicTemplates> | undefined; services: Partial<ServiceTemplates> | undefined } {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new UsageError(`cannot read --config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new UsageError(`--config ${path} must hold a JSON object`);
  const layer: Layer = {};
  let topics: Partial<TopicTemplates> | undefined;
  let services: Partial<ServiceTemplates> | undefined;
  for (const [k, v] of Object.entries(data)) {
    if (k === "topics") {
      topics = readTemplates(v, path, "topic", DEFAULT_TOPICS);
      continue;
    }
    if (k === "services") {
      services = readTemplates(v, path, "service", DEFAULT_SERVICES);
      continue;
    }
    if (!(FLAG_KEYS as readonly string[]).includes(k)) throw new UsageError(`--config ${path}: unknown key "${k}"`);
    const key = k as FlagKey;
    if (typeof v === "string") layer[key] = v;
    else if (typeof v === "number") layer[key] = String(v);
    else if (key === "drone-ids" && Array.isArray(v) && v.every((x) => typeof x === "string")) layer[key] = v.join(",");
    else throw new UsageError(`--config ${path}: "${k}" must be a ${key === "drone-ids" ? "list of strings" : "string or number"}`);
  }
  return { layer, topics, services };
}

/** `topics` or `services` of the config file: known keys, strings containing {drone}. */
function readTemplates<K extends string>(v: unknown, path: string, what: "topic" | "service", defaults: Record<K, string>): Partial<Record<K, string>> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new UsageError(`--config ${path}: "${what}s" must be an object`);
  const out: Partial<Record<K, string>> = {};
  for (const [k, t] of Object.entries(v)) {
    if (!Object.hasOwn(defaults, k)) {
      throw new UsageError(`--config ${path}: unknown ${what} "${k}" (expected ${Object.keys(defaults).join(", ")})`);
    }
    if (typeof t !== "string" || !t.includes("{drone}")) throw new UsageError(`--config ${path}: ${what} "${k}" must be a string containing {drone}`);
    out[k as K] = t;
  }
  return out;
}

function resolve(layers: Layer[], topics: Partial<TopicTemplates> | undefined, deps: ParseDeps): Omit<RelayConfig, "services"> {
  const pick = (k: FlagKey): string | undefined => {
    for (const l of layers) if (l[k] !== undefined) return l[k];
    return undefined;
  };
  const required = (k: FlagKey, env?: string): string => {
    const v = pick(k);
    if (v === undefined || v === "") throw new UsageError(`missing --${k}${env ? ` (or ${env})` : ""}`);
    return v;
  };

  const edge = required("edge", "RELAY_EDGE");
  let url: URL;
  try {
    url = new URL(edge);
  } catch {
    throw new UsageError(`--edge must be a URL, got "${edge}"`);
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) throw new UsageError(`--edge must be http(s):// or ws(s)://, got ${url.protocol}`);

  const fleet = required("fleet", "RELAY_FLEET");
  if (!FLEET_ID_RE.test(fleet)) throw new UsageError(`--fleet must match ${FLEET_ID_RE}, got "${fleet}"`);

  const token = resolveToken(layers, deps.readFile);

  const source = required("source");
  if (source !== "sim" && source !== "ros2") throw new UsageError(`--source must be sim or ros2, got "${source}"`);

  const dronesRaw = pick("drones");
  const drones = dronesRaw === undefined ? 5 : Number(dronesRaw);
  if (!Number.isInteger(drones) || drones < 1 || drones > MAX_DRONES) {
    throw new UsageError(`--drones must be an integer in 1..${MAX_DRONES}, got "${dronesRaw}"`);
  }

  const rateRaw = pick("rate");
  const rate = rateRaw === undefined ? undefined : Number(rateRaw);
  if (rate !== undefined && !(rate >= 1 && rate <= 10)) throw new UsageError(`--rate must be a number in 1..10, got "${rateRaw}"`);

  const idsRaw = pick("drone-ids");
  let droneIds: string[] | undefined;
  if (idsRaw !== undefined) {
    droneIds = idsRaw.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
    const bad = droneIds.find((id) => !DRONE_ID_RE.test(id));
    if (bad !== undefined) throw new UsageError(`--drone-ids: "${bad}" is not a valid drone id (${DRONE_ID_RE})`);
    if (droneIds.length === 0 || droneIds.length > MAX_DRONES) throw new UsageError(`--drone-ids must list 1..${MAX_DRONES} ids`);
    if (source === "sim") throw new UsageError("--drone-ids is for --source ros2; the simulator names its drones drone_0..");
  }

  const relayId = pick("relay-id") ?? deps.defaultRelayId.slice(0, 128);
  if (relayId.length < 1 || relayId.length > 128) throw new UsageError("--relay-id must be 1..128 characters");

  const seedRaw = pick("seed");
  const seed = seedRaw === undefined ? undefined : Number(seedRaw);
  if (seed !== undefined && !Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got "${seedRaw}"`);

  const logLevel = pick("log-level") ?? "info";
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be debug, info, warn or error, got "${logLevel}"`);

  return {
    edge,
    fleet,
    token,
    source,
    drones: droneIds?.length ?? drones,
    rateHz: rate ?? (source === "sim" ? 1 : undefined),
    relayId,
    droneIds,
    seed,
    topics,
    logLevel,
  };
}

/** The highest layer that names a token (inline or file) wins; one layer may not name both. */
function resolveToken(layers: Layer[], readFile: (p: string) => string): string {
  for (const l of layers) {
    if (l.token !== undefined && l["token-file"] !== undefined) throw new UsageError("give either --token or --token-file, not both");
    if (l.token !== undefined) {
      if (l.token.trim() === "") throw new UsageError("--token is empty");
      return l.token.trim();
    }
    const path = l["token-file"];
    if (path !== undefined) {
      let text: string;
      try {
        text = readFile(path);
      } catch (err) {
        throw new UsageError(`cannot read --token-file ${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const token = text.split(/\r?\n/, 1)[0]?.trim() ?? "";
      if (token === "") throw new UsageError(`--token-file ${path} is empty`);
      return token;
    }
  }
  throw new UsageError("missing --token (or --token-file, or RELAY_TOKEN)");
}

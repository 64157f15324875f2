/**
 * `npm run relay -- doctor [--config FILE]`: checks what a field relay needs, one line each, and
 * says what to fix. Exit 0 when everything passes, 1 otherwise.
 *
 *   configuration     parses and validates (same rules as running the relay)
 *   Node.js           ≥ 22.12
 *   ROS_DISTRO        set (ROS 2 sourced)                                  ┐ source ros2 only
 *   rclnodejs         loadable (built against that ROS 2)                   │
 *   interface types   each type the profile uses (rclnodejs.require, or    │
 *                     the ament index on disk when rclnodejs is missing)   │
 *   topics, services  visible on the ROS graph (only when rclnodejs loads) ┘
 *   outbox            directory writable (when configured)
 *   edge              GET /health answers
 *   token             GET /v1/fleets/F/status with it: 200 valid, 401/403 explained
 *
 * Everything it touches is injected (environment, rclnodejs loader, fetch, file system), so it
 * runs, and is tested, on a machine without ROS 2: those checks then fail with a clear line
 * instead of a stack trace.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ParseResult, RelayConfig } from "../../config";
import { getProfile } from "./profiles/index";
import { loadRclnodejs, missingInterfaces, profileTypes, Ros2Source, type RclLike, type RosProfile, type ServiceKey, type TopicKey } from "./ros2";

export type CheckStatus = "pass" | "fail" | "skip";
export interface CheckResult {
  status: CheckStatus;
  title: string;
  /** What to do about a failure (or why a check was skipped). */
  fix?: string;
}

export interface DoctorDeps {
  env: Record<string, string | undefined>;
  /** The configuration as `parseRelayArgs` returned it for the arguments after `doctor`. */
  parsed: ParseResult;
  loadRcl?: () => Promise<RclLike>;
  fetch?: typeof fetch;
  nodeVersion?: string;
  /** How long to let ROS discovery run before reading the graph, ms. Default 2,000. */
  discoveryMs?: number;
  /** Per HTTP request, ms. Default 5,000. */
  httpTimeoutMs?: number;
}

const MIN_NODE = [22, 12] as const;

/** Run every check in order; never throws. */
export async function runDoctor(deps: DoctorDeps): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const cfg = deps.parsed.kind === "ok" || deps.parsed.kind === "print-config" ? deps.parsed.config : null;
  if (cfg) {
    const what = cfg.source === "ros2" ? `source ros2, profile ${cfg.profile}, ${cfg.drones} drone(s)` : `source sim, ${cfg.drones} drone(s)`;
    out.push({ status: "pass", title: `configuration valid${cfg.configFile ? ` (${cfg.configFile})` : ""}: ${what}, fleet ${cfg.fleet}` });
  } else {
    const message = deps.parsed.kind === "error" ? deps.parsed.message : "no configuration";
    out.push({
      status: "fail",
      title: `configuration: ${message}`,
      fix: "pass --config FILE (see deploy/relay.example.yaml) or set RELAY_EDGE, RELAY_FLEET, RELAY_TOKEN_FILE and RELAY_SOURCE",
    });
  }

  out.push(checkNode(deps.nodeVersion ?? process.versions.node));

  if (cfg?.source === "sim") {
    out.push({ status: "skip", title: "ROS 2 checks", fix: "source sim does not use ROS 2" });
  } else {
    out.push(...(await checkRos(cfg, deps)));
  }

  if (cfg) {
    out.push(checkOutbox(cfg));
    out.push(...(await checkEdge(cfg, deps)));
  } else {
    out.push({ status: "skip", title: "edge and token", fix: "need a valid configuration first" });
  }
  return out;
}

export function formatReport(results: CheckResult[]): string {
  const mark: Record<CheckStatus, string> = { pass: "✓", fail: "✗", skip: "-" };
  const lines = ["dronefleet relay doctor"];
  for (const r of results) {
    lines.push(`${mark[r.status]} ${r.title}`);
    if (r.fix) lines.push(`    ${r.status === "fail" ? "fix: " : ""}${r.fix}`);
  }
  const failed = results.filter((r) => r.status === "fail").length;
  lines.push(failed === 0 ? "All checks passed." : `${failed} problem${failed === 1 ? "" : "s"} found.`);
  return lines.join("\n") + "\n";
}

function checkNode(version: string): CheckResult {
  const [major = 0, minor = 0] = version.split(".").map((n) => Number.parseInt(n, 10));
  const ok = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  return ok
    ? { status: "pass", title: `Node.js ${version}` }
    : { status: "fail", title: `Node.js ${version} is too old`, fix: `install Node.js ≥ ${MIN_NODE.join(".")} (e.g. from NodeSource or nvm)` };
}

async function checkRos(cfg: RelayConfig | null, deps: DoctorDeps): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const env = deps.env;
  const profile: RosProfile = getProfile(cfg?.profile ?? "default", { autopilot: cfg?.mavros.autopilot, holdMode: cfg?.mavros.holdMode });
  const distro = env.ROS_DISTRO;
  if (distro) {
    out.push({ status: "pass", title: `ROS 2 sourced (ROS_DISTRO=${distro})` });
  } else {
    out.push({
      status: "fail",
      title: "ROS_DISTRO is not set: ROS 2 is not sourced in this shell",
      fix: "source /opt/ros/<distro>/setup.bash (humble, jazzy) and your interface workspace's install/setup.bash; the service does this in deploy/relay-start.sh",
    });
  }

  let rcl: RclLike | null = null;
  try {
    rcl = await (deps.loadRcl ?? (() => loadRclnodejs()))();
    out.push({ status: "pass", title: "rclnodejs loads" });
  } catch (err) {
    out.push({
      status: "fail",
      title: `rclnodejs cannot be loaded: ${firstLine(err)}`,
      fix: "with ROS 2 sourced, run npm install in the relay's directory (rclnodejs is an optional dependency built against ROS 2)",
    });
  }

  const types = profileTypes(profile);
  if (rcl && typeof rcl.require === "function") {
    out.push(interfaceResult(profile, types, missingInterfaces(rcl, types), "rclnodejs"));
  } else if (env.AMENT_PREFIX_PATH) {
    const prefixes = env.AMENT_PREFIX_PATH.split(":").filter(Boolean);
    const missing = types.filter((t) => !interfaceOnDisk(prefixes, t));
    out.push(interfaceResult(profile, types, missing, "the ament index (AMENT_PREFIX_PATH)"));
  } else {
    out.push({ status: "skip", title: `interface types not checked (ROS 2 not sourced); profile ${profile.name} needs ${types.join(", ")}` });
  }

  if (!rcl) {
    out.push({ status: "skip", title: "topics and services on the ROS graph", fix: "needs rclnodejs" });
  } else if (!cfg) {
    out.push({ status: "skip", title: "topics and services on the ROS graph", fix: "needs a valid configuration (drone list)" });
  } else {
    out.push(...(await checkGraph(rcl, cfg, profile, deps.discoveryMs ?? 2000)));
  }
  return out;
}

function interfaceResult(profile: RosProfile, types: string[], missing: string[], how: string): CheckResult {
  if (missing.length === 0) return { status: "pass", title: `interface types installed (${types.length}, checked with ${how})` };
  const fixes = [...new Set(missing.map((t) => profile.installHint(t)))];
  return { status: "fail", title: `interface types missing: ${missing.join(", ")}`, fix: fixes.join("; ") };
}

/** `pkg/msg/Name` present under some prefix's share/ (as .idl, .msg or .srv). */
function interfaceOnDisk(prefixes: string[], type: string): boolean {
  const [pkg, kind, name] = type.split("/");
  if (!pkg || !kind || !name) return false;
  return prefixes.some((p) => [".idl", `.${kind}`].some((ext) => existsSync(join(p, "share", pkg, kind, `${name}${ext}`))));
}

async function checkGraph(rcl: RclLike, cfg: RelayConfig, profile: RosProfile, discoveryMs: number): Promise<CheckResult[]> {
  const ids = cfg.droneIds ?? Array.from({ length: cfg.drones }, (_, i) => `drone_${i}`);
  // Only for its name resolution (templates, per-drone names); it is never started.
  const names = new Ros2Source({ droneIds: ids, topics: cfg.topics, services: cfg.services, profile, perDrone: cfg.perDrone });
  let topics: Set<string>;
  let services: Set<string>;
  try {
    await rcl.init();
    try {
      const node = rcl.createNode("dronefleet_relay_doctor");
      try {
        if (typeof node.getTopicNamesAndTypes !== "function" || typeof node.getServiceNamesAndTypes !== "function") {
          return [{ status: "skip", title: "topics and services on the ROS graph", fix: "this rclnodejs cannot list the graph" }];
        }
        // Discovery is asynchronous: give other nodes' announcements time to arrive.
        await new Promise((r) => setTimeout(r, discoveryMs));
        topics = new Set(node.getTopicNamesAndTypes().map((t) => t.name));
        services = new Set(node.getServiceNamesAndTypes().map((t) => t.name));
      } finally {
        node.destroy();
      }
    } finally {
      await rcl.shutdown();
    }
  } catch (err) {
    return [{ status: "fail", title: `could not read the ROS graph: ${firstLine(err)}`, fix: "check that ROS 2 is sourced and ROS_DOMAIN_ID matches the ground station" }];
  }
  const topicKeys: TopicKey[] = ["fix", "battery", "velocity", "state"];
  const serviceKeys: ServiceKey[] = ["emergency_land", "modify_waypoint", "assign_mission", "hold"];
  const missingTopics = ids.flatMap((id) => topicKeys.map((k) => names.topicFor(k, id)).filter((t) => !topics.has(t)));
  const missingServices = [...new Set(ids.flatMap((id) => serviceKeys.map((k) => names.serviceFor(k, id)).filter((s) => !services.has(s))))];
  const list = (xs: string[]): string => (xs.length > 8 ? `${xs.slice(0, 8).join(", ")} and ${xs.length - 8} more` : xs.join(", "));
  const hint =
    profile.name === "mavros"
      ? "start MAVROS per vehicle in its namespace (ros2 launch mavros px4.launch namespace:=<drone>/mavros fcu_url:=…), or set topics/services in the config"
      : "start the drones' nodes, check ROS_DOMAIN_ID, or set topics/services (or per-drone names) in the config";
  return [
    missingTopics.length === 0
      ? { status: "pass", title: `all ${ids.length * topicKeys.length} topics visible` }
      : { status: "fail", title: `topics not on the ROS graph: ${list(missingTopics)}`, fix: hint },
    missingServices.length === 0
      ? { status: "pass", title: "all command services visible" }
      : { status: "fail", title: `services not on the ROS graph: ${list(missingServices)}`, fix: `${hint}; commands to those drones will fail until they appear` },
  ];
}

function checkOutbox(cfg: RelayConfig): CheckResult {
  const dir = cfg.outbox.dir;
  if (dir === null) return { status: "skip", title: "outbox in memory only", fix: "set link.outbox.dir to keep unacknowledged telemetry and results across restarts" };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    return { status: "fail", title: `outbox directory ${dir} is not writable: ${firstLine(err)}`, fix: "create it for the relay's user (the systemd unit's StateDirectory= does)" };
  }
  let owner = "";
  try {
    owner = readFileSync(join(dir, "LOCK"), "utf8").trim();
  } catch {
    // No lock: no relay is using it right now.
  }
  return { status: "pass", title: `outbox directory ${dir} writable${owner ? ` (in use by relay pid ${owner})` : ""}` };
}

/** ws(s) → http(s); the edge's HTTP routes live on the same origin as its relay socket. */
function httpBase(edge: string): string {
  const u = new URL(edge);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.search = "";
  u.hash = "";
  return u.toString().replace(/\/+$/, "");
}

async function checkEdge(cfg: RelayConfig, deps: DoctorDeps): Promise<CheckResult[]> {
  const doFetch = deps.fetch ?? fetch;
  const timeout = deps.httpTimeoutMs ?? 5000;
  const base = httpBase(cfg.edge);
  const t0 = Date.now();
  try {
    const res = await doFetch(`${base}/health`, { signal: AbortSignal.timeout(timeout) });
    await res.body?.cancel();
    if (!res.ok) {
      return [
        { status: "fail", title: `edge ${base}/health answered ${res.status}`, fix: "check the edge URL (is it the Worker's route?) and the deployment (wrangler deploy)" },
        { status: "skip", title: "token", fix: "needs a reachable edge" },
      ];
    }
  } catch (err) {
    return [
      {
        status: "fail",
        title: `edge not reachable at ${base}/health: ${firstLine(err)}`,
        fix: "check the URL, DNS, the site's firewall or proxy, and that the uplink is up",
      },
      { status: "skip", title: "token", fix: "needs a reachable edge" },
    ];
  }
  const out: CheckResult[] = [{ status: "pass", title: `edge reachable (${base}/health in ${Date.now() - t0} ms)` }];
  const mint = `mint one: npm run token -- --fleet ${cfg.fleet} --role relay --ttl 90d (with the edge's AUTH_SECRET), then put it in the token file`;
  try {
    const res = await doFetch(`${base}/v1/fleets/${encodeURIComponent(cfg.fleet)}/status`, {
      headers: { authorization: `Bearer ${cfg.token}` },
      signal: AbortSignal.timeout(timeout),
    });
    const detail = await errorText(res);
    if (res.status === 200) out.push({ status: "pass", title: `token accepted for fleet ${cfg.fleet}` });
    else if (res.status === 401) {
      out.push({ status: "fail", title: `token rejected (401${detail}): expired, malformed, or signed with another secret`, fix: mint });
    } else if (res.status === 403) {
      out.push({ status: "fail", title: `token not allowed for fleet ${cfg.fleet} (403${detail}): wrong fleet or role`, fix: mint });
    } else {
      out.push({ status: "fail", title: `fleet status answered ${res.status}${detail}`, fix: "check the fleet id and the edge's logs (wrangler tail)" });
    }
  } catch (err) {
    out.push({ status: "fail", title: `fleet status request failed: ${firstLine(err)}`, fix: "retry; check the edge's logs (wrangler tail)" });
  }
  return out;
}

/** `: message` from an error body `{code, message}` (or plain text), short. */
async function errorText(res: Response): Promise<string> {
  if (res.ok) {
    await res.body?.cancel();
    return "";
  }
  try {
    const text = (await res.text()).slice(0, 500);
    try {
      const data: unknown = JSON.parse(text);
      if (typeof data === "object" && data !== null) {
        const d = data as Record<string, unknown>;
        const inner = typeof d.error === "object" && d.error !== null ? (d.error as Record<string, unknown>) : d;
        if (typeof inner.message === "string") return `: ${inner.message.slice(0, 200)}`;
      }
    } catch {
      // Not JSON: fall through to the text itself.
    }
    return text.trim() ? `: ${text.trim().slice(0, 200)}` : "";
  } catch {
    // The body could not be read; the status says enough.
    return "";
  }
}

function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : "";
  return (m.split("\n")[0] ?? m) + (m.includes(cause.slice(2, -1)) ? "" : cause);
}

/**
 * `npm run relay -- doctor [--config FILE]`: checks what a field relay needs, one line each, and
 * says what to fix. Exit 0 when everything passes, 1 otherwise.
 *
 *   configuration     parses and validates (same rules as running the relay)
 *   Node.js           ≥ 22.12
 *   ROS 2 sourced     ROS_DISTRO and AMENT_PREFIX_PATH set; else exactly  ┐ source ros2 only
 *                     what to source (rclnodejs is then not even loaded)   │
 *   rclnodejs         installed and built (on disk, without loading it),   │
 *                     then loadable                                        │
 *   interface types   generated JavaScript of each type the profile uses   │
 *                     (rclnodejs.require, or the ament index on disk) and  │
 *                     its package's type-support library on the library    │
 *                     path                                                 │
 *   topics            publishers per topic other than the relay's own      │
 *                     node, QoS compatibility with the relay's              │
 *                     subscription (a best-effort publisher against a      │
 *                     reliable subscription is named as the reason), and   │
 *                     the message rate over a short window                 │
 *   route topics      the same for each drone's route topic (intent.ts,    │
 *                     config intent_topic) with its type; optional, so     │
 *                     one without a publisher is noted, not failed         │
 *   services          servers per service other than the relay's own, and  │
 *                     whether each service type's type support loads (a    │
 *                     client of it is created)                             ┘
 *   outbox            directory writable (when configured)
 *   edge              GET /health answers
 *   token             GET /v1/fleets/F/status with it: 200 valid, 401/403 explained
 *
 * Graph-wide listings (getTopicNamesAndTypes, getServiceNamesAndTypes) are not used: they include
 * the asking process's own subscriptions and clients, and those of a relay running beside it, so
 * every topic would look present. Everything the doctor touches is injected (environment and
 * files through `RosHost`, rclnodejs loader, fetch, waits), so it runs, and is tested, on a
 * machine without ROS 2: those checks then fail with a clear line instead of a stack trace.
 */
import { accessSync, constants, mkdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { ParseResult, RelayConfig } from "../../config";
import { getProfile } from "./profiles/index";
import {
  installProblem,
  inspectRclnodejs,
  loadRclnodejs,
  missingTypeSupport,
  packageOf,
  processHost,
  publisherReliability,
  QOS_PROFILES,
  QOS_RELIABILITY,
  qosMismatch,
  REBUILD_RCLNODEJS,
  rosSourced,
  typeSupportHint,
  typeSupportLibrary,
  type RclEndpointInfo,
  type RclLike,
  type RclNodeLike,
  type RosHost,
} from "./rcl";
import { INTENT_QOS } from "./intent";
import { missingInterfaces, profileTypes, Ros2Source, SERVICE_KEYS, TOPIC_KEYS, type RosProfile, type TopicKey } from "./ros2";

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
  /** Environment, files and the rclnodejs module; default this process with `env`. */
  host?: RosHost;
  /** Loads rclnodejs; called only once ROS 2 is sourced and rclnodejs is built. Default loadRclnodejs(host). */
  loadRcl?: () => Promise<RclLike>;
  fetch?: typeof fetch;
  nodeVersion?: string;
  /** How long to let ROS discovery run before reading the graph, ms. Default 2,000. */
  discoveryMs?: number;
  /** How long messages are counted on each topic, ms. Default 3,000. */
  rateWindowMs?: number;
  /** Waits for discovery and the rate window; tests move the ROS double's time with it. */
  sleep?: (ms: number) => Promise<void>;
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

/** The doctor's own node, and the relay's (a relay may run beside it): neither counts as a peer. */
const DOCTOR_NODE = "dronefleet_relay_doctor";
const RELAY_NODE = "dronefleet_relay";
const OWN_NODES = new Set([DOCTOR_NODE, RELAY_NODE]);

async function checkRos(cfg: RelayConfig | null, deps: DoctorDeps): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const host = deps.host ?? processHost(deps.env);
  const profile: RosProfile = getProfile(cfg?.profile ?? "default", { autopilot: cfg?.mavros.autopilot, holdMode: cfg?.mavros.holdMode });
  const types = profileTypes(profile);
  const needsWorkspace = types.some((t) => packageOf(t) === "dronefleet_interfaces");

  const ros = rosSourced(host, needsWorkspace);
  if (ros.ok) out.push({ status: "pass", title: `ROS 2 sourced (ROS_DISTRO=${ros.distro}, AMENT_PREFIX_PATH=${ros.prefixes.join(":")})` });
  else out.push({ status: "fail", title: ros.problem, fix: ros.fix });

  // rclnodejs on disk first: loading a broken install (or any install, unsourced) destroys it.
  const install = inspectRclnodejs(host);
  const problem = installProblem(install);
  if (problem) out.push({ status: "fail", title: problem.problem, fix: problem.fix });
  else if (install.state === "ok") {
    out.push({ status: "pass", title: `rclnodejs ${install.version ?? ""} built (${relative(install.dir, install.addon)})`.replace("  ", " ") });
  }

  let rcl: RclLike | null = null;
  if (install.state === "missing" || install.state === "unbuilt") {
    out.push({ status: "skip", title: "rclnodejs not loaded", fix: `it is not ${install.state === "missing" ? "installed" : "built"} (see above)` });
  } else if (!ros.ok) {
    out.push({
      status: "skip",
      title: "rclnodejs not loaded",
      fix: "ROS 2 is not sourced: loading rclnodejs now would make its loader rebuild its native addon, deleting the working build",
    });
  } else {
    try {
      rcl = await (deps.loadRcl ?? (() => loadRclnodejs(host)))();
      out.push({ status: "pass", title: "rclnodejs loads" });
    } catch (err) {
      out.push({ status: "fail", title: `rclnodejs cannot be loaded: ${firstLine(err)}`, fix: REBUILD_RCLNODEJS });
    }
  }

  // Interface types: the generated JavaScript, then the type-support library rclnodejs loads
  // when it creates a subscription or client (rclnodejs.require does not).
  let noJs: string[] | null = null;
  if (rcl && typeof rcl.require === "function") {
    const missing = missingInterfaces(rcl, types);
    noJs = missing;
    out.push(interfaceResult(profile, types, missing, "rclnodejs"));
  } else if (ros.ok) {
    const missing = types.filter((t) => !interfaceOnDisk(host, ros.prefixes, t));
    noJs = missing;
    out.push(interfaceResult(profile, types, missing, "the ament index (AMENT_PREFIX_PATH)"));
  } else {
    out.push({ status: "skip", title: `interface types not checked (ROS 2 not sourced); profile ${profile.name} needs ${types.join(", ")}` });
  }
  const noLib = ros.ok ? missingTypeSupport(host, types) : [];
  if (ros.ok && host.platform === "linux") {
    if (noLib.length === 0) {
      const pkgs = [...new Set(types.map(packageOf))];
      out.push({ status: "pass", title: `type support libraries found for ${pkgs.join(", ")}` });
    }
    for (const pkg of noLib) out.push({ status: "fail", title: `type support library missing: ${typeSupportLibrary(pkg)} (${pkg})`, fix: typeSupportHint(host, pkg) });
  }
  const unusable = new Set([...(noJs ?? []), ...types.filter((t) => noLib.includes(packageOf(t)))]);

  if (!rcl) {
    out.push({ status: "skip", title: "topics and services on the ROS graph", fix: "needs rclnodejs" });
  } else if (!cfg) {
    out.push({ status: "skip", title: "topics and services on the ROS graph", fix: "needs a valid configuration (drone list)" });
  } else {
    out.push(...(await checkGraph(rcl, cfg, profile, host, unusable, deps)));
  }
  return out;
}

function interfaceResult(profile: RosProfile, types: string[], missing: string[], how: string): CheckResult {
  if (missing.length === 0) return { status: "pass", title: `interface types generated (${types.length}, checked with ${how})` };
  // One hint per package: every type of a package is fixed by the same install.
  const fixes = [...new Set(missing.map(packageOf))].map((pkg) => profile.installHint(missing.find((t) => packageOf(t) === pkg) ?? pkg));
  return { status: "fail", title: `interface types missing: ${missing.join(", ")}`, fix: [...new Set(fixes)].join("; ") };
}

/** `pkg/msg/Name` present under some prefix's share/ (as .idl, .msg or .srv). */
function interfaceOnDisk(host: RosHost, prefixes: string[], type: string): boolean {
  const [pkg, kind, name] = type.split("/");
  if (!pkg || !kind || !name) return false;
  return prefixes.some((p) => [".idl", `.${kind}`].some((ext) => host.exists(join(p, "share", pkg, kind, `${name}${ext}`))));
}

type TopicRow = { id: string; key: TopicKey; topic: string; type: string; messages: number };
/** A drone's route topic; `failed` when the doctor could not even subscribe to it. */
type RouteRow = { id: string; topic: string; type: string; messages: number; failed: boolean };

/** Publishers on `topic` other than ours: with their QoS when rclnodejs reports it; null when it cannot count. */
function publishersOf(node: RclNodeLike, topic: string): { count: number; infos: RclEndpointInfo[] | null } | null {
  if (typeof node.getPublishersInfoByTopic === "function") {
    const infos = node.getPublishersInfoByTopic(topic, false).filter((i) => !OWN_NODES.has(String(i.node_name)));
    return { count: infos.length, infos };
  }
  // Neither the doctor's node nor the relay's publishes anything: the count is others' alone.
  if (typeof node.countPublishers === "function") return { count: node.countPublishers(topic), infos: null };
  return null;
}

/** Service name → the other nodes serving it (by node: graph-wide listings include clients). */
function serversOf(node: RclNodeLike): Map<string, string[]> | null {
  if (typeof node.getNodeNamesAndNamespaces !== "function" || typeof node.getServiceNamesAndTypesByNode !== "function") return null;
  const served = new Map<string, string[]>();
  for (const n of node.getNodeNamesAndNamespaces()) {
    if (OWN_NODES.has(n.name)) continue;
    const full = `${n.namespace.replace(/\/+$/, "")}/${n.name}`;
    for (const s of node.getServiceNamesAndTypesByNode(n.name, n.namespace)) served.set(s.name, [...(served.get(s.name) ?? []), full]);
  }
  return served;
}

const list = (xs: string[], max = 8): string => (xs.length > max ? `${xs.slice(0, max).join(", ")} and ${xs.length - max} more` : xs.join(", "));
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

async function checkGraph(rcl: RclLike, cfg: RelayConfig, profile: RosProfile, host: RosHost, unusable: Set<string>, deps: DoctorDeps): Promise<CheckResult[]> {
  const ids = cfg.droneIds ?? Array.from({ length: cfg.drones }, (_, i) => `drone_${i}`);
  // Only for its name resolution (templates, per-drone names, QoS); it is never started.
  const names = new Ros2Source({
    droneIds: ids,
    topics: cfg.topics,
    services: cfg.services,
    profile,
    perDrone: cfg.perDrone,
    qos: cfg.qos,
    ...(cfg.intentTopic !== undefined ? { intentTopic: cfg.intentTopic } : {}),
  });
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const discoveryMs = deps.discoveryMs ?? 2000;
  const windowMs = deps.rateWindowMs ?? 3000;
  const rows: TopicRow[] = ids.flatMap((id) =>
    TOPIC_KEYS.filter((key) => !unusable.has(profile.topicTypes[key])).map((key) => ({ id, key, topic: names.topicFor(key, id), type: profile.topicTypes[key], messages: 0 })),
  );
  const routes: RouteRow[] = ids.flatMap((id) => {
    const topic = names.intentTopicFor(id);
    return topic === null ? [] : [{ id, topic, type: names.intentType, messages: 0, failed: false }];
  });
  const services = [...new Set(ids.flatMap((id) => SERVICE_KEYS.filter((k) => !unusable.has(profile.serviceTypes[k])).map((k) => names.serviceFor(k, id))))];
  const serviceTypes = [...new Set(SERVICE_KEYS.map((k) => profile.serviceTypes[k]).filter((t) => !unusable.has(t)))];

  const out: CheckResult[] = [];
  const pubs = new Map<string, ReturnType<typeof publishersOf>>();
  let served: Map<string, string[]> | null;
  try {
    await rcl.init();
    try {
      const node = rcl.createNode(DOCTOR_NODE);
      try {
        // Subscribe as the relay does (same QoS per topic), so a rate of 0 means the relay gets nothing too.
        for (const row of rows) {
          try {
            node.createSubscription(row.type, row.topic, { qos: QOS_PROFILES[names.qosFor(row.key)] }, () => void row.messages++);
          } catch (err) {
            out.push({ status: "fail", title: `cannot subscribe to ${row.topic} (${row.type}): ${firstLine(err)}`, fix: typeSupportHint(host, packageOf(row.type)) });
          }
        }
        // Routes as the relay subscribes them: reliable (intent.ts INTENT_QOS).
        for (const row of routes) {
          try {
            node.createSubscription(row.type, row.topic, { qos: INTENT_QOS }, () => void row.messages++);
          } catch (err) {
            row.failed = true;
            out.push({
              status: "fail",
              title: `cannot subscribe to route topic ${row.topic} (${row.type}): ${firstLine(err)}`,
              fix: `${typeSupportHint(host, packageOf(row.type))}; or intent_topic: false in the config if this site publishes no routes`,
            });
          }
        }
        rcl.spin(node);
        // Discovery is asynchronous: give other nodes' announcements time to arrive.
        await sleep(discoveryMs);
        const before = rows.map((r) => r.messages);
        const routesBefore = routes.map((r) => r.messages);
        await sleep(windowMs);
        rows.forEach((r, i) => (r.messages -= before[i] ?? 0));
        routes.forEach((r, i) => (r.messages -= routesBefore[i] ?? 0));
        for (const r of rows) pubs.set(r.topic, publishersOf(node, r.topic));
        for (const r of routes) pubs.set(r.topic, publishersOf(node, r.topic));
        served = serversOf(node);
        out.push(...typeSupportLoads(node, serviceTypes, host));
      } finally {
        node.destroy();
      }
    } finally {
      await rcl.shutdown();
    }
  } catch (err) {
    return [{ status: "fail", title: `could not read the ROS graph: ${firstLine(err)}`, fix: "check that ROS 2 is sourced and ROS_DOMAIN_ID matches the ground station" }];
  }

  const hint =
    profile.name === "mavros"
      ? "start MAVROS per vehicle in its namespace (ros2 launch mavros px4.launch namespace:=<drone>/mavros fcu_url:=…), or set topics/services in the config"
      : "start the drones' nodes, check ROS_DOMAIN_ID, or set topics/services (or per-drone names) in the config";
  const seconds = Math.round(windowMs / 100) / 10;
  const noPublisher: TopicRow[] = [];
  const mismatched: { row: TopicRow; reason: string; who: string }[] = [];
  const quiet: TopicRow[] = [];
  const flowing: TopicRow[] = [];
  let uncounted = 0;
  for (const row of rows) {
    const p = pubs.get(row.topic);
    if (p === undefined || p === null) {
      uncounted++;
      if (row.messages > 0) flowing.push(row);
      else quiet.push(row);
      continue;
    }
    if (p.count === 0) {
      noPublisher.push(row);
      continue;
    }
    const qos = names.qosFor(row.key);
    const bad = (p.infos ?? []).map((i) => ({ i, reason: qosMismatch(qos, i) })).filter((x) => x.reason !== null);
    if (row.messages === 0 && bad.length > 0) {
      const who = [...new Set(bad.map((b) => String(b.i.node_name ?? "?")))].join(", ");
      mismatched.push({ row, reason: bad[0]?.reason ?? "", who });
    } else if (row.messages === 0) quiet.push(row);
    else flowing.push(row);
  }

  if (noPublisher.length > 0) {
    const state = noPublisher.filter((r) => r.key === "state");
    const stateNote =
      state.length > 0
        ? `; without its state topic a drone's armed and status are unknown: its samples say state_known false, and the edge's collision avoidance infers airborne from altitude and speed (and gives no right of way for landing or returning)`
        : "";
    out.push({ status: "fail", title: `topics with no publisher (other than the relay's own nodes): ${list(noPublisher.map((r) => r.topic))}`, fix: hint + stateNote });
  }
  for (const { row, reason, who } of mismatched.slice(0, 8)) {
    const qos = names.qosFor(row.key);
    out.push({
      status: "fail",
      title: `${row.topic}: best-effort publisher (${who}) but the relay subscribes ${QOS_RELIABILITY[qos]} (qos.${row.key}: ${qos}): ${reason}, so nothing arrives`,
      fix: `set qos.${row.key}: sensor_data in the relay config (best effort; it matches reliable and best-effort publishers), or remove the override`,
    });
  }
  if (mismatched.length > 8) out.push({ status: "fail", title: `${mismatched.length - 8} more topics with the same QoS mismatch` });
  if (quiet.length > 0) {
    out.push({
      status: "fail",
      title: `topics with a publisher but no message in ${seconds} s: ${list(quiet.map((r) => r.topic))}`,
      fix: "the publisher is idle, or its QoS does not match the relay's subscription; check with ros2 topic info -v <topic> and ros2 topic hz <topic>",
    });
  }
  if (flowing.length > 0) {
    const rates = flowing.map((r) => {
      const p = pubs.get(r.topic);
      const who = p?.infos ? ` (${plural(p.count, "publisher")}, ${[...new Set(p.infos.map(publisherReliability))].join("/")})` : "";
      return `${r.topic} ${(r.messages / Math.max(0.001, windowMs / 1000)).toFixed(1)} Hz${who}`;
    });
    const of = flowing.length === rows.length ? `all ${rows.length}` : `${flowing.length} of ${rows.length}`;
    out.push({ status: "pass", title: `${of} topics receive messages: ${list(rates)}` });
  }
  if (uncounted > 0) out.push({ status: "skip", title: `publishers not counted on ${plural(uncounted, "topic")}`, fix: "this rclnodejs has neither getPublishersInfoByTopic nor countPublishers" });
  out.push(...routeResults(routes, pubs, windowMs));

  if (served === null) {
    out.push({ status: "skip", title: "command services not checked", fix: "this rclnodejs cannot list the services each node serves" });
  } else {
    const missing = services.filter((s) => (served?.get(s) ?? []).length === 0);
    out.push(
      missing.length === 0
        ? { status: "pass", title: `all ${plural(services.length, "command service")} served by another node` }
        : {
            status: "fail",
            title: `services with no server (other than the relay's own clients): ${list(missing)}`,
            fix: `${hint}; commands to those drones will fail until they appear`,
          },
    );
  }
  return out;
}

/**
 * The route topics: listed with type, publishers and rate like the others. A route is optional
 * (without one the edge predicts the drone from its own records and dead reckoning), and one sent
 * only when it changes may well not come within the window, so silence is no failure; a
 * best-effort publisher is, since the relay subscribes routes reliably and would never hear it.
 */
function routeResults(routes: RouteRow[], pubs: Map<string, ReturnType<typeof publishersOf>>, windowMs: number): CheckResult[] {
  const rows = routes.filter((r) => !r.failed);
  if (rows.length === 0) return [];
  const type = rows[0]?.type ?? "";
  const out: CheckResult[] = [];
  const heard: string[] = [];
  const none: string[] = [];
  const uncounted: string[] = [];
  for (const r of rows) {
    const p = pubs.get(r.topic);
    const hz = r.messages > 0 ? `, ${(r.messages / Math.max(0.001, windowMs / 1000)).toFixed(1)} Hz` : "";
    if (p === undefined || p === null) {
      if (r.messages > 0) heard.push(`${r.topic} (publishers not counted${hz})`);
      else uncounted.push(r.topic);
      continue;
    }
    if (p.count === 0) {
      none.push(r.topic);
      continue;
    }
    const bad = (p.infos ?? []).filter((i) => qosMismatch("default", i) !== null);
    if (r.messages === 0 && bad.length > 0) {
      const who = [...new Set(bad.map((i) => String(i.node_name ?? "?")))].join(", ");
      out.push({
        status: "fail",
        title: `route topic ${r.topic}: best-effort publisher (${who}) but the relay subscribes routes reliable: ${qosMismatch("default", bad[0]!) ?? ""}, so no route arrives`,
        fix: "publish the route with a reliable QoS (a route sent once must not be lost), e.g. rclpy's default profile",
      });
      continue;
    }
    const kinds = p.infos ? `, ${[...new Set(p.infos.map(publisherReliability))].join("/")}` : "";
    heard.push(`${r.topic} (${plural(p.count, "publisher")}${kinds}${hz})`);
  }
  if (heard.length > 0) out.push({ status: "pass", title: `route topics (${type}) with a publisher: ${list(heard)}` });
  if (none.length > 0) {
    out.push({
      status: "skip",
      title: `route topics (${type}) with no publisher: ${list(none)}`,
      fix: "optional: without its route the edge predicts a drone from its own records and dead reckoning; publish the remaining route there, or set intent_topic (or a drone's own) to where it is published, or intent_topic: false",
    });
  }
  if (uncounted.length > 0) out.push({ status: "skip", title: `route topics (${type}), publishers not counted: ${list(uncounted)}`, fix: "this rclnodejs has neither getPublishersInfoByTopic nor countPublishers" });
  return out;
}

/**
 * Create (and destroy) one client per service type: rclnodejs loads the type's support library
 * then, which is what a command needs and what rclnodejs.require does not check.
 */
function typeSupportLoads(node: RclNodeLike, types: string[], host: RosHost): CheckResult[] {
  const out: CheckResult[] = [];
  let loaded = 0;
  types.forEach((type, i) => {
    try {
      const client = node.createClient(type, `/${DOCTOR_NODE}/type_support_probe_${i}`);
      node.destroyClient(client);
      loaded++;
    } catch (err) {
      const message = firstLine(err);
      const pkg = packageOf(type);
      const onDisk = missingTypeSupport(host, [type]).length === 0;
      const fix = /cannot open shared object|typesupport/i.test(message) ? typeSupportHint(host, pkg, onDisk) : REBUILD_RCLNODEJS;
      out.push({ status: "fail", title: `type support for ${type} does not load: ${message}`, fix });
    }
  });
  if (loaded > 0 && loaded === types.length) out.push({ status: "pass", title: `type support loads for ${plural(loaded, "service type")} (a client of each was created)` });
  return out;
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

/**
 * rclnodejs, and getting it loaded on a ground station without harm: the subset of its 2.x API the
 * relay uses (`RclLike`: tests inject a double with the same surface), QoS profiles and their
 * matching rule, and the checks that run before anything touches it.
 *
 * Why the checks come first. rclnodejs's native loader, when its addon does not load (ROS 2 not
 * sourced: librcl.so is not on the library path), runs `npm run rebuild`, whose `node-gyp clean`
 * deletes the working build before the rebuild fails for the same reason; afterwards even a
 * sourced shell finds no rclnodejs. So: nothing imports rclnodejs unless ROS_DISTRO and
 * AMENT_PREFIX_PATH say ROS 2 is sourced (`rosSourced`), and an install whose build never happened
 * (npm's `yes=false` makes its install step's `npx rimraf` fail while `npm ci` exits 0) is named as
 * such (`inspectRclnodejs`) instead of being loaded. And `rclnodejs.require` only loads an
 * interface's generated JavaScript, not its type-support library (`lib<pkg>__rosidl_typesupport_c.so`,
 * loaded when a subscription or client is created), so that library is looked for on the paths the
 * sourced setup scripts add (`missingTypeSupport`).
 *
 * Everything outside the process (environment, files, the module itself) comes through `RosHost`,
 * so these checks are tested on a machine without ROS 2.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

// ------------------------------------------------------------------ the rclnodejs surface we use

/** A subscription handle; opaque to us (rclnodejs returns a Subscription object). */
export type RclSubscriptionLike = object;

export interface RclTimerLike {
  cancel(): void;
}

/** A service client (rclnodejs Client). */
export interface RclClientLike {
  /** Resolves true once a server is available, false after `timeoutMs` without one. */
  waitForService(timeoutMs?: number): Promise<boolean>;
  /**
   * Plain-object request; the callback gets the plain-object response. No timeout of its own: the
   * callback stays in the client's map until a response arrives (see `forgetRequest`).
   */
  sendRequest(request: object, callback: (response: unknown) => void): void;
  /** Newer rclnodejs: rejects on abort and removes its own entry from that map. */
  sendRequestAsync?(request: object, options?: { signal?: AbortSignal }): Promise<unknown>;
}

/** Subscription options as rclnodejs takes them; `qos` is a profile name such as "qos_profile_sensor_data". */
export type RclSubscriptionOptions = { qos?: string };

/** rmw_qos_profile_t as rclnodejs reports it in endpoint info (enums as numbers). */
export type RclQosInfo = { reliability?: unknown; durability?: unknown; depth?: unknown; history?: unknown };

/** One publisher or subscription on a topic (rclnodejs Node#getPublishersInfoByTopic). */
export type RclEndpointInfo = { node_name?: unknown; node_namespace?: unknown; topic_type?: unknown; qos_profile?: RclQosInfo };

export type NamesAndTypes = { name: string; types: string[] }[];

export interface RclNodeLike {
  /**
   * Callback gets a plain JS object shaped like the message (rclnodejs's default delivery). Like
   * rclnodejs, options may be left out: `(type, topic, callback)`.
   */
  createSubscription(
    typeClass: string,
    topic: string,
    optionsOrCallback: RclSubscriptionOptions | ((msg: unknown) => void),
    callback?: (msg: unknown) => void,
  ): RclSubscriptionLike;
  /** Period in nanoseconds as a BigInt, as rclnodejs requires. */
  createTimer(periodNs: bigint, callback: () => void): RclTimerLike;
  /** A client for `serviceName` of type `typeClass` (e.g. "std_srvs/srv/Trigger"). */
  createClient(typeClass: string, serviceName: string): RclClientLike;
  destroyClient(client: RclClientLike): void;
  destroy(): void;
  // The graph, as this node sees it. Graph-wide listings include this node's own endpoints.
  getTopicNamesAndTypes?(): NamesAndTypes;
  getServiceNamesAndTypes?(): NamesAndTypes;
  countPublishers?(topic: string): number;
  getPublishersInfoByTopic?(topic: string, noDemangle: boolean): RclEndpointInfo[];
  getNodeNamesAndNamespaces?(): { name: string; namespace: string }[];
  /** The services a node serves (its servers; its clients are getClientNamesAndTypesByNode). */
  getServiceNamesAndTypesByNode?(nodeName: string, namespace?: string): NamesAndTypes;
}

export interface RclLike {
  /**
   * rclnodejs.require("pkg/msg/Name"): the generated interface class; throws when the interface
   * is not installed or its JavaScript was never generated. Says nothing about its type support.
   */
  require?(name: string): unknown;
  init(): Promise<void>;
  createNode(name: string): RclNodeLike;
  spin(node: RclNodeLike): void;
  shutdown(): void | Promise<void>;
}

function isRclLike(m: unknown): m is RclLike {
  if (typeof m !== "object" && typeof m !== "function") return false;
  if (m === null) return false;
  const r = m as Record<string, unknown>;
  return ["init", "createNode", "spin", "shutdown"].every((k) => typeof r[k] === "function");
}

/**
 * After a request timed out or was abandoned: drop its callback from rclnodejs 2.2's
 * `Client#_sequenceNumberToCallbackMap`, where it would otherwise stay for the client's life (one
 * entry per unanswered request to a hanging service). The map is private to rclnodejs, so it is
 * looked up defensively and left alone when absent.
 */
export function forgetRequest(client: RclClientLike, callback: (response: unknown) => void): void {
  const map: unknown = (client as { _sequenceNumberToCallbackMap?: unknown })._sequenceNumberToCallbackMap;
  if (!(map instanceof Map)) return;
  for (const [seq, cb] of map) if (cb === callback) map.delete(seq);
}

// ------------------------------------------------------------------ QoS

/** Subscription QoS per topic, as the relay config names them (rclnodejs QoS.profile…). */
export const QOS_NAMES = ["sensor_data", "default", "system_default"] as const;
export type QosName = (typeof QOS_NAMES)[number];

/** The rclnodejs profile string for each (QoS.profileSensorData, QoS.profileDefault, …). */
export const QOS_PROFILES: Readonly<Record<QosName, string>> = {
  sensor_data: "qos_profile_sensor_data",
  default: "qos_profile_default",
  system_default: "qos_profile_system_default",
};

/**
 * Sensor data (best effort, volatile) matches reliable and best-effort publishers alike, so it is
 * the default for every topic: a sensor driver (and MAVROS) publishes best effort, and a reliable
 * subscription would never receive from it.
 */
export const DEFAULT_QOS: QosName = "sensor_data";

/** Reliability each profile asks for (system_default: reliable with Cyclone DDS and Fast DDS). */
export const QOS_RELIABILITY: Readonly<Record<QosName, "reliable" | "best effort">> = {
  sensor_data: "best effort",
  default: "reliable",
  system_default: "reliable",
};

/** rmw_qos_reliability_policy_t: RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT. */
const RMW_BEST_EFFORT = 2;
const RMW_RELIABLE = 1;

/** A publisher's reliability from its endpoint info, as words ("unknown" when not reported). */
export function publisherReliability(info: RclEndpointInfo): "reliable" | "best effort" | "unknown" {
  const r = info.qos_profile?.reliability;
  if (r === RMW_BEST_EFFORT || (typeof r === "string" && /best/i.test(r))) return "best effort";
  if (r === RMW_RELIABLE || (typeof r === "string" && /reliable/i.test(r))) return "reliable";
  return "unknown";
}

/**
 * Why a subscription with `sub` never receives from this publisher, or null when they match.
 * DDS's request-offered rule: a reliable subscription needs a reliable publisher. (Every relay
 * profile is volatile, which any publisher's durability satisfies.)
 */
export function qosMismatch(sub: QosName, info: RclEndpointInfo): string | null {
  if (QOS_RELIABILITY[sub] === "reliable" && publisherReliability(info) === "best effort") {
    return "a reliable subscription never matches a best-effort publisher";
  }
  return null;
}

// ------------------------------------------------------------------ the host: environment, files, the module

export interface RosHost {
  env: Readonly<Record<string, string | undefined>>;
  platform: string;
  arch: string;
  exists(path: string): boolean;
  /** Entries of a directory; [] when it does not exist. */
  readdir(path: string): string[];
  /** A file's text, or null when it cannot be read. */
  readFile(path: string): string | null;
  /** rclnodejs's package directory, found without loading it; null when not installed. */
  rclnodejsDir(): string | null;
  /** Load rclnodejs (this runs its native loader). */
  importRclnodejs(): Promise<unknown>;
}

/** This process: its environment (or `env`), the real file system, the real rclnodejs. */
export function processHost(env: Readonly<Record<string, string | undefined>> = process.env, specifier = "rclnodejs"): RosHost {
  const req = createRequire(import.meta.url);
  return {
    env,
    platform: process.platform,
    arch: process.arch,
    exists: (p) => existsSync(p),
    readdir: (p) => {
      try {
        return readdirSync(p);
      } catch {
        return [];
      }
    },
    readFile: (p) => {
      try {
        return readFileSync(p, "utf8");
      } catch {
        return null;
      }
    },
    rclnodejsDir: () => {
      // Resolving runs nothing: only the package's main file is located.
      try {
        return dirname(req.resolve(`${specifier}/package.json`));
      } catch {
        // Not exported, or not installed: try the main file and walk up to its package.json.
      }
      let dir: string;
      try {
        dir = dirname(req.resolve(specifier));
      } catch {
        return null;
      }
      for (let i = 0; i < 4; i++, dir = dirname(dir)) if (existsSync(join(dir, "package.json"))) return dir;
      return null;
    },
    // A variable specifier keeps bundlers and vite from resolving the optional module eagerly.
    importRclnodejs: () => import(/* @vite-ignore */ specifier),
  };
}

// ------------------------------------------------------------------ is ROS 2 sourced?

export type RosEnvironment = { ok: true; distro: string; prefixes: string[] } | { ok: false; problem: string; fix: string };

/** Where deploy/DEPLOY.md builds the interface workspace. */
export const DEFAULT_WORKSPACE = "/opt/dronefleet/ws";

/** `source …` lines for this host: its ROS 2 install(s) under /opt/ros, then the workspace. */
export function sourceHint(host: RosHost, withWorkspace = true): string {
  const distro = host.env.ROS_DISTRO;
  const installed = host.readdir("/opt/ros").filter((d) => host.exists(`/opt/ros/${d}/setup.bash`));
  let ros: string;
  if (distro) ros = `source /opt/ros/${distro}/setup.bash`;
  else if (installed.length === 1) ros = `source /opt/ros/${installed[0]}/setup.bash`;
  else if (installed.length > 1) ros = `source one of ${installed.map((d) => `/opt/ros/${d}/setup.bash`).join(", ")}`;
  else ros = "install ROS 2 (Humble or Jazzy) and source /opt/ros/<distro>/setup.bash";
  if (!withWorkspace) return ros;
  const ws = host.env.ROS_WORKSPACE || DEFAULT_WORKSPACE;
  return `${ros}, then the interface workspace (source ${ws}/install/setup.bash); deploy/relay-start.sh does both for the service`;
}

/** ROS 2 counts as sourced when its setup script has set both ROS_DISTRO and AMENT_PREFIX_PATH. */
export function rosSourced(host: RosHost, withWorkspace = true): RosEnvironment {
  const distro = host.env.ROS_DISTRO;
  const prefixes = (host.env.AMENT_PREFIX_PATH ?? "").split(":").filter(Boolean);
  if (distro && prefixes.length > 0) return { ok: true, distro, prefixes };
  const problem = distro
    ? `ROS_DISTRO=${distro} is set but AMENT_PREFIX_PATH is not: ROS 2's setup script was not sourced in this shell`
    : prefixes.length > 0
      ? "AMENT_PREFIX_PATH is set but ROS_DISTRO is not: ROS 2's setup script was not sourced in this shell"
      : "ROS 2 is not sourced in this shell (ROS_DISTRO and AMENT_PREFIX_PATH are unset)";
  return { ok: false, problem, fix: sourceHint(host, withWorkspace) };
}

// ------------------------------------------------------------------ is rclnodejs installed and built?

/** The command that regenerates rclnodejs's JavaScript for the interfaces now sourced. */
export const REGENERATE_MESSAGES = "npx generate-ros-messages";

export const REBUILD_RCLNODEJS =
  "with ROS 2 sourced, in the repository's root: npm_config_yes=true npm rebuild rclnodejs, then " +
  `${REGENERATE_MESSAGES}; it built when node_modules/rclnodejs/build/Release/rclnodejs.node exists`;

export const ROS2_INSTALL_HINT =
  "rclnodejs not installed: it is an optional dependency built against ROS 2, so ROS 2 must be sourced " +
  "(e.g. `source /opt/ros/humble/setup.bash`) in the shell that runs " +
  "`npm_config_yes=true npm ci --omit=dev --workspace relay`; see README (relay, ROS 2)";

export type RclnodejsInstall =
  | { state: "missing" }
  | { state: "unbuilt"; dir: string }
  | { state: "no-messages"; dir: string; version: string | undefined }
  | { state: "ok"; dir: string; version: string | undefined; addon: string };

/**
 * What is on disk, without loading anything: the native addon (node-gyp's build/Release, or one of
 * its prebuilt binaries for this distro) and the generated message JavaScript.
 */
export function inspectRclnodejs(host: RosHost): RclnodejsInstall {
  const dir = host.rclnodejsDir();
  if (dir === null) return { state: "missing" };
  const built = join(dir, "build", "Release", "rclnodejs.node");
  const prebuildDir = join(dir, "prebuilds", `${host.platform}-${host.arch}`);
  // Prebuilt binaries are named <distro>-<ubuntu codename>-<arch>-rclnodejs.node; unsourced, any distro's counts.
  const distro = host.env.ROS_DISTRO;
  const prebuilt = host.readdir(prebuildDir).find((f) => (!distro || f.startsWith(`${distro}-`)) && f.endsWith(`-${host.arch}-rclnodejs.node`));
  const addon = host.exists(built) ? built : prebuilt ? join(prebuildDir, prebuilt) : null;
  if (addon === null) return { state: "unbuilt", dir };
  const version = readVersion(host, dir);
  if (!host.exists(join(dir, "generated"))) return { state: "no-messages", dir, version };
  return { state: "ok", dir, version, addon };
}

function readVersion(host: RosHost, dir: string): string | undefined {
  const text = host.readFile(join(dir, "package.json"));
  if (text === null) return undefined;
  try {
    const pkg: unknown = JSON.parse(text);
    const v = typeof pkg === "object" && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return typeof v === "string" ? v.slice(0, 32) : undefined;
  } catch {
    return undefined;
  }
}

/** One sentence on an install that cannot be used, and what to do; null when it is fine. */
export function installProblem(install: RclnodejsInstall): { problem: string; fix: string } | null {
  switch (install.state) {
    case "ok":
      return null;
    case "missing":
      return { problem: "rclnodejs is not installed", fix: "with ROS 2 sourced, in the repository's root: npm_config_yes=true npm ci --omit=dev --workspace relay" };
    case "unbuilt":
      return {
        problem: `rclnodejs is installed but its native addon was never built (no ${join(install.dir, "build/Release/rclnodejs.node")}): its install step failed, typically run without ROS 2 sourced or with npm's yes=false (its \`npx rimraf\` then refuses)`,
        fix: REBUILD_RCLNODEJS,
      };
    case "no-messages":
      return {
        problem: `rclnodejs is built but has no generated messages (no ${join(install.dir, "generated")})`,
        fix: `with ROS 2 and the interface workspace sourced, in the repository's root: ${REGENERATE_MESSAGES}`,
      };
    default: {
      const never: never = install;
      return { problem: `unknown install state ${JSON.stringify(never)}`, fix: REBUILD_RCLNODEJS };
    }
  }
}

/**
 * Import rclnodejs and check it has the surface we use, only once ROS 2 is sourced and the install
 * is built (see the module comment): otherwise an Error saying exactly what to source or run,
 * without the module ever being loaded.
 */
export async function loadRclnodejs(host: RosHost = processHost()): Promise<RclLike> {
  const ros = rosSourced(host);
  if (!ros.ok) {
    throw new Error(`${ros.problem}; ${ros.fix}. rclnodejs is not loaded without it: its loader would try to rebuild its native addon and delete the working build`);
  }
  const install = inspectRclnodejs(host);
  if (install.state === "missing") throw new Error(ROS2_INSTALL_HINT);
  // Missing generated messages are not fatal here: the interface check names them, type by type.
  const problem = install.state === "unbuilt" ? installProblem(install) : null;
  if (problem) throw new Error(`${problem.problem}; ${problem.fix}`);
  let mod: unknown;
  try {
    mod = await host.importRclnodejs();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`rclnodejs failed to load (${reason.split("\n")[0]}); ${REBUILD_RCLNODEJS}`, { cause: err });
  }
  // rclnodejs is CommonJS: its exports arrive as the namespace's default.
  const candidate = typeof mod === "object" && mod !== null && "default" in mod ? (mod as { default: unknown }).default : mod;
  if (isRclLike(candidate)) return candidate;
  if (isRclLike(mod)) return mod;
  throw new Error("rclnodejs loaded but lacks init/createNode/spin/shutdown; is it rclnodejs ≥ 2?");
}

// ------------------------------------------------------------------ type support

export const packageOf = (type: string): string => type.split("/")[0] ?? type;

/** The shared library rclnodejs loads for a package's types when it creates a subscription or client. */
export const typeSupportLibrary = (pkg: string): string => `lib${pkg}__rosidl_typesupport_c.so`;

/** Where a sourced setup script puts libraries: LD_LIBRARY_PATH, and <prefix>/lib of each AMENT_PREFIX_PATH prefix. */
export function libraryDirs(env: Readonly<Record<string, string | undefined>>): string[] {
  const ld = (env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean);
  const ament = (env.AMENT_PREFIX_PATH ?? "").split(":").filter(Boolean).map((p) => join(p, "lib"));
  return [...new Set([...ld, ...ament])];
}

/** Packages of `types` whose type-support library is on none of those paths (Linux only). */
export function missingTypeSupport(host: RosHost, types: readonly string[]): string[] {
  if (host.platform !== "linux") return [];
  const dirs = libraryDirs(host.env);
  const pkgs = [...new Set(types.map(packageOf))];
  return pkgs.filter((pkg) => !dirs.some((d) => host.exists(join(d, typeSupportLibrary(pkg)))));
}

/**
 * How to make a package's type support loadable. `onDisk`: the library was found on the ament
 * path, yet did not load (the dynamic loader searches LD_LIBRARY_PATH only).
 */
export function typeSupportHint(host: RosHost, pkg: string, onDisk = false): string {
  const lib = typeSupportLibrary(pkg);
  const where = onDisk ? `${lib} is not on LD_LIBRARY_PATH, where the loader looks` : `${lib} is on neither LD_LIBRARY_PATH nor AMENT_PREFIX_PATH/lib`;
  if (pkg === "dronefleet_interfaces") {
    const ws = host.env.ROS_WORKSPACE || DEFAULT_WORKSPACE;
    return `${where}: the workspace where dronefleet_interfaces is built is not sourced; source ${ws}/install/setup.bash before starting the relay (deploy/relay-start.sh does, with ROS_WORKSPACE)`;
  }
  return `${where}: source the setup.bash of the ROS 2 install or workspace that provides ${pkg} (apt packages: /opt/ros/$ROS_DISTRO/setup.bash)`;
}

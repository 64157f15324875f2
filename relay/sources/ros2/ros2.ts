/**
 * ROS 2 source: subscribes to each drone's topics through rclnodejs and merges them into one
 * latest state per drone, emitted as SourceSamples.
 *
 * rclnodejs is an optionalDependency (it builds against a sourced ROS 2 at `npm install` time), so
 * it is imported lazily and only here, behind `RclLike`: the subset of its API this file uses.
 * Tests inject a double with the same surface.
 *
 * Which topics and services, of which types, is a `RosProfile`. What follows is the `default`
 * profile, the project's own layout; `mavros` (relay/sources/ros2/profiles/mavros.ts) reads MAVROS's standard
 * topics and calls its services instead. At start every interface type the profile uses is
 * loaded through rclnodejs.require, and the missing ones are named in one error log line (with
 * how to install them); their topics are skipped and their commands fail with that explanation,
 * and only a missing position type stops the source.
 *
 * Topics per drone (templates, `{drone}` replaced by the drone id; all configurable, per drone too):
 *   /{drone}/fix       sensor_msgs/msg/NavSatFix       → lat, lon, alt_m
 *   /{drone}/battery   sensor_msgs/msg/BatteryState    → battery_pct
 *   /{drone}/velocity  geometry_msgs/msg/TwistStamped  → speed_mps, climb_mps, course
 *   /{drone}/state     std_msgs/msg/String             → armed, mode, status, heading_deg
 *
 * Why the state topic is a JSON string: armed/mode/status have no standard ROS message (MAVROS
 * has mavros_msgs/State, PX4's uXRCE bridge has px4_msgs/VehicleStatus, others their own), and a
 * custom .msg would have to be built into rclnodejs's generated types on every site. A
 * std_msgs/String carrying `{"armed":bool,"mode":str,"status":str,"heading_deg":num}` (every
 * field optional; optional `rel_alt_m` too) is one small adapter node away from any autopilot
 * stack and needs no code generation.
 *
 * Commands are ROS 2 service calls, one client per (drone, service), names configurable like the
 * topics (`{drone}` replaced by the drone id):
 *   /{drone}/modify_waypoint  dronefleet_interfaces/srv/ModifyWaypoint
 *   /{drone}/assign_mission   dronefleet_interfaces/srv/AssignMission
 *   /{drone}/emergency_land   std_srvs/srv/Trigger
 *   /{drone}/hold             std_srvs/srv/Trigger   (duration_s is NOT carried: Trigger has no
 *                                                    fields; the drone's node decides how long)
 * The two custom types are in relay/interfaces/dronefleet_interfaces (build it with colcon and
 * regenerate rclnodejs's messages, see its README). A call waits at most `serviceWaitMs` for the
 * server to appear ("service … not available"), then at most `serviceTimeoutMs` (and never past
 * the link's deadline, the abort signal) for the response: rclnodejs's sendRequest has no timeout
 * of its own, and a server whose callback throws never answers. `success: false` → failed with
 * the service's message. Mission progress is not reported by this source (no standard topic).
 */
import { DRONE_STATUSES, type RelayCommand } from "../../../edge/protocol";
import { errorMessage, silentLogger, type Logger } from "../../log";
import { compassDeg } from "../../../edge/domain/geo";
import type { CommandOutcome, DroneSource, DroneStatus, MissionProgressEvent, SourceSample } from "../source";

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
  /** Plain-object request; the callback gets the plain-object response. No timeout of its own. */
  sendRequest(request: object, callback: (response: unknown) => void): void;
}

/** Subscription options as rclnodejs takes them; `qos` is a profile name such as "qos_profile_sensor_data". */
export type RclSubscriptionOptions = { qos?: string };

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
  /** The ROS graph as this node sees it (rclnodejs Node#getTopicNamesAndTypes). */
  getTopicNamesAndTypes?(): { name: string; types: string[] }[];
  getServiceNamesAndTypes?(): { name: string; types: string[] }[];
}

export interface RclLike {
  /**
   * rclnodejs.require("pkg/msg/Name"): the generated interface class; throws when the interface
   * is not installed or its JavaScript was never generated. Used to name missing types up front.
   */
  require?(name: string): unknown;
  init(): Promise<void>;
  createNode(name: string): RclNodeLike;
  spin(node: RclNodeLike): void;
  shutdown(): void | Promise<void>;
}

export const ROS2_INSTALL_HINT =
  "rclnodejs not installed: it is an optional dependency built against ROS 2, so ROS 2 (e.g. " +
  "`source /opt/ros/humble/setup.bash`) must be sourced in the shell that runs `npm install`; see README (relay, ROS 2)";

function isRclLike(m: unknown): m is RclLike {
  if (typeof m !== "object" && typeof m !== "function") return false;
  if (m === null) return false;
  const r = m as Record<string, unknown>;
  return ["init", "createNode", "spin", "shutdown"].every((k) => typeof r[k] === "function");
}

/**
 * Import rclnodejs (or `specifier`, for tests) and check it has the surface we use. A missing
 * module, or one whose native addon was never built because ROS 2 was not sourced, becomes an
 * Error with ROS2_INSTALL_HINT rather than a stack trace from deep inside the loader.
 */
export async function loadRclnodejs(specifier = "rclnodejs"): Promise<RclLike> {
  let mod: unknown;
  try {
    // A variable specifier keeps bundlers and vite from resolving the optional module eagerly.
    mod = await import(/* @vite-ignore */ specifier);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`${ROS2_INSTALL_HINT} (${reason.split("\n")[0]})`, { cause: err });
  }
  // rclnodejs is CommonJS: its exports arrive as the namespace's default.
  const candidate = typeof mod === "object" && mod !== null && "default" in mod ? (mod as { default: unknown }).default : mod;
  if (isRclLike(candidate)) return candidate;
  if (isRclLike(mod)) return mod;
  throw new Error(`${specifier} loaded but lacks init/createNode/spin/shutdown; is it rclnodejs ≥ 2?`);
}

// ------------------------------------------------------------------ message mapping (pure)

export const ROS_TYPES = {
  fix: "sensor_msgs/msg/NavSatFix",
  battery: "sensor_msgs/msg/BatteryState",
  velocity: "geometry_msgs/msg/TwistStamped",
  state: "std_msgs/msg/String",
} as const;

export const ROS_SERVICE_TYPES = {
  modify_waypoint: "dronefleet_interfaces/srv/ModifyWaypoint",
  assign_mission: "dronefleet_interfaces/srv/AssignMission",
  emergency_land: "std_srvs/srv/Trigger",
  hold: "std_srvs/srv/Trigger",
} as const;

export type ServiceKey = keyof typeof ROS_SERVICE_TYPES;
export type ServiceTemplates = Record<ServiceKey, string>;

export const DEFAULT_SERVICES: ServiceTemplates = {
  modify_waypoint: "/{drone}/modify_waypoint",
  assign_mission: "/{drone}/assign_mission",
  emergency_land: "/{drone}/emergency_land",
  hold: "/{drone}/hold",
};

/** The service request for a command (field names of the .srv files and std_srvs/Trigger). */
export function serviceRequest(c: RelayCommand): { key: ServiceKey; request: Record<string, unknown> } {
  switch (c.command) {
    case "modify_waypoint":
      return {
        key: "modify_waypoint",
        request: {
          drone_id: c.drone_id,
          latitude: c.new_waypoint.lat,
          longitude: c.new_waypoint.lon,
          altitude: c.new_waypoint.alt_m,
          modification_reason: c.modification_reason,
        },
      };
    case "assign_mission":
      return {
        key: "assign_mission",
        request: {
          mission_id: c.mission_id,
          latitudes: c.waypoints.map((w) => w.lat),
          longitudes: c.waypoints.map((w) => w.lon),
          altitudes: c.waypoints.map((w) => w.alt_m),
          priority: c.priority,
        },
      };
    case "emergency_land":
      return { key: "emergency_land", request: {} };
    case "hold":
      return { key: "hold", request: {} };
    default: {
      const never: never = c;
      throw new Error(`unknown command ${JSON.stringify((never as { command?: unknown }).command ?? null)}`);
    }
  }
}

/** A service response (`bool success, string message`) → outcome. */
export function readServiceResponse(service: string, response: unknown): CommandOutcome {
  if (!isObj(response) || typeof response.success !== "boolean") return { ok: false, message: `service ${service} returned a malformed response` };
  const message = typeof response.message === "string" && response.message.length > 0 ? response.message.slice(0, 1000) : undefined;
  if (response.success) return message === undefined ? { ok: true } : { ok: true, message };
  return { ok: false, message: message ?? `service ${service} reported failure` };
}

export type TopicKey = keyof typeof ROS_TYPES;
export type TopicTemplates = Record<TopicKey, string>;

export const DEFAULT_TOPICS: TopicTemplates = {
  fix: "/{drone}/fix",
  battery: "/{drone}/battery",
  velocity: "/{drone}/velocity",
  state: "/{drone}/state",
};

/** Which topic and service layout a ground station uses; see relay/profiles. */
export type ProfileName = "default" | "mavros";

/** Context a profile may use to build a service request. */
export type RequestContext = {
  /** The drone's last good fix, null before the first one. */
  lastFix: Fix | null;
};

/**
 * A ground station's ROS layout: message and service types per key, default names, how to read
 * its state topic and how to turn commands into service requests. The keys (fix, battery,
 * velocity, state; modify_waypoint, assign_mission, emergency_land, hold) are the same for every
 * profile, so topic/service name overrides in the config work the same way.
 */
export interface RosProfile {
  readonly name: ProfileName;
  readonly topicTypes: Readonly<Record<TopicKey, string>>;
  readonly defaultTopics: Readonly<TopicTemplates>;
  readonly serviceTypes: Readonly<Record<ServiceKey, string>>;
  readonly defaultServices: Readonly<ServiceTemplates>;
  /** rclnodejs QoS profile name for subscriptions; undefined: rclnodejs's default (reliable). */
  readonly qos?: string;
  /** Interface types used inside others (e.g. a message inside a service), checked up front too. */
  readonly extraTypes?: readonly string[];
  readState(msg: unknown): StateUpdate | null;
  request(c: RelayCommand, ctx: RequestContext): { key: ServiceKey; request: Record<string, unknown> };
  readResponse(service: string, key: ServiceKey, response: unknown): CommandOutcome;
  /** Where the interface types come from, for "missing type" messages. */
  installHint(type: string): string;
}

/** Every interface type a profile needs, deduplicated. */
export function profileTypes(p: RosProfile): string[] {
  return [...new Set([...Object.values(p.topicTypes), ...Object.values(p.serviceTypes), ...(p.extraTypes ?? [])])];
}

/** How to get a missing interface type installed (shared by the profiles and the doctor). */
export function defaultInstallHint(type: string): string {
  const pkg = type.split("/")[0] ?? type;
  if (pkg === "dronefleet_interfaces") {
    return "build relay/interfaces with colcon, source its install/setup.bash, then regenerate rclnodejs's messages (node node_modules/rclnodejs/scripts/generate_messages.cjs)";
  }
  const apt = `ros-$ROS_DISTRO-${pkg.replaceAll("_", "-")}`;
  return `install it (sudo apt install ${apt}), source ROS 2 again, then regenerate rclnodejs's messages (node node_modules/rclnodejs/scripts/generate_messages.cjs)`;
}

/**
 * Which of `types` rclnodejs cannot load (rclnodejs.require throws for them). When the module has
 * no `require` (a test double, an old version) nothing can be checked and [] is returned.
 */
export function missingInterfaces(rcl: RclLike, types: readonly string[]): string[] {
  const req = rcl.require;
  if (typeof req !== "function") return [];
  const missing: string[] = [];
  for (const t of types) {
    try {
      if (req.call(rcl, t) === undefined) missing.push(t);
    } catch {
      // rclnodejs throws "The message requested does not exist" (or similar) for these.
      missing.push(t);
    }
  }
  return missing;
}

/** The project's own layout (see the module comment). */
export const DEFAULT_PROFILE: RosProfile = {
  name: "default",
  topicTypes: ROS_TYPES,
  defaultTopics: DEFAULT_TOPICS,
  serviceTypes: ROS_SERVICE_TYPES,
  defaultServices: DEFAULT_SERVICES,
  readState: (msg) => readState(msg),
  request: (c) => serviceRequest(c),
  readResponse: (service, _key, response) => readServiceResponse(service, response),
  installHint: defaultInstallHint,
};

/** sensor_msgs/NavSatStatus.STATUS_NO_FIX */
const STATUS_NO_FIX = -1;
/** Below this ground speed the velocity's direction is noise, so it does not set the heading. */
const COURSE_MIN_SPEED_MPS = 0.5;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const finiteNum = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

export type Fix = { lat: number; lon: number; altitude: number };

/** NavSatFix → position, or null when there is no fix (status −1) or a coordinate is unusable. */
export function readNavSatFix(msg: unknown): Fix | null {
  if (!isObj(msg)) return null;
  const status = isObj(msg.status) ? finiteNum(msg.status.status) : undefined;
  if (status === undefined || status <= STATUS_NO_FIX) return null;
  const lat = finiteNum(msg.latitude);
  const lon = finiteNum(msg.longitude);
  const altitude = finiteNum(msg.altitude);
  if (lat === undefined || lon === undefined || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  // An unknown altitude (NaN) keeps a horizontal fix usable; altitude then reads as home level.
  return { lat, lon, altitude: altitude ?? Number.NaN };
}

/** BatteryState.percentage (0..1) → percent, or undefined when unknown (NaN) or malformed. */
export function readBatteryPct(msg: unknown): number | undefined {
  if (!isObj(msg)) return undefined;
  const p = finiteNum(msg.percentage);
  // NaN is "unknown" by the message's definition; MAVROS publishes -1 % (as -0.01) for the same.
  if (p === undefined || p < 0) return undefined;
  return Math.min(100, Math.max(0, p * 100));
}

export type Velocity = { speed: number; climb: number; course: number | undefined };

/** TwistStamped (ENU, REP 103, as MAVROS publishes local velocity) → ground speed, climb, course. */
export function readTwist(msg: unknown): Velocity | null {
  if (!isObj(msg) || !isObj(msg.twist) || !isObj(msg.twist.linear)) return null;
  const east = finiteNum(msg.twist.linear.x);
  const north = finiteNum(msg.twist.linear.y);
  const up = finiteNum(msg.twist.linear.z);
  if (east === undefined || north === undefined) return null;
  const speed = Math.hypot(east, north);
  return { speed, climb: up ?? 0, course: speed >= COURSE_MIN_SPEED_MPS ? compassDeg(east, north) : undefined };
}

export type StateUpdate = Partial<{ armed: boolean; mode: string; status: DroneStatus; heading: number; relAlt: number }>;

/** std_msgs/String with our JSON state → the fields present and valid; null when not JSON. */
export function readState(msg: unknown): StateUpdate | null {
  if (!isObj(msg) || typeof msg.data !== "string") return null;
  let data: unknown;
  try {
    data = JSON.parse(msg.data);
  } catch {
    return null;
  }
  if (!isObj(data)) return null;
  const out: StateUpdate = {};
  if (typeof data.armed === "boolean") out.armed = data.armed;
  if (typeof data.mode === "string" && data.mode.length > 0) out.mode = data.mode.slice(0, 32);
  if (typeof data.status === "string" && (DRONE_STATUSES as readonly string[]).includes(data.status)) {
    out.status = data.status as DroneStatus;
  }
  const heading = finiteNum(data.heading_deg);
  if (heading !== undefined) out.heading = ((heading % 360) + 360) % 360;
  const relAlt = finiteNum(data.rel_alt_m);
  if (relAlt !== undefined) out.relAlt = relAlt;
  return out;
}

/** Everything known about one drone, merged from its topics. */
interface Latest {
  fix: Fix | null;
  /** Altitude of the first fix: the take-off point, when no `rel_alt_m` is published. */
  homeAltitude: number | null;
  fixAt: number;
  battery: number | null;
  velocity: Velocity | null;
  course: number | null;
  armed: boolean;
  mode: string;
  status: DroneStatus;
  yaw: number | null;
  relAlt: number | null;
  /** Changed since last emitted. */
  dirty: boolean;
}

function emptyLatest(): Latest {
  return {
    fix: null,
    homeAltitude: null,
    fixAt: 0,
    battery: null,
    velocity: null,
    course: null,
    armed: false,
    mode: "UNKNOWN",
    status: "idle",
    yaw: null,
    relAlt: null,
    dirty: false,
  };
}

/** The sample for a drone's merged state, or null until its first fix. */
function toSample(droneId: string, l: Latest): SourceSample | null {
  if (!l.fix) return null;
  const relFromFix =
    Number.isFinite(l.fix.altitude) && l.homeAltitude !== null && Number.isFinite(l.homeAltitude)
      ? l.fix.altitude - l.homeAltitude
      : 0;
  const sample: SourceSample = {
    drone_id: droneId,
    ts: l.fixAt,
    lat: l.fix.lat,
    lon: l.fix.lon,
    alt_m: l.relAlt ?? relFromFix,
    // Yaw from the autopilot when it publishes one; otherwise the course over ground.
    heading_deg: l.yaw ?? l.course ?? 0,
    speed_mps: l.velocity?.speed ?? 0,
    // Unknown battery reads as 0 %: the edge then warns about it rather than assume a full pack.
    battery_pct: l.battery ?? 0,
    armed: l.armed,
    mode: l.mode,
    status: l.status,
  };
  if (l.velocity) sample.climb_mps = l.velocity.climb;
  return sample;
}

// ------------------------------------------------------------------ the source

export interface Ros2SourceOptions {
  /** Drone ids; each is also its topic namespace. */
  droneIds: string[];
  /** Topic templates with `{drone}`; defaults in DEFAULT_TOPICS. */
  topics?: Partial<TopicTemplates>;
  /**
   * Emit changed drones at this rate (1–10 Hz) from one ROS timer; when absent, emit on each fix.
   * Either way a drone is emitted only after its first fix, and never without news, so a silent
   * drone goes stale at the edge instead of being reported fresh forever.
   */
  rateHz?: number;
  nodeName?: string;
  /** An rclnodejs-compatible module; by default rclnodejs is imported on start(). */
  rcl?: RclLike;
  log?: Logger;
  /** Clock for sample timestamps, ms. Default Date.now. */
  now?: () => number;
  /** Service name templates with `{drone}`; defaults in DEFAULT_SERVICES. */
  services?: Partial<ServiceTemplates>;
  /** Longest wait for a service server to be available, ms. Default 1,000. */
  serviceWaitMs?: number;
  /** Longest wait for a service response, ms (the link's own deadline may end it sooner). Default 5,000. */
  serviceTimeoutMs?: number;
  /** Topic layout and command mapping; default DEFAULT_PROFILE. */
  profile?: RosProfile;
  /** Full names for single drones, overriding the templates (no `{drone}` needed). */
  perDrone?: Record<string, DroneNames>;
}

/** Per-drone topic and service names. */
export type DroneNames = { topics?: Partial<TopicTemplates>; services?: Partial<ServiceTemplates> };

export class Ros2Source implements DroneSource {
  readonly kind = "ros2" as const;
  private readonly ids: string[];
  private readonly topics: TopicTemplates;
  private readonly services: ServiceTemplates;
  readonly profile: RosProfile;
  /** Interface types rclnodejs could not load at start (see missingInterfaces). */
  private missing: string[] = [];
  private readonly messageCounts: Record<TopicKey, number> = { fix: 0, battery: 0, velocity: 0, state: 0 };
  private readonly clients = new Map<string, RclClientLike>();
  /** Not used: this source reports no mission progress (see the module comment). */
  onMissionProgress: ((p: MissionProgressEvent) => void) | null = null;
  private readonly latest = new Map<string, Latest>();
  private readonly log: Logger;
  private readonly now: () => number;
  private rcl: RclLike | null = null;
  private node: RclNodeLike | null = null;
  private timer: RclTimerLike | null = null;
  private onSample: ((s: SourceSample) => void) | null = null;
  /** (drone, topic) pairs already warned about, so a bad publisher does not flood the log. */
  private readonly warned = new Set<string>();

  constructor(private readonly opts: Ros2SourceOptions) {
    if (opts.droneIds.length === 0) throw new Error("Ros2Source needs at least one drone id");
    if (opts.rateHz !== undefined && !(opts.rateHz >= 1 && opts.rateHz <= 10)) {
      throw new RangeError(`rateHz must be within 1..10, got ${opts.rateHz}`);
    }
    this.ids = [...new Set(opts.droneIds)];
    this.profile = opts.profile ?? DEFAULT_PROFILE;
    this.topics = { ...this.profile.defaultTopics, ...opts.topics };
    this.services = { ...this.profile.defaultServices, ...opts.services };
    this.log = opts.log ?? silentLogger;
    this.now = opts.now ?? Date.now;
    for (const id of this.ids) this.latest.set(id, emptyLatest());
  }

  droneIds(): string[] {
    return [...this.ids];
  }

  /** Topic name for one drone, e.g. topicFor("fix", "drone_0") → "/drone_0/fix". */
  topicFor(key: TopicKey, droneId: string): string {
    return this.opts.perDrone?.[droneId]?.topics?.[key] ?? this.topics[key].replaceAll("{drone}", droneId);
  }

  /** Service name for one drone, e.g. serviceFor("hold", "uav1") → "/uav1/hold". */
  serviceFor(key: ServiceKey, droneId: string): string {
    return this.opts.perDrone?.[droneId]?.services?.[key] ?? this.services[key].replaceAll("{drone}", droneId);
  }

  /** Interface types rclnodejs could not load when the source started. */
  missingInterfaces(): string[] {
    return [...this.missing];
  }

  /** ROS messages received per topic kind, for metrics. */
  rosMessageCounts(): Readonly<Record<TopicKey, number>> {
    return this.messageCounts;
  }

  /** Call the drone's service for `command`; see the module comment. Never rejects. */
  async execute(command: RelayCommand, signal: AbortSignal): Promise<CommandOutcome> {
    if (!this.latest.has(command.drone_id)) return { ok: false, message: "unknown drone" };
    const node = this.node;
    if (!node) return { ok: false, message: "ros2 source is not running" };
    if (signal.aborted) return { ok: false, message: "aborted before the service call" };
    let key: ServiceKey;
    let request: Record<string, unknown>;
    try {
      ({ key, request } = this.profile.request(command, { lastFix: this.latest.get(command.drone_id)?.fix ?? null }));
    } catch (err) {
      return { ok: false, message: errorMessage(err) };
    }
    const name = this.serviceFor(key, command.drone_id);
    const type = this.profile.serviceTypes[key];
    if (this.missing.includes(type)) {
      return { ok: false, message: `interface ${type} is not installed on the relay host: ${this.profile.installHint(type)}` };
    }
    try {
      let client = this.clients.get(name);
      if (!client) {
        client = node.createClient(type, name);
        this.clients.set(name, client);
      }
      const waitMs = this.opts.serviceWaitMs ?? 1000;
      const available = await abortable(client.waitForService(waitMs), signal);
      if (available === ABORTED) return { ok: false, message: `aborted waiting for service ${name}` };
      if (!available) return { ok: false, message: `service ${name} not available after ${waitMs} ms` };
      const timeoutMs = this.opts.serviceTimeoutMs ?? 5000;
      const c = client;
      const response = await withTimeout(
        new Promise<unknown>((resolve) => c.sendRequest(request, resolve)),
        timeoutMs,
        signal,
      );
      if (response === ABORTED) return { ok: false, message: `aborted waiting for service ${name}` };
      if (response === TIMED_OUT) return { ok: false, message: `service ${name} did not answer within ${timeoutMs} ms` };
      return this.profile.readResponse(name, key, response);
    } catch (err) {
      return { ok: false, message: `service ${name}: ${errorMessage(err)}` };
    }
  }

  async start(onSample: (s: SourceSample) => void): Promise<void> {
    if (this.node) throw new Error("Ros2Source already started");
    const rcl = this.opts.rcl ?? (await loadRclnodejs());
    // Name every interface type that is not installed, rather than failing on the first one deep
    // inside rclnodejs. Without positions there is nothing to relay; anything else only disables
    // its topic or command (which then fails with this explanation).
    this.missing = missingInterfaces(rcl, profileTypes(this.profile));
    if (this.missing.length > 0) {
      this.log.error("ROS 2 interface types missing; the topics and commands using them are disabled", {
        profile: this.profile.name,
        missing: this.missing,
        fix: [...new Set(this.missing.map((t) => `${t}: ${this.profile.installHint(t)}`))],
      });
      const fixType = this.profile.topicTypes.fix;
      if (this.missing.includes(fixType)) {
        throw new Error(`cannot relay without ${fixType} (positions): ${this.profile.installHint(fixType)}`);
      }
    }
    await rcl.init();
    this.rcl = rcl;
    this.onSample = onSample;
    const node = rcl.createNode(this.opts.nodeName ?? "dronefleet_relay");
    this.node = node;
    try {
      for (const id of this.ids) this.subscribe(node, id);
      if (this.opts.rateHz !== undefined) {
        const periodNs = BigInt(Math.round(1e9 / this.opts.rateHz));
        this.timer = node.createTimer(periodNs, () => this.emitChanged());
      }
      rcl.spin(node);
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.info("ros2 source started", { drones: this.ids.length, rate_hz: this.opts.rateHz ?? "on_fix", profile: this.profile.name });
  }

  async stop(): Promise<void> {
    this.onSample = null;
    const { rcl, node, timer } = this;
    this.rcl = this.node = this.timer = null;
    const clients = [...this.clients.values()];
    this.clients.clear();
    try {
      timer?.cancel();
      for (const c of clients) {
        try {
          node?.destroyClient(c);
        } catch (err) {
          this.log.debug("destroyClient failed", { error: err });
        }
      }
      node?.destroy();
    } finally {
      if (rcl) await rcl.shutdown();
    }
  }

  private subscribe(node: RclNodeLike, id: string): void {
    const l = this.latest.get(id);
    if (!l) return;
    const on = (key: TopicKey, handle: (msg: unknown) => void): void => {
      const topic = this.topicFor(key, id);
      const type = this.profile.topicTypes[key];
      if (this.missing.includes(type)) return; // reported once at start
      const callback = (msg: unknown): void => {
        this.messageCounts[key]++;
        try {
          handle(msg);
        } catch (err) {
          this.warnOnce(`${id}:${key}:throw`, "ros2 message handler failed", { drone_id: id, topic, error: err });
        }
      };
      // MAVROS publishes sensor topics best-effort; a reliable subscription would never match them.
      if (this.profile.qos !== undefined) node.createSubscription(type, topic, { qos: this.profile.qos }, callback);
      else node.createSubscription(type, topic, callback);
    };
    on("fix", (msg) => {
      const fix = readNavSatFix(msg);
      if (!fix) return; // no fix yet (or a NaN position): keep the last good one
      if (l.homeAltitude === null && Number.isFinite(fix.altitude)) l.homeAltitude = fix.altitude;
      l.fix = fix;
      // Receipt time, not header.stamp: stamps may be simulation time, and the edge and
      // dashboards compare ts with wall clocks.
      l.fixAt = this.now();
      l.dirty = true;
      if (this.opts.rateHz === undefined) this.emit(id, l);
    });
    on("battery", (msg) => {
      const pct = readBatteryPct(msg);
      if (pct === undefined) return; // NaN means "unknown": keep the last known value
      l.battery = pct;
      l.dirty = true;
    });
    on("velocity", (msg) => {
      const v = readTwist(msg);
      if (!v) return this.warnOnce(`${id}:velocity`, "unreadable TwistStamped", { drone_id: id });
      l.velocity = v;
      if (v.course !== undefined) l.course = v.course;
      l.dirty = true;
    });
    on("state", (msg) => {
      const st = this.profile.readState(msg);
      if (!st) return this.warnOnce(`${id}:state`, `unreadable ${this.profile.topicTypes.state} on the state topic`, { drone_id: id });
      if (st.armed !== undefined) l.armed = st.armed;
      if (st.mode !== undefined) l.mode = st.mode;
      if (st.status !== undefined) l.status = st.status;
      if (st.heading !== undefined) l.yaw = st.heading;
      if (st.relAlt !== undefined) l.relAlt = st.relAlt;
      l.dirty = true;
    });
  }

  private emitChanged(): void {
    for (const [id, l] of this.latest) if (l.dirty) this.emit(id, l);
  }

  private emit(id: string, l: Latest): void {
    const cb = this.onSample;
    if (!cb) return;
    const sample = toSample(id, l);
    if (!sample) return;
    l.dirty = false;
    cb(sample);
  }

  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(msg, fields);
  }
}

const ABORTED: unique symbol = Symbol("aborted");
const TIMED_OUT: unique symbol = Symbol("timed out");

/** `p`, or ABORTED as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** `p`, TIMED_OUT after `ms`, or ABORTED when `signal` aborts first. Clears its timer. */
async function withTimeout<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | typeof ABORTED | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await abortable(Promise.race([p, timeout]), signal);
  } finally {
    clearTimeout(timer);
  }
}

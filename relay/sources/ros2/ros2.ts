/**
 * ROS 2 source: subscribes to each drone's topics through rclnodejs and merges them into one
 * latest state per drone, emitted as SourceSamples.
 *
 * rclnodejs is an optionalDependency (it builds against a sourced ROS 2 at `npm install` time), so
 * it is loaded lazily, only here, and only once ROS 2 is sourced (rcl.ts: its loader would
 * otherwise delete its own build), behind `RclLike`. Tests inject a double with the same surface.
 *
 * Which topics and services, of which types, is a `RosProfile`. What follows is the `default`
 * profile, the project's own layout; `mavros` (relay/sources/ros2/profiles/mavros.ts) reads MAVROS's standard
 * topics and calls its services instead. At start every interface type the profile uses is
 * checked: its generated JavaScript (rclnodejs.require) and its package's type-support library on
 * the library path (rclnodejs.require loads only the former). Missing ones are logged once, one
 * hint per package; their topics are skipped and their commands fail with that explanation, and
 * only a missing position type stops the source.
 *
 * Topics per drone (templates, `{drone}` replaced by the drone id; all configurable, per drone too):
 *   /{drone}/fix       sensor_msgs/msg/NavSatFix       → lat, lon, alt_m
 *   /{drone}/battery   sensor_msgs/msg/BatteryState    → battery_pct
 *   /{drone}/velocity  geometry_msgs/msg/TwistStamped  → speed_mps, climb_mps, course
 *   /{drone}/state     std_msgs/msg/String             → armed, mode, status, heading_deg
 * Every subscription uses the sensor-data QoS (best effort) unless the config's `qos:` says
 * otherwise per topic: best effort matches reliable and best-effort publishers, whereas a reliable
 * subscription never receives from a best-effort publisher (most sensor drivers, and MAVROS).
 *
 * A sample is a position fix plus the latest of everything else, stamped with the fix's receipt
 * time: one is emitted per new fix (on each fix, or at most `rateHz` per drone), never for news on
 * the other topics alone. So a drone whose GPS stops goes stale at the edge however lively its
 * battery or state topics are, and a sample's `ts` is never older than its position.
 * `alt_m` is the altitude above the take-off point: the first fix's altitude, re-captured when
 * the fix stream resumes after `restartGapMs` with the drone on the ground (its node restarted,
 * or the drone was power-cycled), unless the state topic carries `rel_alt_m`. A drone whose state
 * topic stays silent is logged once: its samples then say `state_known: false` (armed and status
 * are placeholders, false and idle), and the edge infers airborne from altitude and speed.
 *
 * Routes (intent.ts): each drone's remaining route, sent with its samples as `intent`. The topic is
 * the profile's (`/{drone}/route`, nav_msgs/msg/Path, for `default`), `intentTopic` (config
 * `intent_topic`) replaces the template or turns routes off (false), and a drone's own
 * `DroneNames.intentTopic` (config `drones[i].intent_topic`) wins over both.
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
 * server to appear ("service … not available"), then for the response until SERVICE_MARGIN_MS
 * before the command's own deadline (`timeout_ms`, which the edge sets shorter than its own), or
 * `serviceTimeoutMs` if shorter: so a service that does not answer is named in the result ("service
 * /uav1/hold did not answer within 4250 ms") instead of the link's anonymous deadline. rclnodejs's
 * sendRequest has no timeout of its own, and a server whose callback throws never answers; a
 * timed-out request's callback is removed from the client. `success: false` → failed with the
 * service's message. Mission progress is not reported by this source (no standard topic).
 */
import { DRONE_STATUSES, type RelayCommand } from "../../../edge/protocol";
import { isAirborne } from "../../../edge/domain/drone";
import { compassDeg } from "../../../edge/domain/geo";
import { errorMessage, silentLogger, type Logger } from "../../log";
import type { CommandOutcome, DroneSource, DroneStatus, MissionProgressEvent, SourceSample } from "../source";
import { intentReaderFor, RosIntents } from "./intent";
import {
  DEFAULT_QOS,
  forgetRequest,
  loadRclnodejs,
  missingTypeSupport,
  packageOf,
  processHost,
  QOS_PROFILES,
  REGENERATE_MESSAGES,
  typeSupportHint,
  type QosName,
  type RclClientLike,
  type RclLike,
  type RclNodeLike,
  type RclTimerLike,
  type RosHost,
} from "./rcl";

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
/** emergency_land first: it is the one an operator needs most. */
export const SERVICE_KEYS: readonly ServiceKey[] = ["emergency_land", "modify_waypoint", "assign_mission", "hold"];
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
export const TOPIC_KEYS: readonly TopicKey[] = ["fix", "battery", "velocity", "state"];
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

/** "…then regenerate rclnodejs's messages (…)", the last step of every install hint. */
export const REGENERATE_STEP = `regenerate rclnodejs's messages (${REGENERATE_MESSAGES} in the repository's root)`;

/** How to get a missing interface type installed (shared by the profiles and the doctor). */
export function defaultInstallHint(type: string): string {
  const pkg = packageOf(type);
  if (pkg === "dronefleet_interfaces") {
    return `build relay/interfaces with colcon, source its install/setup.bash, then ${REGENERATE_STEP}`;
  }
  const apt = `ros-$ROS_DISTRO-${pkg.replaceAll("_", "-")}`;
  return `install it (sudo apt install ${apt}), source ROS 2 again, then ${REGENERATE_STEP}`;
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
  /** Altitude of the take-off point (see the module comment), when no `rel_alt_m` is published. */
  homeAltitude: number | null;
  fixAt: number;
  /** Fixes received, and how many of them have been emitted: a sample goes out per new fix. */
  fixes: number;
  emittedFixes: number;
  firstFixAt: number | null;
  battery: number | null;
  velocity: Velocity | null;
  course: number | null;
  armed: boolean;
  mode: string;
  status: DroneStatus;
  yaw: number | null;
  relAlt: number | null;
  stateSeen: boolean;
  stateWarned: boolean;
  /** When each topic last delivered a message (source clock), for the silence report. */
  lastAt: Record<TopicKey, number | null>;
}

function emptyLatest(): Latest {
  return {
    fix: null,
    homeAltitude: null,
    fixAt: 0,
    fixes: 0,
    emittedFixes: 0,
    firstFixAt: null,
    battery: null,
    velocity: null,
    course: null,
    armed: false,
    mode: "UNKNOWN",
    status: "idle",
    yaw: null,
    relAlt: null,
    stateSeen: false,
    stateWarned: false,
    lastAt: { fix: null, battery: null, velocity: null, state: null },
  };
}

/** Height above the take-off point from the fixes alone; 0 when either altitude is unknown. */
function relFromFix(l: Latest): number {
  return l.fix && Number.isFinite(l.fix.altitude) && l.homeAltitude !== null && Number.isFinite(l.homeAltitude) ? l.fix.altitude - l.homeAltitude : 0;
}

/**
 * Whether the drone was last seen in the air: by its state (armed, airborne status) or, for a
 * drone without a state topic, by its height or ground speed. A GPS dropout in flight must not
 * move its take-off point.
 */
function lastSeenAirborne(l: Latest): boolean {
  return isAirborne(l) || (l.relAlt ?? relFromFix(l)) > 2 || (l.velocity?.speed ?? 0) > 1;
}

/** The sample for a drone's merged state, or null until its first fix. */
function toSample(droneId: string, l: Latest): SourceSample | null {
  if (!l.fix) return null;
  const sample: SourceSample = {
    drone_id: droneId,
    ts: l.fixAt,
    lat: l.fix.lat,
    lon: l.fix.lon,
    alt_m: l.relAlt ?? relFromFix(l),
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
  // No state topic heard: armed/status above are placeholders; the edge infers airborne (issue 14).
  if (!l.stateSeen) sample.state_known = false;
  return sample;
}

// ------------------------------------------------------------------ the source

/** A service call ends this long before the command's deadline, so its own message gets through. */
export const SERVICE_MARGIN_MS = 250;
export const DEFAULT_SERVICE_WAIT_MS = 1000;
/** A fix stream that resumes after this long, with the drone on the ground, re-captures the take-off altitude. */
export const DEFAULT_RESTART_GAP_MS = 5000;
/** How long after its first fix a drone's state topic may stay silent before that is logged. */
export const DEFAULT_STATE_GRACE_MS = 5000;

export interface Ros2SourceOptions {
  /** Drone ids; each is also its topic namespace. */
  droneIds: string[];
  /** Topic templates with `{drone}`; defaults in DEFAULT_TOPICS. */
  topics?: Partial<TopicTemplates>;
  /**
   * At most this many samples per drone per second (1–10), emitted from one ROS timer; when
   * absent, one per fix. Either way only new fixes make samples (see the module comment).
   */
  rateHz?: number;
  nodeName?: string;
  /** An rclnodejs-compatible module; by default rclnodejs is loaded on start() (rcl.ts). */
  rcl?: RclLike;
  /** Environment and files for the type-support check and loading rclnodejs; default this process. */
  host?: RosHost;
  log?: Logger;
  /** Clock for sample timestamps, ms. Default Date.now. */
  now?: () => number;
  /** Service name templates with `{drone}`; defaults in DEFAULT_SERVICES. */
  services?: Partial<ServiceTemplates>;
  /** Longest wait for a service server to be available, ms. Default 1,000. */
  serviceWaitMs?: number;
  /**
   * Longest wait for a service response, ms. Default (and upper bound): until SERVICE_MARGIN_MS
   * before the command's deadline.
   */
  serviceTimeoutMs?: number;
  /** Topic layout and command mapping; default DEFAULT_PROFILE. */
  profile?: RosProfile;
  /** Full names for single drones, overriding the templates (no `{drone}` needed). */
  perDrone?: Record<string, DroneNames>;
  /** Subscription QoS per topic kind; default sensor_data for every topic. */
  qos?: Partial<Record<TopicKey, QosName>>;
  /** Default DEFAULT_RESTART_GAP_MS. */
  restartGapMs?: number;
  /** Default DEFAULT_STATE_GRACE_MS. */
  stateGraceMs?: number;
  /** Route topic template (intent.ts: nav_msgs/msg/Path, or MAVROS's waypoint list); false: none. */
  intentTopic?: string | false;
}

/** Per-drone topic and service names; `intentTopic` is the drone's route topic (false: none). */
export type DroneNames = { topics?: Partial<TopicTemplates>; services?: Partial<ServiceTemplates>; intentTopic?: string | false };

export class Ros2Source implements DroneSource {
  readonly kind = "ros2" as const;
  private readonly ids: string[];
  private readonly topics: TopicTemplates;
  private readonly services: ServiceTemplates;
  readonly profile: RosProfile;
  private readonly qos: Record<TopicKey, QosName>;
  /** Interface types unusable here since start (JS not generated, or type support not found). */
  private missing: string[] = [];
  /** Why each of those is missing, by type: what the operator is told when a command needs it. */
  private readonly missingWhy = new Map<string, string>();
  private readonly messageCounts: Record<TopicKey, number> = { fix: 0, battery: 0, velocity: 0, state: 0 };
  private readonly clients = new Map<string, RclClientLike>();
  /** Not used: this source reports no mission progress (see the module comment). */
  onMissionProgress: ((p: MissionProgressEvent) => void) | null = null;
  private readonly latest = new Map<string, Latest>();
  private readonly log: Logger;
  private readonly now: () => number;
  private rcl: RclLike | null = null;
  private host: RosHost | null = null;
  private node: RclNodeLike | null = null;
  private timer: RclTimerLike | null = null;
  private onSample: ((s: SourceSample) => void) | null = null;
  /** (drone, topic) pairs already warned about, so a bad publisher does not flood the log. */
  private readonly warned = new Set<string>();
  /** Each drone's route, sent to the edge as the sample's intent (intent.ts). */
  private readonly intents: RosIntents;

  constructor(private readonly opts: Ros2SourceOptions) {
    if (opts.droneIds.length === 0) throw new Error("Ros2Source needs at least one drone id");
    if (opts.rateHz !== undefined && !(opts.rateHz >= 1 && opts.rateHz <= 10)) {
      throw new RangeError(`rateHz must be within 1..10, got ${opts.rateHz}`);
    }
    this.ids = [...new Set(opts.droneIds)];
    this.profile = opts.profile ?? DEFAULT_PROFILE;
    this.topics = { ...this.profile.defaultTopics, ...opts.topics };
    this.services = { ...this.profile.defaultServices, ...opts.services };
    this.qos = { fix: DEFAULT_QOS, battery: DEFAULT_QOS, velocity: DEFAULT_QOS, state: DEFAULT_QOS, ...opts.qos };
    this.log = opts.log ?? silentLogger;
    this.now = opts.now ?? Date.now;
    for (const id of this.ids) this.latest.set(id, emptyLatest());
    this.intents = new RosIntents(intentReaderFor(this.profile.name), { ...(opts.intentTopic ? { topic: opts.intentTopic } : {}), log: this.log });
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

  /** A drone's route topic (see the module comment), or null when it has none. */
  intentTopicFor(droneId: string): string | null {
    const own = this.opts.perDrone?.[droneId]?.intentTopic;
    if (own !== undefined) return own === false ? null : own;
    return this.opts.intentTopic === false ? null : this.intents.topicFor(droneId);
  }

  /** The route topics' message type (nav_msgs/msg/Path, or MAVROS's waypoint list). */
  get intentType(): string {
    return this.intents.reader.type;
  }

  /** The subscription QoS of a topic kind (config `qos:`, default sensor_data). */
  qosFor(key: TopicKey): QosName {
    return this.qos[key];
  }

  /** Interface types this source could not use when it started. */
  missingInterfaces(): string[] {
    return [...this.missing];
  }

  /** ROS messages received per topic kind, for metrics. */
  rosMessageCounts(): Readonly<Record<TopicKey, number>> {
    return this.messageCounts;
  }

  /** Seconds since each of a drone's topics last delivered (null: never), for the silence report. */
  topicAges(droneId: string): Record<string, number | null> {
    const l = this.latest.get(droneId);
    const t = this.now();
    const out: Record<string, number | null> = {};
    for (const key of TOPIC_KEYS) {
      const at = l?.lastAt[key] ?? null;
      out[key] = at === null ? null : Math.round((t - at) / 100) / 10;
    }
    return out;
  }

  /** Call the drone's service for `command`; see the module comment. Never rejects. */
  async execute(command: RelayCommand, signal: AbortSignal): Promise<CommandOutcome> {
    if (!this.latest.has(command.drone_id)) return { ok: false, message: "unknown drone" };
    const node = this.node;
    if (!node) return { ok: false, message: "ros2 source is not running" };
    if (signal.aborted) return { ok: false, message: "aborted before the service call" };
    // The service call ends before the command's own deadline, so its result names the service.
    const deadline = Date.now() + Math.max(1, command.timeout_ms - SERVICE_MARGIN_MS);
    let key: ServiceKey;
    let request: Record<string, unknown>;
    try {
      ({ key, request } = this.profile.request(command, { lastFix: this.latest.get(command.drone_id)?.fix ?? null }));
    } catch (err) {
      return { ok: false, message: errorMessage(err) };
    }
    const name = this.serviceFor(key, command.drone_id);
    const type = this.profile.serviceTypes[key];
    const why = this.missingWhy.get(type);
    if (why !== undefined) return { ok: false, message: `interface ${type} is not usable on the relay host: ${why}` };
    try {
      let client = this.clients.get(name);
      if (!client) {
        client = node.createClient(type, name);
        this.clients.set(name, client);
      }
      const waitMs = Math.min(this.opts.serviceWaitMs ?? DEFAULT_SERVICE_WAIT_MS, Math.max(0, deadline - Date.now()));
      const available = await abortable(client.waitForService(waitMs), signal);
      if (available === ABORTED) return { ok: false, message: `aborted waiting for service ${name}` };
      if (!available) return { ok: false, message: `service ${name} not available after ${waitMs} ms` };
      const left = Math.max(0, deadline - Date.now());
      const timeoutMs = Math.round(Math.min(this.opts.serviceTimeoutMs ?? left, left));
      const response = await callService(client, request, timeoutMs, signal);
      if (response === ABORTED) return { ok: false, message: `aborted waiting for service ${name}` };
      if (response === TIMED_OUT) {
        this.log.warn("service did not answer", { service: name, drone_id: command.drone_id, command: command.command, timeout_ms: timeoutMs });
        return { ok: false, timedOut: true, message: `service ${name} did not answer within ${timeoutMs} ms` };
      }
      return this.profile.readResponse(name, key, response);
    } catch (err) {
      const message = errorMessage(err);
      // A library on the ament path but not the loader's passes the check at start; say so here.
      const hint = /cannot open shared object/.test(message) && this.host ? `; ${typeSupportHint(this.host, packageOf(type), true)}` : "";
      return { ok: false, message: `service ${name}: ${message}${hint}` };
    }
  }

  async start(onSample: (s: SourceSample) => void): Promise<void> {
    if (this.node) throw new Error("Ros2Source already started");
    const host = this.opts.host ?? processHost();
    this.host = host;
    const rcl = this.opts.rcl ?? (await loadRclnodejs(host));
    this.checkInterfaces(rcl, host);
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
    this.log.info("ros2 source started", {
      drones: this.ids.length,
      rate_hz: this.opts.rateHz ?? "on_fix",
      profile: this.profile.name,
      qos: this.qos,
    });
  }

  /**
   * Name every interface type that cannot be used, rather than failing on the first one deep
   * inside rclnodejs: JavaScript not generated (rclnodejs.require throws), or its package's
   * type-support library not on the library path (rclnodejs.require does not load it; creating a
   * subscription or client would). One log line, one hint per package. Without positions there
   * is nothing to relay; anything else only disables its topic or command.
   */
  private checkInterfaces(rcl: RclLike, host: RosHost): void {
    const types = profileTypes(this.profile);
    const noJs = new Set(missingInterfaces(rcl, types));
    const noLib = new Set(missingTypeSupport(host, types));
    this.missing = types.filter((t) => noJs.has(t) || noLib.has(packageOf(t)));
    if (this.missing.length === 0) return;
    const packages = [...new Set(this.missing.map(packageOf))].map((pkg) => {
      const pkgTypes = this.missing.filter((t) => packageOf(t) === pkg);
      const first = pkgTypes[0] ?? pkg;
      const fix = pkgTypes.some((t) => noJs.has(t)) ? this.profile.installHint(first) : typeSupportHint(host, pkg);
      for (const t of pkgTypes) this.missingWhy.set(t, fix);
      return { package: pkg, types: pkgTypes, fix };
    });
    this.log.error("ROS 2 interface types missing; the topics and commands using them are disabled", {
      profile: this.profile.name,
      missing: this.missing,
      fix: packages.map((p) => `${p.package}: ${p.fix}`),
    });
    const fixType = this.profile.topicTypes.fix;
    if (this.missing.includes(fixType)) throw new Error(`cannot relay without ${fixType} (positions): ${this.missingWhy.get(fixType) ?? ""}`);
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
        l.lastAt[key] = this.now();
        try {
          handle(msg);
        } catch (err) {
          this.warnOnce(`${id}:${key}:throw`, "ros2 message handler failed", { drone_id: id, topic, error: err });
        }
      };
      node.createSubscription(type, topic, { qos: QOS_PROFILES[this.qos[key]] }, callback);
    };
    on("fix", (msg) => {
      const fix = readNavSatFix(msg);
      if (!fix) return; // no fix yet (or a NaN position): keep the last good one
      // Receipt time, not header.stamp: stamps may be simulation time, and the edge and
      // dashboards compare ts with wall clocks.
      const t = this.now();
      this.captureHome(id, l, fix, t);
      l.fix = fix;
      l.fixAt = t;
      l.fixes++;
      l.firstFixAt ??= t;
      if (this.opts.rateHz === undefined) this.emit(id, l);
    });
    on("battery", (msg) => {
      const pct = readBatteryPct(msg);
      if (pct === undefined) return; // NaN means "unknown": keep the last known value
      l.battery = pct;
    });
    on("velocity", (msg) => {
      const v = readTwist(msg);
      if (!v) return this.warnOnce(`${id}:velocity`, "unreadable TwistStamped", { drone_id: id });
      l.velocity = v;
      if (v.course !== undefined) l.course = v.course;
    });
    on("state", (msg) => {
      const st = this.profile.readState(msg);
      if (!st) return this.warnOnce(`${id}:state`, `unreadable ${this.profile.topicTypes.state} on the state topic`, { drone_id: id });
      l.stateSeen = true;
      if (st.armed !== undefined) l.armed = st.armed;
      if (st.mode !== undefined) l.mode = st.mode;
      if (st.status !== undefined) l.status = st.status;
      if (st.heading !== undefined) l.yaw = st.heading;
      if (st.relAlt !== undefined) l.relAlt = st.relAlt;
    });
    const route = this.intentTopicFor(id);
    if (route !== null) this.intents.subscribe(node, id, route);
  }

  /**
   * The take-off altitude: the first fix's, and again when the fix stream resumes after a gap
   * with the drone last seen on the ground, which is what a restarted drone node (or a
   * power-cycled drone, perhaps moved to another pad) looks like from here.
   */
  private captureHome(id: string, l: Latest, fix: Fix, t: number): void {
    if (!Number.isFinite(fix.altitude)) return;
    if (l.homeAltitude === null) {
      l.homeAltitude = fix.altitude;
      return;
    }
    const gap = t - l.fixAt;
    if (l.fix === null || gap < (this.opts.restartGapMs ?? DEFAULT_RESTART_GAP_MS) || lastSeenAirborne(l)) return;
    this.log.info("take-off altitude re-captured: the drone's fixes resumed after a gap on the ground (node restarted?)", {
      drone_id: id,
      gap_s: Math.round(gap / 100) / 10,
      previous_m: l.homeAltitude,
      altitude_m: fix.altitude,
    });
    l.homeAltitude = fix.altitude;
  }

  private emitChanged(): void {
    for (const [id, l] of this.latest) if (l.fixes > l.emittedFixes) this.emit(id, l);
  }

  private emit(id: string, l: Latest): void {
    const cb = this.onSample;
    if (!cb) return;
    const sample = toSample(id, l);
    if (!sample) return;
    l.emittedFixes = l.fixes;
    const intent = this.intents.intentFor(id, l);
    if (intent) sample.intent = intent;
    this.checkState(id, l);
    cb(sample);
  }

  /** Once per drone: its state topic is silent (or unusable), so armed and status are unknown. */
  private checkState(id: string, l: Latest): void {
    if (l.stateSeen || l.stateWarned) return;
    const type = this.profile.topicTypes.state;
    const disabled = this.missing.includes(type);
    const grace = this.opts.stateGraceMs ?? DEFAULT_STATE_GRACE_MS;
    if (!disabled && (l.firstFixAt === null || this.now() - l.firstFixAt < grace)) return;
    l.stateWarned = true;
    this.log.warn("no state from this drone: armed and status unknown; its samples say state_known false (armed false and status idle are placeholders), so the edge's collision avoidance infers airborne from altitude and speed", {
      drone_id: id,
      topic: this.topicFor("state", id),
      type,
      reason: disabled ? `${type} is not usable here (logged at start)` : `nothing on it within ${grace / 1000} s of the first fix`,
    });
  }

  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(msg, fields);
  }
}

const ABORTED: unique symbol = Symbol("aborted");
const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * One request, answered, TIMED_OUT after `ms`, or ABORTED when `signal` aborts first; either way
 * nothing of it is left in the client (rclnodejs keeps an unanswered request's callback forever).
 */
async function callService(client: RclClientLike, request: object, ms: number, signal: AbortSignal): Promise<unknown> {
  if (typeof client.sendRequestAsync === "function") {
    // Newer rclnodejs: its own abort handling removes the request from the client.
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new Error("timeout"));
    }, ms);
    const onAbort = (): void => ac.abort(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await client.sendRequestAsync(request, { signal: ac.signal });
    } catch (err) {
      if (timedOut) return TIMED_OUT;
      if (signal.aborted) return ABORTED;
      throw err;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }
  let callback: ((response: unknown) => void) | undefined;
  const answered = new Promise<unknown>((resolve) => {
    callback = resolve;
    client.sendRequest(request, resolve);
  });
  const r = await withTimeout(answered, ms, signal);
  if ((r === TIMED_OUT || r === ABORTED) && callback) forgetRequest(client, callback);
  return r;
}

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

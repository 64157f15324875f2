/**
 * A faithful double of rclnodejs 2.2 (ROS 2 Humble) for the relay's tests: the same call surface
 * (init → createNode → createSubscription/createTimer/createClient → spin; destroy, shutdown;
 * rclnodejs.require for interface classes; a node's view of the graph), the same preconditions it
 * enforces (init before createNode, BigInt timer periods, installed interface types, request
 * fields of each .srv), and messages shaped like the plain objects rclnodejs delivers.
 *
 * `new FakeRcl({ installed })` limits the interface types "installed" (generated): creating a
 * subscription or client of another type throws as rclnodejs does, and `require` throws for it.
 */
import type { RclClientLike, RclLike, RclNodeLike, RclSubscriptionOptions, RclTimerLike } from "../../relay/sources/ros2/ros2";

type Callback = (msg: unknown) => void;

/** Every type the relay's profiles use; the default set of a FakeRcl. */
export const ALL_TYPES = [
  "sensor_msgs/msg/NavSatFix",
  "sensor_msgs/msg/BatteryState",
  "geometry_msgs/msg/TwistStamped",
  "std_msgs/msg/String",
  "std_srvs/srv/Trigger",
  "dronefleet_interfaces/srv/ModifyWaypoint",
  "dronefleet_interfaces/srv/AssignMission",
  "mavros_msgs/msg/State",
  "mavros_msgs/msg/Waypoint",
  "mavros_msgs/srv/CommandTOL",
  "mavros_msgs/srv/WaypointPush",
  "mavros_msgs/srv/SetMode",
] as const;

/** rclnodejs QoS profile names (QoS.profileDefault, …); anything else is rejected. */
const QOS_PROFILES = new Set([
  "qos_profile_default",
  "qos_profile_system_default",
  "qos_profile_sensor_data",
  "qos_profile_services_default",
  "qos_profile_parameters",
  "qos_profile_parameter_events",
]);

/** Request fields per service type, as the .srv files define them (rclnodejs rejects others). */
const REQUEST_FIELDS: Record<string, string[]> = {
  "dronefleet_interfaces/srv/ModifyWaypoint": ["drone_id", "latitude", "longitude", "altitude", "modification_reason"],
  "dronefleet_interfaces/srv/AssignMission": ["mission_id", "latitudes", "longitudes", "altitudes", "priority"],
  "std_srvs/srv/Trigger": [],
  "mavros_msgs/srv/CommandTOL": ["min_pitch", "yaw", "latitude", "longitude", "altitude"],
  "mavros_msgs/srv/WaypointPush": ["start_index", "waypoints"],
  "mavros_msgs/srv/SetMode": ["base_mode", "custom_mode"],
};
/** mavros_msgs/msg/Waypoint fields, checked inside WaypointPush requests. */
const WAYPOINT_FIELDS = ["frame", "command", "is_current", "autocontinue", "param1", "param2", "param3", "param4", "x_lat", "y_long", "z_alt"];

export class FakeSubscription {
  constructor(
    readonly typeClass: string,
    readonly topic: string,
    readonly callback: Callback,
    readonly qos: string | undefined,
  ) {}
}

export class FakeTimer implements RclTimerLike {
  canceled = false;
  constructor(
    readonly periodNs: bigint,
    readonly callback: () => void,
  ) {}
  cancel(): void {
    this.canceled = true;
  }
}

/** A service server on the fake graph: returns the response, or throws (then never answers). */
export type Handler = (request: Record<string, unknown>) => Record<string, unknown>;
export type Server = { typeClass: string; handler: Handler; requests: Record<string, unknown>[] };

/**
 * rclnodejs Client: waitForService polls the graph until the timeout and resolves a boolean;
 * sendRequest(request, callback) has no timeout and calls back only if the server answers (a
 * server whose callback throws sends nothing). The response arrives asynchronously.
 */
export class FakeClient implements RclClientLike {
  destroyed = false;
  constructor(
    readonly rcl: FakeRcl,
    readonly typeClass: string,
    readonly serviceName: string,
  ) {}
  async waitForService(timeoutMs?: number): Promise<boolean> {
    if (this.destroyed) throw new Error("client destroyed");
    const deadline = Date.now() + (timeoutMs ?? Infinity);
    for (;;) {
      if (this.server()) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, Math.min(10, Math.max(1, deadline - Date.now()))));
    }
  }
  sendRequest(request: object, callback: (response: unknown) => void): void {
    if (this.destroyed) throw new Error("client destroyed");
    const fields = REQUEST_FIELDS[this.typeClass] ?? [];
    for (const k of Object.keys(request)) if (!fields.includes(k)) throw new TypeError(`${this.typeClass} request has no field ${k}`);
    if (this.typeClass === "mavros_msgs/srv/WaypointPush") {
      const wps = (request as { waypoints?: unknown }).waypoints;
      if (!Array.isArray(wps)) throw new TypeError("waypoints must be an array of mavros_msgs/msg/Waypoint");
      for (const w of wps) {
        for (const k of Object.keys(w as object)) if (!WAYPOINT_FIELDS.includes(k)) throw new TypeError(`mavros_msgs/msg/Waypoint has no field ${k}`);
      }
    }
    const server = this.server();
    if (!server || server.typeClass !== this.typeClass) return; // lost in the graph: no answer, ever
    const req = { ...(request as Record<string, unknown>) };
    server.requests.push(req);
    setImmediate(() => {
      let response: unknown;
      try {
        response = server.handler(req);
      } catch {
        return; // the server's callback threw: rclnodejs sends no response
      }
      if (!this.destroyed) callback(response);
    });
  }
  private server(): Server | undefined {
    return this.rcl.servers.get(this.serviceName);
  }
}

export class FakeNode implements RclNodeLike {
  readonly subscriptions: FakeSubscription[] = [];
  readonly timers: FakeTimer[] = [];
  readonly clients: FakeClient[] = [];
  destroyed = false;
  constructor(
    readonly rcl: FakeRcl,
    readonly name: string,
  ) {}
  createSubscription(typeClass: string, topic: string, optionsOrCallback: RclSubscriptionOptions | Callback, maybeCallback?: Callback): FakeSubscription {
    // rclnodejs: createSubscription(typeClass, topic, [options], callback).
    const callback = typeof optionsOrCallback === "function" ? optionsOrCallback : maybeCallback;
    const options = typeof optionsOrCallback === "function" ? undefined : optionsOrCallback;
    if (typeof callback !== "function") throw new TypeError("Invalid argument");
    if (options?.qos !== undefined && !QOS_PROFILES.has(options.qos)) throw new TypeError(`Invalid QoS profile ${options.qos}`);
    // rclnodejs resolves the type string against generated interfaces and throws on unknown ones.
    if (!this.rcl.installed.has(typeClass) || typeClass.includes("/srv/")) throw new Error(`The message requested does not exist: ${typeClass}`);
    if (!topic.startsWith("/")) throw new Error(`expected an absolute topic, got ${topic}`);
    const s = new FakeSubscription(typeClass, topic, callback, options?.qos);
    this.subscriptions.push(s);
    return s;
  }
  createTimer(periodNs: bigint, callback: () => void): FakeTimer {
    // rclnodejs 2.x: "period must be a bigint"; a number is a TypeError.
    if (typeof periodNs !== "bigint") throw new TypeError("Invalid argument: period must be a bigint");
    const t = new FakeTimer(periodNs, callback);
    this.timers.push(t);
    return t;
  }
  createClient(typeClass: string, serviceName: string): FakeClient {
    if (this.destroyed) throw new Error("node destroyed");
    if (!this.rcl.installed.has(typeClass) || !typeClass.includes("/srv/")) throw new Error(`The service requested does not exist: ${typeClass}`);
    if (!serviceName.startsWith("/")) throw new Error(`expected an absolute service name, got ${serviceName}`);
    const c = new FakeClient(this.rcl, typeClass, serviceName);
    this.clients.push(c);
    return c;
  }
  destroyClient(client: RclClientLike): void {
    if (!(client instanceof FakeClient) || !this.clients.includes(client)) throw new TypeError("Invalid argument: not a client of this node");
    client.destroyed = true;
  }
  destroy(): void {
    this.destroyed = true;
    for (const c of this.clients) c.destroyed = true;
  }
  /** Topics with a publisher (advertise) or a subscriber on the graph, like Node#getTopicNamesAndTypes. */
  getTopicNamesAndTypes(): { name: string; types: string[] }[] {
    if (this.destroyed) throw new Error("node destroyed");
    const all = new Map<string, string>(this.rcl.advertised);
    for (const n of this.rcl.nodes) if (!n.destroyed) for (const s of n.subscriptions) all.set(s.topic, s.typeClass);
    return [...all].map(([name, type]) => ({ name, types: [type] }));
  }
  getServiceNamesAndTypes(): { name: string; types: string[] }[] {
    if (this.destroyed) throw new Error("node destroyed");
    return [...this.rcl.servers].map(([name, s]) => ({ name, types: [s.typeClass] }));
  }
}

export class FakeRcl implements RclLike {
  initialized = false;
  shutDown = false;
  readonly installed: Set<string>;
  readonly nodes: FakeNode[] = [];
  readonly spinning = new Set<FakeNode>();
  readonly servers = new Map<string, Server>();
  readonly advertised = new Map<string, string>();

  constructor(opts: { installed?: readonly string[] } = {}) {
    this.installed = new Set(opts.installed ?? ALL_TYPES);
  }

  /** rclnodejs.require: the generated class, or "does not exist" for an uninstalled type. */
  require(name: string): unknown {
    if (!this.installed.has(name)) throw new Error(`The message requested does not exist: ${name}`);
    return class Generated {
      static type(): string {
        return name;
      }
    };
  }
  async init(): Promise<void> {
    if (this.initialized) throw new Error("The context has already been initialized.");
    this.initialized = true;
  }
  createNode(name: string): FakeNode {
    if (!this.initialized) throw new Error("Invalid context, rclnodejs.init() must be called first");
    const n = new FakeNode(this, name);
    this.nodes.push(n);
    return n;
  }
  spin(node: RclNodeLike): void {
    if (!(node instanceof FakeNode)) throw new TypeError("spin expects a Node");
    if (this.spinning.has(node)) throw new Error("The node is already spinning.");
    this.spinning.add(node);
  }
  shutdown(): void {
    this.shutDown = true;
  }

  // ---- test helpers: what the ROS graph would do
  publish(topic: string, msg: unknown): void {
    const subs = this.nodes.flatMap((n) => (n.destroyed ? [] : n.subscriptions.filter((s) => s.topic === topic)));
    if (subs.length === 0) throw new Error(`nobody subscribes to ${topic}`);
    for (const s of subs) s.callback(msg);
  }
  /** A publisher somewhere on the graph (for graph listings). */
  advertise(topic: string, typeClass: string): void {
    this.advertised.set(topic, typeClass);
  }
  serve(name: string, typeClass: string, handler: Handler): Server {
    const server = { typeClass, handler, requests: [] };
    this.servers.set(name, server);
    return server;
  }
  fireTimers(): void {
    for (const n of this.nodes) for (const t of n.timers) if (!t.canceled) t.callback();
  }
}

// ---- messages shaped like rclnodejs's plain-object delivery

const header = (frame = "map") => ({ stamp: { sec: 1_700_000_000, nanosec: 0 }, frame_id: frame });

export function navSatFix(lat: number, lon: number, altitude: number, status = 0) {
  return {
    header: header("gps"),
    status: { status, service: 1 },
    latitude: lat,
    longitude: lon,
    altitude,
    position_covariance: [1, 0, 0, 0, 1, 0, 0, 0, 4],
    position_covariance_type: 2,
  };
}

export function batteryState(percentage: number) {
  return {
    header: header("base_link"),
    voltage: 15.2,
    temperature: Number.NaN,
    current: -12.5,
    charge: Number.NaN,
    capacity: Number.NaN,
    design_capacity: 5.0,
    percentage,
    power_supply_status: 2,
    power_supply_health: 1,
    power_supply_technology: 3,
    present: true,
    cell_voltage: [3.8, 3.8, 3.8, 3.8],
    cell_temperature: [],
    location: "",
    serial_number: "",
  };
}

export function twistStamped(east: number, north: number, up: number) {
  return { header: header("map"), twist: { linear: { x: east, y: north, z: up }, angular: { x: 0, y: 0, z: 0.1 } } };
}

export const stateMsg = (data: unknown) => ({ data: typeof data === "string" ? data : JSON.stringify(data) });

/** mavros_msgs/msg/State as MAVROS publishes it. */
export function mavrosState(s: { armed: boolean; mode: string; connected?: boolean; guided?: boolean; system_status?: number }) {
  return {
    header: header(""),
    connected: s.connected ?? true,
    armed: s.armed,
    guided: s.guided ?? true,
    manual_input: false,
    mode: s.mode,
    system_status: s.system_status ?? (s.armed ? 4 : 3),
  };
}

/**
 * A faithful double of rclnodejs 2.2 on ROS 2 Humble for the relay's tests: the same call surface
 * (init → createNode → createSubscription/createTimer/createClient → spin; destroy, shutdown;
 * rclnodejs.require for interface classes; a node's view of the graph), the same preconditions it
 * enforces (init before createNode, BigInt timer periods, installed interface types, request
 * fields of each .srv), messages shaped like the plain objects rclnodejs delivers, and the
 * behaviours a field install trips over:
 *
 * - The graph is shared by every process (`FakeGraph`: a relay and its doctor see each other), and
 *   graph-wide listings (getTopicNamesAndTypes, getServiceNamesAndTypes) include the asking
 *   process's own subscriptions and clients, as rcl's do. Publisher counts and endpoint info
 *   (countPublishers, getPublishersInfoByTopic with each publisher's QoS) and the services each
 *   node serves (getServiceNamesAndTypesByNode) tell others' endpoints apart.
 * - DDS QoS matching: a reliable subscription never receives from a best-effort publisher;
 *   sensor-data (best effort) matches both. Only spinning nodes get callbacks.
 * - rclnodejs.require loads only the generated JavaScript. The type-support library
 *   (lib<pkg>__rosidl_typesupport_c.so) is dlopen'ed from LD_LIBRARY_PATH when a subscription or
 *   client is created, so an overlay that is not sourced passes `require` and then fails there.
 * - Client#sendRequest has no timeout and keeps each request's callback in
 *   `_sequenceNumberToCallbackMap` until a response comes, which for a hanging server is never.
 * - The install on disk (`FakeHost`): rclnodejs's native loader, imported while its addon cannot
 *   load (not built, or ROS 2 not sourced so librcl.so is not on LD_LIBRARY_PATH), runs
 *   `npm run rebuild`, whose `node-gyp clean` deletes build/ before the rebuild fails.
 */
import type { RclClientLike, RclEndpointInfo, RclLike, RclNodeLike, RclSubscriptionOptions, RclTimerLike, RosHost } from "../../relay/sources/ros2/rcl";

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
  // Route topics (relay/sources/ros2/intent.ts).
  "nav_msgs/msg/Path",
  "mavros_msgs/msg/WaypointList",
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

export type Reliability = "reliable" | "best_effort";

/** What a subscription profile asks for: only sensor data is best effort (rmw_qos_profile_*). */
const subscriptionReliability = (qos: string | undefined): Reliability => (qos === "qos_profile_sensor_data" ? "best_effort" : "reliable");

/** DDS request/offered: a reliable reader needs a reliable writer. */
const matches = (sub: FakeSubscription, pub: Reliability): boolean => !(subscriptionReliability(sub.qos) === "reliable" && pub === "best_effort");

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

const pkgOf = (type: string): string => type.split("/")[0] ?? type;
const libOf = (type: string): string => `lib${pkgOf(type)}__rosidl_typesupport_c.so`;

// ------------------------------------------------------------------ the host: environment and disk

export const ROS = "/opt/ros/humble";
export const WORKSPACE = "/opt/dronefleet/ws";
export const OVERLAY = `${WORKSPACE}/install/dronefleet_interfaces`;
export const RCLNODEJS = "/opt/dronefleet/node_modules/rclnodejs";

/**
 * A ground station's file system and environment: ROS 2 Humble under /opt/ros/humble, the
 * dronefleet_interfaces overlay built in /opt/dronefleet/ws, rclnodejs 2.2.0 installed and built.
 * `sourced` says what the shell has sourced ("none" leaves ROS_DISTRO, AMENT_PREFIX_PATH and
 * LD_LIBRARY_PATH unset, as in a fresh shell).
 */
export class FakeHost implements RosHost {
  readonly env: Record<string, string | undefined>;
  readonly platform = "linux";
  readonly arch = "x64";
  readonly files = new Map<string, string>();
  /** What importRclnodejs returns once the addon loads. */
  module: unknown = null;
  /** Times the native loader ran `npm run rebuild`. */
  rebuilds = 0;

  constructor(opts: { sourced?: "ros+overlay" | "ros" | "none"; env?: Record<string, string> } = {}) {
    const sourced = opts.sourced ?? "ros+overlay";
    this.env = { PATH: "/usr/bin", HOME: "/var/lib/dronefleet-relay" };
    if (sourced !== "none") {
      const overlay = sourced === "ros+overlay";
      this.env.ROS_DISTRO = "humble";
      this.env.ROS_VERSION = "2";
      this.env.AMENT_PREFIX_PATH = overlay ? `${OVERLAY}:${ROS}` : ROS;
      this.env.LD_LIBRARY_PATH = overlay ? `${OVERLAY}/lib:${ROS}/lib` : `${ROS}/lib`;
    }
    Object.assign(this.env, opts.env);
    this.files.set(`${ROS}/setup.bash`, "# ROS 2 Humble");
    this.files.set(`${ROS}/lib/librcl.so`, "");
    for (const t of ALL_TYPES) {
      const prefix = pkgOf(t) === "dronefleet_interfaces" ? OVERLAY : ROS;
      const [pkg, kind, name] = t.split("/");
      this.files.set(`${prefix}/lib/${libOf(t)}`, "");
      this.files.set(`${prefix}/share/${pkg}/${kind}/${name}.idl`, "");
    }
    this.files.set(`${RCLNODEJS}/package.json`, JSON.stringify({ name: "rclnodejs", version: "2.2.0" }));
    this.files.set(`${RCLNODEJS}/build/Release/rclnodejs.node`, "");
    this.files.set(`${RCLNODEJS}/generated/std_msgs/std_msgs__msg__String.js`, "");
  }

  exists(path: string): boolean {
    if (this.files.has(path)) return true;
    const dir = path.endsWith("/") ? path : `${path}/`;
    for (const f of this.files.keys()) if (f.startsWith(dir)) return true;
    return false;
  }
  readdir(path: string): string[] {
    const dir = path.endsWith("/") ? path : `${path}/`;
    const names = new Set<string>();
    for (const f of this.files.keys()) if (f.startsWith(dir)) names.add(f.slice(dir.length).split("/")[0] ?? "");
    return [...names].filter(Boolean);
  }
  readFile(path: string): string | null {
    return this.files.get(path) ?? null;
  }
  remove(prefix: string): void {
    for (const f of [...this.files.keys()]) if (f === prefix || f.startsWith(`${prefix}/`)) this.files.delete(f);
  }
  rclnodejsDir(): string | null {
    return this.files.has(`${RCLNODEJS}/package.json`) ? RCLNODEJS : null;
  }

  /** dlopen as the loader does it: a library is found only in an LD_LIBRARY_PATH directory. */
  canLoad(library: string): boolean {
    return (this.env.LD_LIBRARY_PATH ?? "").split(":").some((d) => d && this.files.has(`${d}/${library}`));
  }

  /**
   * rclnodejs's lib/native_loader.js: bindings('rclnodejs') fails when the addon is missing or
   * cannot be loaded (librcl.so not on LD_LIBRARY_PATH: ROS 2 not sourced); it then runs
   * `npm run rebuild` (node-gyp clean deletes build/; the rebuild needs a sourced ROS 2).
   */
  async importRclnodejs(): Promise<unknown> {
    const addon = `${RCLNODEJS}/build/Release/rclnodejs.node`;
    if (this.files.has(addon) && this.canLoad("librcl.so")) return { default: this.module };
    this.rebuilds++;
    this.remove(`${RCLNODEJS}/build`);
    if (this.canLoad("librcl.so")) {
      this.files.set(addon, "");
      return { default: this.module };
    }
    throw new Error("Failed to build rclnodejs from source: Command failed: npm run rebuild");
  }
}

// ------------------------------------------------------------------ the graph, shared by processes

export class FakeSubscription {
  constructor(
    readonly node: FakeNode,
    readonly typeClass: string,
    readonly topic: string,
    readonly callback: Callback,
    readonly qos: string | undefined,
  ) {}
}

export type FakePublisherOptions = {
  node?: string;
  namespace?: string;
  reliability?: Reliability;
  /** With `message`: how often `FakeGraph.advance` publishes it. */
  rateHz?: number;
  message?: () => unknown;
};

/** A publisher in another process (a drone's node, a GPS driver). */
export class FakePublisher {
  private owed = 0;
  constructor(
    readonly graph: FakeGraph,
    readonly topic: string,
    readonly typeClass: string,
    readonly opts: Required<Pick<FakePublisherOptions, "node" | "namespace" | "reliability">> & FakePublisherOptions,
  ) {}
  /** Deliver to every matching subscription on a spinning node; returns how many got it. */
  publish(msg: unknown): number {
    const subs = this.graph.subscriptions(this.topic).filter((s) => matches(s, this.opts.reliability) && s.node.spinning());
    for (const s of subs) s.callback(msg);
    return subs.length;
  }
  /** Publish what `rateHz` makes due in `ms`. */
  advance(ms: number): void {
    const { rateHz, message } = this.opts;
    if (!rateHz || !message) return;
    this.owed += (ms * rateHz) / 1000;
    for (; this.owed >= 1; this.owed--) this.publish(message());
  }
  info(): RclEndpointInfo & Record<string, unknown> {
    return {
      node_name: this.opts.node,
      node_namespace: this.opts.namespace,
      topic_type: this.typeClass,
      endpoint_type: 1,
      endpoint_gid: new Uint8Array(16),
      // rmw enums as rclnodejs reports them: reliability 1 reliable, 2 best effort; durability 2 volatile.
      qos_profile: { depth: 10, history: 1, reliability: this.opts.reliability === "best_effort" ? 2 : 1, durability: 2 },
    };
  }
}

/** A service server on the graph: returns the response, or throws (then never answers). */
export type Handler = (request: Record<string, unknown>) => Record<string, unknown>;
export type Server = { typeClass: string; handler: Handler; requests: Record<string, unknown>[]; node: string; namespace: string };

/** The DDS graph every FakeRcl (one per process) on the same domain sees. */
export class FakeGraph {
  readonly rcls: FakeRcl[] = [];
  readonly publishers: FakePublisher[] = [];
  readonly servers = new Map<string, Server>();

  localNodes(): FakeNode[] {
    return this.rcls.flatMap((r) => r.nodes.filter((n) => !n.destroyed));
  }
  subscriptions(topic: string): FakeSubscription[] {
    return this.localNodes().flatMap((n) => n.subscriptions.filter((s) => s.topic === topic));
  }
  /** Let `ms` of time pass for the publishers that publish on their own. */
  advance(ms: number): void {
    for (const p of this.publishers) p.advance(ms);
  }
}

// ------------------------------------------------------------------ rclnodejs objects

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

/**
 * rclnodejs Client: waitForService polls the graph until the timeout and resolves a boolean;
 * sendRequest(request, callback) has no timeout and calls back only if the server answers (a
 * server whose callback throws sends nothing); until then the callback waits in
 * `_sequenceNumberToCallbackMap`. The response arrives asynchronously.
 */
export class FakeClient implements RclClientLike {
  destroyed = false;
  readonly _sequenceNumberToCallbackMap = new Map<number, (response: unknown) => void>();
  private sequence = 0;
  constructor(
    readonly node: FakeNode,
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
    if (typeof callback !== "function") throw new TypeError("Invalid argument");
    const fields = REQUEST_FIELDS[this.typeClass] ?? [];
    for (const k of Object.keys(request)) if (!fields.includes(k)) throw new TypeError(`${this.typeClass} request has no field ${k}`);
    if (this.typeClass === "mavros_msgs/srv/WaypointPush") {
      const wps = (request as { waypoints?: unknown }).waypoints;
      if (!Array.isArray(wps)) throw new TypeError("waypoints must be an array of mavros_msgs/msg/Waypoint");
      for (const w of wps) {
        for (const k of Object.keys(w as object)) if (!WAYPOINT_FIELDS.includes(k)) throw new TypeError(`mavros_msgs/msg/Waypoint has no field ${k}`);
      }
    }
    const seq = ++this.sequence;
    this._sequenceNumberToCallbackMap.set(seq, callback);
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
      // Client#processResponse: the callback for this sequence number, if still there.
      const cb = this._sequenceNumberToCallbackMap.get(seq);
      if (!cb || this.destroyed) return;
      this._sequenceNumberToCallbackMap.delete(seq);
      cb(response);
    });
  }
  protected server(): Server | undefined {
    return this.node.rcl.graph.servers.get(this.serviceName);
  }
}

/** Newer rclnodejs's Client: sendRequestAsync removes its own entry on abort. */
export class FakeAsyncClient extends FakeClient {
  sendRequestAsync(request: object, options: { signal?: AbortSignal } = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let seq: number | undefined;
      const onAbort = (): void => {
        if (seq !== undefined) this._sequenceNumberToCallbackMap.delete(seq);
        reject(new Error("AbortError: Service request aborted"));
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const before = new Set(this._sequenceNumberToCallbackMap.keys());
      this.sendRequest(request, (response) => {
        options.signal?.removeEventListener("abort", onAbort);
        resolve(response);
      });
      seq = [...this._sequenceNumberToCallbackMap.keys()].find((k) => !before.has(k));
    });
  }
}

export class FakeNode implements RclNodeLike {
  readonly subscriptions: FakeSubscription[] = [];
  readonly timers: FakeTimer[] = [];
  readonly clients: FakeClient[] = [];
  destroyed = false;
  readonly namespace = "/";
  constructor(
    readonly rcl: FakeRcl,
    readonly name: string,
  ) {}
  spinning(): boolean {
    return !this.destroyed && this.rcl.spinningNodes.has(this);
  }
  createSubscription(typeClass: string, topic: string, optionsOrCallback: RclSubscriptionOptions | Callback, maybeCallback?: Callback): FakeSubscription {
    // rclnodejs: createSubscription(typeClass, topic, [options], callback).
    const callback = typeof optionsOrCallback === "function" ? optionsOrCallback : maybeCallback;
    const options = typeof optionsOrCallback === "function" ? undefined : optionsOrCallback;
    if (typeof callback !== "function") throw new TypeError("Invalid argument");
    if (options?.qos !== undefined && !QOS_PROFILES.has(options.qos)) throw new TypeError(`Invalid QoS profile ${options.qos}`);
    // rclnodejs resolves the type string against generated interfaces and throws on unknown ones,
    // then loads the type support from the package's shared library.
    if (!this.rcl.installed.has(typeClass) || typeClass.includes("/srv/")) throw new Error(`The message requested does not exist: ${typeClass}`);
    this.rcl.loadTypeSupport(typeClass);
    if (!topic.startsWith("/")) throw new Error(`expected an absolute topic, got ${topic}`);
    const s = new FakeSubscription(this, typeClass, topic, callback, options?.qos);
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
    this.rcl.loadTypeSupport(typeClass);
    if (!serviceName.startsWith("/")) throw new Error(`expected an absolute service name, got ${serviceName}`);
    const c = this.rcl.asyncRequests ? new FakeAsyncClient(this, typeClass, serviceName) : new FakeClient(this, typeClass, serviceName);
    this.clients.push(c);
    return c;
  }
  destroyClient(client: RclClientLike): void {
    if (!(client instanceof FakeClient) || !this.clients.includes(client)) throw new TypeError("Invalid argument: not a client of this node");
    client.destroyed = true;
    this.clients.splice(this.clients.indexOf(client), 1);
  }
  destroy(): void {
    this.destroyed = true;
    for (const c of this.clients) c.destroyed = true;
  }
  private graph(): FakeGraph {
    if (this.destroyed) throw new Error("node destroyed");
    return this.rcl.graph;
  }
  /** Every topic with a publisher or a subscription anywhere, this process's own included (rcl_get_topic_names_and_types). */
  getTopicNamesAndTypes(): { name: string; types: string[] }[] {
    const g = this.graph();
    const all = new Map<string, string>();
    for (const p of g.publishers) all.set(p.topic, p.typeClass);
    for (const n of g.localNodes()) for (const s of n.subscriptions) all.set(s.topic, s.typeClass);
    return [...all].map(([name, type]) => ({ name, types: [type] }));
  }
  /** Every service with a server or a client anywhere, this process's own clients included. */
  getServiceNamesAndTypes(): { name: string; types: string[] }[] {
    const g = this.graph();
    const all = new Map<string, string>();
    for (const [name, s] of g.servers) all.set(name, s.typeClass);
    for (const n of g.localNodes()) for (const c of n.clients) if (!c.destroyed) all.set(c.serviceName, c.typeClass);
    return [...all].map(([name, type]) => ({ name, types: [type] }));
  }
  countPublishers(topic: string): number {
    return this.graph().publishers.filter((p) => p.topic === topic).length;
  }
  getPublishersInfoByTopic(topic: string, noDemangle: boolean): RclEndpointInfo[] {
    if (typeof noDemangle !== "boolean") throw new TypeError("Invalid argument");
    return this.graph()
      .publishers.filter((p) => p.topic === topic)
      .map((p) => p.info());
  }
  getNodeNamesAndNamespaces(): { name: string; namespace: string }[] {
    const g = this.graph();
    const all = new Map<string, { name: string; namespace: string }>();
    const add = (name: string, namespace: string): void => void all.set(`${namespace}|${name}`, { name, namespace });
    for (const n of g.localNodes()) add(n.name, n.namespace);
    for (const p of g.publishers) add(p.opts.node, p.opts.namespace);
    for (const s of g.servers.values()) add(s.node, s.namespace);
    return [...all.values()];
  }
  /** The services a node serves (a local relay or doctor node serves none). */
  getServiceNamesAndTypesByNode(nodeName: string, namespace = "/"): { name: string; types: string[] }[] {
    return [...this.graph().servers]
      .filter(([, s]) => s.node === nodeName && s.namespace === namespace)
      .map(([name, s]) => ({ name, types: [s.typeClass] }));
  }
}

export class FakeRcl implements RclLike {
  initialized = false;
  shutDown = false;
  readonly installed: Set<string>;
  readonly nodes: FakeNode[] = [];
  readonly spinningNodes = new Set<FakeNode>();
  readonly graph: FakeGraph;
  readonly host: FakeHost;
  readonly asyncRequests: boolean;

  constructor(opts: { installed?: readonly string[]; graph?: FakeGraph; host?: FakeHost; asyncRequests?: boolean } = {}) {
    this.installed = new Set(opts.installed ?? ALL_TYPES);
    this.graph = opts.graph ?? new FakeGraph();
    this.graph.rcls.push(this);
    this.host = opts.host ?? new FakeHost();
    this.host.module = this;
    this.asyncRequests = opts.asyncRequests ?? false;
  }

  /** rclnodejs.require: the generated class (JavaScript only), or "does not exist". */
  require(name: string): unknown {
    if (!this.installed.has(name)) throw new Error(`The message requested does not exist: ${name}`);
    return class Generated {
      static type(): string {
        return name;
      }
    };
  }
  /** What rclnodejs's GetMessageTypeSupport/GetServiceTypeSupport do: dlopen the package's library. */
  loadTypeSupport(typeClass: string): void {
    const lib = libOf(typeClass);
    if (!this.host.canLoad(lib)) throw new Error(`${lib}: cannot open shared object file: No such file or directory`);
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
    if (this.spinningNodes.has(node)) throw new Error("The node is already spinning.");
    this.spinningNodes.add(node);
  }
  /** Kept for the tests that ask whether a node spins. */
  get spinning(): ReadonlySet<FakeNode> {
    return this.spinningNodes;
  }
  shutdown(): void {
    this.shutDown = true;
  }

  // ---- test helpers: what the ROS graph would do

  /** A message from a reliable publisher elsewhere (matches every subscription). */
  publish(topic: string, msg: unknown): void {
    if (this.graph.subscriptions(topic).length === 0) throw new Error(`nobody subscribes to ${topic}`);
    new FakePublisher(this.graph, topic, "", { node: "test_publisher", namespace: "/", reliability: "reliable" }).publish(msg);
  }
  /** A publisher in another process, listed in the graph from now on. */
  advertise(topic: string, typeClass: string, opts: FakePublisherOptions = {}): FakePublisher {
    const p = new FakePublisher(this.graph, topic, typeClass, { node: "drone_node", namespace: "/", reliability: "reliable", ...opts });
    this.graph.publishers.push(p);
    return p;
  }
  serve(name: string, typeClass: string, handler: Handler, opts: { node?: string; namespace?: string } = {}): Server {
    const server: Server = { typeClass, handler, requests: [], node: opts.node ?? "drone_node", namespace: opts.namespace ?? "/" };
    this.graph.servers.set(name, server);
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

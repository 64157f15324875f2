/**
 * Ros2Source against a faithful double of rclnodejs 2.2 (ROS 2 Humble): the same call surface
 * (init → createNode → createSubscription/createTimer → spin; destroy, shutdown), the same
 * preconditions it enforces (init before createNode, BigInt timer periods, interface type
 * strings), and messages shaped like the plain objects rclnodejs delivers.
 */
import { afterEach, describe, expect, it } from "vitest";
import { TelemetrySample } from "../../edge/protocol";
import { createLogger } from "../../relay/log";
import type { RelayCommand } from "../../edge/protocol";
import {
  loadRclnodejs,
  Ros2Source,
  ROS_SERVICE_TYPES,
  ROS_TYPES,
  type RclClientLike,
  type RclLike,
  type RclNodeLike,
  type RclTimerLike,
} from "../../relay/ros2";
import type { SourceSample } from "../../relay/source";

type Callback = (msg: unknown) => void;

class FakeSubscription {
  constructor(
    readonly typeClass: string,
    readonly topic: string,
    readonly callback: Callback,
  ) {}
}

class FakeTimer implements RclTimerLike {
  canceled = false;
  constructor(
    readonly periodNs: bigint,
    readonly callback: () => void,
  ) {}
  cancel(): void {
    this.canceled = true;
  }
}

const KNOWN_TYPES = new Set<string>(Object.values(ROS_TYPES));
/** Service types rclnodejs has generated bindings for (custom ones after generate_messages.js). */
const KNOWN_SERVICE_TYPES = new Set<string>(Object.values(ROS_SERVICE_TYPES));
/** Request fields per service type, as the .srv files define them (rclnodejs rejects others). */
const REQUEST_FIELDS: Record<string, string[]> = {
  "dronefleet_interfaces/srv/ModifyWaypoint": ["drone_id", "latitude", "longitude", "altitude", "modification_reason"],
  "dronefleet_interfaces/srv/AssignMission": ["mission_id", "latitudes", "longitudes", "altitudes", "priority"],
  "std_srvs/srv/Trigger": [],
};

/** A service server on the fake graph: returns the response, or throws (then never answers). */
type Handler = (request: Record<string, unknown>) => { success: boolean; message: string };
type Server = { typeClass: string; handler: Handler; requests: Record<string, unknown>[] };

/**
 * rclnodejs Client: waitForService polls the graph until the timeout and resolves a boolean;
 * sendRequest(request, callback) has no timeout and calls back only if the server answers (a
 * server whose callback throws sends nothing). The response arrives asynchronously.
 */
class FakeClient implements RclClientLike {
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

class FakeNode implements RclNodeLike {
  readonly subscriptions: FakeSubscription[] = [];
  readonly timers: FakeTimer[] = [];
  readonly clients: FakeClient[] = [];
  destroyed = false;
  constructor(
    readonly rcl: FakeRcl,
    readonly name: string,
  ) {}
  createSubscription(typeClass: string, topic: string, callback: Callback): FakeSubscription {
    // rclnodejs resolves the type string against generated interfaces and throws on unknown ones.
    if (!KNOWN_TYPES.has(typeClass)) throw new Error(`The message requested does not exist: ${typeClass}`);
    if (!topic.startsWith("/")) throw new Error(`expected an absolute topic, got ${topic}`);
    const s = new FakeSubscription(typeClass, topic, callback);
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
    if (!KNOWN_SERVICE_TYPES.has(typeClass)) throw new Error(`The service requested does not exist: ${typeClass}`);
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
}

class FakeRcl implements RclLike {
  initialized = false;
  shutDown = false;
  readonly nodes: FakeNode[] = [];
  readonly spinning = new Set<FakeNode>();
  readonly servers = new Map<string, Server>();
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

function navSatFix(lat: number, lon: number, altitude: number, status = 0) {
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

function batteryState(percentage: number) {
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

function twistStamped(east: number, north: number, up: number) {
  return { header: header("map"), twist: { linear: { x: east, y: north, z: up }, angular: { x: 0, y: 0, z: 0.1 } } };
}

const stateMsg = (data: unknown) => ({ data: typeof data === "string" ? data : JSON.stringify(data) });

const RCLNODEJS = "rclnodejs";
const rclnodejsInstalled = await import(/* @vite-ignore */ RCLNODEJS).then(
  () => true,
  () => false,
);

const sources: Ros2Source[] = [];
afterEach(async () => {
  await Promise.all(sources.map((s) => s.stop()));
  sources.length = 0;
});

async function started(opts: Partial<ConstructorParameters<typeof Ros2Source>[0]> = {}) {
  const rcl = new FakeRcl();
  const got: SourceSample[] = [];
  const src = new Ros2Source({ droneIds: ["uav1", "uav2"], rcl, now: () => 1_700_000_000_123, ...opts });
  sources.push(src);
  await src.start((s) => got.push(s));
  return { rcl, src, got };
}

describe("Ros2Source with a faithful rclnodejs double", () => {
  it("creates one spinning node with the four typed subscriptions per drone namespace", async () => {
    const { rcl } = await started();
    expect(rcl.nodes).toHaveLength(1);
    const node = rcl.nodes[0];
    expect(node && rcl.spinning.has(node)).toBe(true);
    const subs = (node?.subscriptions ?? []).map((s) => [s.topic, s.typeClass]);
    expect(subs).toEqual(
      expect.arrayContaining([
        ["/uav1/fix", "sensor_msgs/msg/NavSatFix"],
        ["/uav1/battery", "sensor_msgs/msg/BatteryState"],
        ["/uav1/velocity", "geometry_msgs/msg/TwistStamped"],
        ["/uav1/state", "std_msgs/msg/String"],
        ["/uav2/fix", "sensor_msgs/msg/NavSatFix"],
      ]),
    );
    expect(subs).toHaveLength(8);
  });

  it("maps fix, battery, twist and state JSON into one sample, emitted on each fix", async () => {
    const { rcl, got } = await started();
    rcl.publish("/uav1/battery", batteryState(0.734));
    rcl.publish("/uav1/velocity", twistStamped(3, 4, -1.5)); // east 3, north 4 → 5 m/s
    rcl.publish("/uav1/state", stateMsg({ armed: true, mode: "AUTO.MISSION", status: "flying" }));
    expect(got).toHaveLength(0); // nothing before the first fix
    rcl.publish("/uav1/fix", navSatFix(47.3977, 8.5456, 500)); // first fix: the home altitude
    rcl.publish("/uav1/fix", navSatFix(47.398, 8.546, 542.5));
    expect(got).toHaveLength(2);
    const s = got[1];
    expect(s).toMatchObject({
      drone_id: "uav1",
      ts: 1_700_000_000_123,
      lat: 47.398,
      lon: 8.546,
      alt_m: 42.5,
      speed_mps: 5,
      climb_mps: -1.5,
      armed: true,
      mode: "AUTO.MISSION",
      status: "flying",
    });
    expect(s?.battery_pct).toBeCloseTo(73.4, 6);
    expect(s?.heading_deg).toBeCloseTo((Math.atan2(3, 4) * 180) / Math.PI, 6); // course over ground
    expect(TelemetrySample.safeParse({ ...s, seq: 1 }).success).toBe(true);
  });

  it("prefers the state topic's heading and rel_alt_m over derived values", async () => {
    const { rcl, got } = await started();
    rcl.publish("/uav2/velocity", twistStamped(-5, 0, 0)); // course 270
    rcl.publish("/uav2/state", stateMsg({ heading_deg: -10, rel_alt_m: 12.25 }));
    rcl.publish("/uav2/fix", navSatFix(1, 2, 100));
    expect(got[0]).toMatchObject({ heading_deg: 350, alt_m: 12.25 });
  });

  it("skips no-fix messages and keeps the last battery when percentage is NaN", async () => {
    const { rcl, got } = await started();
    rcl.publish("/uav1/fix", navSatFix(0, 0, 0, -1)); // STATUS_NO_FIX
    rcl.publish("/uav1/fix", navSatFix(Number.NaN, Number.NaN, Number.NaN, 0));
    expect(got).toHaveLength(0);
    rcl.publish("/uav1/battery", batteryState(0.5));
    rcl.publish("/uav1/battery", batteryState(Number.NaN));
    rcl.publish("/uav1/fix", navSatFix(10, 20, 30));
    expect(got).toHaveLength(1);
    expect(got[0]?.battery_pct).toBe(50);
    rcl.publish("/uav1/fix", navSatFix(0, 0, 0, -1)); // a later loss of fix emits nothing
    expect(got).toHaveLength(1);
  });

  it("ignores malformed state strings and unknown statuses without crashing the callback", async () => {
    const lines: string[] = [];
    const { rcl, got } = await started({ log: createLogger("warn", (l) => lines.push(l)) });
    rcl.publish("/uav1/state", stateMsg("{not json"));
    rcl.publish("/uav1/state", stateMsg({ status: "exploding", armed: "yes", mode: "POSCTL" }));
    rcl.publish("/uav1/velocity", { twist: "nonsense" });
    rcl.publish("/uav1/fix", navSatFix(10, 20, 30));
    expect(got[0]).toMatchObject({ status: "idle", armed: false, mode: "POSCTL" });
    expect(lines.length).toBe(2); // one warning per (drone, topic) kind
  });

  it("at a fixed rate, emits changed drones from one BigInt-period timer", async () => {
    const { rcl, got } = await started({ rateHz: 4 });
    const timer = rcl.nodes[0]?.timers[0];
    expect(timer?.periodNs).toBe(250_000_000n);
    rcl.publish("/uav1/fix", navSatFix(10, 20, 30));
    rcl.publish("/uav1/fix", navSatFix(10.1, 20, 30));
    expect(got).toHaveLength(0); // rate mode: no emission per fix
    rcl.fireTimers();
    expect(got.map((s) => [s.drone_id, s.lat])).toEqual([["uav1", 10.1]]);
    rcl.fireTimers();
    expect(got).toHaveLength(1); // nothing new, nothing sent: a silent drone goes stale at the edge
    rcl.publish("/uav1/battery", batteryState(0.2));
    rcl.fireTimers();
    expect(got).toHaveLength(2);
  });

  it("uses configured topic templates", async () => {
    const { rcl, got } = await started({ droneIds: ["px4_1"], topics: { fix: "/{drone}/mavros/global_position/global" } });
    rcl.publish("/px4_1/mavros/global_position/global", navSatFix(1, 1, 1));
    expect(got).toHaveLength(1);
  });

  it("stop() cancels the timer, destroys the node and shuts rclnodejs down", async () => {
    const { rcl, src } = await started({ rateHz: 1 });
    await src.stop();
    expect(rcl.nodes[0]?.timers[0]?.canceled).toBe(true);
    expect(rcl.nodes[0]?.destroyed).toBe(true);
    expect(rcl.shutDown).toBe(true);
  });
});

describe("loading rclnodejs", () => {
  it("turns a missing module into a clear error", async () => {
    await expect(loadRclnodejs("rclnodejs-that-is-not-installed")).rejects.toThrow(
      /rclnodejs not installed.*ROS 2.*sourced.*npm install.*README/s,
    );
  });

  it.skipIf(rclnodejsInstalled)(
    "Ros2Source.start() rejects with that error when rclnodejs is absent",
    async () => {
      const src = new Ros2Source({ droneIds: ["uav1"] });
      await expect(src.start(() => {})).rejects.toThrow(/rclnodejs not installed/);
    },
  );

  it("rejects a module without the rclnodejs surface", async () => {
    await expect(loadRclnodejs("node:path")).rejects.toThrow(/lacks init/);
  });
});

describe("Ros2Source commands (service calls)", () => {
  let seq = 0;
  const cmd = (body: Record<string, unknown> & { command: string }, drone = "uav1"): RelayCommand =>
    ({ type: "command", command_id: `ros-cmd-${++seq}`, drone_id: drone, timeout_ms: 4500, ...body }) as RelayCommand;
  const never = new AbortController().signal;
  const fast = { serviceWaitMs: 50, serviceTimeoutMs: 200 };

  it("modify_waypoint calls /<drone>/modify_waypoint with the .srv fields; success → ok with the message", async () => {
    const { rcl, src } = await started(fast);
    const server = rcl.serve("/uav1/modify_waypoint", "dronefleet_interfaces/srv/ModifyWaypoint", () => ({ success: true, message: "new target accepted" }));
    const r = await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 47.4, lon: 8.55, alt_m: 42 }, modification_reason: "crane" }), never);
    expect(r).toEqual({ ok: true, message: "new target accepted" });
    expect(server.requests).toEqual([{ drone_id: "uav1", latitude: 47.4, longitude: 8.55, altitude: 42, modification_reason: "crane" }]);
    expect(rcl.nodes[0]?.clients.map((c) => [c.serviceName, c.typeClass])).toEqual([["/uav1/modify_waypoint", "dronefleet_interfaces/srv/ModifyWaypoint"]]);
    // The client is reused for the next call.
    await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 47.4, lon: 8.55, alt_m: 43 }, modification_reason: "" }), never);
    expect(rcl.nodes[0]?.clients).toHaveLength(1);
  });

  it("assign_mission sends parallel arrays; emergency_land and hold are Triggers (hold's duration is not carried)", async () => {
    const { rcl, src } = await started(fast);
    const mission = rcl.serve("/uav2/assign_mission", "dronefleet_interfaces/srv/AssignMission", () => ({ success: true, message: "" }));
    const landing = rcl.serve("/uav2/emergency_land", "std_srvs/srv/Trigger", () => ({ success: true, message: "landing" }));
    const hold = rcl.serve("/uav2/hold", "std_srvs/srv/Trigger", () => ({ success: true, message: "holding" }));
    const waypoints = [
      { lat: 1, lon: 2, alt_m: 30 },
      { lat: 1.1, lon: 2.1, alt_m: 35 },
    ];
    expect(await src.execute(cmd({ command: "assign_mission", mission_id: "m-1", waypoints, priority: "critical" }, "uav2"), never)).toEqual({ ok: true });
    expect(mission.requests).toEqual([{ mission_id: "m-1", latitudes: [1, 1.1], longitudes: [2, 2.1], altitudes: [30, 35], priority: "critical" }]);
    expect(await src.execute(cmd({ command: "emergency_land", reason: "x" }, "uav2"), never)).toEqual({ ok: true, message: "landing" });
    expect(await src.execute(cmd({ command: "hold", duration_s: 30 }, "uav2"), never)).toEqual({ ok: true, message: "holding" });
    expect(landing.requests).toEqual([{}]);
    expect(hold.requests).toEqual([{}]);
  });

  it("success: false → failed with the service's message (or a default)", async () => {
    const { rcl, src } = await started(fast);
    rcl.serve("/uav1/emergency_land", "std_srvs/srv/Trigger", () => ({ success: false, message: "not armed" }));
    rcl.serve("/uav1/hold", "std_srvs/srv/Trigger", () => ({ success: false, message: "" }));
    expect(await src.execute(cmd({ command: "emergency_land" }), never)).toEqual({ ok: false, message: "not armed" });
    expect(await src.execute(cmd({ command: "hold", duration_s: 1 }), never)).toEqual({ ok: false, message: "service /uav1/hold reported failure" });
  });

  it("a service with no server → failed 'service … not available'", async () => {
    const { src } = await started(fast);
    const t0 = Date.now();
    const r = await src.execute(cmd({ command: "emergency_land" }), never);
    expect(r).toEqual({ ok: false, message: "service /uav1/emergency_land not available after 50 ms" });
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it("a server that never answers (its callback throws) → failed after the service timeout", async () => {
    const { rcl, src } = await started(fast);
    rcl.serve("/uav1/modify_waypoint", "dronefleet_interfaces/srv/ModifyWaypoint", () => {
      throw new Error("boom in the drone's node");
    });
    const t0 = Date.now();
    const r = await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 1, lon: 1, alt_m: 10 }, modification_reason: "" }), never);
    expect(r).toEqual({ ok: false, message: "service /uav1/modify_waypoint did not answer within 200 ms" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("stops waiting when the link's signal aborts, before its own timeout", async () => {
    const { rcl, src } = await started({ serviceWaitMs: 50, serviceTimeoutMs: 5000 });
    rcl.serve("/uav1/hold", "std_srvs/srv/Trigger", () => {
      throw new Error("never answers");
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("timeout at the relay")), 100);
    const t0 = Date.now();
    expect(await src.execute(cmd({ command: "hold", duration_s: 3 }), ac.signal)).toEqual({ ok: false, message: "aborted waiting for service /uav1/hold" });
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("unknown drone, configured service names, and clients destroyed on stop", async () => {
    const { rcl, src } = await started({ ...fast, services: { emergency_land: "/{drone}/px4/land_now" } });
    expect(await src.execute(cmd({ command: "emergency_land" }, "uav9"), never)).toEqual({ ok: false, message: "unknown drone" });
    rcl.serve("/uav1/px4/land_now", "std_srvs/srv/Trigger", () => ({ success: true, message: "ok" }));
    expect(await src.execute(cmd({ command: "emergency_land" }), never)).toEqual({ ok: true, message: "ok" });
    expect(src.serviceFor("emergency_land", "uav1")).toBe("/uav1/px4/land_now");
    const clients = [...(rcl.nodes[0]?.clients ?? [])];
    expect(clients).toHaveLength(1);
    await src.stop();
    expect(clients.every((c) => c.destroyed)).toBe(true);
    expect(await src.execute(cmd({ command: "emergency_land" }), never)).toEqual({ ok: false, message: "ros2 source is not running" });
  });
});

/**
 * Ros2Source against a faithful double of rclnodejs 2.2 (ROS 2 Humble), see relay-rcl-double.ts:
 * the same call surface, the same preconditions it enforces, and messages shaped like the plain
 * objects rclnodejs delivers.
 */
import { afterEach, describe, expect, it } from "vitest";
import { TelemetrySample } from "../../edge/protocol";
import { createLogger } from "../../relay/log";
import type { RelayCommand } from "../../edge/protocol";
import { loadRclnodejs, Ros2Source } from "../../relay/sources/ros2/ros2";
import type { SourceSample } from "../../relay/sources/source";
import { batteryState, FakeRcl, navSatFix, stateMsg, twistStamped } from "./relay-rcl-double";

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
    const ac = new AbortController();
    rcl.serve("/uav1/hold", "std_srvs/srv/Trigger", () => {
      // The request reached the drone, which will never answer; now the link gives up.
      ac.abort(new Error("timeout at the relay"));
      throw new Error("never answers");
    });
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

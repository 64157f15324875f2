/**
 * Ros2Source against a faithful double of rclnodejs 2.2 (ROS 2 Humble), see relay-rcl-double.ts:
 * the same call surface, the same preconditions it enforces, messages shaped like the plain
 * objects rclnodejs delivers, and the field defects of issue 16, each reproduced in the double
 * first (best-effort publishers a reliable subscription never hears, an overlay whose JavaScript
 * loads but whose type support does not, a loader that deletes its build when ROS 2 is not
 * sourced, a client that keeps unanswered callbacks) and then shown handled.
 */
import { afterEach, describe, expect, it } from "vitest";
import { TelemetrySample } from "../../edge/protocol";
import { runWithTimeout } from "../../relay/link/command-runner";
import { createLogger } from "../../relay/log";
import type { RelayCommand } from "../../edge/protocol";
import { loadRclnodejs, processHost, ROS2_INSTALL_HINT } from "../../relay/sources/ros2/rcl";
import { Ros2Source } from "../../relay/sources/ros2/ros2";
import type { SourceSample } from "../../relay/sources/source";
import { batteryState, FakeHost, FakeRcl, navSatFix, OVERLAY, RCLNODEJS, ROS, stateMsg, twistStamped } from "./relay-rcl-double";

const sources: Ros2Source[] = [];
afterEach(async () => {
  await Promise.all(sources.map((s) => s.stop()));
  sources.length = 0;
});

async function started(opts: Partial<ConstructorParameters<typeof Ros2Source>[0]> = {}, rcl = new FakeRcl()) {
  const got: SourceSample[] = [];
  const src = new Ros2Source({ droneIds: ["uav1", "uav2"], rcl, host: rcl.host, now: () => 1_700_000_000_123, ...opts });
  sources.push(src);
  await src.start((s) => got.push(s));
  return { rcl, src, got };
}

/** A clock the test moves by hand, for sample timestamps and the source's own time rules. */
function manualClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
}

type LogLine = { level: string; msg: string } & Record<string, unknown>;
function collector() {
  const lines: LogLine[] = [];
  return { lines, log: createLogger("debug", (l) => lines.push(JSON.parse(l) as LogLine)) };
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
        // The route (intent.ts), for the edge's collision avoidance.
        ["/uav1/route", "nav_msgs/msg/Path"],
      ]),
    );
    expect(subs).toHaveLength(10);
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

  it("at a fixed rate, emits drones with a new fix from one BigInt-period timer", async () => {
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
    expect(got).toHaveLength(1); // news without a position waits for the next fix
    rcl.publish("/uav1/fix", navSatFix(10.2, 20, 30));
    rcl.fireTimers();
    expect(got.map((s) => [s.lat, s.battery_pct])).toEqual([
      [10.1, 0],
      [10.2, 20],
    ]);
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
  const BUILD = `${RCLNODEJS}/build/Release/rclnodejs.node`;

  it("the double's loader is rclnodejs's: imported without ROS 2 sourced, it runs npm run rebuild and deletes the build", async () => {
    const host = new FakeHost({ sourced: "none" });
    expect(host.exists(BUILD)).toBe(true);
    await expect(host.importRclnodejs()).rejects.toThrow(/Failed to build rclnodejs from source/);
    expect(host.rebuilds).toBe(1);
    expect(host.exists(BUILD)).toBe(false);
    // Even a sourced shell now finds no usable rclnodejs without a rebuild.
    Object.assign(host.env, new FakeHost().env);
    await expect(loadRclnodejs(host)).rejects.toThrow(/never built/);
  });

  it("never loads rclnodejs unless ROS 2 is sourced, and says exactly what to source", async () => {
    const host = new FakeHost({ sourced: "none" });
    await expect(loadRclnodejs(host)).rejects.toThrow(
      /^ROS 2 is not sourced in this shell \(ROS_DISTRO and AMENT_PREFIX_PATH are unset\); source \/opt\/ros\/humble\/setup\.bash, then the interface workspace \(source \/opt\/dronefleet\/ws\/install\/setup\.bash\).*would try to rebuild/,
    );
    expect(host.rebuilds).toBe(0);
    expect(host.exists(BUILD)).toBe(true); // the install survives
    // A unit that sets ROS_DISTRO without sourcing the setup script is named as such.
    const half = new FakeHost({ sourced: "none", env: { ROS_DISTRO: "humble" } });
    await expect(loadRclnodejs(half)).rejects.toThrow(/^ROS_DISTRO=humble is set but AMENT_PREFIX_PATH is not/);
    expect(half.rebuilds).toBe(0);
    // Ros2Source.start() goes through the same gate.
    const src = new Ros2Source({ droneIds: ["uav1"], host });
    await expect(src.start(() => {})).rejects.toThrow(/ROS 2 is not sourced/);
    expect(host.rebuilds).toBe(0);
  });

  it("names an install whose build failed (npm's yes=false) without loading it, and how to rebuild", async () => {
    const host = new FakeHost();
    host.remove(`${RCLNODEJS}/build`);
    await expect(loadRclnodejs(host)).rejects.toThrow(/installed but its native addon was never built.*npm_config_yes=true npm rebuild rclnodejs.*build\/Release\/rclnodejs\.node exists/);
    expect(host.rebuilds).toBe(0);
  });

  it("loads a built rclnodejs in a sourced shell; a missing one or a foreign module is a clear error", async () => {
    const rcl = new FakeRcl();
    await expect(loadRclnodejs(rcl.host)).resolves.toBe(rcl);
    const absent = new FakeHost();
    absent.remove(RCLNODEJS);
    await expect(loadRclnodejs(absent)).rejects.toThrow(ROS2_INSTALL_HINT);
    expect(ROS2_INSTALL_HINT).toMatch(/rclnodejs not installed.*ROS 2.*sourced.*npm_config_yes=true npm ci.*README/s);
    const foreign = new FakeHost();
    foreign.module = { hello: "world" };
    await expect(loadRclnodejs(foreign)).rejects.toThrow(/lacks init/);
  });

  it("on this machine (no ROS 2 in the environment) the real loader stops before importing anything", async () => {
    const src = new Ros2Source({ droneIds: ["uav1"], host: processHost({ PATH: process.env.PATH }) });
    await expect(src.start(() => {})).rejects.toThrow(/ROS 2 is not sourced in this shell/);
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

  it("a server that never answers (its callback throws) → failed after the service timeout, its callback forgotten", async () => {
    const { rcl, src } = await started(fast);
    rcl.serve("/uav1/modify_waypoint", "dronefleet_interfaces/srv/ModifyWaypoint", () => {
      throw new Error("boom in the drone's node");
    });
    const t0 = Date.now();
    const r = await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 1, lon: 1, alt_m: 10 }, modification_reason: "" }), never);
    expect(r).toEqual({ ok: false, timedOut: true, message: "service /uav1/modify_waypoint did not answer within 200 ms" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t0).toBeLessThan(1000);
    // rclnodejs keeps an unanswered request's callback in the client until a response comes.
    expect(rcl.nodes[0]?.clients[0]?._sequenceNumberToCallbackMap.size).toBe(0);
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

describe("the field relay on a real ROS 2 graph (issue 16)", () => {
  let seq = 0;
  const cmd = (body: Record<string, unknown> & { command: string }, timeoutMs = 4500, drone = "uav1"): RelayCommand =>
    ({ type: "command", command_id: `field-cmd-${++seq}`, drone_id: drone, timeout_ms: timeoutMs, ...body }) as RelayCommand;
  const never = new AbortController().signal;

  for (const rateHz of [2, undefined]) {
    it(`a frozen GPS stops the samples though battery, velocity and state keep coming (${rateHz ? `rate ${rateHz} Hz` : "per fix"}); ts is the fix's time`, async () => {
      const clock = manualClock();
      const { rcl, got } = await started({ rateHz, now: clock.now, droneIds: ["uav1"] });
      const tick = (): void => (rateHz ? rcl.fireTimers() : undefined);
      rcl.publish("/uav1/fix", navSatFix(47.4, 8.5, 500));
      tick();
      expect(got.map((s) => s.ts)).toEqual([clock.now()]);
      const fixAt = clock.now();
      // The GPS stops; everything else carries on for 34 s.
      for (let i = 0; i < 34; i++) {
        clock.advance(1000);
        rcl.publish("/uav1/battery", batteryState(0.8 - i / 100));
        rcl.publish("/uav1/velocity", twistStamped(1, 1, 0));
        rcl.publish("/uav1/state", stateMsg({ armed: true, status: "flying", mode: "AUTO" }));
        tick();
      }
      expect(got).toHaveLength(1); // the edge sees silence and marks it stale after 15 s
      clock.advance(1000);
      rcl.publish("/uav1/fix", navSatFix(47.401, 8.5, 501));
      tick();
      expect(got).toHaveLength(2);
      expect(got[1]).toMatchObject({ ts: clock.now(), armed: true, status: "flying", battery_pct: 47 });
      expect(got[1]?.ts).toBe(fixAt + 35_000);
    });
  }

  it("subscribes with the sensor-data QoS, so a best-effort publisher is heard; a reliable override is not (the defect)", async () => {
    const { rcl, got, src } = await started({ droneIds: ["uav1"] });
    // The four sensor topics best effort; the route (intent.ts) reliable, as routes are published.
    expect(rcl.nodes[0]?.subscriptions.map((s) => s.qos)).toEqual([...Array(4).fill("qos_profile_sensor_data"), "qos_profile_default"]);
    expect(src.qosFor("fix")).toBe("sensor_data");
    const gps = rcl.advertise("/uav1/fix", "sensor_msgs/msg/NavSatFix", { node: "gps_driver", reliability: "best_effort" });
    expect(gps.publish(navSatFix(1, 2, 3))).toBe(1);
    expect(got).toHaveLength(1);
    // What the relay did before: a reliable subscription, which DDS never matches with a best-effort writer.
    const reliable = await started({ droneIds: ["uav1"], qos: { fix: "default" } });
    expect(reliable.rcl.nodes[0]?.subscriptions.find((s) => s.topic === "/uav1/fix")?.qos).toBe("qos_profile_default");
    const gps2 = reliable.rcl.advertise("/uav1/fix", "sensor_msgs/msg/NavSatFix", { node: "gps_driver", reliability: "best_effort" });
    expect(gps2.publish(navSatFix(1, 2, 3))).toBe(0);
    expect(reliable.got).toHaveLength(0);
    // A reliable publisher is heard by both.
    expect(reliable.rcl.advertise("/uav1/fix", "sensor_msgs/msg/NavSatFix").publish(navSatFix(1, 2, 3))).toBe(1);
  });

  it("an overlay that is not sourced: its JavaScript loads but its type support does not; named once at start, its commands fail with what to source", async () => {
    const host = new FakeHost({ sourced: "ros" }); // ROS 2 sourced, the dronefleet_interfaces workspace not
    const rcl = new FakeRcl({ host });
    // The defect: rclnodejs.require passes, creating a client fails deep in rclnodejs.
    expect(() => rcl.require("dronefleet_interfaces/srv/ModifyWaypoint")).not.toThrow();
    const { log, lines } = collector();
    const { src } = await started({ log, serviceWaitMs: 50 }, rcl);
    expect(src.missingInterfaces()).toEqual(["dronefleet_interfaces/srv/ModifyWaypoint", "dronefleet_interfaces/srv/AssignMission"]);
    const report = lines.filter((l) => l.msg.startsWith("ROS 2 interface types missing"));
    expect(report).toHaveLength(1);
    expect(report[0]?.fix).toEqual([
      expect.stringMatching(/^dronefleet_interfaces: libdronefleet_interfaces__rosidl_typesupport_c\.so is on neither LD_LIBRARY_PATH nor AMENT_PREFIX_PATH\/lib.*source \/opt\/dronefleet\/ws\/install\/setup\.bash/),
    ]);
    const r = await src.execute(cmd({ command: "modify_waypoint", new_waypoint: { lat: 1, lon: 1, alt_m: 10 }, modification_reason: "" }), never);
    expect(r).toEqual({ ok: false, message: expect.stringMatching(/^interface dronefleet_interfaces\/srv\/ModifyWaypoint is not usable on the relay host: libdronefleet_interfaces__rosidl_typesupport_c\.so/) });
    expect(rcl.nodes[0]?.clients).toHaveLength(0); // never reached rclnodejs
    // std_srvs is fine: hold still goes out.
    rcl.serve("/uav1/hold", "std_srvs/srv/Trigger", () => ({ success: true, message: "holding" }));
    expect(await src.execute(cmd({ command: "hold", duration_s: 5 }), never)).toEqual({ ok: true, message: "holding" });
  });

  it("a hanging service is named before the link's deadline (the edge's 4.5 s), and its callback is removed", async () => {
    const { rcl, src } = await started({ serviceWaitMs: 50 });
    rcl.serve("/uav1/hold", "std_srvs/srv/Trigger", () => {
      throw new Error("the drone's node hangs");
    });
    // Through the link's own deadline, as the relay runs it: with a 5 s service timeout the
    // link's anonymous "timeout at the relay after 600 ms" won.
    const c = cmd({ command: "hold", duration_s: 5 }, 600);
    const t0 = Date.now();
    const outcome = await runWithTimeout((command, signal) => src.execute(command, signal), c, c.timeout_ms);
    expect(outcome.ok).toBe(false);
    expect(outcome.ok ? "" : outcome.message).toMatch(/^service \/uav1\/hold did not answer within 3\d\d ms$/);
    expect(Date.now() - t0).toBeLessThan(600);
    expect(rcl.nodes[0]?.clients[0]?._sequenceNumberToCallbackMap.size).toBe(0);
  });

  it("with a newer rclnodejs's sendRequestAsync the same: named timeout, nothing left in the client", async () => {
    const rcl = new FakeRcl({ asyncRequests: true });
    const { src } = await started({ serviceWaitMs: 50, serviceTimeoutMs: 100 }, rcl);
    rcl.serve("/uav1/emergency_land", "std_srvs/srv/Trigger", () => {
      throw new Error("hangs");
    });
    expect(await src.execute(cmd({ command: "emergency_land" }), never)).toEqual({ ok: false, timedOut: true, message: "service /uav1/emergency_land did not answer within 100 ms" });
    expect(rcl.nodes[0]?.clients[0]?._sequenceNumberToCallbackMap.size).toBe(0);
    rcl.serve("/uav1/emergency_land", "std_srvs/srv/Trigger", () => ({ success: true, message: "landing" }));
    expect(await src.execute(cmd({ command: "emergency_land" }), never)).toEqual({ ok: true, message: "landing" });
  });

  it("logs once per drone whose state topic stays silent (armed and status unknown, sent as state_known false)", async () => {
    const clock = manualClock();
    const { log, lines } = collector();
    const { rcl, got } = await started({ now: clock.now, log, stateGraceMs: 5000, droneIds: ["uav1", "uav2", "uav3"] });
    rcl.publish("/uav2/state", stateMsg({ armed: true, status: "flying" }));
    const warned = () => lines.filter((l) => l.msg.startsWith("no state from this drone"));
    for (let i = 0; i < 4; i++) {
      rcl.publish("/uav1/fix", navSatFix(1, 2, 3));
      clock.advance(1000);
    }
    expect(warned()).toEqual([]); // within the grace after the first fix
    // A minute of fixes from all three, at 1 Hz (uav3's first fix only now).
    for (let i = 0; i < 60; i++) {
      rcl.publish("/uav1/fix", navSatFix(1, 2, 3));
      rcl.publish("/uav2/fix", navSatFix(1, 2.001, 3));
      rcl.publish("/uav3/fix", navSatFix(1, 2.002, 3));
      clock.advance(1000);
    }
    expect(warned().map((l) => [l.drone_id, l.topic, l.level])).toEqual([
      ["uav1", "/uav1/state", "warn"],
      ["uav3", "/uav3/state", "warn"],
    ]);
    // What it says is what is sent: state unknown, the placeholders, and the edge's inference.
    expect(warned()[0]?.msg).toBe(
      "no state from this drone: armed and status unknown; its samples say state_known false (armed false and status idle are placeholders), so the edge's collision avoidance infers airborne from altitude and speed",
    );
    expect(got.filter((s) => s.drone_id === "uav1").every((s) => s.state_known === false && !s.armed && s.status === "idle")).toBe(true);
    expect(got.filter((s) => s.drone_id === "uav2").every((s) => s.state_known === undefined)).toBe(true);
  });

  it("re-captures the take-off altitude when a drone's node restarts on the ground, not through a GPS dropout in flight", async () => {
    const clock = manualClock();
    const { log, lines } = collector();
    const { rcl, got } = await started({ now: clock.now, log });
    rcl.publish("/uav1/state", stateMsg({ armed: false, status: "idle" }));
    rcl.publish("/uav1/fix", navSatFix(1, 2, 500));
    expect(got.at(-1)?.alt_m).toBe(0);
    // The drone's node is restarted elsewhere (another pad, 2 m lower): 20 s without fixes.
    clock.advance(20_000);
    rcl.publish("/uav1/fix", navSatFix(1.001, 2, 498));
    expect(got.at(-1)?.alt_m).toBe(0); // not −2 m
    expect(lines.some((l) => l.msg.startsWith("take-off altitude re-captured") && l.drone_id === "uav1")).toBe(true);
    // uav2 is flying at 50 m when its GPS drops out for 20 s: the take-off point stays.
    rcl.publish("/uav2/fix", navSatFix(3, 4, 100));
    rcl.publish("/uav2/state", stateMsg({ armed: true, status: "flying" }));
    rcl.publish("/uav2/fix", navSatFix(3, 4, 150));
    clock.advance(20_000);
    rcl.publish("/uav2/fix", navSatFix(3, 4.001, 150));
    expect(got.filter((s) => s.drone_id === "uav2").map((s) => s.alt_m)).toEqual([0, 50, 50]);
  });
});

describe("type support off the loader's path", () => {
  it("a library on AMENT_PREFIX_PATH/lib but not LD_LIBRARY_PATH fails at the call, with what to source", async () => {
    const host = new FakeHost({ sourced: "ros", env: { AMENT_PREFIX_PATH: `${OVERLAY}:${ROS}` } });
    const rcl = new FakeRcl({ host });
    const { src } = await started({ serviceWaitMs: 50 }, rcl);
    expect(src.missingInterfaces()).toEqual([]); // the files are there: only loading shows it
    const c = { type: "command", command_id: "typesupport-1", drone_id: "uav1", timeout_ms: 1000, command: "modify_waypoint", new_waypoint: { lat: 1, lon: 1, alt_m: 5 }, modification_reason: "" } as RelayCommand;
    const r = await src.execute(c, new AbortController().signal);
    expect(r).toEqual({
      ok: false,
      message: expect.stringMatching(/^service \/uav1\/modify_waypoint: libdronefleet_interfaces__rosidl_typesupport_c\.so: cannot open shared object file.*not on LD_LIBRARY_PATH, where the loader looks.*source \/opt\/dronefleet\/ws\/install\/setup\.bash/),
    });
  });
});

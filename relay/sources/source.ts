/**
 * relay/sources: where samples come from and where commands go: the simulator (sim/) and ROS 2
 * (ros2/, with its autopilot profiles in ros2/profiles/ and its install checks in ros2/doctor.ts).
 *
 * This file is the one interface between the relay and the drones' side. The link to the edge
 * only ever sees a `DroneSource`, so the simulated fleet and ROS 2 are interchangeable and nothing
 * outside `ros2/` touches rclnodejs.
 * Owns: producing telemetry samples and executing commands at drones. May import: edge/protocol
 * (sample, command and progress shapes) and edge/domain (geodesy, PRNG, fleet-config defaults),
 * the relay's log, node:*, and rclnodejs (ros2/ only, loaded at run time). Not relay/link: a source
 * never talks to the edge itself; cli.ts wires it to a link.
 */
import type { DRONE_STATUSES, MissionProgress, RelayCommand, RelayHello, TelemetryUpdate } from "../../edge/protocol";

/**
 * A sample as a source produces it. `seq` is deliberately absent: sequence numbers are the link's
 * job, because only the link knows what the edge has already seen (hello_ack `last_seq`). A
 * source that knows what the drone is about to do adds its `intent` (edge/protocol/relay.ts).
 */
export type SourceSample = Omit<TelemetryUpdate, "seq">;

export type SourceKind = RelayHello["source"];
export type DroneStatus = (typeof DRONE_STATUSES)[number];

/**
 * How a command ended at the drone. `ok: true` is "accepted" (a ROS service returning success),
 * not "done": a mission's completion is reported later through `onMissionProgress`.
 */
/** `timedOut`: the drone-side service did not answer before the relay's deadline (reported as `timeout`). */
export type CommandOutcome = { ok: true; message?: string } | { ok: false; message: string; timedOut?: true };

/** A mission's progress, as the link sends it in a `mission_progress` frame (minus `type`).
 * `waypoint_index` is the waypoint being flown to (the last one for `completed`). */
export type MissionProgressEvent = Omit<MissionProgress, "type">;

export interface DroneSource {
  readonly kind: SourceKind;
  /**
   * Begin producing samples; resolves once running. `onSample` is called synchronously from the
   * source's own timer or callbacks and must not throw (the relay's link only buffers).
   */
  start(onSample: (s: SourceSample) => void): Promise<void>;
  /** Drones this source serves; sent in `relay_hello` on every (re)connection. */
  droneIds(): string[];
  /** Stop producing samples and release timers, nodes and sockets; resolves when done. */
  stop(): Promise<void>;
  /**
   * Execute one operator command at a drone. Resolves with the outcome; a source should not
   * throw for expected failures (unknown drone, rejected, service down) but return `ok: false`.
   * `signal` aborts when the link has given up (its timeout): stop waiting and resolve.
   * Commands may run concurrently, several per drone (an emergency land never waits).
   */
  execute(command: RelayCommand, signal: AbortSignal): Promise<CommandOutcome>;
  /**
   * Set by the wiring code (cli.ts) to the link's `pushProgress`; a source that flies missions
   * calls it as they advance. Must not throw.
   */
  onMissionProgress?: ((p: MissionProgressEvent) => void) | null;
  /** ROS messages received per topic kind, for metrics (ROS sources only). */
  rosMessageCounts?(): Readonly<Record<string, number>>;
  /** Seconds since each of a drone's topics last delivered (null: never), for silence reports (ROS only). */
  topicAges?(droneId: string): Readonly<Record<string, number | null>>;
}

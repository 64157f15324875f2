/**
 * The one interface between the relay and the drones' side. The link to the edge only ever sees
 * a `DroneSource`, so the simulated fleet and ROS 2 are interchangeable and nothing outside
 * `ros2.ts` touches rclnodejs.
 */
import type { DRONE_STATUSES, TelemetrySample } from "../edge/protocol";

/**
 * A sample as a source produces it. `seq` is deliberately absent: sequence numbers are the link's
 * job, because only the link knows what the edge has already seen (hello_ack `last_seq`).
 */
export type SourceSample = Omit<TelemetrySample, "seq">;

export type SourceKind = "sim" | "ros2";
export type DroneStatus = (typeof DRONE_STATUSES)[number];

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
  // Operator commands arrive in a later issue as an optional member, so existing sources keep
  // compiling until they implement it:
  //   execute?(command: DroneCommand, signal: AbortSignal): Promise<CommandOutcome>;
  // Every call must end (acked, rejected, failed or timeout): the signal carries the deadline.
}

/**
 * How the page words a drone's state (pure, tested in Node): one place for the table, the selected
 * drone's card, the map's label, legend and hover readout.
 *
 * A sample with `state_known: false` comes from a source that has no reading of the drone's state
 * (a ROS 2 drone without a state topic): its `armed` and `status` are placeholders (`false`,
 * `idle`), not measurements. Showing them would tell the operator a flying drone is idle and
 * disarmed. So such a drone is shown as "state unknown", with what the edge infers from its
 * altitude and motion (edge/domain/drone.ts, the same rule collision avoidance uses): "airborne
 * (inferred)" or "no motion (inferred)", never as idle or disarmed.
 */
import { inferAirborne, INFER_AIRBORNE_ALT_M, INFER_AIRBORNE_CLIMB_MPS, INFER_AIRBORNE_SPEED_MPS } from "../../edge/domain/drone";
import type { DRONE_STATUSES, TelemetrySample } from "../../edge/protocol";

type StatusColor = Record<(typeof DRONE_STATUSES)[number], string>;
/** One colour per status (map arrows, table dots, the legend). */
export const STATUS_COLORS: StatusColor = {
  idle: "#9aa4b2",
  taking_off: "#38bdf8",
  flying: "#34d399",
  returning: "#fbbf24",
  landing: "#a78bfa",
  landed: "#64748b",
  charging: "#60a5fa",
  emergency: "#f43f5e",
};

/** Colour of a drone whose state is unknown (map arrow, table dot, legend): none of the status
 * colours, so it is never read as one of them. */
export const UNKNOWN_STATE_COLOR = "#e879f9";

export type StateView = {
  /** False when the source does not know the state (armed/status are placeholders). */
  known: boolean;
  /** Short text for the table's status cell and the legend ("flying", "unknown · airborne (inferred)"). */
  short: string;
  /** The card's status line ("flying · armed", "state unknown · airborne (inferred from 41 m, 5.0 m/s)"). */
  long: string;
  /** The card's "Armed" line: yes, no, or unknown. */
  armed: string;
  /** The flight mode as reported, or "unknown" (with no state reading it is a placeholder too). */
  mode: string;
  /** What the map adds to a drone's label ("" when the state is known). */
  mapSuffix: string;
  /** A tooltip that says why the state is unknown and what was inferred. */
  title: string;
  /** Whether the drone is taken to be in the air only by inference. */
  inferredAirborne: boolean;
};

export const isStateUnknown = (s: Pick<TelemetrySample, "state_known">): boolean => s.state_known === false;

/** The words for one sample's state. */
export function stateView(s: Pick<TelemetrySample, "status" | "armed" | "mode" | "state_known" | "alt_m" | "speed_mps" | "climb_mps">): StateView {
  if (!isStateUnknown(s)) {
    const status = s.status.replace(/_/g, " ");
    return { known: true, short: status, long: `${status}${s.armed ? " · armed" : " · disarmed"}`, armed: s.armed ? "yes" : "no", mode: s.mode, mapSuffix: "", title: "", inferredAirborne: false };
  }
  const airborne = inferAirborne(s);
  const evidence = [
    `${s.alt_m.toFixed(0)} m`,
    `${s.speed_mps.toFixed(1)} m/s`,
    ...(s.climb_mps !== undefined ? [`climb ${s.climb_mps.toFixed(1)} m/s`] : []),
  ].join(", ");
  const inferred = airborne ? "airborne (inferred)" : "no motion (inferred)";
  return {
    known: false,
    short: `unknown · ${inferred}`,
    long: `state unknown · ${airborne ? "airborne" : "no motion"} (inferred from ${evidence})`,
    armed: "unknown",
    mode: "unknown",
    mapSuffix: airborne ? " (state unknown, airborne)" : " (state unknown)",
    title:
      `The source reports no state for this drone (no state topic): armed and status are unknown. ` +
      `Inferred from altitude and motion: ${airborne ? "in the air" : "not moving and near the ground"} ` +
      `(airborne above ${INFER_AIRBORNE_ALT_M} m, ${INFER_AIRBORNE_SPEED_MPS} m/s or a climb of ${INFER_AIRBORNE_CLIMB_MPS} m/s).`,
    inferredAirborne: airborne,
  };
}

/**
 * The seed's live metrics (AnalyticsProcessor.calculate_live_metrics), as a pure function of the
 * fleet object's state. Unlike the seed, the fleet's size is the number of drones it knows, not 5.
 */
import type { AlertView, EmergencyStatus, LiveAnalytics } from "../protocol";
import type { DroneRecord } from "./live-state";

export type LiveInput = {
  fleet: string;
  now: number;
  drones: Iterable<DroneRecord>;
  activeMissions: number;
  activeCoordinationEvents: number;
  activeAlerts: readonly AlertView[];
};

const round2 = (x: number) => Math.round(x * 100) / 100;

export function computeLiveMetrics(input: LiveInput): LiveAnalytics {
  let total = 0;
  let live = 0;
  let active = 0;
  let battery = 0;
  let emergencyDrone = false;
  for (const rec of input.drones) {
    total++;
    if (rec.sample.status === "emergency") emergencyDrone = true;
    if (rec.link !== "live") continue;
    live++;
    battery += rec.sample.battery_pct;
    if (rec.sample.armed) active++;
  }
  return {
    fleet: input.fleet,
    ts: input.now,
    timestamp: new Date(input.now).toISOString(),
    active_drones: active,
    total_drones: total,
    live_drones: live,
    fleet_battery_average: live ? round2(battery / live) : 0,
    active_missions: input.activeMissions,
    coordination_events_active: input.activeCoordinationEvents,
    fleet_utilization_percentage: total ? round2((active / total) * 100) : 0,
    emergency_status: emergencyStatus(emergencyDrone, input.activeAlerts),
    alerts_active: input.activeAlerts.length,
  };
}

function emergencyStatus(emergencyDrone: boolean, alerts: readonly AlertView[]): EmergencyStatus {
  if (emergencyDrone || alerts.some((a) => a.kind === "emergency" || a.kind === "battery_critical")) return "emergency";
  return alerts.length ? "warning" : "normal";
}

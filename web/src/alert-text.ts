/**
 * What an alert tells the operator (pure, tested in Node): for each alert kind a title, the drones
 * (or the whole fleet) and the coordination event it is about, why (the edge's message), and what
 * to do about it. The alerts feed (analytics.ts) draws this; the edge's own message stays the
 * account of what happened.
 *
 * The two collision-avoidance kinds (edge/fleet/collision-avoidance.ts): `coordination_unresolved`
 * is raised per drone of an event for which nothing may or can be sent (every drone has right of
 * way, or refused, or every strategy failed); its message names the event and the conflict key
 * ("collision avoidance cannot resolve head-on a|b (event E): why"), which is how the page finds
 * the event and both drones even before the event's own frame arrived. `airspace_saturated` is
 * fleet-wide (drone_id "fleet"): conflicts are left waiting pass after pass and new take-offs are
 * held until it clears.
 */
import { parseConflictKey } from "../../edge/domain/conflicts";
import type { AlertKind, AlertView, CoordinationEventView } from "../../edge/protocol";

/** The drone_id of fleet-wide alerts (collision-avoidance.ts FLEET_ALERT_ID). */
export const FLEET_ALERT_ID = "fleet";

export type AlertText = {
  title: string;
  /** Drones the alert is about, to select on the map; empty for a fleet-wide alert. */
  drones: string[];
  fleetWide: boolean;
  /** The coordination event it is about, when there is one. */
  eventId: string | null;
  /** Why, when the edge said more than the title does (the reason part of its message). */
  reason: string | null;
  /** What the operator should do now. */
  action: string;
};

const TITLES: Record<AlertKind, string> = {
  battery_low: "Battery low",
  battery_critical: "Battery critical",
  link_lost: "Telemetry lost",
  geofence_breach: "Outside the geofence or in a no-fly zone",
  emergency: "Drone reports an emergency",
  coordination_unresolved: "Collision avoidance cannot resolve a conflict",
  airspace_saturated: "Airspace saturated",
};

const ACTIONS: Record<AlertKind, string> = {
  battery_low: "Plan its return: end or shorten its mission before it reaches the critical level.",
  battery_critical: "Bring it down now: send it home if it can make it, otherwise emergency-land it.",
  link_lost: "Its position is the last one reported. Check the relay and the drone's radio link; the autopilot's own link-loss failsafe applies.",
  geofence_breach: "Send it back inside with a waypoint inside the geofence and out of the zone, or land it.",
  emergency: "Keep other drones clear of it and watch it land; emergency-land it if it is not descending.",
  coordination_unresolved:
    "Act now: choose an override for the event in the Coordination panel (vertical separation, hold, lateral reroute), move one of the drones with a waypoint, or emergency-land one.",
  airspace_saturated:
    "Too many conflicts at once for collision avoidance to resolve calmly; new take-offs are held. Thin the traffic: hold or land drones and postpone missions until this clears.",
};

/** The event id and conflict of a coordination_unresolved message, and its reason. */
export function parseUnresolved(message: string): { eventId: string | null; drones: string[]; reason: string | null } {
  const event = /\(event ([^()\s]+)\)/.exec(message);
  const key = /cannot resolve \S+ (\S+) \(event /.exec(message);
  const parsed = key ? parseConflictKey(key[1]!) : null;
  const drones = parsed === null ? [] : parsed.kind === "pair" ? [...parsed.drone_ids] : [parsed.drone_id];
  const colon = event ? message.indexOf("): ", event.index) : -1;
  return { eventId: event?.[1] ?? null, drones, reason: colon >= 0 ? message.slice(colon + 3) || null : null };
}

/** How the alerts feed presents one alert. `event`: the coordination event it names, when the page
 * holds it (its drones are the authoritative list). */
export function describeAlert(a: AlertView, event?: CoordinationEventView): AlertText {
  const fleetWide = a.drone_id === FLEET_ALERT_ID;
  const base = { title: TITLES[a.kind], fleetWide, eventId: null as string | null, reason: null as string | null, action: ACTIONS[a.kind] };
  switch (a.kind) {
    case "coordination_unresolved": {
      const p = parseUnresolved(a.message);
      const drones = event?.drone_ids.length ? event.drone_ids : p.drones.length ? p.drones : [a.drone_id];
      const title = event ? `${base.title}: ${event.event_type.replace(/_/g, " ")}` : base.title;
      return { ...base, title, drones: [...new Set([a.drone_id, ...drones])].filter((d) => d !== FLEET_ALERT_ID), eventId: event?.event_id ?? p.eventId, reason: p.reason };
    }
    case "airspace_saturated": {
      const waiting = a.value !== null ? `${a.value} conflict${a.value === 1 ? "" : "s"} waiting for a resolution` : null;
      return { ...base, drones: [], fleetWide: true, reason: waiting };
    }
    default:
      return { ...base, drones: fleetWide ? [] : [a.drone_id] };
  }
}

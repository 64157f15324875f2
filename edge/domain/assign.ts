/**
 * Mission assignment: rank every drone of a fleet for one mission, best first, with the reasons.
 *
 * The cost, per drone d (distances are straight 3D lines, home is at altitude 0):
 *
 *   approach_m        = distance d → first waypoint
 *   route_m           = length of the waypoint chain                  (computed once per call)
 *   return_m          = distance last waypoint → home                  (computed once per call)
 *   eta_s             = approach_m / cruise + (armed ? 0 : ARM_DELAY_S)
 *   finish_s          = eta_s + route_m / cruise
 *   battery_after_pct = battery − pct_per_km · (approach_m + route_m + return_m) / 1000
 *
 * Ineligible (score 0, ranked after every eligible drone; each reason listed):
 *   link stale · status emergency · status landing · busy with a mission of equal or higher
 *   priority · battery_after_pct < battery_reserve_pct (so a drone already below the reserve,
 *   charging or not, is out) · now + finish_s > deadline ("misses deadline by N s").
 *
 * Score of an eligible drone, in [0, 1], higher is better:
 *
 *   score = 0.45 · (1 − eta_s / max_eta_s)                      ETA, relative to the slowest eligible
 *         + 0.30 · (battery_after − reserve) / (100 − reserve)  battery margin after the mission
 *         + 0.10 · (charging ? 0 : 1)                           charging: allowed but penalised
 *         + 0.10 · (1 − assigned_today / max_assigned_today)    fairness: fewer missions is better
 *         + 0.05 · (preempts a lower-priority mission ? 0 : 1)  interrupting work has a cost
 *
 * Ties on score go to the shorter ETA, then the drone id, so the order is deterministic.
 *
 * Speed: one pass over the drones with arithmetic only (a fixed-scale projection at the first
 * waypoint, no trigonometry per drone), one pass to score, one sort of indices. 1,000 drones take
 * about 0.3 ms once the code is warm (a few ms on the very first, unoptimised call).
 */
import type { FleetConfig } from "./fleet-config";
import { makeLocalFrame, toLocal, type LatLonAlt } from "./geo";
import type { DroneState } from "../protocol";

export const MISSION_PRIORITIES = ["low", "normal", "high", "critical"] as const;
export type MissionPriority = (typeof MISSION_PRIORITIES)[number];
const PRIORITY_RANK: Record<MissionPriority, number> = { low: 0, normal: 1, high: 2, critical: 3 };

/** A stored priority, falling back to "normal" for anything unrecognised. */
function priorityOf(p: string | undefined): MissionPriority {
  const known: readonly string[] = MISSION_PRIORITIES;
  return p !== undefined && known.includes(p) ? (p as MissionPriority) : "normal";
}

/** Seconds an unarmed drone needs before it can take off (arming and pre-flight checks). */
export const ARM_DELAY_S = 5;
/** Score weights; they sum to 1. See the module comment. */
export const ASSIGN_WEIGHTS = { eta: 0.45, battery: 0.3, charging: 0.1, fairness: 0.1, preempt: 0.05 } as const;

/** What ranking needs to know about a drone: its live state plus whether it has a mission. */
export type AssignDrone = Pick<
  DroneState,
  "drone_id" | "lat" | "lon" | "alt_m" | "battery_pct" | "status" | "armed" | "link"
> & {
  /** Has an active mission. */
  busy: boolean;
  /** Priority of that mission, one of MISSION_PRIORITIES. Typed as string because it is read back
   * from storage; absent or unknown while busy counts as "normal". */
  busy_priority?: string | undefined;
};
export type MissionRequest = {
  waypoints: readonly LatLonAlt[];
  priority: MissionPriority;
  /** Latest completion time, ms since the epoch. */
  deadline?: number;
};
export type RankInput = {
  drones: readonly AssignDrone[];
  mission: MissionRequest;
  config: FleetConfig;
  /** Current time, ms since the epoch (passed in: no clock is read here). */
  now: number;
  /** Missions each drone has been assigned today; absent ids count as 0. */
  assignedCounts?: Readonly<Record<string, number>>;
};
export type Candidate = {
  drone_id: string;
  score: number;
  eta_s: number;
  battery_after_pct: number;
  eligible: boolean;
  reasons: string[];
};

const dist3 = (a: LatLonAlt, b: LatLonAlt) => {
  const d = toLocal(a, b);
  return Math.hypot(d.x_m, d.y_m, b.alt_m - a.alt_m);
};

/** Total 3D length of the waypoint chain, metres. */
export function routeLengthM(waypoints: readonly LatLonAlt[]): number {
  let m = 0;
  for (let i = 1; i < waypoints.length; i++) m += dist3(waypoints[i - 1]!, waypoints[i]!);
  return m;
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/**
 * Rank `drones` for `mission`, best first. Every drone appears once; ineligible ones come last
 * with `eligible: false`, score 0 and the reasons. See the module comment for the cost.
 */
export function rankCandidates(input: RankInput): Candidate[] {
  const { drones, mission, config, now } = input;
  // Own keys only: drone ids are relay strings, and `counts.constructor` must not be Object's.
  const given = input.assignedCounts;
  const counts = { get: (id: string): number => (given && Object.hasOwn(given, id) ? (given[id] ?? 0) : 0) };
  const n = drones.length;
  const first = mission.waypoints[0];
  const last = mission.waypoints[mission.waypoints.length - 1];
  if (!first || !last) {
    return drones.map((d) => ({
      drone_id: d.drone_id,
      score: 0,
      eta_s: 0,
      battery_after_pct: round1(d.battery_pct),
      eligible: false,
      reasons: ["mission has no waypoints"],
    }));
  }

  const cruise = config.cruise_speed_mps;
  const perM = config.energy.pct_per_km / 1000;
  const reserve = config.battery_reserve_pct;
  const routeM = routeLengthM(mission.waypoints);
  const returnM = dist3(last, { lat: config.home.lat, lon: config.home.lon, alt_m: 0 });
  const fixedPct = (routeM + returnM) * perM;
  const routeS = routeM / cruise;
  const rank = PRIORITY_RANK[mission.priority];
  const frame = makeLocalFrame(first);

  // Pass 1: the numbers and eligibility. Typed arrays keep the per-drone work allocation-free
  // apart from the candidate itself and its reason strings.
  const eta = new Float64Array(n);
  const after = new Float64Array(n);
  const eligible = new Uint8Array(n);
  const preempt = new Uint8Array(n);
  const out: Candidate[] = new Array<Candidate>(n);
  let maxEta = 0;
  let maxAssigned = 0;
  for (let i = 0; i < n; i++) {
    const d = drones[i]!;
    const reasons: string[] = [];
    const dx = frame.x(d.lon);
    const dy = frame.y(d.lat);
    const approachM = Math.sqrt(dx * dx + dy * dy + (first.alt_m - d.alt_m) ** 2);
    const e = approachM / cruise + (d.armed ? 0 : ARM_DELAY_S);
    const b = d.battery_pct - approachM * perM - fixedPct;
    eta[i] = e;
    after[i] = b;
    let ok = Number.isFinite(e) && Number.isFinite(b);
    if (!ok) reasons.push("no valid position or battery");
    if (d.link === "stale") {
      ok = false;
      reasons.push("link stale");
    }
    if (d.status === "emergency" || d.status === "landing") {
      ok = false;
      reasons.push(`status ${d.status}`);
    }
    if (d.busy) {
      const busyPriority = priorityOf(d.busy_priority);
      if (PRIORITY_RANK[busyPriority] >= rank) {
        ok = false;
        reasons.push(`busy with a ${busyPriority}-priority mission`);
      } else {
        preempt[i] = 1;
      }
    }
    if (Number.isFinite(e)) reasons.push(`eta ${Math.round(e)} s`);
    if (Number.isFinite(b)) {
      reasons.push(`battery after ${Math.round(b)} %`);
      if (b < reserve) {
        ok = false;
        reasons.push(`below the ${reserve} % reserve`);
      }
    }
    if (mission.deadline !== undefined && Number.isFinite(e)) {
      const lateS = (now + (e + routeS) * 1000 - mission.deadline) / 1000;
      if (lateS > 0) {
        ok = false;
        reasons.push(`misses deadline by ${Math.ceil(lateS)} s`);
      }
    }
    if (d.status === "charging") reasons.push("charging: penalised");
    if (preempt[i]) reasons.push(`would interrupt a ${priorityOf(d.busy_priority)}-priority mission: penalised`);
    eligible[i] = ok ? 1 : 0;
    if (ok) {
      if (e > maxEta) maxEta = e;
      const c = counts.get(d.drone_id);
      if (c > maxAssigned) maxAssigned = c;
    }
    out[i] = {
      drone_id: d.drone_id,
      score: 0,
      eta_s: Number.isFinite(e) ? round1(e) : 0,
      battery_after_pct: Number.isFinite(b) ? round1(b) : 0,
      eligible: ok,
      reasons,
    };
  }

  // Pass 2: scores, which need the fleet-wide normalisers from pass 1.
  const W = ASSIGN_WEIGHTS;
  const span = Math.max(100 - reserve, 1e-9);
  const exact = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (!eligible[i]) continue;
    const d = drones[i]!;
    const c = out[i]!;
    const assigned = counts.get(d.drone_id);
    const s =
      W.eta * (maxEta > 0 ? 1 - eta[i]! / maxEta : 1) +
      W.battery * Math.min(1, Math.max(0, (after[i]! - reserve) / span)) +
      W.charging * (d.status === "charging" ? 0 : 1) +
      W.fairness * (maxAssigned > 0 ? 1 - assigned / maxAssigned : 1) +
      W.preempt * (preempt[i] ? 0 : 1);
    exact[i] = s;
    c.score = Math.round(s * 10_000) / 10_000;
    if (assigned > 0) c.reasons.push(`${assigned} mission${assigned === 1 ? "" : "s"} today`);
  }

  // Sort indices, not objects, so the comparator reads the unrounded score.
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => {
    if (eligible[a] !== eligible[b]) return eligible[b]! - eligible[a]!;
    if (exact[a] !== exact[b]) return exact[b]! - exact[a]!;
    if (eta[a] !== eta[b]) return (eta[a] || 0) - (eta[b] || 0);
    const ia = drones[a]!.drone_id;
    const ib = drones[b]!.drone_id;
    return ia < ib ? -1 : ia > ib ? 1 : 0;
  });
  const ranked = new Array<Candidate>(n);
  for (let i = 0; i < n; i++) ranked[i] = out[order[i]!]!;
  return ranked;
}

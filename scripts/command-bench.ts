/**
 * In-process micro benchmark of what a fleet object's turn spends on commands and detection with
 * 1,000 drones, the case `npm run bench`'s command series measures end to end (bench/lib/phases.ts):
 * drones hovering in a 34 × 34 grid per layer, 60 m apart, layers 15 m apart from 40 m up, armed
 * and flying, most of them with a plan (the waypoint they were last sent, within their own cell).
 *
 *   npx tsx scripts/command-bench.ts [--iterations 300]
 *
 * Times, p50 / p99 / max in ms:
 * - `modify_waypoint`: the command desk's separation input (`trafficOf`) and `validateWaypoint`
 *   for a drone moved 10 m within its cell (accepted), and one moved onto its neighbour (refused,
 *   with suggestions);
 * - `assign_mission`: the desk's ranking of every drone (`rankCandidates`), and the synthetic
 *   ranking problem bench/run.ts times (`rankBenchmarkCase`);
 * - detection: one pass over the grid as the commands leave it (commanded drones predicted both
 *   by plan and by dead reckoning); the fleet object's whole pass over it (`Coordinator.pass`:
 *   its picture of every drone, detection, events), which its profile counts as "detection"; and
 *   `detectionBenchmark(1000)` as bench/run.ts runs it.
 */
import { parseArgs } from "node:util";
import { rankCandidates, type AssignDrone } from "../edge/domain/assign";
import { detectWithStats, type CoordinationDrone } from "../edge/domain/conflicts";
import { Coordinator, type SqlPort } from "../edge/fleet/collision-avoidance";
import { defaultFleetConfig } from "../edge/domain/fleet-config";
import { offsetM, type LatLonAlt } from "../edge/domain/geo";
import { trafficOf, validateWaypoint, type TrafficSource } from "../edge/domain/safety";
import type { TelemetrySample, Waypoint } from "../edge/protocol";
import { detectionBenchmark, rankBenchmarkCase } from "../test/fixtures/fleets";

const { values } = parseArgs({ options: { iterations: { type: "string", default: "300" } } });
const iterations = Math.max(10, Number(values.iterations));

const config = defaultFleetConfig();
const N = 1000;
const PER_SIDE = 34;
const SPACING_M = 60;

function gridPosition(i: number): LatLonAlt {
  const perLayer = PER_SIDE * PER_SIDE;
  const k = i % perLayer;
  const half = (PER_SIDE - 1) / 2;
  const p = offsetM(config.home, ((k % PER_SIDE) - half) * SPACING_M, (Math.floor(k / PER_SIDE) - half) * SPACING_M);
  return { ...p, alt_m: 40 + 15 * Math.floor(i / perLayer) };
}

const samples: TelemetrySample[] = [];
const plans = new Map<string, Waypoint[]>();
for (let i = 0; i < N; i++) {
  const p = gridPosition(i);
  const id = `drone-${String(i).padStart(4, "0")}`;
  samples.push({ drone_id: id, seq: 1, ts: 0, ...p, heading_deg: 0, speed_mps: 0, climb_mps: 0, battery_pct: 90, armed: true, mode: "AUTO.LOITER", status: "flying" });
  // Four in five were sent a waypoint 10 m off where they hover (as the bench's series leaves them).
  if (i % 5 !== 0) plans.set(id, [{ ...offsetM(p, i % 2 ? 10 : 0, i % 2 ? 0 : 10), alt_m: p.alt_m }]);
}
const records: TrafficSource[] = samples.map((sample) => ({ sample, link: "live" }));
const planOf = (id: string) => plans.get(id) ?? [];

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))]!;
  return `p50 ${q(0.5).toFixed(3)} / p99 ${q(0.99).toFixed(3)} / max ${s[s.length - 1]!.toFixed(3)} ms (n=${s.length})`;
}

function time(label: string, n: number, run: (k: number) => unknown): void {
  for (let k = 0; k < 20; k++) run(k);
  const ms: number[] = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    run(k);
    ms.push(performance.now() - t0);
  }
  console.log(`${label.padEnd(58)} ${summary(ms)}`);
}

/** What the command desk runs for one modify_waypoint (command-desk.ts `modifyWaypoint`). */
function modifyWaypoint(k: number, onto: "own_cell" | "neighbour"): boolean {
  const i = 400 + (k % 200);
  const drone = samples[i]!;
  // The neighbour east, or west at the end of a row.
  const neighbour = samples[(i % PER_SIDE) + 1 < PER_SIDE ? i + 1 : i - 1]!;
  const target = onto === "own_cell" ? { ...offsetM(drone, 10, 0), alt_m: drone.alt_m } : { lat: neighbour.lat, lon: neighbour.lon, alt_m: drone.alt_m };
  return validateWaypoint({ drone, target, config, others: trafficOf(records, drone.drone_id, planOf) }).ok;
}

time("modify_waypoint, 10 m within its cell (accepted)", iterations, (k) => {
  if (!modifyWaypoint(k, "own_cell")) throw new Error("expected the waypoint to be accepted");
});
time("modify_waypoint onto its neighbour (refused, suggestions)", Math.ceil(iterations / 3), (k) => {
  if (modifyWaypoint(k, "neighbour")) throw new Error("expected the waypoint to be refused");
});

const assignDrones: AssignDrone[] = samples.map((s) => ({ drone_id: s.drone_id, lat: s.lat, lon: s.lon, alt_m: s.alt_m, battery_pct: s.battery_pct, status: s.status, armed: s.armed, link: "live", busy: false }));
time("assign_mission: rank the grid's 1,000 drones", iterations, (k) => {
  const w = (e: number, n: number) => ({ ...offsetM(config.home, e, n), alt_m: 70 });
  return rankCandidates({ drones: assignDrones, mission: { waypoints: [w(100 + 5 * (k % 30), 100), w(200, 150 + 5 * (k % 30))], priority: "normal" }, config, now: 0 });
});
const rankCase = rankBenchmarkCase(config, 1000);
time("rankBenchmarkCase(1000)", iterations, () => rankCase.run());

// The grid as detection sees it during the series: commanded drones fly their new waypoint at
// the plan's speed and are predicted by dead reckoning as well (collision-avoidance.ts is unsure
// of a plan for its first seconds).
const picture: CoordinationDrone[] = samples.map((s) => {
  const path = planOf(s.drone_id);
  return { ...s, path, ...(path.length > 0 ? { plan_speed_only: true, also_dead_reckoning: true } : {}) };
});
time("detection pass over the grid (800 unsure plans)", Math.ceil(iterations / 3), () => detectWithStats({ drones: picture, config, now: 0 }));
// The coordinator writes only events and tracks, and the grid has no conflict: a null SQL will do.
const nullSql = { exec: () => Object.assign([][Symbol.iterator](), { toArray: () => [], one: () => ({}) }) } as unknown as SqlPort;
let seq = 0;
const coordinator = new Coordinator(nullSql, { config: () => config, drones: () => samples.map((s) => ({ ...s, seq, path: planOf(s.drone_id) })), issue: (c) => c.length, changed: () => {} });
time("Coordinator.pass over the grid (the fleet object's pass)", Math.ceil(iterations / 3), () => {
  seq++;
  coordinator.pass(1_700_000_000_000 + seq * 500);
});
const det: number[] = [];
for (let k = 0; k < 3; k++) detectionBenchmark(1000);
for (let k = 0; k < Math.ceil(iterations / 3); k++) det.push(detectionBenchmark(1000).ms);
console.log(`${"detectionBenchmark(1000)".padEnd(58)} ${summary(det)}`);

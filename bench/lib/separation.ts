/**
 * The separation figure: losses of separation per 1,000 drone-minutes and the closest approach,
 * measured by the simulator's own separation monitor (relay/sources/sim/sim.ts `separationReport`:
 * both minima broken at the same instant, exact between ticks), over the scenario suite with
 * random seeds, with relay restarts mid-flight, with random missions and waypoint changes, once
 * with collision avoidance on and once off (the control).
 *
 * What runs: the real simulator (flight model, command acceptance, intents) and the edge's real
 * collision avoidance (edge/fleet/collision-avoidance.ts `Coordinator` over edge/domain), in this
 * process, on a simulated clock. In between, a model of what the fleet object does between them:
 * samples reach the edge 100 ms after they are taken (seq, intent, motion, received time), detection
 * passes run on the fleet object's own alarm plan (edge/fleet/alarm-plan.ts `AlarmPlan`: every
 * 500 ms, brought forward to 200 ms after the last pass when a sample changed a drone's predicted
 * path, `passWanted`), commands reach the drone 150 ms after they are issued and their results
 * come back 100 ms later, an acknowledged waypoint or mission becomes the edge's plan record (as
 * the command desk does), commands issued while the relay is down are refused at once and
 * commands lost in a restart time out after 5 s. Changes made outside the edge (missions, ground-
 * station waypoints, routes restarted after a relay restart) are made only where they do not put
 * the drone in conflict within OUTSIDE_LEAD_S: nothing on the ground could prevent a conflict
 * that starts sooner than a sample, a pass and a turn take. Why in-process rather than the fleet object in
 * workerd: hundreds of drone-minutes must run in seconds on a shared 2-core machine, on a clock
 * the test controls, deterministically per seed; the wiring of the same module inside the fleet
 * object (ingest, ledger, desk, alarm) is covered by test/edge/coordination-live.test.ts.
 *
 * Used by `npm run bench` (the full suite) and by test/node/relay-scenarios.test.ts (small runs).
 */
import { AlarmPlan } from "../../edge/fleet/alarm-plan";
import { Coordinator, coordinationDrones, RESUME_GAP_MS, type CommandFinal, type CoordinationEvent } from "../../edge/fleet/collision-avoidance";
import { detectConflicts, type CoordinationDrone, type HoldCommand, type WaypointCommand } from "../../edge/domain/conflicts";
import { isAirborne } from "../../edge/domain/drone";
import { defaultFleetConfig, type FleetConfig } from "../../edge/domain/fleet-config";
import type { DroneRecord } from "../../edge/domain/live-state";
import { offsetM, toLocal } from "../../edge/domain/geo";
import { seededRandom } from "../../edge/domain/random";
import { intentOf, type RelayCommand, type TelemetrySample, type Waypoint } from "../../edge/protocol";
import { SCENARIO_NAMES, type ScenarioName } from "../../relay/sources/sim/scenarios";
import { applyCommand, restartedRoute, SECTOR_M, SimFleet, toSample, type SimCommand } from "../../relay/sources/sim/sim";
import type { MissionProgressEvent, SourceSample } from "../../relay/sources/source";

const HOME = { lat: 47.3977, lon: 8.5456 };
const T0 = 1_700_000_000_000;
const TICK_MS = 50;
const TELEMETRY_LATENCY_MS = 100;
const COMMAND_LATENCY_MS = 150;
const RESULT_LATENCY_MS = 100;
const COMMAND_TIMEOUT_MS = 5_000;
/** How long the relay is away during a restart. */
const RESTART_DOWN_MS = 2_000;
/** Changes made outside the edge (missions, ground-station waypoints) leave this much time
 * before they would put the drone in conflict (see `clearAhead`). */
export const OUTSIDE_LEAD_S = 8;
const local = (p: Waypoint) => {
  const l = toLocal(HOME, p);
  return { x: l.x_m, y: l.y_m, alt: p.alt_m };
};

export type AirspaceCase = {
  /** Shown in reports. */
  name: string;
  /** A conflict scenario (perturbed by `seed`), or the sector patrol fleet of `drones`. */
  scenario?: ScenarioName;
  drones?: number;
  seed: number;
  seconds: number;
  /** Collision avoidance in the loop (false: the control). */
  avoidance: boolean;
  /** Relay restarts, seconds from start: the relay is away 2 s, then reconnects and the drones
   * start their routes over (missions from their first waypoint, patrols from their first). */
  restartsAtS?: readonly number[];
  /** Random missions through the edge (assign_mission, acked into the edge's plan record), one
   * every this many seconds. */
  missionEveryS?: number;
  /** Random waypoint changes made outside the edge (a ground station), one every this many s. */
  redirectEveryS?: number;
  /** Drones that acknowledge commands and carry none out. */
  ignoring?: readonly string[];
  /** Whether the relay reports intents. Default true. */
  intents?: boolean;
  /** Drones reported without state (state_known: false). */
  stateUnknown?: readonly string[];
  /** Operator emergency landings through the edge. */
  emergencyLands?: readonly { droneId: string; atS: number }[];
  /** Samples per drone per second. Default 2. */
  rateHz?: number;
  /** Measure separation (O(N²) per tick). Default true; off for fleets of hundreds. */
  monitor?: boolean;
  /** Called after each detection pass (tests, debugging). */
  onPass?: (coordinator: Coordinator, fleet: SimFleet, t: number) => void;
};

export type CommandRecord = { at: number; drone_id: string; command: string; by: string; status: string; message?: string };

export type AirspaceResult = {
  name: string;
  avoidance: boolean;
  seed: number;
  losses: number;
  /** The losses, with the pair and when. */
  lossList: { pair: [string, string]; from: number; horizontal_m: number; vertical_m: number }[];
  droneMinutes: number;
  /** Least horizontal distance of any pair at an instant within the vertical minimum, m. */
  closestM: number | null;
  commands: CommandRecord[];
  events: CoordinationEvent[];
  /** Alert conditions collision avoidance raised at any pass (kind:drone). */
  alerts: string[];
  /** Slowest detection pass, ms (real time), and every pass's time. */
  maxPassMs: number;
  passMs: number[];
  /** Whether the coordinator reported the airspace saturated at any pass. */
  saturated: boolean;
  /** Most resolution commands any drone got within one minute. */
  maxCommandsPerDroneMinute: number;
  /** Waypoint changes made outside the edge, and relay restarts flown. */
  redirects: number;
  restarts: number;
  fleet: SimFleet;
};

type Pending = { at: number; cmd: RelayCommand; by: string; eventId: string | null; epoch: number };
type Result = { at: number; cmd: RelayCommand; by: string; ok: boolean; message: string; epoch: number };

/** Just enough of SqlStorage for the Coordinator (writes go nowhere; reads find nothing). */
const nullSql = { exec: () => Object.assign([][Symbol.iterator](), { toArray: () => [], one: () => ({}) }) } as unknown as ConstructorParameters<typeof Coordinator>[0];

/** Fly one case; see the module comment for what runs. */
export async function flyAirspace(c: AirspaceCase): Promise<AirspaceResult> {
  let clock = T0;
  const now = () => clock;
  const rand = seededRandom(c.seed * 7919 + 17);
  const fleet = new SimFleet({
    ...(c.scenario ? { scenario: c.scenario, randomize: true } : { drones: c.drones ?? 40 }),
    ...(c.scenario && c.drones ? { drones: c.drones } : {}),
    seed: c.seed,
    rateHz: c.rateHz ?? 2,
    home: HOME,
    now,
    monitorSeparation: c.monitor ?? true,
    intents: c.intents ?? true,
    stateUnknown: c.stateUnknown ?? [],
  });
  for (const id of c.ignoring ?? []) fleet.ignoreCommands(id);
  const config: FleetConfig = { ...defaultFleetConfig(), home: HOME };
  const ids = fleet.droneIds();

  // ---- the edge's side: live state, plan records, the coordinator
  const live = new Map<string, DroneRecord>();
  const seqs = new Map<string, number>();
  const plans = new Map<string, Waypoint[]>();
  const inbound: { at: number; s: SourceSample }[] = [];
  const progress: { at: number; p: MissionProgressEvent }[] = [];
  const pending: Pending[] = [];
  const results: Result[] = [];
  const commands: CommandRecord[] = [];
  const events = new Map<string, CoordinationEvent>();
  const alerts = new Set<string>();
  const missionWaypoints = new Map<string, Waypoint[]>();
  let relayUpAt = clock;
  let redirects = 0;
  let restarted = 0;
  let epoch = 0;
  let counter = 0;
  const relayUp = () => clock >= relayUpAt;

  const coordinator: Coordinator = new Coordinator(nullSql, {
    config: () => config,
    drones: () =>
      coordinationDrones(
        live.values(),
        { busy: () => new Map([...missionWaypoints.keys()].map((id) => [id, "normal"])), plan: (id) => plans.get(id) ?? [] },
        (id) => coordinator.holdFor(id, clock),
      ),
    issue: (cmds, eventId) => {
      let sent = 0;
      for (const cmd of cmds) if (send(cmd, `coordinator:${eventId}`, eventId)) sent++;
      return sent;
    },
    changed: (e) => events.set(e.event_id, { ...e, drone_ids: [...e.drone_ids] }),
  }, Infinity);

  const finish = (by: string, cmd: RelayCommand, status: CommandFinal["status"], message: string) => {
    commands.push({ at: clock, drone_id: cmd.drone_id, command: cmd.command, by, status, message });
    if (status === "acked") {
      // What the command desk records on ack (missions.ts): the new plan.
      if (cmd.command === "modify_waypoint") plans.set(cmd.drone_id, [cmd.new_waypoint]);
      if (cmd.command === "assign_mission") plans.set(cmd.drone_id, [...cmd.waypoints]);
      if (cmd.command === "emergency_land") plans.delete(cmd.drone_id);
    }
    coordinator.onCommandFinal({ sub: by, drone_id: cmd.drone_id, command: cmd.command, status, message, finished_at: clock });
  };

  /** The command desk's send: refused at once while no relay is connected. */
  function send(cmd: WaypointCommand | HoldCommand | RelayCommand, by: string, eventId: string | null): boolean {
    const base = { type: "command" as const, command_id: `cmd${String(counter++).padStart(6, "0")}`, drone_id: cmd.drone_id, timeout_ms: 4_500 };
    const frame: RelayCommand =
      "type" in cmd
        ? cmd
        : cmd.command === "hold"
          ? { ...base, command: "hold", duration_s: cmd.duration_s }
          : { ...base, command: "modify_waypoint", new_waypoint: cmd.new_waypoint, modification_reason: cmd.reason };
    if (!relayUp()) {
      finish(by, frame, "rejected", `no relay is connected for ${cmd.drone_id}`);
      return false;
    }
    pending.push({ at: clock + COMMAND_LATENCY_MS, cmd: frame, by, eventId, epoch });
    return true;
  }

  const operator = (cmd: RelayCommand) => send(cmd, "operator", null);

  // ---- the relay's side: samples out, commands in
  (fleet as unknown as { onSample: (s: SourceSample) => void }).onSample = (s) => {
    if (relayUp()) inbound.push({ at: clock + TELEMETRY_LATENCY_MS, s });
  };
  fleet.onMissionProgress = (p) => {
    if (relayUp()) progress.push({ at: clock + TELEMETRY_LATENCY_MS, p });
  };

  const restarts = [...(c.restartsAtS ?? [])].sort((a, b) => a - b);
  const lands = [...(c.emergencyLands ?? [])];
  const side = Math.ceil(Math.sqrt(ids.length)) * SECTOR_M;
  const randomPoint = (): Waypoint => {
    const half = c.scenario ? 600 : side / 2 - 20;
    const { lat, lon } = offsetM(HOME, (rand() * 2 - 1) * half, (rand() * 2 - 1) * half);
    return { lat, lon, alt_m: 35 + rand() * 40 };
  };
  const flyingIds = () => fleet.snapshot().filter((d) => d.status === "flying").map((d) => d.id);
  const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(rand() * xs.length)];
  /**
   * Whether drone `id` flying `cmd` would be in conflict with anyone within OUTSIDE_LEAD_S, on the
   * true state (what the drones really do): a ground station does not send a drone straight into
   * its neighbour, and nothing could prevent a conflict that starts before anyone can react.
   */
  const clearAhead = (id: string, cmd: SimCommand | "restart"): boolean => {
    const truth = fleet.snapshot().map((d) => (d.id !== id ? d : cmd === "restart" ? restartedRoute(d) : applyCommand(d, cmd, fleet.physics).drone));
    const drones = truth.map((d): CoordinationDrone => {
      const s = toSample(d, HOME, clock, { physics: fleet.physics });
      const it = s.intent;
      return { ...s, path: it?.waypoints ?? [], ...(it?.speed_mps !== undefined ? { plan_speed_mps: it.speed_mps } : {}), ...(it?.hold_s ? { hold_s: it.hold_s } : {}) };
    });
    return !detectConflicts({ drones, config, now: clock, horizonS: OUTSIDE_LEAD_S }).some((c) => c.drone_ids.includes(id));
  };

  // The fleet object's one alarm, as far as detection goes: set from the plan after every change
  // and every alarm; an alarm due within this tick's first millisecond runs in it (the object's
  // alarm would fire a millisecond after the frame that set it).
  const plan = new AlarmPlan();
  let alarmAt: number | null = null;
  const anyAirborne = () => {
    for (const rec of live.values()) if (isAirborne(rec.sample)) return true;
    return false;
  };
  const schedule = () => {
    alarmAt = plan.next(clock, { status: false, detection: anyAirborne(), deadline: null });
  };
  let nextMission = clock + (c.missionEveryS ?? 0) * 1000;
  let nextRedirect = clock + (c.redirectEveryS ?? 0) * 1000;
  let droneMs = 0;
  let maxPassMs = 0;
  let saturated = false;
  const passMs: number[] = [];
  const end = clock + c.seconds * 1000;
  while (clock < end) {
    clock += TICK_MS;
    fleet.emitDue(clock);
    const t = (clock - T0) / 1000;
    // Relay restarts: the relay is away (commands in flight are lost), then says hello again and
    // its ground station reloads the drones' routes, which start over from where they are.
    if (restarts.length && t >= restarts[0]!) {
      restarts.shift();
      relayUpAt = clock + RESTART_DOWN_MS;
      epoch++;
      inbound.length = 0;
      progress.length = 0;
    }
    if (clock === relayUpAt) {
      // One drone after another, each unless its restarted route would meet another drone within
      // OUTSIDE_LEAD_S (no one could prevent that; such a drone keeps its route).
      for (const id of ids) if (clearAhead(id, "restart")) fleet.restartRoutes([id]);
      restarted++;
      coordinator.relayConnected(ids, clock);
    }
    for (const l of lands) {
      if (t >= l.atS && l.atS >= 0) {
        operator({ type: "command", command_id: `land${counter++}`, drone_id: l.droneId, timeout_ms: 4_500, command: "emergency_land", reason: "operator" });
        l.atS = -1;
      }
    }
    if (c.missionEveryS && clock >= nextMission) {
      nextMission += c.missionEveryS * 1000;
      const id = pick(flyingIds().filter((x) => !missionWaypoints.has(x)));
      for (let attempt = 0; id && attempt < 5; attempt++) {
        const wps = Array.from({ length: 2 + Math.floor(rand() * 2) }, randomPoint);
        if (!clearAhead(id, { kind: "mission", missionId: "probe", waypoints: wps.map(local) })) continue;
        const missionId = `m${counter}`;
        missionWaypoints.set(id, wps);
        operator({ type: "command", command_id: `mis${counter++}`, drone_id: id, timeout_ms: 4_500, command: "assign_mission", mission_id: missionId, waypoints: wps, priority: "normal" });
        break;
      }
    }
    if (c.redirectEveryS && clock >= nextRedirect) {
      nextRedirect += c.redirectEveryS * 1000;
      const id = pick(flyingIds());
      for (let attempt = 0; id && attempt < 5; attempt++) {
        const target = local(randomPoint());
        if (!clearAhead(id, { kind: "goto", target })) continue;
        fleet.redirect(id, target);
        redirects++;
        break;
      }
    }
    // Edge: telemetry in.
    while (inbound.length && inbound[0]!.at <= clock) {
      const { s } = inbound.shift()!;
      const seq = (seqs.get(s.drone_id) ?? 0) + 1;
      seqs.set(s.drone_id, seq);
      const { intent: _intent, ...rest } = s;
      const sample: TelemetrySample = { ...rest, seq };
      live.set(s.drone_id, { sample, receivedAt: clock, link: "live" });
      coordinator.recordIntent(s.drone_id, intentOf(s), clock, { heading_deg: sample.heading_deg, speed_mps: sample.speed_mps, climb_mps: sample.climb_mps });
      // What fleet-hub.ts does after a relay frame: the detection clock for a first airborne
      // drone, an early pass when a path changed.
      if (c.avoidance && (!plan.detectionPlanned || (coordinator.passWanted() && plan.soon(clock)))) schedule();
    }
    while (progress.length && progress[0]!.at <= clock) {
      const { p } = progress.shift()!;
      const wps = missionWaypoints.get(p.drone_id);
      if (p.state === "active" && wps && p.waypoint_index !== undefined) plans.set(p.drone_id, wps.slice(p.waypoint_index));
      if (p.state !== "active") {
        plans.delete(p.drone_id);
        missionWaypoints.delete(p.drone_id);
      }
    }
    // Relay: commands in, results out (lost if the relay restarted in between).
    for (let i = 0; i < pending.length; ) {
      const p = pending[i]!;
      if (p.epoch !== epoch) {
        if (clock - (p.at - COMMAND_LATENCY_MS) >= COMMAND_TIMEOUT_MS) {
          pending.splice(i, 1);
          finish(p.by, p.cmd, "timeout", `no answer from the relay within ${COMMAND_TIMEOUT_MS} ms`);
        } else i++;
        continue;
      }
      if (p.at > clock) {
        i++;
        continue;
      }
      pending.splice(i, 1);
      const r = await fleet.execute(p.cmd, new AbortController().signal);
      results.push({ at: clock + RESULT_LATENCY_MS, cmd: p.cmd, by: p.by, ok: r.ok, message: r.ok ? (r.message ?? "") : r.message, epoch });
    }
    for (let i = 0; i < results.length; ) {
      const r = results[i]!;
      if (r.at > clock) {
        i++;
        continue;
      }
      results.splice(i, 1);
      finish(r.by, r.cmd, r.ok ? "acked" : "failed", r.message);
    }
    if (c.avoidance && alarmAt !== null && clock + 1 >= alarmAt) {
      const due = plan.take(clock, anyAirborne());
      if (due.detect) {
        coordinator.pass(clock);
        maxPassMs = Math.max(maxPassMs, coordinator.lastPass.ms);
        passMs.push(coordinator.lastPass.ms);
        if (coordinator.lastPass.saturated) saturated = true;
        for (const a of coordinator.alertConditions()) alerts.add(`${a.kind}:${a.drone_id}`);
        c.onPass?.(coordinator, fleet, (clock - T0) / 1000);
      } else if (due.resume) coordinator.resume(clock);
      // As the fleet object does (fleet-hub.ts alarm): resolution turns while a backlog waits.
      if (due.detect || due.resume) plan.resumeAt(coordinator.resumeWanted() ? clock + RESUME_GAP_MS : null);
      schedule();
    }
    if (clock % 1000 === 0) droneMs += fleet.snapshot().filter((d) => isAirborne(d)).length * 1000;
  }

  const report = fleet.separationReport();
  const lossList = report.flatMap((p) => p.losses.map((l) => ({ pair: p.drone_ids, from: (l.from - T0) / 1000, horizontal_m: l.horizontal_m, vertical_m: l.vertical_m })));
  const within = report.map((p) => p.min_horizontal_within_vertical_m).filter((x): x is number => x !== null);
  const resolutionTimes = new Map<string, number[]>();
  for (const cmd of commands) if (cmd.by.startsWith("coordinator:")) (resolutionTimes.get(cmd.drone_id) ?? resolutionTimes.set(cmd.drone_id, []).get(cmd.drone_id)!).push(cmd.at);
  let maxPerMin = 0;
  for (const ts of resolutionTimes.values()) {
    for (let i = 0, j = 0; i < ts.length; i++) {
      while (ts[i]! - ts[j]! >= 60_000) j++;
      maxPerMin = Math.max(maxPerMin, i - j + 1);
    }
  }
  return {
    name: c.name,
    avoidance: c.avoidance,
    seed: c.seed,
    losses: lossList.length,
    lossList,
    droneMinutes: droneMs / 60_000,
    closestM: within.length ? Math.min(...within) : null,
    commands,
    events: [...events.values()],
    alerts: [...alerts],
    maxPassMs,
    passMs,
    saturated,
    maxCommandsPerDroneMinute: maxPerMin,
    redirects,
    restarts: restarted,
    fleet,
  };
}

/** The cases of the suite for one seed (see the module comment). */
export function suiteCases(seed: number, avoidance: boolean, scale: { seconds: number; patrolDrones: number }): AirspaceCase[] {
  const r = seededRandom(seed * 31 + 5);
  const restartAt = () => 8 + r() * 12;
  const cases: AirspaceCase[] = [];
  for (const scenario of SCENARIO_NAMES) {
    cases.push({ name: `${scenario}`, scenario, seed, seconds: scale.seconds, avoidance });
    cases.push({ name: `${scenario}, relay restart`, scenario, seed, seconds: scale.seconds, avoidance, restartsAtS: [restartAt()] });
  }
  cases.push({
    name: `patrol ${scale.patrolDrones}, random missions and waypoint changes`,
    drones: scale.patrolDrones,
    seed,
    seconds: scale.seconds * 2,
    avoidance,
    missionEveryS: 3,
    redirectEveryS: 5,
    restartsAtS: [scale.seconds * 0.8],
  });
  return cases;
}

export type SuiteSummary = {
  avoidance: boolean;
  seeds: number;
  runs: number;
  losses: number;
  droneMinutes: number;
  lossesPer1000DroneMin: number;
  closestM: number | null;
  maxPassMs: number;
  maxCommandsPerDroneMinute: number;
  commands: number;
  perCase: { name: string; losses: number; closestM: number | null; droneMinutes: number }[];
};

/** Fly the suite for `seeds` seeds with avoidance on or off, and sum it up. */
export async function separationSuite(seeds: readonly number[], avoidance: boolean, scale = { seconds: 60, patrolDrones: 40 }): Promise<SuiteSummary> {
  const perCase = new Map<string, { losses: number; closest: number | null; dm: number }>();
  let losses = 0;
  let dm = 0;
  let closest: number | null = null;
  let maxPass = 0;
  let maxPerMin = 0;
  let cmds = 0;
  let runs = 0;
  for (const seed of seeds) {
    for (const c of suiteCases(seed, avoidance, scale)) {
      const r = await flyAirspace(c);
      runs++;
      losses += r.losses;
      dm += r.droneMinutes;
      maxPass = Math.max(maxPass, r.maxPassMs);
      maxPerMin = Math.max(maxPerMin, r.maxCommandsPerDroneMinute);
      cmds += r.commands.filter((x) => x.by.startsWith("coordinator:")).length;
      if (r.closestM !== null) closest = closest === null ? r.closestM : Math.min(closest, r.closestM);
      const pc = perCase.get(c.name) ?? { losses: 0, closest: null, dm: 0 };
      pc.losses += r.losses;
      pc.dm += r.droneMinutes;
      if (r.closestM !== null) pc.closest = pc.closest === null ? r.closestM : Math.min(pc.closest, r.closestM);
      perCase.set(c.name, pc);
    }
  }
  return {
    avoidance,
    seeds: seeds.length,
    runs,
    losses,
    droneMinutes: dm,
    lossesPer1000DroneMin: dm > 0 ? (losses / dm) * 1000 : 0,
    closestM: closest,
    maxPassMs: maxPass,
    maxCommandsPerDroneMinute: maxPerMin,
    commands: cmds,
    perCase: [...perCase].map(([name, v]) => ({ name, losses: v.losses, closestM: v.closest, droneMinutes: v.dm })),
  };
}

/** Markdown for the bench report. */
export function renderSeparation(on: SuiteSummary, off: SuiteSummary, detection: { p50: number; max: number; conflicts: number }): string {
  const f = (x: number | null, d = 1) => (x === null ? "–" : x.toFixed(d));
  const lines = [
    "## Separation (collision avoidance in the loop)",
    "",
    `${on.seeds} seeds × ${on.runs / Math.max(on.seeds, 1)} cases; the simulator's separation monitor (30 m / 10 m); in-process, simulated clock (bench/lib/separation.ts).`,
    "",
    "| | losses | drone-minutes | losses / 1,000 drone-min | closest approach (m, within 10 m vertically) | resolution commands | most to one drone in a minute | slowest pass (ms) |",
    "|---|---|---|---|---|---|---|---|",
    `| avoidance on | ${on.losses} | ${on.droneMinutes.toFixed(0)} | ${on.lossesPer1000DroneMin.toFixed(2)} | ${f(on.closestM)} | ${on.commands} | ${on.maxCommandsPerDroneMinute} | ${on.maxPassMs.toFixed(1)} |`,
    `| avoidance off (control) | ${off.losses} | ${off.droneMinutes.toFixed(0)} | ${off.lossesPer1000DroneMin.toFixed(2)} | ${f(off.closestM)} | – | – | – |`,
    "",
    "| case | losses on | losses off | closest on (m) | closest off (m) |",
    "|---|---|---|---|---|",
    ...on.perCase.map((c) => {
      const o = off.perCase.find((x) => x.name === c.name);
      return `| ${c.name} | ${c.losses} | ${o?.losses ?? "–"} | ${f(c.closestM)} | ${f(o?.closestM ?? null)} |`;
    }),
    "",
    `Detection pass at 1,000 drones (test/fixtures/fleets.ts detectionBenchmark): p50 ${detection.p50.toFixed(1)} ms, max ${detection.max.toFixed(1)} ms, ${detection.conflicts} conflicts.`,
  ];
  return lines.join("\n") + "\n";
}

/**
 * Collision avoidance end to end, for real: the edge under wrangler dev (Postgres through the
 * local proxy), a simulated fleet flying a conflict scenario (relay/sources/sim/scenarios.ts) at real time,
 * linked to the edge by the relay's EdgeLink, and a dashboard on a real WebSocket.
 *
 * The relay runs in-process (SimFleet + EdgeLink, wired as relay/cli.ts wires them) so the test
 * can read the sim's separation report: what the drones actually flew. Per scenario, in its own
 * fleet (the four run concurrently on one stack): the dashboard sees a coordination_event of the
 * scenario's type, the resolution commands reach the sim and are accepted and acked, the event
 * ends resolved, no pair ever comes below 30 m horizontal while within 10 m vertical once the first
 * resolution command was applied, and the event's replay holds the involved drones' tracks.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, it } from "vitest";
import WebSocket from "ws";
import { signToken, type Role } from "../../edge/worker/auth";
import type { CoordinationEventView, RelayCommand } from "../../edge/protocol";
import { EdgeLink } from "../../relay/link/link";
import type { ScenarioName } from "../../relay/sources/sim/scenarios";
import { SimFleet, type PairSeparation } from "../../relay/sources/sim/sim";
import { resolveAuthSecret } from "../../scripts/dev-vars";
import { startStack, type Stack } from "../../scripts/stack";
import { createTestDatabase, Dashboard, type Received } from "./support";

const RUN = randomUUID().slice(0, 6);
const SEP_H = 30;
const SEP_V = 10;



/** Latest state of every coordination event the dashboard saw, in order of first sight. */
function eventsOf(frames: Received[]): CoordinationEventView[] {
  const byId = new Map<string, CoordinationEventView>();
  for (const f of frames) if (f.msg.type === "coordination_event") byId.set(f.msg.event.event_id, f.msg.event);
  return [...byId.values()];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Per scenario: how long to fly (s from the first sample) — past the would-be conflict. */
const FLY_S: Record<ScenarioName, number> = { head_on: 30, crossing: 30, overtaking: 33, swarm: 42 };

describe("collision avoidance end to end: simulator scenarios against the real edge", () => {
  let stack: Stack | undefined;
  let sign: (role: Role, fleet: string) => Promise<string>;
  const cleanups: (() => Promise<void> | void)[] = [];
  const unexpected: string[] = [];

  let db: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  beforeAll(async () => {
    db = await createTestDatabase("df_coord");
    stack = await startStack({
      fleet: `coord-${RUN}`,
      relay: false,
      port: 0,
      databaseUrl: db.url,
      cron: false,
      healthTimeoutMs: 90_000,
      log: () => {},
      output: () => {},
      onUnexpectedExit: (child, code, signal) => unexpected.push(`${child} (${signal ?? `code ${code}`})`),
    });
    // startStack signs with this same secret; a fleet per scenario needs its own tokens.
    const secret = resolveAuthSecret()!.secret;
    sign = (role, fleet) => signToken(secret, { sub: `e2e-${role}`, role, fleets: [fleet] }, 3600);
  }, 120_000);

  afterAll(async () => {
    for (const c of cleanups.splice(0)) {
      try {
        await c();
      } catch {
        // best effort: the stack below must still stop
      }
    }
    await stack?.stop();
    await db?.drop();
  }, 60_000);

  const scenarios: ScenarioName[] = ["head_on", "crossing", "overtaking", "swarm"];
  describe.concurrent("scenarios", () => {
    for (const name of scenarios) {
      it(`${name}: detected, resolved through acked commands, separation kept`, async ({ expect }) => {
        const s = stack!;
        const fleet = `coord-${name.replace("_", "")}-${RUN}`;
        const dash = await Dashboard.open(`${s.edgeUrl.replace(/^http/, "ws")}/v1/fleets/${fleet}/ws`, await sign("operator", fleet));
        cleanups.push(() => dash.close());

        const sim = new SimFleet({ scenario: name, rateHz: 5 });
        const executed: { at: number; command_id: string; drone_id: string; command: string; ok: boolean; message: string }[] = [];
        const link = new EdgeLink({
          edge: s.edgeUrl,
          fleet,
          token: await sign("relay", fleet),
          relayId: `e2e-${name}`,
          source: "sim",
          droneIds: () => sim.droneIds(),
          execute: async (command: RelayCommand, signal) => {
            const r = await sim.execute(command, signal);
            executed.push({ at: Date.now(), command_id: command.command_id, drone_id: command.drone_id, command: command.command, ok: r.ok, message: r.message ?? "" });
            return r;
          },
        });
        sim.onMissionProgress = (p) => link.pushProgress(p);
        cleanups.push(async () => {
          await sim.stop();
          await link.stop();
        });

        const context = () =>
          [
            `scenario ${name}, fleet ${fleet}; unexpected exits: ${unexpected.join(", ") || "none"}`,
            dash.closed ?? "dashboard socket open",
            `link: ${JSON.stringify(link.stats())}`,
            `events: ${JSON.stringify(eventsOf(dash.frames).map((e) => [e.event_type, e.drone_ids.join("/"), e.strategy, e.status]))}`,
            `executed: ${JSON.stringify(executed.map((e) => [e.command, e.drone_id, e.ok, e.message]))}`,
            "edge output (last 20 lines):",
            ...s.recentOutput("edge").slice(-20),
          ].join("\n");

        // Link up first, then the drones take to the air: the conflict clock starts now.
        const connected = new Promise<void>((resolve) => link.once("connected", () => resolve()));
        link.start();
        await Promise.race([connected, sleep(15_000).then(() => Promise.reject(new Error(`relay link not connected in 15 s\n${context()}`)))]);
        const startedAt = Date.now();
        await sim.start((sample) => link.push(sample));

        // 1. The dashboard sees an event of the scenario's type for the pair (any pair in a swarm).
        const wanted = (e: CoordinationEventView) => (name === "swarm" ? e.drone_ids.length === 2 : e.event_type === name);
        await dash.waitFor(`a ${name} coordination_event`, 15_000, (f) => eventsOf(f).some(wanted), context);
        const first = eventsOf(dash.frames).find(wanted)!;
        if (name !== "swarm") expect(first.drone_ids).toEqual(["drone_0", "drone_1"]);

        // 2. It ends resolved (bounded), and the drones fly on past the would-be conflict.
        await dash.waitFor(`event ${first.event_id} resolved`, 40_000, (f) => eventsOf(f).find((e) => e.event_id === first.event_id)?.status === "resolved", context);
        const flyUntil = startedAt + FLY_S[name] * 1000;
        if (Date.now() < flyUntil) await sleep(flyUntil - Date.now());
        // Every event opened by then closes as resolved (a swarm may still be finishing one).
        await dash.waitFor("every coordination event closed", 15_000, (f) => eventsOf(f).every((e) => e.status !== "active"), context);
        await sim.stop();
        const events = eventsOf(dash.frames);
        expect(events.map((e) => e.status).filter((st) => st !== "resolved"), context()).toEqual([]);
        expect(events.filter((e) => e.drone_ids.length === 2).length).toBeGreaterThanOrEqual(name === "swarm" ? 3 : 1);

        // 3. Resolution commands reached the sim, were accepted there, and the edge has them acked.
        expect(executed.length, context()).toBeGreaterThan(0);
        expect(executed.filter((e) => !e.ok), context()).toEqual([]);
        expect(executed.every((e) => e.command === "modify_waypoint" || e.command === "hold")).toBe(true);
        const audit = (await (
          await fetch(`${s.edgeUrl}/v1/fleets/${fleet}/commands`, { headers: { authorization: `Bearer ${await sign("admin", fleet)}` }, signal: AbortSignal.timeout(10_000) })
        ).json()) as { commands: { command_id: string; sub: string; role: string; status: string }[] };
        const byId = new Map(audit.commands.map((c) => [c.command_id, c]));
        for (const e of executed) {
          expect(byId.get(e.command_id), `audit of ${e.command_id}`).toMatchObject({ role: "system", status: "acked" });
          expect(byId.get(e.command_id)!.sub).toMatch(/^coordinator:ev-/);
        }

        // 4. What was actually flown: no loss of separation once the first command was applied.
        const firstApplied = Math.min(...executed.map((e) => e.at));
        const report = sim.separationReport();
        const losses = report.flatMap((p) => p.losses.filter((l) => l.to >= firstApplied).map((l) => ({ pair: p.drone_ids.join("-"), ...l })));
        expect(losses, context()).toEqual([]);
        const closest = report.reduce<PairSeparation | null>((a, p) => ((p.min_horizontal_within_vertical_m ?? Infinity) < (a?.min_horizontal_within_vertical_m ?? Infinity) ? p : a), null);
        const nearest = report.reduce((a, p) => (p.min_horizontal_m < a.min_horizontal_m ? p : a));
        console.log(
          `[e2e-coordination] ${name}: events ${events.length} (${[...new Set(events.map((e) => `${e.event_type}/${e.strategy}`))].join(", ")}), ` +
            `first detection ${first.detected_at - startedAt} ms after start, resolution ${events.find((e) => e.event_id === first.event_id)?.resolution_time_ms} ms; ` +
            `commands ${executed.length} (${[...new Set(executed.map((e) => e.command))].join(", ")}), first applied ${firstApplied - first.detected_at} ms after detection; ` +
            `least horizontal within ${SEP_V} m vertical: ${closest?.min_horizontal_within_vertical_m?.toFixed(1) ?? "never within"} m (${closest?.drone_ids.join("-") ?? "-"}); ` +
            `closest pass: ${nearest.min_horizontal_m.toFixed(1)} m horizontal at ${nearest.vertical_at_min_horizontal_m.toFixed(1)} m vertical (${nearest.drone_ids.join("-")})`,
        );
        expect(closest?.min_horizontal_within_vertical_m ?? Infinity).toBeGreaterThanOrEqual(SEP_H);

        // 5. Replay: the event with the involved drones' tracks.
        const res = await fetch(`${s.edgeUrl}/v1/fleets/${fleet}/coordination/${first.event_id}`, {
          headers: { authorization: `Bearer ${await sign("viewer", fleet)}` },
          signal: AbortSignal.timeout(10_000),
        });
        expect(res.status).toBe(200);
        const replay = (await res.json()) as { event: CoordinationEventView; tracks: Record<string, { t: number; lat: number; lon: number; alt_m: number }[]> };
        expect(replay.event).toMatchObject({ event_id: first.event_id, status: "resolved" });
        // An event grows when a conflict sharing one of its drones is merged into it: the replay
        // has a track for every drone the event holds now, the first ones among them.
        expect(Object.keys(replay.tracks).sort()).toEqual([...replay.event.drone_ids].sort());
        expect(replay.event.drone_ids).toEqual(expect.arrayContaining(first.drone_ids));
        for (const id of replay.event.drone_ids) expect(replay.tracks[id]!.length, `track of ${id}`).toBeGreaterThanOrEqual(5);

        await link.stop();
        dash.close();
        expect(unexpected).toEqual([]);
      }, 110_000);
    }
  });
});

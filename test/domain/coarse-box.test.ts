/**
 * The resolution planner's prefilter (conflicts.ts coarseBox) skips a pair whose boxes, widened by
 * the minima, do not meet: each box must hold the drone's whole predicted track (trajectory.ts),
 * or a conflict with a drone whose command is still on its way (`lead_s`) could be missed.
 */
import { describe, expect, it } from "vitest";
import { coarseBoxFor, type CoordinationDrone } from "../../edge/domain/conflicts";
import { defaultFleetConfig } from "../../edge/domain/fleet-config";
import { fromLocal, makeLocalFrame } from "../../edge/domain/geo";
import { seededRandom } from "../../edge/domain/random";
import { predictTrack } from "../../edge/domain/trajectory";

const config = defaultFleetConfig();
const frame = makeLocalFrame(config.home);
const HORIZON_S = 30;

describe("coarseBox holds the predicted track", () => {
  it("for random drones with and without plans, holds, commands on their way and late samples", () => {
    const r = seededRandom(11);
    const between = (lo: number, hi: number) => lo + (hi - lo) * r();
    let withLead = 0;
    for (let k = 0; k < 5_000; k++) {
      const x = between(-1000, 1000);
      const y = between(-1000, 1000);
      const path = Array.from({ length: Math.floor(between(0, 4)) }, () => ({ ...fromLocal(config.home, { x_m: x + between(-300, 300), y_m: y + between(-300, 300) }), alt_m: between(5, 110) }));
      const d: CoordinationDrone = {
        drone_id: `d${k}`,
        ...fromLocal(config.home, { x_m: x, y_m: y }),
        alt_m: between(5, 110),
        heading_deg: between(0, 360),
        speed_mps: r() < 0.2 ? between(0, 0.6) : between(0, 18),
        climb_mps: between(-4, 4),
        status: "flying",
        armed: true,
        path,
        ...(r() < 0.4 ? { lead_s: between(0, 7) } : {}),
        ...(r() < 0.3 ? { hold_s: between(0, 20) } : {}),
        ...(r() < 0.4 ? { age_s: between(0, 6) } : {}),
        ...(r() < 0.3 ? { plan_speed_mps: between(1, 15) } : {}),
      };
      if ((d.lead_s ?? 0) > 0 && (path.length > 0 || (d.hold_s ?? 0) > 0)) withLead++;
      const box = coarseBoxFor(d, config, HORIZON_S);
      const age = Math.min(Math.max(d.age_s ?? 0, 0), 5);
      const tr = predictTrack(d, frame, config.cruise_speed_mps, HORIZON_S + age);
      for (let i = 0; i < tr.n; i++) {
        const inside = tr.xs[i]! >= box[0]! && tr.xs[i]! <= box[1]! && tr.ys[i]! >= box[2]! && tr.ys[i]! <= box[3]! && tr.zs[i]! >= box[4]! && tr.zs[i]! <= box[5]!;
        if (!inside) expect.fail(`drone ${JSON.stringify(d)}: knot ${i} (${tr.xs[i]}, ${tr.ys[i]}, ${tr.zs[i]}) outside ${[...box].join(", ")}`);
      }
    }
    expect(withLead).toBeGreaterThan(500);
  });
});

import { describe, expect, it } from "vitest";
import { DRONE_STATUSES } from "../../edge/protocol";
import { GROUNDED_STATUSES, isAirborne } from "../../edge/domain/drone";
import { LiveState } from "../../edge/domain/live-state";

describe("isAirborne: the one airborne rule", () => {
  it("is armed and not idle, landed or charging", () => {
    const airborne = DRONE_STATUSES.filter((status) => isAirborne({ armed: true, status }));
    expect(airborne).toEqual(["taking_off", "flying", "returning", "landing", "emergency"]);
    expect([...GROUNDED_STATUSES].sort()).toEqual(["charging", "idle", "landed"]);
    for (const status of DRONE_STATUSES) expect(isAirborne({ armed: false, status })).toBe(false);
  });

  it("is what fleet_status counts as flying", () => {
    const live = new LiveState();
    const base = { ts: 0, lat: 47.3977, lon: 8.5456, alt_m: 20, heading_deg: 0, speed_mps: 0, battery_pct: 80, mode: "AUTO.LAND" };
    live.ingest({ ...base, drone_id: "landing", seq: 1, armed: true, status: "landing" }, 0);
    live.ingest({ ...base, drone_id: "parked", seq: 1, armed: true, status: "landed" }, 0);
    live.ingest({ ...base, drone_id: "disarmed", seq: 1, armed: false, status: "flying" }, 0);
    expect(live.status("f", true, 0).counts.flying).toBe(1);
    expect(live.anyAirborne()).toBe(true);
  });
});

/** How the Worker reaches a fleet's Durable Object: its stub, and RPC calls with one error shape. */
import type { Context } from "hono";
import type { FleetHub } from "../fleet/fleet-hub";
import { log } from "../domain/log";
import { httpError, type AppEnv } from "./http";

/** The fleet's Durable Object: idFromName(fleet), so the object knows its name (ctx.id.name). */
export function fleetStub(c: Context<AppEnv>): DurableObjectStub<FleetHub> {
  return c.env.FLEET_HUB.get(c.env.FLEET_HUB.idFromName(c.get("fleet")));
}

/**
 * An RPC call on the fleet object. A failure inside the object is logged with the fleet and
 * answered 500 `internal` "fleet object error", as when the object answered over fetch.
 */
export async function callFleet<T>(c: Context<AppEnv>, what: string, fn: (hub: DurableObjectStub<FleetHub>) => Promise<T>): Promise<T> {
  const hub = fleetStub(c);
  try {
    return await fn(hub);
  } catch (err) {
    log("error", `fleet object call ${what} failed`, { fleet: c.get("fleet"), call: what }, err);
    throw httpError(500, "internal", "fleet object error");
  }
}

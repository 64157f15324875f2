/** GET /v1/me: who the edge takes the caller to be (a dashboard behind Access has no token to read). */
import { Hono } from "hono";
import type { MeBody } from "../../protocol";
import { describeIdentity, identify } from "../identity";
import { httpError, type AppEnv } from "../http";

export const me = new Hono<AppEnv>();

me.get("/", async (c) => {
  const who = await identify(c.req.raw, c.env);
  if (!who.ok) throw httpError(who.status, who.code, who.message);
  const body: MeBody = describeIdentity(who.id);
  // Per person and short-lived: never cached by a browser or anything between.
  c.header("cache-control", "no-store");
  return c.json(body);
});

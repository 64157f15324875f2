/**
 * The worker layer's entry: the edge Worker, Hono routes in front of one FleetHub Durable Object
 * per fleet, and the cron triggers.
 *
 * Owns: HTTP — identity (identity.ts: the edge's HS256 tokens in auth.ts, provider tokens in
 * sso.ts with the mapping in sso-config.ts), the production safety checks (deployment.ts),
 * request limits (limits.ts), error bodies (http.ts), and the routes (routes/): every check of
 * role, Origin, upgrade, body and id happens once, there;
 * then a typed RPC call on the fleet's stub (fleet-stub.ts), or the socket upgrade handed over.
 * May import: edge/protocol, edge/domain (pure rules, e.g. the fleet configuration's validation),
 * edge/postgres for the analytics reads and the cron, and of edge/fleet only types — except the
 * Durable Object classes re-exported below, because the runtime finds them on the main module.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { log } from "../domain/log";
import { reportProblem, serveProblem } from "./deployment";
import type { Env } from "./env";
import type { AppEnv } from "./http";
import { fleets } from "./routes/fleets";
import { me } from "./routes/me";
import { runScheduled } from "../postgres/cron";

export { FleetHub } from "../fleet/fleet-hub";
export { Directory } from "../postgres/directory";

export const app = new Hono<AppEnv>();

app.get("/health", (c) => c.json({ ok: true, service: "dronefleet-edge", time: new Date().toISOString() }));

// Outside local development, a Worker deployed with a guessable AUTH_SECRET (or a broken
// IDENTITY_CONFIG) serves nothing but /health until it is fixed (deployment.ts).
app.use("*", async (c, next) => {
  if (c.req.path === "/health") return next();
  const problem = serveProblem(c.env);
  if (!problem) return next();
  reportProblem(problem, "every route but /health");
  return c.json({ error: { code: "misconfigured", message: `edge misconfigured: ${problem.message}. Fix: ${problem.fix}` } }, 503);
});

app.route("/v1/me", me);
app.route("/v1/fleets/:fleet", fleets);

app.notFound((c) => c.json({ error: { code: "not_found", message: `no route ${c.req.method} ${c.req.path}` } }, 404));
app.onError((err, c) => {
  if (err instanceof HTTPException) return err.getResponse();
  log("error", "edge error", { method: c.req.method, path: c.req.path }, err);
  return c.json({ error: { code: "internal", message: "internal error" } }, 500);
});

export default {
  fetch: app.fetch,
  // Cron triggers: outbox flush every minute, hourly aggregation at :02 (edge/postgres/cron.ts).
  scheduled: (controller, env, ctx) => runScheduled(controller, env, ctx),
} satisfies ExportedHandler<Env>;

/** Shared HTTP pieces of the Worker: error bodies and the app's typed context. */
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Claims } from "./auth";
import type { Env } from "./env";

export type AppEnv = { Bindings: Env; Variables: { claims: Claims; fleet: string } };

/** Every HTTP error body is `{error: {code, message}}`. */
export function httpError(status: ContentfulStatusCode, code: string, message: string): HTTPException {
  return new HTTPException(status, {
    res: Response.json({ error: { code, message } }, { status }),
  });
}

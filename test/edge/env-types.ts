/** The bindings `env` from "cloudflare:test" / "cloudflare:workers" carries in the edge tests: the
 * Worker's own Env (edge/worker/env.ts). Types only. */
import type { Env as WorkerEnv } from "../../edge/worker/env";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
  }
}
export {};

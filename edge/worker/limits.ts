/**
 * Abuse limits the Worker enforces on requests, as small pure pieces the routes call:
 * - the Origin allowlist for browser sockets (env ALLOWED_ORIGINS);
 * - request bodies read with a cap, so a missing or lying Content-Length cannot make the Worker
 *   buffer an unbounded upload.
 * The limits on open sockets (sockets per token, messages per socket) need the fleet object's
 * state and are enforced there (edge/fleet/limits.ts).
 */

/** Largest body any REST route accepts (the biggest is PUT /config). */
export const MAX_BODY_BYTES = 256 * 1024;

/**
 * May a browser page from `origin` open a socket? `allowed` is "*" (or unset: any origin), or a
 * comma-separated list of origins ("https://ops.example.com, http://localhost:5173"). Requests
 * without an Origin header come from non-browser clients (relays, scripts) and are not subject to
 * it: Origin protects browser sessions, it is not authentication. The edge's own origin (the
 * bundled dashboard, served from the same host) is always allowed.
 */
export function originAllowed(origin: string | null, requestUrl: string, allowed: string | undefined): boolean {
  if (origin === null) return true;
  const list = (allowed ?? "*").split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.includes("*")) return true;
  const o = origin.toLowerCase().replace(/\/+$/, "");
  if (o === new URL(requestUrl).origin.toLowerCase()) return true;
  return list.some((a) => a.toLowerCase().replace(/\/+$/, "") === o);
}

/**
 * Read a request body, at most `max` bytes. "too_large" as soon as the declared Content-Length or
 * the bytes actually received exceed it (the stream is cancelled; nothing more is read).
 */
export async function readBodyCapped(req: Request, max: number): Promise<Uint8Array | "too_large"> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > max) return "too_large";
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel("body too large").catch(() => {
        // The peer may already be gone; the answer is 413 either way.
      });
      return "too_large";
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Structured log records for the edge (Worker, fleet object, cron): one JSON object per line,
 * which Workers Logs indexes field by field (fleet, command_id, event_id, …), so a query such as
 * `fleet = "zurich-1" AND level = "error"` finds every failure of one fleet.
 *
 * The formatter is pure (formatLog: data in, record out) and never lets a credential through: a
 * field whose name says secret (token, authorization, cookie, secret, password) is replaced, and
 * JWT-shaped strings, `Bearer …` and `access_token=…` are scrubbed from every string, including
 * error messages and stacks, so a request URL or header quoted in an error cannot leak a token.
 * `log()` is the one place that calls console.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Ids that tie a line to what it is about; any other JSON-safe field may be added. */
export type LogFields = {
  fleet?: string;
  command_id?: string;
  event_id?: string;
  drone_id?: string;
  [k: string]: unknown;
};

export type LogRecord = { level: LogLevel; msg: string; [k: string]: unknown };

const SECRET_KEY = /token|authorization|cookie|secret|password|assertion/i;
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
const BEARER = /\b(Bearer)\s+[^\s"',;]+/gi;
const QUERY_TOKEN = /\b(access_token|token)=[^&\s"']*/gi;
const MAX_STRING = 2000;
const MAX_DEPTH = 4;

/** A string with anything that looks like a credential replaced, cut to a bounded length. */
export function scrub(s: string): string {
  const out = s.replace(JWT, "[redacted-jwt]").replace(BEARER, "$1 [redacted]").replace(QUERY_TOKEN, "$1=[redacted]");
  return out.length > MAX_STRING ? `${out.slice(0, MAX_STRING)}…` : out;
}

function clean(v: unknown, depth: number): unknown {
  if (typeof v === "string") return scrub(v);
  if (v === null || typeof v === "number" || typeof v === "boolean") return v;
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Error) return errorFields(v);
  if (depth >= MAX_DEPTH) return "[…]";
  if (Array.isArray(v)) return v.slice(0, 50).map((x) => clean(x, depth + 1));
  if (typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) ? "[redacted]" : clean(x, depth + 1);
    return out;
  }
  return undefined; // functions, symbols, undefined: nothing worth a log field
}

function errorFields(err: Error): Record<string, unknown> {
  return { name: err.name, message: scrub(err.message), ...(err.stack ? { stack: scrub(err.stack) } : {}) };
}

/** The record for one log line. `err` (anything thrown) becomes `error: {name, message, stack}`. */
export function formatLog(level: LogLevel, msg: string, fields: LogFields = {}, err?: unknown): LogRecord {
  const rec: LogRecord = { level, msg: scrub(msg) };
  for (const [k, v] of Object.entries(fields)) {
    if (k === "level" || k === "msg") continue;
    const c = SECRET_KEY.test(k) ? "[redacted]" : clean(v, 1);
    if (c !== undefined) rec[k] = c;
  }
  if (err !== undefined) rec.error = err instanceof Error ? errorFields(err) : { message: scrub(String(err)) };
  return rec;
}

/** Write one structured line at `level` (console.error for errors, so they count as such). */
export function log(level: LogLevel, msg: string, fields?: LogFields, err?: unknown): void {
  const rec = formatLog(level, msg, fields, err);
  if (level === "error") console.error(rec);
  else if (level === "warn") console.warn(rec);
  else if (level === "debug") console.debug(rec);
  else console.log(rec);
}

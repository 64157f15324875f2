/**
 * Structured logging for the relay: one JSON object per line on stderr, so stdout stays free and
 * a site's log shipper (journald, Docker, Vector) can parse every line without a grammar.
 * Secrets never reach this module: callers pass only the fields they mean to publish.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(s: string): s is LogLevel {
  return Object.hasOwn(RANK, s);
}

/**
 * A logger writing JSON lines at or above `level`. `write` defaults to stderr; tests pass a
 * collector. Errors are flattened to their message so a stack never hides a line's other fields.
 */
export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
  base: LogFields = {},
): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < min) return;
    const record: LogFields = { ts: new Date().toISOString(), level: lvl, msg, ...base };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) record[k] = v instanceof Error ? v.message : v;
    }
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      // A field that cannot be serialised (a cycle, a BigInt) must not cost us the line itself.
      line = JSON.stringify({ ts: record.ts, level: lvl, msg, log_error: "unserialisable fields" });
    }
    write(line);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

/** Anything thrown, as one line of text for a log field or a command_result message. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/** A logger that drops everything: the default for library classes used without one. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

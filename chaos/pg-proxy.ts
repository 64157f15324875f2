/**
 * A TCP fault proxy in front of Postgres, for the chaos run. The stack is given a DATABASE_URL that
 * points here, so the edge's path to Postgres is: workerd → the launcher's WebSocket→TCP proxy
 * (scripts/wsproxy.ts) → this proxy → Postgres. Stopping and slowing "Postgres" happens here, on
 * that path, never to the machine's service:
 * - `down()`: every connection is reset and new ones are refused until `up()` (Postgres stopped);
 * - `downOn(pattern)`: armed; the first client→server chunk matching `pattern` (e.g. an INSERT of
 *   a flush, or its COMMIT) triggers `down()`: a stop in the middle of a cron flush. With
 *   `forward: true` the matching chunk is delivered first (the COMMIT reaches Postgres, its answer
 *   never reaches the edge: the ambiguous case the writer's natural keys exist for);
 * - `slow(ms)`: every chunk, both directions, is delivered `ms` later (order kept);
 * - `up()`: clean again.
 */
import { connect, createServer, type Socket } from "node:net";

export interface PgProxy {
  readonly port: number;
  down(): void;
  up(): void;
  slow(ms: number): void;
  /** Arm a stop; resolves true when it fired, false if disarmed (up()) or after `timeoutMs`. */
  downOn(pattern: RegExp, opts?: { forward?: boolean; timeoutMs?: number }): Promise<boolean>;
  stats(): { connections: number; open: number; refused: number; resets: number; triggered: number };
  close(): Promise<void>;
}

type Conn = { c: Socket; u: Socket };

export async function startPgProxy(target: { host: string; port: number }, log: (l: string) => void = () => {}): Promise<PgProxy> {
  let isDown = false;
  let delayMs = 0;
  let armed: { pattern: RegExp; forward: boolean; done: (fired: boolean) => void } | null = null;
  const conns = new Set<Conn>();
  const st = { connections: 0, open: 0, refused: 0, resets: 0, triggered: 0 };

  const resetAll = () => {
    for (const k of conns) {
      k.c.destroy();
      k.u.destroy();
      st.resets++;
    }
    conns.clear();
    st.open = 0;
  };
  const goDown = () => {
    isDown = true;
    resetAll();
  };

  /** Ordered, optionally delayed delivery from one socket to the other. */
  const pipe = (from: Socket, to: Socket, inspect: boolean, k: Conn) => {
    let chain = Promise.resolve();
    from.on("data", (chunk: Buffer) => {
      if (inspect && armed && armed.pattern.test(chunk.toString("latin1"))) {
        const a = armed;
        armed = null;
        st.triggered++;
        log(`pg proxy: stop triggered by ${a.pattern}`);
        if (a.forward) to.write(chunk);
        // Let the forwarded bytes leave before the reset.
        setTimeout(goDown, a.forward ? 20 : 0);
        a.done(true);
        return;
      }
      if (delayMs <= 0) {
        to.write(chunk);
        return;
      }
      const due = Date.now() + delayMs;
      chain = chain.then(
        () =>
          new Promise<void>((r) =>
            setTimeout(() => {
              if (conns.has(k) && !to.destroyed) to.write(chunk);
              r();
            }, Math.max(0, due - Date.now())),
          ),
      );
    });
  };

  const server = createServer((c) => {
    if (isDown) {
      st.refused++;
      c.destroy();
      return;
    }
    st.connections++;
    const u = connect(target);
    const k: Conn = { c, u };
    conns.add(k);
    st.open = conns.size;
    c.setNoDelay(true);
    u.setNoDelay(true);
    pipe(c, u, true, k);
    pipe(u, c, false, k);
    const end = () => {
      if (!conns.delete(k)) return;
      st.open = conns.size;
      c.destroy();
      u.destroy();
    };
    c.on("close", end);
    u.on("close", end);
    c.on("error", end);
    u.on("error", end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("pg proxy: no address");

  return {
    port: addr.port,
    down: goDown,
    up: () => {
      isDown = false;
      delayMs = 0;
      if (armed) {
        armed.done(false);
        armed = null;
      }
    },
    slow: (ms) => {
      delayMs = Math.max(0, ms);
    },
    downOn: (pattern, o = {}) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          if (armed?.pattern === pattern) armed = null;
          resolve(false);
        }, o.timeoutMs ?? 30_000);
        armed = {
          pattern,
          forward: o.forward ?? false,
          done: (fired) => {
            clearTimeout(timer);
            resolve(fired);
          },
        };
      }),
    stats: () => ({ ...st }),
    close: async () => {
      isDown = true;
      if (armed) armed.done(false);
      armed = null;
      resetAll();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

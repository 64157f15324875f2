/**
 * A transaction-level gate in front of PGlite's socket server, so several Postgres clients (the
 * edge's pools, migrations, psql) can share one embedded PGlite safely.
 *
 * Why: PGlite is one Postgres backend. @electric-sql/pglite-socket 0.2.17 serves one connection by
 * default (`maxConnections: 1`; further connections get a plain-text "Too many connections" and are
 * closed). With `maxConnections > 1` it multiplexes at the level of single protocol messages and only
 * keeps a connection exclusive inside an explicit BEGIN block, so the Parse/Bind/Execute/Sync sequences
 * of two concurrent clients interleave on the shared unnamed statement and portal (we measured wrong
 * rows and `portal "" does not exist` with 8 concurrent neon Pool clients).
 *
 * What: every client gets its own upstream connection to the socket server, but only one client at a
 * time may have protocol traffic in flight. A client takes the lock with its first message and keeps it
 * until the server answers ReadyForQuery with status Idle and nothing is outstanding, so a whole
 * extended-query sequence or transaction runs alone (like pgbouncer's transaction pooling). Waits are
 * bounded; a client idle inside a transaction too long is disconnected and its transaction rolled back.
 * Session state (SET, named prepared statements) is shared by all clients, as it is in PGlite itself.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface PgliteGateOptions {
  /** Where PGLiteSocketServer listens. */
  upstreamHost?: string;
  upstreamPort: number;
  /** Port to listen on (0 = free port) and interface (default 127.0.0.1). */
  port?: number;
  host?: string;
  /** Most simultaneous client connections (default 64); keep ≤ the socket server's maxConnections. */
  maxClients?: number;
  /** Longest a client waits for its turn before it is told so and disconnected (default 30 s). */
  lockWaitMs?: number;
  /** Longest a client may sit idle inside an open transaction while holding the lock (default 30 s). */
  idleInTransactionMs?: number;
  log?: (line: string) => void;
}

export interface PgliteGate {
  port: number;
  clients(): number;
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;
/** Largest protocol message accepted from a client (PGlite has no use for more). */
const MAX_MESSAGE = 256 * 1024 * 1024;

/** A Postgres ErrorResponse frame. */
export function errorResponse(severity: "ERROR" | "FATAL", code: string, message: string): Buffer {
  const fields = Buffer.concat(
    [`S${severity}`, `V${severity}`, `C${code}`, `M${message}`].map((f) => Buffer.from(`${f}\0`, "utf8")),
  );
  const out = Buffer.alloc(1 + 4 + fields.length + 1);
  out.write("E", 0, "ascii");
  out.writeInt32BE(4 + fields.length + 1, 1);
  fields.copy(out, 5);
  out[out.length - 1] = 0;
  return out;
}

const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
function simpleQuery(sql: string): Buffer {
  const body = Buffer.from(`${sql}\0`, "utf8");
  const out = Buffer.alloc(5 + body.length);
  out.write("Q", 0, "ascii");
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

interface Client {
  id: number;
  sock: Socket;
  up: Socket;
  /** Complete client messages waiting for the lock. */
  queue: Buffer[];
  /** ReadyForQuery frames still expected for what was forwarded. */
  outstanding: number;
  /** Forwarded extended-protocol messages not yet closed by a Sync. */
  openExtended: boolean;
  /** Transaction status from the last ReadyForQuery: I idle, T in transaction, E failed. */
  txStatus: string;
  started: boolean;
  gone: boolean;
  waitTimer?: NodeJS.Timeout;
  idleTimer?: NodeJS.Timeout;
  cleanupTimer?: NodeJS.Timeout;
}

/** Start the gate; resolves when it listens. */
export async function startPgliteGate(opts: PgliteGateOptions): Promise<PgliteGate> {
  const log = opts.log ?? (() => {});
  const maxClients = opts.maxClients ?? 64;
  const lockWaitMs = opts.lockWaitMs ?? 30_000;
  const idleInTxMs = opts.idleInTransactionMs ?? 30_000;
  const clients = new Set<Client>();
  const waiters: Client[] = [];
  let holder: Client | null = null;
  let nextId = 1;

  function grant(): void {
    while (!holder && waiters.length > 0) {
      const c = waiters.shift()!;
      clearTimeout(c.waitTimer);
      if (c.gone || c.queue.length === 0) continue;
      holder = c;
      flush(c);
    }
  }

  function release(c: Client): void {
    if (holder !== c) return;
    clearTimeout(c.idleTimer);
    clearTimeout(c.cleanupTimer);
    holder = null;
    if (c.gone) c.up.destroy();
    else if (c.queue.length > 0) want(c);
    grant();
  }

  function want(c: Client): void {
    if (holder === c) return flush(c);
    if (waiters.includes(c)) return;
    waiters.push(c);
    c.waitTimer = setTimeout(() => {
      const i = waiters.indexOf(c);
      if (i >= 0) waiters.splice(i, 1);
      log(`client #${c.id} waited ${lockWaitMs} ms for the database; disconnecting it`);
      fail(c, "55P03", `PGlite gate: waited ${lockWaitMs} ms for another client's transaction to finish`);
    }, lockWaitMs);
    grant();
  }

  /** Forward everything queued; the caller holds the lock. */
  function flush(c: Client): void {
    clearTimeout(c.idleTimer);
    for (const m of c.queue) {
      const t = m[0];
      // A startup packet begins with its length's high byte (0); it is answered by ReadyForQuery too.
      if (t === 0x00 || t === 0x51 /* Q */ || t === 0x53 /* S */) {
        c.outstanding++;
        c.openExtended = false;
      } else {
        c.openExtended = true;
      }
      c.up.write(m);
    }
    c.queue = [];
  }

  /** A ReadyForQuery arrived from upstream. */
  function ready(c: Client, status: string): void {
    c.outstanding = Math.max(0, c.outstanding - 1);
    c.txStatus = status;
    if (c.outstanding > 0 || c.openExtended) return;
    if (c.gone) {
      // Abandoned mid-transaction: roll it back before anyone else runs.
      if (status !== "I") {
        c.outstanding++;
        c.up.write(simpleQuery("ROLLBACK"));
        return;
      }
      return release(c);
    }
    if (status === "I") return release(c);
    // Inside a transaction between statements: keep the lock, but not forever.
    c.idleTimer = setTimeout(() => {
      log(`client #${c.id} idle in transaction for ${idleInTxMs} ms; disconnecting it`);
      fail(c, "25P03", `PGlite gate: idle in transaction for more than ${idleInTxMs} ms`);
    }, idleInTxMs);
  }

  function fail(c: Client, code: string, message: string): void {
    const tell = !c.gone && c.sock.writable;
    gone(c, !tell);
    // end() flushes the error before closing; the client closes its side on reading it.
    if (tell) c.sock.end(errorResponse("FATAL", code, message));
  }

  /** The client went away (or was sent away). */
  function gone(c: Client, destroySocket = true): void {
    if (c.gone) return;
    c.gone = true;
    clients.delete(c);
    clearTimeout(c.waitTimer);
    clearTimeout(c.idleTimer);
    const i = waiters.indexOf(c);
    if (i >= 0) waiters.splice(i, 1);
    if (destroySocket) c.sock.destroy();
    if (holder !== c) {
      c.up.destroy();
      return;
    }
    // It held the lock: close any open extended sequence, then roll back (see ready()).
    if (c.openExtended) {
      c.openExtended = false;
      c.outstanding++;
      c.up.write(SYNC);
    } else if (c.outstanding === 0) {
      if (c.txStatus !== "I") {
        c.outstanding++;
        c.up.write(simpleQuery("ROLLBACK"));
      } else {
        return release(c);
      }
    }
    // Bounded: if upstream never answers, drop it; the socket server rolls back on close.
    c.cleanupTimer = setTimeout(() => release(c), 5_000);
    c.cleanupTimer.unref();
  }

  function onClient(sock: Socket): void {
    if (clients.size >= maxClients) {
      sock.end(errorResponse("FATAL", "53300", `PGlite gate: too many connections (max ${maxClients})`));
      return;
    }
    const up = connect({ host: opts.upstreamHost ?? "127.0.0.1", port: opts.upstreamPort });
    const c: Client = {
      id: nextId++,
      sock,
      up,
      queue: [],
      outstanding: 0,
      openExtended: false,
      txStatus: "I",
      started: false,
      gone: false,
    };
    clients.add(c);
    sock.setNoDelay(true);
    up.setNoDelay(true);

    // client → upstream: split into messages, queue them, forward under the lock.
    let inBuf: Buffer = Buffer.alloc(0);
    sock.on("data", (chunk: Buffer) => {
      inBuf = inBuf.length ? Buffer.concat([inBuf, chunk]) : chunk;
      let queued = false;
      for (;;) {
        if (!c.started) {
          if (inBuf.length < 8) break;
          const len = inBuf.readInt32BE(0);
          const code = inBuf.readInt32BE(4);
          if (len < 8 || len > 10_000) return fail(c, "08P01", "PGlite gate: bad startup packet");
          if (inBuf.length < len) break;
          const msg = inBuf.subarray(0, len);
          inBuf = inBuf.subarray(len);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            sock.write("N"); // no TLS on loopback; the client continues in plain text
            continue;
          }
          if (code === CANCEL_REQUEST) return gone(c); // PGlite cannot cancel a running query
          if (code !== PROTOCOL_3) return fail(c, "08P01", "PGlite gate: unsupported protocol version");
          c.queue.push(Buffer.from(msg));
          queued = true;
          c.started = true; // the startup message counts as a unit (answered by ReadyForQuery)
          continue;
        }
        if (inBuf.length < 5) break;
        const len = inBuf.readInt32BE(1);
        if (len < 4 || len > MAX_MESSAGE) return fail(c, "08P01", "PGlite gate: bad message length");
        if (inBuf.length < 1 + len) break;
        const msg = Buffer.from(inBuf.subarray(0, 1 + len));
        inBuf = inBuf.subarray(1 + len);
        // Terminate is handled here: forwarding it would reach the shared backend.
        if (msg[0] === 0x58 /* X */) return gone(c);
        c.queue.push(msg);
        queued = true;
      }
      if (queued) want(c);
    });

    // upstream → client: pass bytes through, watch message boundaries for ReadyForQuery.
    let hdr: Buffer = Buffer.alloc(0);
    let skip = 0;
    let zPending = false;
    up.on("data", (chunk: Buffer) => {
      if (!c.gone) sock.write(chunk);
      let off = 0;
      while (off < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - off);
          if (zPending) {
            zPending = false;
            ready(c, String.fromCharCode(chunk[off]!));
          }
          off += n;
          skip -= n;
          continue;
        }
        const take = Math.min(5 - hdr.length, chunk.length - off);
        hdr = Buffer.concat([hdr, chunk.subarray(off, off + take)]);
        off += take;
        if (hdr.length < 5) break;
        const type = hdr[0];
        skip = hdr.readInt32BE(1) - 4;
        hdr = Buffer.alloc(0);
        zPending = type === 0x5a /* Z */ && skip === 1;
      }
    });

    sock.on("error", () => gone(c)); // a client reset is routine; "close" follows
    sock.on("close", () => gone(c));
    up.on("error", (err) => {
      log(`client #${c.id}: upstream error: ${err.message}`);
      if (holder === c) release(c);
      gone(c);
    });
    up.on("close", () => {
      if (holder === c) release(c);
      gone(c);
    });
  }

  const server: Server = createServer(onClient);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("pglite gate: no TCP address");

  return {
    port: addr.port,
    clients: () => clients.size,
    close: async () => {
      for (const c of [...clients]) {
        c.gone = true;
        clearTimeout(c.waitTimer);
        clearTimeout(c.idleTimer);
        clearTimeout(c.cleanupTimer);
        c.sock.destroy();
        c.up.destroy();
      }
      clients.clear();
      waiters.length = 0;
      holder = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A minimal Redis client over `net` speaking RESP2: enough for the baseline (PUBLISH, HSET,
 * PSUBSCRIBE, SELECT, DEL, PING). Commands are pipelined: replies come back in order and resolve
 * the oldest waiting promise; in subscriber mode `pmessage` pushes go to `onMessage` instead.
 */
import { connect, type Socket } from "node:net";

export type RespValue = string | number | null | RespValue[] | RespError;
export class RespError extends Error {}

const CRLF = "\r\n";

/** Encode one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly string[]): string {
  let s = `*${args.length}${CRLF}`;
  for (const a of args) s += `$${Buffer.byteLength(a)}${CRLF}${a}${CRLF}`;
  return s;
}

/** Incremental RESP2 parser: feed bytes, take whole values. */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  feed(chunk: Buffer): void {
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
  }

  /** The next complete value, or undefined when more bytes are needed. */
  next(): RespValue | undefined {
    const start = this.pos;
    const v = this.parse();
    if (v === undefined) this.pos = start;
    return v;
  }

  private line(): string | undefined {
    const end = this.buf.indexOf(CRLF, this.pos, "latin1");
    if (end < 0) return undefined;
    const s = this.buf.toString("latin1", this.pos, end);
    this.pos = end + 2;
    return s;
  }

  private parse(): RespValue | undefined {
    if (this.pos >= this.buf.length) return undefined;
    const t = this.buf[this.pos++];
    const l = this.line();
    if (l === undefined) return undefined;
    switch (t) {
      case 0x2b: // +
        return l;
      case 0x2d: // -
        return new RespError(l);
      case 0x3a: // :
        return Number(l);
      case 0x24: {
        // $
        const n = Number(l);
        if (n < 0) return null;
        if (this.pos + n + 2 > this.buf.length) return undefined;
        const s = this.buf.toString("utf8", this.pos, this.pos + n);
        this.pos += n + 2;
        return s;
      }
      case 0x2a: {
        // *
        const n = Number(l);
        if (n < 0) return null;
        const out: RespValue[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const v = this.parse();
          if (v === undefined) return undefined;
          out[i] = v;
        }
        return out;
      }
      default:
        throw new Error(`RESP: unexpected type byte ${t}`);
    }
  }
}

export class RespClient {
  private readonly waiting: { resolve: (v: RespValue) => void; reject: (e: Error) => void }[] = [];
  private readonly parser = new RespParser();
  private closed = false;
  /** Subscriber mode: called for every `pmessage` push (pattern, channel, message). */
  onMessage: ((pattern: string, channel: string, message: string) => void) | null = null;
  /** The connection failed or closed while in use. */
  onClose: ((err?: Error) => void) | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.parser.feed(chunk);
      for (let v = this.parser.next(); v !== undefined; v = this.parser.next()) this.dispatch(v);
    });
    const fail = (err?: Error) => {
      if (this.closed) return;
      this.closed = true;
      const e = err ?? new Error("redis connection closed");
      for (const w of this.waiting.splice(0)) w.reject(e);
      this.onClose?.(err);
    };
    socket.on("error", fail);
    socket.on("close", () => fail());
  }

  static connect(host: string, port: number, timeoutMs = 1000): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`no answer from redis at ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      s.once("connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(new RespClient(s));
      });
    });
  }

  private dispatch(v: RespValue): void {
    if (this.onMessage && Array.isArray(v) && v[0] === "pmessage") {
      this.onMessage(v[1] as string, v[2] as string, v[3] as string);
      return;
    }
    const w = this.waiting.shift();
    if (!w) return; // an unsolicited reply (e.g. a psubscribe confirmation nobody waits for)
    if (v instanceof RespError) w.reject(v);
    else w.resolve(v);
  }

  /** One command; resolves with its reply. */
  command(...args: string[]): Promise<RespValue> {
    return this.pipeline([args]).then((r) => r[0]!);
  }

  /** Several commands in one write; resolves with every reply, in order. */
  pipeline(cmds: readonly (readonly string[])[]): Promise<RespValue[]> {
    if (this.closed) return Promise.reject(new Error("redis connection closed"));
    let out = "";
    const replies: Promise<RespValue>[] = [];
    for (const c of cmds) {
      out += encodeCommand(c);
      replies.push(new Promise((resolve, reject) => this.waiting.push({ resolve, reject })));
    }
    this.socket.write(out);
    return Promise.all(replies);
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

/**
 * DiskOutbox: what the relay owes the edge, kept on disk so that a relay restart during a WAN
 * outage loses nothing that had reached the disk.
 *
 * Layout of the directory (one relay process per directory, enforced by `LOCK`):
 *   t-<first LSN, 16 digits>.jsonl   telemetry segments, append-only JSON lines
 *                                   `{"q":<LSN>,"u":<TelemetrySample with seq>}`
 *   cursor.json                     `{"acked":<LSN>}`: every record below it was acknowledged
 *   control.jsonl                   command results and mission progress, a small journal:
 *                                   `{"k":"r","f":<command_result>}` result to deliver,
 *                                   `{"k":"ra","id":"…"}` result acknowledged (command_result_ack),
 *                                   `{"k":"p","n":<n>,"f":<mission_progress>}` progress queued,
 *                                   `{"k":"pd","n":<n>}` progress sent (the edge does not ack it)
 *   LOCK                            pid of the owning process
 *
 * Telemetry is a FIFO of every sample with the seq it was given when it was pushed (LSN = the
 * record's position in the log, global across restarts). The link reads batches in order from the
 * read cursor, the edge's `batch_ack` acknowledges a batch's LSN range, and the acked cursor only
 * moves over a contiguous acknowledged prefix. After a reconnect or a restart everything from the
 * acked cursor on is sent again, in order, with the same seqs: the edge keeps the highest seq per
 * drone, so a record it already has is counted as a duplicate there and nothing is applied twice.
 * Because a restarted relay's new samples are appended after the history, history always goes
 * first; the edge applies each historic sample in order (dashboards see the drone move through its
 * buffered track) and then the live ones.
 *
 * Durability: appends are buffered in memory and written with one write() at most every `flushMs`
 * (or when 256 KiB are waiting), and fsync'ed every `fsyncMs`. A crash of the process loses at
 * most `flushMs` of samples; a power cut at most `fsyncMs`. Command results are written and
 * fsync'ed before `recordResult` returns: they are rare and an operator is waiting for them.
 *
 * Bounds: telemetry segments plus the control journal stay under `maxBytes`. When a new sample
 * would exceed it, the oldest telemetry segment is deleted (its unacknowledged records counted in
 * `dropped()`); command results and progress are never dropped for space (they have their own
 * count bounds in the link). A torn last line (crash mid-write) is cut off at open; an unreadable
 * line is skipped and counted.
 *
 * No native modules: node:fs only, synchronous calls (each is small; the relay has one thread and
 * must not interleave a half-written record with a read).
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { CommandResult, MissionProgress, TelemetrySample } from "../../edge/protocol";
import { silentLogger, type Logger } from "../log";

/** A batch read from the log: records [from, to) in LSN order. */
export interface TelemetryRead {
  from: number;
  to: number;
  updates: TelemetrySample[];
}

/**
 * What the link needs from a persistent outbox. DiskOutbox implements it; the link keeps its
 * in-memory behaviour (latest sample per drone) when it has none.
 */
export interface OutboxStore {
  appendTelemetry(u: TelemetrySample): void;
  /** Up to `max` records after the read cursor, advancing it; null when everything was read. */
  readTelemetry(max: number): TelemetryRead | null;
  /** The edge acknowledged records [from, to). */
  ackTelemetry(from: number, to: number): void;
  /** Connection lost: read again from the oldest unacknowledged record. */
  rewind(): void;
  /** Records appended but not read yet. */
  unread(): number;
  /** Records not acknowledged yet. */
  depth(): number;
  bytes(): number;
  /** Telemetry records deleted unacknowledged because the outbox was full. */
  dropped(): number;
  /** Highest seq per drone found in the log at open (a floor for new seqs). */
  lastSeqs(): ReadonlyMap<string, number>;
  recordResult(frame: CommandResult): void;
  ackResult(commandId: string): void;
  pendingResults(): CommandResult[];
  /** Returns an id for `progressDone`. */
  queueProgress(frame: MissionProgress): number;
  progressDone(id: number): void;
  pendingProgress(): { id: number; frame: MissionProgress }[];
  /** Write and fsync everything now. */
  flush(): void;
  close(): void;
}

export interface DiskOutboxOptions {
  dir: string;
  /** Bound on telemetry segments + control journal, bytes. Default 256 MiB. */
  maxBytes?: number;
  /** fsync interval, ms. Default 200. */
  fsyncMs?: number;
  /** Longest time an appended record waits in memory before write(), ms. Default 20. */
  flushMs?: number;
  /** Roll to a new segment past this size. Default maxBytes/8 within [16 KiB, 8 MiB]. */
  segmentBytes?: number;
  log?: Logger;
}

export const DEFAULT_OUTBOX_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_OUTBOX_FSYNC_MS = 200;

const SEGMENT_RE = /^t-(\d{16})\.jsonl$/;
const READ_CHUNK = 256 * 1024;
const WRITE_BUFFER_MAX = 256 * 1024;
/** Rewrite the control journal when it grows past this and is mostly dead entries. */
const CONTROL_COMPACT_BYTES = 1024 * 1024;

type Segment = { first: number; path: string; bytes: number };
/** Directories locked by this process (see lock()). */
const LOCKED_HERE = new Set<string>();
type Parsed = { q: number; u: TelemetrySample };

const segmentName = (first: number): string => `t-${String(first).padStart(16, "0")}.jsonl`;
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Thrown when another live process owns the directory. */
export class OutboxLockedError extends Error {}

export class DiskOutbox implements OutboxStore {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly log: Logger;

  private segments: Segment[] = [];
  private appendLsn = 0;
  private ackedLsn = 0;
  private readLsn = 0;
  /** Acknowledged ranges above `ackedLsn` (acks may arrive out of order). */
  private readonly ackedRanges = new Map<number, number>();

  private wfd: number | null = null;
  private wbuf: string[] = [];
  private wbufBytes = 0;
  private fdDirty = false;
  private controlDirty = false;
  private cursorDirty = false;

  /** Read position: segment index, byte offset in it, parsed records not consumed yet. */
  private reader: { seg: Segment; offset: number; ahead: Parsed[]; next: number } | null = null;

  private readonly seqFloor = new Map<string, number>();
  private droppedCount = 0;
  private corruptCount = 0;
  private dropWarned = false;

  // control journal
  private cfd: number | null = null;
  private controlBytes = 0;
  private readonly results = new Map<string, CommandResult>();
  private readonly progress = new Map<number, MissionProgress>();
  private nextProgressId = 0;

  private flushTimer: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private readonly flushMs: number;
  private closed = false;

  constructor(opts: DiskOutboxOptions) {
    this.dir = resolve(opts.dir);
    this.maxBytes = Math.max(64 * 1024, opts.maxBytes ?? DEFAULT_OUTBOX_MAX_BYTES);
    this.segmentBytes = opts.segmentBytes ?? Math.min(8 * 1024 * 1024, Math.max(16 * 1024, Math.floor(this.maxBytes / 8)));
    this.flushMs = Math.max(1, opts.flushMs ?? 20);
    this.log = opts.log ?? silentLogger;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.lock();
    try {
      this.openTelemetry();
      this.openControl();
    } catch (err) {
      this.releaseLock();
      throw err;
    }
    const fsyncMs = Math.max(10, opts.fsyncMs ?? DEFAULT_OUTBOX_FSYNC_MS);
    this.syncTimer = setInterval(() => this.sync(), fsyncMs);
    this.syncTimer.unref();
    if (this.depth() > 0 || this.results.size > 0 || this.progress.size > 0) {
      this.log.info("outbox holds undelivered items from a previous run", {
        dir: this.dir,
        telemetry: this.depth(),
        results: this.results.size,
        progress: this.progress.size,
        bytes: this.bytes(),
      });
    }
  }

  // ------------------------------------------------------------------ telemetry

  appendTelemetry(u: TelemetrySample): void {
    if (this.closed) return;
    const line = JSON.stringify({ q: this.appendLsn, u }) + "\n";
    const len = Buffer.byteLength(line);
    let seg = this.segments.at(-1);
    if (!seg || (seg.bytes > 0 && seg.bytes + len > this.segmentBytes)) seg = this.roll();
    this.enforceBound(len);
    this.wbuf.push(line);
    this.wbufBytes += len;
    seg.bytes += len;
    this.appendLsn++;
    const prev = this.seqFloor.get(u.drone_id);
    if (prev === undefined || u.seq > prev) this.seqFloor.set(u.drone_id, u.seq);
    if (this.wbufBytes >= WRITE_BUFFER_MAX) this.flushWrites();
    else this.flushTimer ??= setTimeout(() => this.flushWrites(), this.flushMs);
  }

  readTelemetry(max: number): TelemetryRead | null {
    if (this.closed || this.readLsn >= this.appendLsn || max <= 0) return null;
    this.flushWrites();
    if (!this.reader || this.reader.next !== this.readLsn) this.position(this.readLsn);
    const from = this.readLsn;
    const updates: TelemetrySample[] = [];
    while (updates.length < max && this.reader) {
      const r = this.reader.ahead.shift();
      if (!r) {
        if (!this.fill()) break;
        continue;
      }
      if (r.q < this.readLsn) continue; // before the cursor (positioned at a segment start)
      updates.push(r.u);
      this.readLsn = r.q + 1;
      this.reader.next = this.readLsn;
    }
    if (updates.length === 0) {
      // Only unreadable lines were left: skip them so the cursor cannot stall.
      if (this.readLsn < this.appendLsn && this.reader && this.reader.ahead.length === 0 && this.atLogEnd()) this.readLsn = this.appendLsn;
      return this.readLsn > from ? { from, to: this.readLsn, updates } : null;
    }
    return { from, to: this.readLsn, updates };
  }

  ackTelemetry(from: number, to: number): void {
    if (this.closed || to <= this.ackedLsn) return;
    const start = Math.max(from, this.ackedLsn);
    this.ackedRanges.set(start, Math.max(this.ackedRanges.get(start) ?? start, to));
    for (let end = this.ackedRanges.get(this.ackedLsn); end !== undefined; end = this.ackedRanges.get(this.ackedLsn)) {
      this.ackedRanges.delete(this.ackedLsn);
      this.ackedLsn = Math.max(this.ackedLsn, end);
    }
    this.cursorDirty = true;
    this.deleteAckedSegments();
  }

  rewind(): void {
    this.readLsn = Math.max(this.ackedLsn, this.segments[0]?.first ?? this.ackedLsn);
    this.ackedRanges.clear();
  }

  unread(): number {
    return Math.max(0, this.appendLsn - this.readLsn);
  }

  depth(): number {
    return Math.max(0, this.appendLsn - this.ackedLsn);
  }

  bytes(): number {
    let n = this.controlBytes;
    for (const s of this.segments) n += s.bytes;
    return n;
  }

  dropped(): number {
    return this.droppedCount;
  }

  /** Lines that could not be parsed (skipped). */
  corrupt(): number {
    return this.corruptCount;
  }

  lastSeqs(): ReadonlyMap<string, number> {
    return this.seqFloor;
  }

  // ------------------------------------------------------------------ results and progress

  recordResult(frame: CommandResult): void {
    if (this.closed) return;
    this.results.delete(frame.command_id);
    this.results.set(frame.command_id, frame);
    // Written and fsync'ed now: a result is what an operator is waiting for.
    this.appendControl({ k: "r", f: frame }, true);
  }

  ackResult(commandId: string): void {
    if (this.closed || !this.results.delete(commandId)) return;
    this.appendControl({ k: "ra", id: commandId }, false);
  }

  pendingResults(): CommandResult[] {
    return [...this.results.values()];
  }

  queueProgress(frame: MissionProgress): number {
    const id = this.nextProgressId++;
    if (this.closed) return id;
    this.progress.set(id, frame);
    this.appendControl({ k: "p", n: id, f: frame }, false);
    return id;
  }

  progressDone(id: number): void {
    if (this.closed || !this.progress.delete(id)) return;
    this.appendControl({ k: "pd", n: id }, false);
  }

  pendingProgress(): { id: number; frame: MissionProgress }[] {
    return [...this.progress].map(([id, frame]) => ({ id, frame }));
  }

  // ------------------------------------------------------------------ lifecycle

  flush(): void {
    this.sync();
  }

  close(): void {
    if (this.closed) return;
    try {
      this.sync();
    } finally {
      this.closed = true;
      if (this.syncTimer) clearInterval(this.syncTimer);
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.syncTimer = this.flushTimer = null;
      if (this.wfd !== null) closeSync(this.wfd);
      if (this.cfd !== null) closeSync(this.cfd);
      this.wfd = this.cfd = null;
      this.releaseLock();
    }
  }

  /**
   * Stop as a killed process would: the in-memory write buffer is lost, nothing is fsync'ed and
   * the lock file stays behind (a new DiskOutbox in this process then treats it as stale). For
   * crash tests.
   */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.syncTimer = this.flushTimer = null;
    this.wbuf = [];
    if (this.wfd !== null) closeSync(this.wfd);
    if (this.cfd !== null) closeSync(this.cfd);
    this.wfd = this.cfd = null;
    LOCKED_HERE.delete(this.dir);
  }

  // ------------------------------------------------------------------ internals: open

  private lock(): void {
    const path = join(this.dir, "LOCK");
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(path, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
        LOCKED_HERE.add(this.dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const pid = Number.parseInt(safeRead(path).trim(), 10);
      // Our own pid is only a live owner if this process opened the directory: a container's
      // relay is pid 1 on every restart, and its previous run's lock must not block it.
      const ownerAlive = pid === process.pid ? LOCKED_HERE.has(this.dir) : Number.isInteger(pid) && pid > 0 && processAlive(pid);
      if (ownerAlive) {
        throw new OutboxLockedError(
          `outbox directory ${this.dir} is in use by process ${pid}${pid === process.pid ? " (this process)" : ""}; ` +
            "run one relay per directory (remove LOCK only if that process is not a relay)",
        );
      }
      this.log.warn("removing a stale outbox lock", { dir: this.dir, pid: Number.isFinite(pid) ? pid : null });
      try {
        unlinkSync(path);
      } catch (err) {
        // Another process may have removed it first; the next attempt decides.
        this.log.debug("stale lock already gone", { error: err instanceof Error ? err.message : String(err) });
      }
    }
    throw new OutboxLockedError(`could not lock outbox directory ${this.dir}`);
  }

  private releaseLock(): void {
    const path = join(this.dir, "LOCK");
    LOCKED_HERE.delete(this.dir);
    try {
      if (safeRead(path).trim() === String(process.pid)) unlinkSync(path);
    } catch (err) {
      this.log.warn("could not remove the outbox lock", { dir: this.dir, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private openTelemetry(): void {
    const cursor = readCursor(join(this.dir, "cursor.json"), this.log);
    const names = readdirSync(this.dir)
      .map((n) => ({ n, m: SEGMENT_RE.exec(n) }))
      .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null)
      .map(({ n, m }) => ({ first: Number(m[1]), path: join(this.dir, n), bytes: 0 }))
      .sort((a, b) => a.first - b.first);
    for (const s of names) s.bytes = fstatSize(s.path);
    this.segments = names;
    this.appendLsn = Math.max(cursor, 0);
    const last = this.segments.at(-1);
    if (last) {
      // The last segment may end in a torn line; cut it and find the next LSN and seq floors.
      const { lastLsn, validBytes } = this.scanLast(last);
      if (validBytes < last.bytes) {
        this.log.warn("outbox: cutting a torn record at the end of the log", { file: last.path, bytes: last.bytes - validBytes });
        const fd = openSync(last.path, "r+");
        try {
          ftruncateSync(fd, validBytes);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        last.bytes = validBytes;
      }
      this.appendLsn = Math.max(this.appendLsn, lastLsn === null ? last.first : lastLsn + 1);
    }
    const firstLsn = this.segments[0]?.first ?? this.appendLsn;
    this.ackedLsn = Math.min(this.appendLsn, Math.max(cursor, firstLsn));
    this.readLsn = this.ackedLsn;
    this.deleteAckedSegments();
    // Append to the last segment unless it is full (roll() makes a new one on first append).
    const tail = this.segments.at(-1);
    if (tail && tail.bytes < this.segmentBytes) this.wfd = openSync(tail.path, "a", 0o600);
  }

  /** Parse the last segment: its last good LSN, where its good bytes end, seq floors per drone. */
  private scanLast(seg: Segment): { lastLsn: number | null; validBytes: number } {
    const buf = readFileSync(seg.path);
    const end = buf.lastIndexOf(0x0a) + 1; // bytes up to the last newline are complete lines
    let lastLsn: number | null = null;
    for (const line of buf.subarray(0, end).toString("utf8").split("\n")) {
      if (line === "") continue;
      const r = parseRecord(line);
      if (!r) {
        this.corruptCount++;
        continue;
      }
      lastLsn = r.q;
      const prev = this.seqFloor.get(r.u.drone_id);
      if (prev === undefined || r.u.seq > prev) this.seqFloor.set(r.u.drone_id, r.u.seq);
    }
    return { lastLsn, validBytes: end };
  }

  private openControl(): void {
    const path = join(this.dir, "control.jsonl");
    if (existsSync(path)) {
      const text = readFileSync(path, "utf8");
      const end = text.lastIndexOf("\n") + 1;
      for (const line of text.slice(0, end).split("\n")) {
        if (line === "") continue;
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          this.corruptCount++;
          continue;
        }
        if (!isObj(rec)) continue;
        // Frames are checked with the wire's own schemas: what is replayed must be sendable.
        const result = rec.k === "r" ? CommandResult.safeParse(rec.f) : null;
        const progress = rec.k === "p" ? MissionProgress.safeParse(rec.f) : null;
        if (result?.success) {
          this.results.delete(result.data.command_id);
          this.results.set(result.data.command_id, result.data);
        } else if (rec.k === "ra" && typeof rec.id === "string") {
          this.results.delete(rec.id);
        } else if (progress?.success && typeof rec.n === "number") {
          this.progress.set(rec.n, progress.data);
          this.nextProgressId = Math.max(this.nextProgressId, rec.n + 1);
        } else if (rec.k === "pd" && typeof rec.n === "number") {
          this.progress.delete(rec.n);
        } else {
          this.corruptCount++;
        }
      }
    }
    // Start every run with a compact journal: only what is still owed.
    this.rewriteControl();
  }

  // ------------------------------------------------------------------ internals: writing

  private roll(): Segment {
    this.flushWrites();
    if (this.wfd !== null) {
      fsyncSync(this.wfd);
      closeSync(this.wfd);
      this.wfd = null;
    }
    const seg: Segment = { first: this.appendLsn, path: join(this.dir, segmentName(this.appendLsn)), bytes: 0 };
    this.wfd = openSync(seg.path, "a", 0o600);
    this.segments.push(seg);
    return seg;
  }

  private flushWrites(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.wbuf.length === 0 || this.wfd === null) return;
    const data = this.wbuf.join("");
    this.wbuf = [];
    this.wbufBytes = 0;
    writeSync(this.wfd, data);
    this.fdDirty = true;
  }

  /** Write, fsync and persist the cursor (the fsync timer). Never throws: a full disk is logged. */
  private sync(): void {
    if (this.closed) return;
    try {
      this.flushWrites();
      if (this.fdDirty && this.wfd !== null) fsyncSync(this.wfd);
      this.fdDirty = false;
      if (this.controlDirty && this.cfd !== null) fsyncSync(this.cfd);
      this.controlDirty = false;
      if (this.cursorDirty) {
        const path = join(this.dir, "cursor.json");
        writeFileSync(`${path}.tmp`, JSON.stringify({ acked: this.ackedLsn }) + "\n", { mode: 0o600 });
        renameSync(`${path}.tmp`, path);
        this.cursorDirty = false;
      }
    } catch (err) {
      this.log.error("outbox: writing to disk failed", { dir: this.dir, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Keep telemetry + control under maxBytes by deleting the oldest telemetry segments. */
  private enforceBound(incoming: number): void {
    while (this.bytes() + incoming > this.maxBytes && this.segments.length > 1) this.dropOldest();
  }

  private dropOldest(): void {
    const seg = this.segments.shift();
    const next = this.segments[0];
    if (!seg || !next) return;
    const lost = Math.max(0, next.first - Math.max(seg.first, this.ackedLsn));
    this.droppedCount += lost;
    if (lost > 0 && !this.dropWarned) {
      this.dropWarned = true;
      this.log.warn("outbox full: dropping the oldest telemetry (command results are kept)", { dir: this.dir, max_bytes: this.maxBytes });
    }
    unlinkQuiet(seg.path, this.log);
    if (this.reader?.seg === seg) this.reader = null;
    this.ackedLsn = Math.max(this.ackedLsn, next.first);
    this.readLsn = Math.max(this.readLsn, next.first);
    for (const [from, to] of [...this.ackedRanges]) if (to <= this.ackedLsn || from < this.ackedLsn) this.ackedRanges.delete(from);
    this.cursorDirty = true;
  }

  private deleteAckedSegments(): void {
    while (this.segments.length > 1 && (this.segments[1]?.first ?? Infinity) <= this.ackedLsn) {
      const seg = this.segments.shift();
      if (!seg) break;
      if (this.reader?.seg === seg) this.reader = null;
      unlinkQuiet(seg.path, this.log);
    }
    if (this.ackedLsn >= this.appendLsn) this.dropWarned = false;
  }

  // ------------------------------------------------------------------ internals: reading

  private position(lsn: number): void {
    let seg: Segment | undefined;
    for (const s of this.segments) if (s.first <= lsn) seg = s;
    seg ??= this.segments[0];
    this.reader = seg ? { seg, offset: 0, ahead: [], next: lsn } : null;
  }

  /** Read the next chunk of complete lines into `ahead`; false at the end of the log. */
  private fill(): boolean {
    const r = this.reader;
    if (!r) return false;
    for (;;) {
      if (r.offset < r.seg.bytes) {
        const size = Math.min(READ_CHUNK, r.seg.bytes - r.offset);
        const buf = Buffer.allocUnsafe(size);
        const fd = openSync(r.seg.path, "r");
        let n: number;
        try {
          n = readSync(fd, buf, 0, size, r.offset);
        } finally {
          closeSync(fd);
        }
        let end = buf.subarray(0, n).lastIndexOf(0x0a) + 1;
        if (end === 0) {
          // One line longer than the chunk (should not happen: a sample is < 1 KiB): read it whole.
          const whole = readFileSync(r.seg.path).subarray(r.offset);
          end = whole.indexOf(0x0a) + 1;
          if (end === 0) return false;
          this.parseInto(whole.subarray(0, end).toString("utf8"));
        } else {
          this.parseInto(buf.subarray(0, end).toString("utf8"));
        }
        r.offset += end;
        if (r.ahead.length > 0) return true;
        continue;
      }
      const i = this.segments.indexOf(r.seg);
      const next = i >= 0 ? this.segments[i + 1] : this.segments.find((s) => s.first > r.seg.first);
      if (!next) return false;
      r.seg = next;
      r.offset = 0;
    }
  }

  private parseInto(text: string): void {
    const r = this.reader;
    if (!r) return;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const rec = parseRecord(line);
      if (rec) r.ahead.push(rec);
      else this.corruptCount++;
    }
  }

  private atLogEnd(): boolean {
    const r = this.reader;
    return !r || (r.seg === this.segments.at(-1) && r.offset >= r.seg.bytes);
  }

  // ------------------------------------------------------------------ internals: control journal

  private appendControl(rec: object, durable: boolean): void {
    if (this.cfd === null) return;
    const line = JSON.stringify(rec) + "\n";
    try {
      writeSync(this.cfd, line);
      this.controlBytes += Buffer.byteLength(line);
      if (durable) fsyncSync(this.cfd);
      else this.controlDirty = true;
    } catch (err) {
      this.log.error("outbox: writing the control journal failed", { dir: this.dir, error: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (this.controlBytes > CONTROL_COMPACT_BYTES && this.results.size + this.progress.size < 1000) this.rewriteControl();
  }

  /** Replace the journal with one line per live entry (tmp file, fsync, rename). */
  private rewriteControl(): void {
    const path = join(this.dir, "control.jsonl");
    const lines: string[] = [];
    for (const f of this.results.values()) lines.push(JSON.stringify({ k: "r", f }));
    for (const [n, f] of this.progress) lines.push(JSON.stringify({ k: "p", n, f }));
    const text = lines.length > 0 ? lines.join("\n") + "\n" : "";
    if (this.cfd !== null) closeSync(this.cfd);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      if (text) writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    this.cfd = openSync(path, "a", 0o600);
    this.controlBytes = Buffer.byteLength(text);
  }
}

function parseRecord(line: string): Parsed | null {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObj(rec) || typeof rec.q !== "number") return null;
  // A record the schema refuses would only be rejected by the edge: treat it as unreadable.
  const u = TelemetrySample.safeParse(rec.u);
  return u.success ? { q: rec.q, u: u.data } : null;
}

/** The acked cursor `cursor.json` holds (0 when it is missing or unreadable). */
export function readCursor(path: string, log: Logger): number {
  if (!existsSync(path)) return 0;
  try {
    const data: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (isObj(data) && typeof data.acked === "number" && Number.isInteger(data.acked) && data.acked >= 0) return data.acked;
  } catch (err) {
    log.warn("outbox: unreadable cursor.json; re-sending everything on disk (the edge drops duplicates)", {
      error: err instanceof Error ? err.message : String(err),
    });
  }
  return 0;
}

function fstatSize(path: string): number {
  const fd = openSync(path, "r");
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    // Missing or unreadable: treated as "no owner" by the callers.
    return "";
  }
}

function unlinkQuiet(path: string, log: Logger): void {
  try {
    unlinkSync(path);
  } catch (err) {
    log.warn("outbox: could not delete a segment", { file: path, error: err instanceof Error ? err.message : String(err) });
  }
}

/** True when `pid` names a live process (EPERM: alive but not ours). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

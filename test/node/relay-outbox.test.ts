/**
 * The disk outbox: its log on its own (order, acks, bounds, torn writes, locks), the link's pacing
 * over it (at once while idle, on the ack, at the window bound, never past the in-flight cap, on
 * the fake clock), then the relay link restarted on the same directory during an outage, against an edge double that keeps the
 * highest seq per drone like the fleet object: nothing lost, nothing applied twice.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { TelemetrySample } from "../../edge/protocol";
import { DiskOutbox, OutboxLockedError, readCursor } from "../../relay/link/disk-outbox";
import { EdgeLink, type EdgeLinkOptions } from "../../relay/link/link";
import { silentLogger } from "../../relay/log";
import type { SourceSample } from "../../relay/sources/source";
import { FakeClock } from "./relay-clock";
import { DedupEdge } from "./relay-edge-double";

const root = mkdtempSync(join(tmpdir(), "relay-outbox-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = (): string => join(root, `o${++dirs}`);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sample(drone: string, ts: number): SourceSample {
  return { drone_id: drone, ts, lat: 47 + ts / 1e9, lon: 8, alt_m: 30, heading_deg: 90, speed_mps: 5, battery_pct: 80, armed: true, mode: "AUTO.MISSION", status: "flying" };
}
const update = (drone: string, seq: number): TelemetrySample => ({ ...sample(drone, seq), seq });

function open(dir: string, opts: Partial<ConstructorParameters<typeof DiskOutbox>[0]> = {}): DiskOutbox {
  const o = new DiskOutbox({ dir, fsyncMs: 20, flushMs: 5, ...opts });
  cleanups.push(() => o.close());
  return o;
}
const segments = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith("t-"));

describe("DiskOutbox", () => {
  it("reads in order, acknowledges out of order, rewinds to the oldest unacknowledged, deletes acked segments", () => {
    const dir = newDir();
    const o = open(dir, { segmentBytes: 2048 });
    for (let i = 0; i < 50; i++) o.appendTelemetry(update(`d${i % 3}`, 1000 + i));
    expect(o.depth()).toBe(50);
    const a = o.readTelemetry(20);
    const b = o.readTelemetry(20);
    expect([a?.from, a?.to, b?.from, b?.to]).toEqual([0, 20, 20, 40]);
    expect(a?.updates.map((u) => u.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 1000 + i));
    expect(o.unread()).toBe(10);
    const before = segments(dir).length;
    expect(before).toBeGreaterThan(3);
    o.ackTelemetry(20, 40); // the second batch's ack first: nothing is released yet
    expect(o.depth()).toBe(50);
    o.ackTelemetry(0, 20);
    expect(o.depth()).toBe(10);
    expect(segments(dir).length).toBeLessThan(before);
    o.rewind(); // as after a disconnect: from the oldest unacknowledged record
    const c = o.readTelemetry(100);
    expect([c?.from, c?.to]).toEqual([40, 50]);
    expect(c?.updates.map((u) => u.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 1040 + i));
    expect(o.readTelemetry(100)).toBeNull();
  });

  it("after a restart, unacknowledged records come back in order with their seqs; seq floors are recovered", () => {
    const dir = newDir();
    const o1 = new DiskOutbox({ dir, segmentBytes: 4096 });
    for (let i = 0; i < 30; i++) o1.appendTelemetry(update(`d${i % 2}`, 5000 + i));
    const r = o1.readTelemetry(30);
    o1.ackTelemetry(0, 10);
    expect(r?.to).toBe(30);
    o1.close();
    const o2 = open(dir, { segmentBytes: 4096 });
    expect(o2.depth()).toBe(20);
    expect(o2.readTelemetry(100)?.updates.map((u) => u.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 5010 + i));
    expect(Object.fromEntries(o2.lastSeqs())).toEqual({ d0: 5028, d1: 5029 });
    o2.appendTelemetry(update("d0", 6000));
    expect(o2.depth()).toBe(21);
  });

  it("cuts a torn last record (a crash mid-write) and goes on", () => {
    const dir = newDir();
    const o1 = new DiskOutbox({ dir });
    for (let i = 0; i < 5; i++) o1.appendTelemetry(update("d0", 100 + i));
    o1.close();
    const last = segments(dir).sort().at(-1) ?? "";
    appendFileSync(join(dir, last), '{"q":5,"u":{"drone_id":"d0","se');
    const o2 = open(dir);
    expect(o2.depth()).toBe(5);
    o2.appendTelemetry(update("d0", 200));
    expect(o2.readTelemetry(100)?.updates.map((u) => u.seq)).toEqual([100, 101, 102, 103, 104, 200]);
    expect(o2.corrupt()).toBe(0);
  });

  it("stays within max_bytes by dropping the oldest telemetry (counted), never a command result", () => {
    const dir = newDir();
    const o = open(dir, { maxBytes: 65_536, segmentBytes: 8192 });
    for (let i = 0; i < 30; i++) o.recordResult({ type: "command_result", command_id: `cmd-result-${i}`, status: "acked", message: "ok" });
    const total = 2000;
    for (let i = 0; i < total; i++) o.appendTelemetry(update(`d${i % 10}`, 10_000 + i));
    expect(o.bytes()).toBeLessThanOrEqual(65_536);
    expect(o.dropped()).toBeGreaterThan(0);
    expect(o.dropped() + o.depth()).toBe(total);
    const first = o.readTelemetry(1)?.updates[0];
    expect(first?.seq).toBe(10_000 + o.dropped()); // the oldest went first
    expect(o.pendingResults()).toHaveLength(30);
  });

  it("keeps results until acknowledged and progress until sent, across restarts", () => {
    const dir = newDir();
    const o1 = new DiskOutbox({ dir });
    o1.recordResult({ type: "command_result", command_id: "cmd-aaaaaaaa", status: "acked" });
    o1.recordResult({ type: "command_result", command_id: "cmd-bbbbbbbb", status: "failed", message: "not armed" });
    o1.ackResult("cmd-aaaaaaaa");
    const p1 = o1.queueProgress({ type: "mission_progress", mission_id: "m1", drone_id: "d0", state: "active", waypoint_index: 0, ts: 1 });
    o1.queueProgress({ type: "mission_progress", mission_id: "m1", drone_id: "d0", state: "completed", waypoint_index: 2, ts: 2 });
    o1.progressDone(p1);
    o1.close();
    const o2 = open(dir);
    expect(o2.pendingResults()).toEqual([{ type: "command_result", command_id: "cmd-bbbbbbbb", status: "failed", message: "not armed" }]);
    expect(o2.pendingProgress().map((p) => p.frame.state)).toEqual(["completed"]);
  });

  it("one relay per directory; a killed relay's stale lock is taken over", () => {
    const dir = newDir();
    const o1 = new DiskOutbox({ dir });
    expect(() => new DiskOutbox({ dir })).toThrow(OutboxLockedError);
    expect(() => new DiskOutbox({ dir })).toThrow(/in use by process \d+ \(this process\)/);
    o1.abandon(); // as if killed: LOCK stays behind
    expect(readdirSync(dir)).toContain("LOCK");
    const o2 = open(dir);
    expect(o2.depth()).toBe(0);
  });
});

// ------------------------------------------------------------------ the link across restarts

const FAST: Partial<EdgeLinkOptions> = { backoff: { initialMs: 10, maxMs: 60 }, batchWindowMs: 5, heartbeatMs: 60_000, stopGraceMs: 300 };

function link(edge: DedupEdge, store: DiskOutbox, drones: string[], extra: Partial<EdgeLinkOptions> = {}): EdgeLink {
  const l = new EdgeLink({ edge: edge.url, fleet: "f1", token: "t", relayId: "test-relay", source: "sim", droneIds: () => drones, store, ...FAST, ...extra });
  cleanups.push(() => l.stop());
  return l;
}

const once = (l: EdgeLink, event: "connected" | "disconnected", timeoutMs = 5000): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    if (event === "connected") l.once("connected", done);
    else l.once("disconnected", done);
  });

/** Bytes written to the directory's files (what survives the process being killed). */
const onDisk = (dir: string): number =>
  readdirSync(dir)
    .filter((n) => n.startsWith("t-") || n === "control.jsonl")
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);

describe("pacing with the disk outbox", () => {
  it("sends at once while the link is idle, with the ack while a frame is out, at the window bound without one", async () => {
    const edge = await new DedupEdge().start();
    cleanups.push(() => edge.stop());
    edge.holdAcks = true;
    const clock = new FakeClock();
    const l = link(edge, open(newDir()), ["d0", "d1"], { clock, batchWindowMs: 100 });
    const up = once(l, "connected");
    l.start();
    await up;
    let ts = 5_000;
    // Idle: both samples of this turn in one frame, in the next macrotask, time standing still.
    l.push(sample("d0", ++ts));
    l.push(sample("d1", ++ts));
    expect(l.stats().framesSent).toBe(0);
    clock.advance(0);
    await edge.until(() => edge.batches === 1, 2000, "the idle frame");
    expect(edge.accepted.map((u) => u.drone_id)).toEqual(["d0", "d1"]);
    // Its ack is held: the next samples wait for it.
    l.push(sample("d0", ++ts));
    clock.advance(50);
    l.push(sample("d1", ++ts));
    expect(l.stats().framesSent).toBe(1);
    expect(edge.releaseAcks()).toBe(1);
    await edge.until(() => edge.batches === 2, 2000, "the frame the ack released");
    expect(edge.accepted.slice(2).map((u) => u.ts)).toEqual([ts - 1, ts]);
    // No ack for that one: the window bound, 100 ms after the next sample, sends it.
    l.push(sample("d0", ++ts));
    clock.advance(99);
    expect(l.stats().framesSent).toBe(2);
    clock.advance(1);
    await edge.until(() => edge.batches === 3, 2000, "the frame the window released");
    expect(l.stats().framesReleased).toEqual({ idle: 1, ack: 1, rate: 0, window: 1, full: 0 });
    expect(edge.duplicates).toBe(0);
    edge.holdAcks = false;
    edge.releaseAcks();
    await expect.poll(() => l.stats().outboxDepth, { timeout: 2000 }).toBe(0); // every record acknowledged on disk
  });
  it("keeps at most maxInflightBatches frames unacknowledged, whatever the pacer says; an ack makes room", async () => {
    const edge = await new DedupEdge().start();
    cleanups.push(() => edge.stop());
    edge.holdAcks = true;
    const clock = new FakeClock();
    const l = link(edge, open(newDir()), ["d0", "d1"], { clock, batchWindowMs: 100, maxInflightBatches: 2 });
    const up = once(l, "connected");
    l.start();
    await up;
    let ts = 9_000;
    l.push(sample("d0", ++ts));
    clock.advance(0);
    l.push(sample("d1", ++ts));
    clock.advance(100);
    expect(l.stats().framesSent).toBe(2);
    l.push(sample("d0", ++ts)); // two frames out: this one waits for room, not for the window
    clock.advance(1000);
    expect(l.stats().framesSent).toBe(2);
    await edge.until(() => edge.batches === 2, 2000, "two frames");
    edge.holdAcks = false;
    edge.releaseAcks();
    await edge.until(() => edge.batches === 3, 2000, "the frame the ack made room for");
    expect(edge.accepted.map((u) => u.ts)).toEqual([9_001, 9_002, 9_003]);
    expect(l.stats().framesReleased).toMatchObject({ idle: 1, window: 1, ack: 1 });
  });
});

describe("relay restart during an outage, with the disk outbox", () => {
  it.each(["clean stop", "kill"] as const)(
    "%s mid-outage: buffered history then new samples reach the edge in order; nothing lost, nothing duplicated",
    async (how) => {
      const drones = ["d0", "d1", "d2"];
      const edge = await new DedupEdge().start();
      cleanups.push(() => edge.stop());
      const dir = newDir();
      const pushed = new Map<string, number[]>(drones.map((d) => [d, []]));
      let ts = 1_000_000;
      const push = (l: EdgeLink, perDrone: number): void => {
        for (let i = 0; i < perDrone; i++) {
          for (const d of drones) {
            ts++;
            pushed.get(d)?.push(ts);
            l.push(sample(d, ts));
          }
        }
      };

      // Run 1: live, then the uplink goes down and history piles up on disk.
      const store1 = new DiskOutbox({ dir, fsyncMs: 20, flushMs: 5, segmentBytes: 16 * 1024 });
      const l1 = link(edge, store1, drones);
      const up1 = once(l1, "connected");
      l1.start();
      await up1;
      push(l1, 5);
      await edge.until(() => edge.accepted.length === 15, 5000, "live samples");
      // Their acks reach the relay before the uplink goes down (the edge accepting them is not
      // enough: an ack still on its way would leave them unacknowledged, and rightly re-sent).
      await expect.poll(() => l1.stats().outboxDepth, { timeout: 2000, interval: 5 }).toBe(0);
      const down = once(l1, "disconnected");
      await edge.stop();
      await down;
      push(l1, 200); // 600 samples over several segment files
      expect(l1.stats().outboxDepth).toBe(600);
      if (how === "kill") {
        // Killed: whatever reached the kernel survives; nothing is flushed or fsync'ed for us. The
        // samples' write (flushMs) and the acked cursor's (the fsync timer) must have got there:
        // a cursor not yet written would rightly bring the 15 acknowledged samples back as history.
        await expect.poll(() => onDisk(dir), { timeout: 2000, interval: 5 }).toBe(store1.bytes());
        await expect.poll(() => readCursor(join(dir, "cursor.json"), silentLogger), { timeout: 2000, interval: 5 }).toBe(15);
        store1.abandon();
        await l1.stop();
      } else {
        await l1.stop();
        store1.close();
      }

      // Run 2, same directory: still offline, new samples arrive after the history.
      const store2 = new DiskOutbox({ dir, fsyncMs: 20, flushMs: 5, segmentBytes: 16 * 1024 });
      cleanups.push(() => store2.close());
      expect(store2.depth()).toBe(600);
      const l2 = link(edge, store2, drones);
      l2.start();
      push(l2, 10);
      const up2 = once(l2, "connected");
      await edge.start();
      await up2;
      await edge.until(() => edge.accepted.length === 15 + 600 + 30, 10_000, "every sample");

      for (const d of drones) {
        const got = edge.accepted.filter((u) => u.drone_id === d);
        expect(got.map((u) => u.ts)).toEqual(pushed.get(d)); // all of them, once, in order
        const seqs = got.map((u) => u.seq);
        expect(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] ?? Infinity))).toBe(true);
      }
      expect(edge.duplicates).toBe(0);
      await expect.poll(() => store2.depth(), { timeout: 2000 }).toBe(0);
      expect(l2.stats()).toMatchObject({ droppedUpdates: 0, outboxDepth: 0 });
      expect(edge.invalid).toEqual([]);
    },
  );

  it("an outbox that filled up during the outage: the oldest history is dropped and counted, the rest delivered once, in order", async () => {
    const drones = ["d0", "d1"];
    const edge = await new DedupEdge().start();
    cleanups.push(() => edge.stop());
    const dir = newDir();
    const opts = { dir, fsyncMs: 20, maxBytes: 65_536, segmentBytes: 8192 };
    const store1 = new DiskOutbox(opts);
    const l1 = link(edge, store1, drones);
    const up = once(l1, "connected");
    l1.start();
    await up;
    const down = once(l1, "disconnected");
    await edge.stop();
    await down;
    const offline: { drone_id: string; ts: number }[] = [];
    for (let i = 1; i <= 600; i++) {
      const s = sample(drones[i % 2] ?? "d0", 3_000_000 + i);
      offline.push({ drone_id: s.drone_id, ts: s.ts });
      l1.push(s);
    }
    const dropped = l1.stats().droppedUpdates;
    expect(dropped).toBeGreaterThan(0);
    expect(store1.bytes()).toBeLessThanOrEqual(65_536);
    await l1.stop();
    store1.close();

    const store2 = new DiskOutbox(opts);
    cleanups.push(() => store2.close());
    expect(store2.depth()).toBe(600 - dropped);
    const l2 = link(edge, store2, drones);
    const up2 = once(l2, "connected");
    await edge.start();
    l2.start();
    await up2;
    await edge.until(() => edge.accepted.length === 600 - dropped, 10_000, "the kept history");
    // Exactly the newest records survived, each applied once, in the order they were pushed.
    expect(edge.accepted.map((u) => ({ drone_id: u.drone_id, ts: u.ts }))).toEqual(offline.slice(dropped));
    expect(edge.duplicates).toBe(0);
  });

  it("what the edge already applied (its acks lost) is not applied again after a restart", async () => {
    const edge = await new DedupEdge().start();
    cleanups.push(() => edge.stop());
    const dir = newDir();
    const store1 = new DiskOutbox({ dir, fsyncMs: 20 });
    const l1 = link(edge, store1, ["d0"]);
    const up = once(l1, "connected");
    l1.start();
    await up;
    edge.ackBatches = false;
    for (let i = 1; i <= 20; i++) l1.push(sample("d0", 2_000_000 + i));
    await edge.until(() => edge.accepted.length === 20, 5000, "unacked samples applied");
    const down = once(l1, "disconnected");
    await edge.stop();
    await down;
    await l1.stop();
    store1.close();

    edge.ackBatches = true;
    const store2 = new DiskOutbox({ dir, fsyncMs: 20 });
    cleanups.push(() => store2.close());
    expect(store2.depth()).toBe(20); // never acknowledged, so still owed
    const l2 = link(edge, store2, ["d0"]);
    const up2 = once(l2, "connected");
    await edge.start();
    l2.start();
    await up2;
    l2.push(sample("d0", 2_000_100));
    await edge.until(() => edge.accepted.length === 21, 5000, "the new sample");
    expect(edge.accepted.map((u) => u.ts)).toEqual([...Array.from({ length: 20 }, (_, i) => 2_000_001 + i), 2_000_100]);
    // hello_ack's last_seq covered them: skipped at the relay rather than re-sent.
    expect(l2.stats().staleSkipped).toBe(20);
    await expect.poll(() => store2.depth(), { timeout: 2000 }).toBe(0);
  });

  it("a command result and mission progress not yet acknowledged survive the restart and are delivered", async () => {
    const edge = await new DedupEdge().start();
    cleanups.push(() => edge.stop());
    edge.ackResults = false;
    const dir = newDir();
    const store1 = new DiskOutbox({ dir });
    const l1 = link(edge, store1, ["d0"], { execute: async () => ({ ok: true, message: "holding" }) });
    const up = once(l1, "connected");
    l1.start();
    await up;
    edge.send({ type: "command", command_id: "cmd-restart-1", drone_id: "d0", timeout_ms: 2000, command: "hold", duration_s: 5 });
    await edge.until(() => edge.results.length === 1, 5000, "the result");
    const down = once(l1, "disconnected");
    await edge.stop();
    await down;
    l1.pushProgress({ mission_id: "m-1", drone_id: "d0", state: "completed", waypoint_index: 3, ts: 1_700_000_000_000 });
    await l1.stop();
    store1.close();

    const store2 = new DiskOutbox({ dir });
    cleanups.push(() => store2.close());
    expect(store2.pendingResults().map((r) => r.command_id)).toEqual(["cmd-restart-1"]);
    expect(store2.pendingProgress()).toHaveLength(1);
    edge.ackResults = true;
    const l2 = link(edge, store2, ["d0"]); // no execute: it must not need to run anything again
    const up2 = once(l2, "connected");
    await edge.start();
    l2.start();
    await up2;
    await edge.until(() => edge.results.length === 2 && edge.progress.length === 1, 5000, "result and progress re-sent");
    expect(edge.results[1]).toEqual({ type: "command_result", command_id: "cmd-restart-1", status: "acked", message: "holding" });
    expect(edge.progress[0]).toMatchObject({ mission_id: "m-1", state: "completed", waypoint_index: 3 });
    await expect.poll(() => store2.pendingResults().length, { timeout: 2000 }).toBe(0);
    expect(store2.pendingProgress()).toHaveLength(0);
    store2.close();
    expect(open(dir).pendingResults()).toEqual([]);
  });
});

describe("the relay process, killed during an outage", () => {
  const ROOT = fileURLToPath(new URL("../..", import.meta.url));

  function relay(edge: DedupEdge, dir: string): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } {
    const args = ["--edge", edge.url, "--fleet", "f1", "--token", "t", "--source", "sim", "--drones", "3", "--rate", "10"];
    // tsx as a loader, not its CLI (which runs the script in a child process): SIGKILL must hit the relay.
    const child = spawn(process.execPath, ["--import", "tsx", "relay/cli.ts", ...args, "--outbox-dir", dir, "--health-port", "0"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: root },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    });
    return { child, exited, stderr: () => err };
  }

  it("a restarted relay delivers what the killed one had on disk, in order, without duplicates", async () => {
    const edge = await new DedupEdge().start();
    cleanups.push(() => edge.stop());
    const dir = newDir();
    const r1 = relay(edge, dir);
    await edge.until(() => edge.accepted.length >= 9, 20_000, "live telemetry from the first relay");
    await edge.stop();
    const before = onDisk(dir);
    // ≥ ~25 samples buffered: a sample with its reported route (intent) takes up to ~700 bytes on disk.
    await expect.poll(() => onDisk(dir), { timeout: 30_000, interval: 50 }).toBeGreaterThan(before + 18_000);
    r1.child.kill("SIGKILL");
    await r1.exited;

    // What the killed relay left on disk is what the next one owes the edge (opening it here also
    // shows its LOCK, left behind by the kill, is taken over).
    const peek = new DiskOutbox({ dir });
    const owed: { drone_id: string; seq: number }[] = [];
    for (let r = peek.readTelemetry(500); r; r = peek.readTelemetry(500)) owed.push(...r.updates.map((u) => ({ drone_id: u.drone_id, seq: u.seq })));
    peek.close();
    expect(owed.length).toBeGreaterThanOrEqual(25);

    const r2 = relay(edge, dir);
    await edge.start();
    const key = (u: { drone_id: string; seq: number }): string => `${u.drone_id}:${u.seq}`;
    await edge.until(() => {
      const got = new Set(edge.accepted.map(key));
      return owed.every((u) => got.has(key(u)));
    }, 20_000, "everything the killed relay had on disk");
    const keys = edge.accepted.map(key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const d of ["drone_0", "drone_1", "drone_2"]) {
      const seqs = edge.accepted.filter((u) => u.drone_id === d).map((u) => u.seq);
      expect(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] ?? Infinity))).toBe(true);
    }
    r2.child.kill("SIGTERM");
    expect(await r2.exited).toBe(0);
    expect(r2.stderr()).toMatch(/outbox holds undelivered items from a previous run/);
  });
});

/**
 * `mission_progress` frames from the source, in order, until they can be sent: while offline or
 * before hello_ack, and while the mission's own assign_mission command is still executing (the
 * edge must see the command's result before its mission's progress). Bounded: when full, the
 * oldest `active` report goes first (a later one supersedes it), else the oldest of all. With a
 * store, queued frames are mirrored to disk until sent, and a restarted relay sends them first.
 */
import { MissionProgress } from "../../edge/protocol";
import type { Logger } from "../log";
import type { MissionProgressEvent } from "../sources/source";
import type { Uplink } from "./connection";
import type { OutboxStore } from "./disk-outbox";

export interface ProgressQueueOptions {
  uplink: Uplink;
  log: Logger;
  /** Most frames queued. */
  max: number;
  /** True while the mission's assign_mission runs: its reports wait. */
  held: (missionId: string) => boolean;
  store?: OutboxStore;
}

export class ProgressQueue {
  private queue: MissionProgress[] = [];
  /** Store ids of queued frames. */
  private readonly storeIds = new WeakMap<MissionProgress, number>();
  private droppedCount = 0;
  private dropWarned = false;

  constructor(private readonly o: ProgressQueueOptions) {
    for (const { id, frame } of o.store?.pendingProgress() ?? []) {
      this.storeIds.set(frame, id);
      this.queue.push(frame);
    }
  }

  get length(): number {
    return this.queue.length;
  }
  get dropped(): number {
    return this.droppedCount;
  }

  /** Queue one report (normalized to the wire's bounds) and send what may go. */
  push(p: MissionProgressEvent): void {
    const parsed = MissionProgress.safeParse({
      type: "mission_progress",
      mission_id: p.mission_id,
      drone_id: p.drone_id,
      state: p.state,
      ...(p.waypoint_index !== undefined ? { waypoint_index: Math.max(0, Math.floor(p.waypoint_index)) } : {}),
      ...(p.message ? { message: p.message.slice(0, 500) } : {}),
      ts: Math.max(0, Math.round(p.ts)),
    });
    if (!parsed.success) {
      // The edge would refuse it; a source bug must not take the queue's room.
      this.o.log.warn("ignoring malformed mission progress", { mission_id: String(p.mission_id).slice(0, 64) });
      return;
    }
    const frame = parsed.data;
    if (this.queue.length >= this.o.max) {
      const i = this.queue.findIndex((f) => f.state === "active");
      const [gone] = this.queue.splice(Math.max(0, i), 1);
      if (gone) this.forget(gone);
      this.droppedCount++;
      if (!this.dropWarned) {
        this.dropWarned = true;
        this.o.log.warn("mission progress queue full; dropping the oldest reports", { max: this.o.max });
      }
    }
    if (this.o.store) this.storeIds.set(frame, this.o.store.queueProgress(frame));
    this.queue.push(frame);
    this.flush();
  }

  /** Send queued reports in order; a mission whose assign_mission still runs keeps its reports. */
  flush(): void {
    if (!this.o.uplink.ready || this.queue.length === 0) return;
    const kept: MissionProgress[] = [];
    for (const f of this.queue) {
      if (this.o.held(f.mission_id) || !this.o.uplink.send(f)) kept.push(f);
      else this.forget(f);
    }
    this.queue = kept;
    if (kept.length === 0) this.dropWarned = false;
  }

  private forget(f: MissionProgress): void {
    const id = this.storeIds.get(f);
    if (id !== undefined) this.o.store?.progressDone(id);
  }
}

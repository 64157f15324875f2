/**
 * An outbox in memory with the same contract as the fleet object's SQLite outbox: for the Node
 * tests of the writer and for the benchmark. `failAcks` makes the next acks throw, standing in for
 * a crash between COMMIT and the outbox delete.
 */
import type { OutboxBatch, OutboxItem, SnapshotRow } from "../outbox";
import type { OutboxSource } from "./flush";

export class MemoryOutbox implements OutboxSource {
  items: OutboxItem[] = [];
  snapshots: SnapshotRow[] = [];
  failAcks = 0;
  private nextId = 1;

  add(item: Omit<OutboxItem, "id">): this {
    this.items.push({ ...item, id: this.nextId++ } as OutboxItem);
    return this;
  }

  addSnapshot(s: Omit<SnapshotRow, "id">): this {
    this.snapshots.push({ ...s, id: this.nextId++ });
    return this;
  }

  read(maxItems: number, maxSnapshots: number): OutboxBatch {
    return { items: this.items.slice(0, maxItems), snapshots: this.snapshots.slice(0, maxSnapshots) };
  }

  ack(batch: OutboxBatch): void {
    if (this.failAcks > 0) {
      this.failAcks--;
      throw new Error("simulated crash between COMMIT and the outbox delete");
    }
    const gone = new Set([...batch.items.map((i) => i.id), ...batch.snapshots.map((s) => s.id)]);
    this.items = this.items.filter((i) => !gone.has(i.id));
    this.snapshots = this.snapshots.filter((s) => !gone.has(s.id));
  }

  release(): void {}

  pendingTotal(): number {
    return this.items.length + this.snapshots.length;
  }
}

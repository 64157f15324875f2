/**
 * Flow control of one dashboard socket. workerd gives a Durable Object no way to see how much a
 * server-side WebSocket still buffers (no `bufferedAmount`, workerd#988), and `send` never
 * refuses: a page that stops reading makes the object buffer for it without bound. So the edge
 * counts the bytes it sent to each socket and asks the page, now and then, how far it has read:
 *
 *  - after every `markEveryBytes` sent, a `{"type":"flow","seq":n}` frame goes out (one at a time);
 *    the page answers `flow_ack` with the same seq once it has handled every frame before it, and
 *    everything up to the marker counts as read;
 *  - a socket with more than `windowBytes` unread, or whose marker has waited `markTimeoutMs` for
 *    its ack (a page that stopped reading shows that long before the window fills: at 1,000
 *    drones × 1 Hz per-update, 4 MiB took 15 s), is lagging: fan-out.ts keeps only the latest
 *    sample per drone for it and status.ts skips its fleet_status, until an ack shows it is back
 *    within half the window (`caught_up`, then the latest samples);
 *  - lagging for longer than `lagCloseMs`, or more than `hardCapBytes` unread, closes it with 4002.
 *
 * Pure bookkeeping: the caller sends the frames (`mark` says what to send).
 */
import type { FlowLimits } from "./limits";

export class FlowState {
  /** Bytes (UTF-16 units of the JSON text, a close bound for the ASCII it is) sent to the socket. */
  sent = 0;
  /** Of those, the bytes the page confirmed. */
  confirmed = 0;
  /** The marker in flight, or null. */
  markSeq: number | null = null;
  /** `sent` when the marker in flight went out. */
  private markAt = 0;
  /** When the marker in flight went out (the object's clock). */
  private markSentAt = 0;
  private nextSeq: number;
  /** Since when the socket is lagging, or null. */
  laggingSince: number | null = null;

  /** `seqBase`: markers of an earlier instance (before an eviction) must not be confused with ours. */
  constructor(seqBase: number) {
    this.nextSeq = seqBase;
  }

  get unconfirmed(): number {
    return this.sent - this.confirmed;
  }

  /**
   * `bytes` were just sent. Returns what the caller must do: send a marker (its frame), start
   * lagging, or close the socket.
   */
  onSent(bytes: number, now: number, l: FlowLimits): { marker: string | null; lagging: boolean; close: boolean } {
    this.sent += bytes;
    if (this.unconfirmed > l.hardCapBytes) return { marker: null, lagging: false, close: true };
    let lagging = false;
    if (this.laggingSince === null && (this.unconfirmed > l.windowBytes || (this.markSeq !== null && now - this.markSentAt > l.markTimeoutMs))) {
      this.laggingSince = now;
      lagging = true;
    }
    // A lagging socket always has a marker out: its ack is what ends the lag.
    const due = this.markSeq === null && (lagging || this.sent - this.markAt >= l.markEveryBytes);
    return { marker: due ? this.mark(now) : null, lagging, close: false };
  }

  /**
   * The page's `flow_ack`. Returns null for a seq that is not the marker in flight (ignored);
   * else whether the socket caught up (was lagging, is now within half the window) and the next
   * marker to send when one is due at once.
   */
  onAck(seq: number, now: number, l: FlowLimits): { caughtUp: boolean; marker: string | null } | null {
    if (seq !== this.markSeq) return null;
    this.confirmed = this.markAt;
    this.markSeq = null;
    let caughtUp = false;
    if (this.laggingSince !== null && this.unconfirmed <= l.windowBytes / 2) {
      this.laggingSince = null;
      caughtUp = true;
    }
    const due = this.sent - this.markAt >= l.markEveryBytes || (this.laggingSince !== null && this.unconfirmed > 0);
    return { caughtUp, marker: due ? this.mark(now) : null };
  }

  /** Lagging for longer than the limit. */
  tooSlow(now: number, l: FlowLimits): boolean {
    return this.laggingSince !== null && now - this.laggingSince > l.lagCloseMs;
  }

  /** The marker frame; `sent` must be advanced by its length by the caller's onSent. */
  private mark(now: number): string {
    const seq = this.nextSeq++;
    this.markSeq = seq;
    this.markSentAt = now;
    const frame = `{"type":"flow","seq":${seq}}`;
    // The marker itself is before what it confirms.
    this.markAt = this.sent + frame.length;
    return frame;
  }
}

/**
 * CPU and memory of other processes from /proc (Linux): the workerd that runs the edge, the
 * baseline's Node server and the machine's redis-server. Nothing here signals a process.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

let clkTck = 100;
try {
  clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  // getconf missing: 100 is the Linux default.
}

type Stat = { ppid: number; comm: string; cpuTicks: number };

function readStat(pid: number): Stat | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parentheses: split after the last ')'.
    const close = s.lastIndexOf(")");
    const comm = s.slice(s.indexOf("(") + 1, close);
    const f = s.slice(close + 2).split(" ");
    // After comm: state(0) ppid(1) … utime(11) stime(12).
    return { ppid: Number(f[1]), comm, cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function allPids(): number[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
}

/** Descendants of `root` whose command name starts with `comm`. */
export function findDescendants(root: number, comm: string): number[] {
  const parent = new Map<number, number>();
  const names = new Map<number, string>();
  for (const pid of allPids()) {
    const st = readStat(pid);
    if (!st) continue;
    parent.set(pid, st.ppid);
    names.set(pid, st.comm);
  }
  const out: number[] = [];
  for (const [pid, name] of names) {
    if (!name.startsWith(comm)) continue;
    let p = parent.get(pid);
    for (let hops = 0; p !== undefined && p > 1 && hops < 20; hops++) {
      if (p === root) {
        out.push(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

/** Processes anywhere on the machine with this command name (read-only look-up). */
export function findByName(comm: string): number[] {
  return allPids().filter((pid) => readStat(pid)?.comm === comm);
}

function rssKb(pid: number): { rss: number; hwm: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /VmRSS:\s+(\d+)/.exec(s);
    const hwm = /VmHWM:\s+(\d+)/.exec(s);
    return { rss: rss ? Number(rss[1]) : 0, hwm: hwm ? Number(hwm[1]) : 0 };
  } catch {
    return null;
  }
}

export type ProcUsage = { cpu_pct: number; rss_mb: number; peak_rss_mb: number };

/** CPU time and RSS of a set of processes between `start()` and `stop()`. */
export class ProcMeter {
  private t0 = 0;
  private ticks0 = 0;
  constructor(private readonly pids: () => number[]) {}

  private ticks(): number {
    let t = 0;
    for (const pid of this.pids()) t += readStat(pid)?.cpuTicks ?? 0;
    return t;
  }

  start(): void {
    this.t0 = performance.now();
    this.ticks0 = this.ticks();
  }

  /** CPU % of one core over the interval (may exceed 100 with threads), RSS now and peak. */
  stop(): ProcUsage | null {
    const pids = this.pids();
    if (!pids.length) return null;
    const wall = (performance.now() - this.t0) / 1000;
    const cpu = ((this.ticks() - this.ticks0) / clkTck / Math.max(wall, 1e-3)) * 100;
    let rss = 0;
    let hwm = 0;
    for (const pid of pids) {
      const m = rssKb(pid);
      rss += m?.rss ?? 0;
      hwm += m?.hwm ?? 0;
    }
    return { cpu_pct: Math.round(cpu), rss_mb: Math.round(rss / 1024), peak_rss_mb: Math.round(hwm / 1024) };
  }

  /** RSS now, MB, summed over the processes; null when none is found. */
  rssNow(): number | null {
    const pids = this.pids();
    if (!pids.length) return null;
    let kb = 0;
    for (const pid of pids) kb += rssKb(pid)?.rss ?? 0;
    return Math.round(kb / 1024);
  }

  /** CPU % right now over a short interval (for waiting until a process is idle). */
  async cpuNow(ms = 300): Promise<number> {
    const a = this.ticks();
    await new Promise((r) => setTimeout(r, ms));
    return ((this.ticks() - a) / clkTck / (ms / 1000)) * 100;
  }
}

/**
 * TCP ports `pid` listens on at 127.0.0.1 (IPv4 loopback), from its socket inodes in
 * /proc/<pid>/fd and the LISTEN rows of /proc/net/tcp. Empty when either cannot be read.
 */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  let table = "";
  try {
    table = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return [];
  }
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st … inode(9)
    if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9]!)) continue;
    const [addr, port] = f[1]!.split(":");
    if (addr === "0100007F") ports.push(parseInt(port!, 16));
  }
  return ports.sort((a, b) => a - b);
}

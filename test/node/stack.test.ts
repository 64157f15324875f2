/** The launcher's process handling and argument checks, without starting wrangler. */
import { execFile, spawn } from "node:child_process";
import { createServer, type Server } from "node:net";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../scripts/dev-vars";
import { freePort, killProcessGroup, startStack } from "../../scripts/stack";

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function spawnGroup(script: string) {
  const child = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
  return child;
}

describe("killProcessGroup", () => {
  it("ends a whole group with SIGTERM", async () => {
    const child = spawnGroup("sleep 30 & sleep 30 & wait");
    await new Promise((r) => setTimeout(r, 100));
    await killProcessGroup(child, "SIGTERM", 3_000);
    expect(groupAlive(child.pid!)).toBe(false);
    expect(child.signalCode).toBe("SIGTERM"); // ended by SIGTERM, no escalation needed
  });

  it("escalates to SIGKILL when the group ignores SIGTERM", async () => {
    // SIG_IGN is inherited across exec, so the sleeps ignore SIGTERM too.
    const child = spawnGroup("trap '' TERM; sleep 30 & sleep 30");
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await killProcessGroup(child, "SIGTERM", 500);
    expect(groupAlive(child.pid!)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(child.signalCode).toBe("SIGKILL");
  });

  it("accepts a child that already exited", async () => {
    const child = spawnGroup("exit 0");
    await new Promise((r) => child.once("exit", r));
    await killProcessGroup(child);
  });
});

describe("startStack argument checks", () => {
  it("refuses a bad fleet id", async () => {
    await expect(startStack({ fleet: "Not A Fleet" })).rejects.toThrow(/bad fleet id/);
  });

  it("refuses a port in use before starting anything", async () => {
    const port = await freePort();
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(port, "127.0.0.1", () => r()));
    try {
      await expect(startStack({ port, log: () => {} })).rejects.toThrow(new RegExp(`port ${port} .* in use`));
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});

describe("npm start arguments", () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stderr: string }>((done) => {
      execFile(
        process.execPath,
        ["--import", "tsx", resolve(REPO_ROOT, "scripts/start.ts"), ...args],
        { cwd: REPO_ROOT, timeout: 30_000 },
        (err, _stdout, stderr) => done({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stderr }),
      );
    });

  it.each([
    [["--rate", "0"], /bad --rate/],
    [["--drones", "many"], /bad --drones/],
    [["--port", "99999"], /bad --port/],
    [["--what"], /Unknown option/],
  ])("exits 2 for %j", async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

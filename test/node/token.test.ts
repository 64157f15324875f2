/** The token CLI (scripts/token.ts), run as `npm run token` would run it. */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { verifyToken } from "../../edge/worker/auth";
import { parseDevVars, readDevVars, REPO_ROOT, resolveAuthSecret } from "../../scripts/dev-vars";

const SCRIPT = resolve(REPO_ROOT, "scripts/token.ts");

function runToken(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!("AUTH_SECRET" in env)) delete childEnv.AUTH_SECRET; // the .dev.vars secret unless a test sets one
  return new Promise((done) => {
    execFile(
      process.execPath,
      ["--import", "tsx", SCRIPT, ...args],
      { cwd: REPO_ROOT, env: childEnv, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

const lastLine = (s: string) => s.trimEnd().split("\n").pop() ?? "";
const devSecret = readDevVars().AUTH_SECRET!;

describe("token CLI", () => {
  it("reads AUTH_SECRET from .dev.vars", () => {
    expect(devSecret).toMatch(/.{16,}/);
    expect(resolveAuthSecret(undefined, {})?.secret).toBe(devSecret);
    expect(resolveAuthSecret(undefined, { AUTH_SECRET: "from-env" })?.secret).toBe("from-env");
    expect(resolveAuthSecret("explicit", { AUTH_SECRET: "from-env" })?.secret).toBe("explicit");
  });

  it("parses .dev.vars syntax", () => {
    expect(
      parseDevVars('# c\nA=1\nexport B = "two words"\nC=\'x#y\'\nD=plain # comment\n\nbad line\nA=3'),
    ).toEqual({ A: "3", B: "two words", C: "x#y", D: "plain" });
  });

  it("prints, as the last line, a token the edge accepts with the requested claims", async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await runToken(["--fleet", "demo", "--role", "operator", "--ttl", "15m", "--sub", "alice"]);
    expect(r.code).toBe(0);
    const v = await verifyToken(devSecret, lastLine(r.stdout));
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.claims).toMatchObject({ sub: "alice", role: "operator", fleets: ["demo"] });
    expect(v.claims.exp - before).toBeGreaterThanOrEqual(15 * 60 - 1);
    expect(v.claims.exp - before).toBeLessThanOrEqual(15 * 60 + 60);
    expect(r.stderr).toMatch(/operator token for fleet demo/);
  });

  it("supports every fleet, other roles, the default ttl and an explicit secret", async () => {
    const all = await runToken(["--fleet", "*", "--role", "relay"]);
    expect(all.code).toBe(0);
    const v = await verifyToken(devSecret, lastLine(all.stdout));
    expect(v.ok && v.claims.fleets === "*" && v.claims.role === "relay" && v.claims.exp - v.claims.iat! === 3600).toBe(
      true,
    );

    const own = await runToken(["--fleet", "a,b", "--role", "viewer", "--secret", "another-secret-0123456789"]);
    expect(own.code).toBe(0);
    expect((await verifyToken(devSecret, lastLine(own.stdout))).ok).toBe(false);
    const mine = await verifyToken("another-secret-0123456789", lastLine(own.stdout));
    expect(mine.ok && mine.claims.fleets).toEqual(["a", "b"]);

    const env = await runToken(["--fleet", "demo", "--role", "admin"], { AUTH_SECRET: "env-secret-0123456789" });
    expect((await verifyToken("env-secret-0123456789", lastLine(env.stdout))).ok).toBe(true);
  });

  it.each([
    [["--role", "operator"], /missing --fleet/],
    [["--fleet", "demo"], /missing --role/],
    [["--fleet", "demo", "--role", "pilot"], /bad role "pilot"/],
    [["--fleet", "demo", "--role", "admin", "--ttl", "soon"], /bad ttl "soon"/],
    [["--fleet", "demo", "--role", "admin", "--ttl", "0s"], /bad ttl/],
    [["--fleet", "Bad Fleet!", "--role", "admin"], /bad fleet id/],
    [["--fleet", "demo", "--role", "admin", "--bogus"], /Unknown option '--bogus'/],
  ])("exits 2 with a clear message for %j", async (args, message) => {
    const r = await runToken(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/Usage: npm run token/);
  });

  it("prints help", async () => {
    const r = await runToken(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--role R/);
  });
});

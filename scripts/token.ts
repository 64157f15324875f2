/**
 * `npm run token -- --fleet F --role viewer|operator|admin|relay [--ttl 1h] [--sub NAME] [--secret S]`
 *
 * Prints an access token as the last line of stdout (a short description goes to stderr), signed
 * with --secret, else env AUTH_SECRET, else AUTH_SECRET from .dev.vars: the secret `npm start`'s edge
 * uses. `--fleet '*'` grants every fleet; `--fleet a,b` a list. Usage errors exit with status 2.
 */
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { parseTtl, ROLES, signToken, type Role } from "../edge/worker/auth";
import { FLEET_ID_RE } from "../edge/protocol";
import { resolveAuthSecret } from "./dev-vars";

const USAGE = `Usage: npm run token -- --fleet F --role ${ROLES.join("|")} [--ttl 1h] [--sub NAME] [--secret S]

  --fleet F     fleet id the token is for; '*' for every fleet, or a comma-separated list
  --role R      one of ${ROLES.join(", ")}
  --ttl T       lifetime: 90s, 15m, 1h (default), 7d or plain seconds
  --sub NAME    subject (who the token identifies); default cli-<role>
  --secret S    signing secret; default env AUTH_SECRET, else AUTH_SECRET in .dev.vars
  -h, --help    show this help

The token is printed as the last line of standard output.`;

export class UsageError extends Error {}

export interface TokenArgs {
  fleets: "*" | string[];
  role: Role;
  ttlSeconds: number;
  sub: string;
  secret?: string;
}

/** Parse and validate CLI arguments; throws UsageError with a message fit for the user. */
export function parseTokenArgs(argv: string[]): TokenArgs | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        fleet: { type: "string" },
        role: { type: "string" },
        ttl: { type: "string", default: "1h" },
        sub: { type: "string" },
        secret: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return "help";
  if (!values.fleet) throw new UsageError("missing --fleet (a fleet id, or '*' for all fleets)");
  let fleets: "*" | string[];
  if (values.fleet === "*") fleets = "*";
  else {
    fleets = values.fleet.split(",").map((f) => f.trim());
    const bad = fleets.find((f) => !FLEET_ID_RE.test(f));
    if (bad !== undefined) {
      throw new UsageError(`bad fleet id "${bad}": 1-63 of a-z 0-9 _ - starting with a letter or digit, or '*'`);
    }
  }
  if (!values.role) throw new UsageError(`missing --role (${ROLES.join(", ")})`);
  if (!(ROLES as readonly string[]).includes(values.role)) {
    throw new UsageError(`bad role "${values.role}": use one of ${ROLES.join(", ")}`);
  }
  const role = values.role as Role;
  let ttlSeconds: number;
  try {
    ttlSeconds = parseTtl(values.ttl);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (ttlSeconds <= 0) throw new UsageError(`bad ttl "${values.ttl}": must be more than 0`);
  const sub = values.sub ?? `cli-${role}`;
  if (sub.length < 1 || sub.length > 128) throw new UsageError("--sub must be 1-128 characters");
  return { fleets, role, ttlSeconds, sub, ...(values.secret ? { secret: values.secret } : {}) };
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseTokenArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`token: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const found = resolveAuthSecret(args.secret);
  if (!found) {
    process.stderr.write("token: no signing secret: pass --secret, set AUTH_SECRET, or add AUTH_SECRET to .dev.vars\n");
    return 2;
  }
  const token = await signToken(found.secret, { sub: args.sub, role: args.role, fleets: args.fleets }, args.ttlSeconds);
  const exp = new Date(Date.now() + args.ttlSeconds * 1000).toISOString();
  const fleetText = args.fleets === "*" ? "all fleets" : `fleet ${args.fleets.join(",")}`;
  process.stderr.write(`${args.role} token for ${fleetText}, sub ${args.sub}, expires ${exp} (secret from ${found.source})\n`);
  process.stdout.write(`${token}\n`);
  return 0;
}

// Run only as a script, so tests and other tools can import parseTokenArgs.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`token: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

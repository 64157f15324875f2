import { Pool } from "@neondatabase/serverless";
import { startWsProxy } from "./wsproxy";
import { startDatabase, applyNeonLocalConfig, runMigrations } from "./db";

const dbh = await startDatabase({ dataDir: "memory://", log: (l) => console.log("db:", l) });
const proxy = await startWsProxy({ log: (l) => console.log("proxy:", l) });
applyNeonLocalConfig(proxy.port);
console.log(await runMigrations(dbh.url, proxy.port));
console.log(await runMigrations(dbh.url, proxy.port));
const pool = new Pool({ connectionString: dbh.url, max: 8, connectionTimeoutMillis: 5000 });
pool.on("error", (e) => console.log("pool error", e.message));
await pool.query("create table t (id int primary key, v text)");
let bad = 0, errs = 0, expectedErrs = 0, hung = 0;
const t0 = Date.now();
const withTimeout = <T,>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error("HUNG")), 8000))]);
await Promise.all(Array.from({ length: 300 }, async (_, i) => {
  try {
    if (i % 7 === 0) {
      try { await withTimeout(pool.query("select $1::int / 0", [i])); bad++; } catch (e) { if ((e as Error).message === "HUNG") hung++; else expectedErrs++; }
      return;
    }
    if (i % 5 === 0) {
      const c = await pool.connect();
      try {
        await withTimeout(c.query("begin"));
        await withTimeout(c.query("insert into t values ($1, $2)", [i, "v" + i]));
        const r = await withTimeout(c.query("select count(*)::int as n from t where id = $1", [i]));
        if (r.rows[0].n !== 1) bad++;
        await withTimeout(c.query(i % 10 === 0 ? "rollback" : "commit"));
      } finally { c.release(); }
      return;
    }
    const r = await withTimeout(pool.query("select $1::int as n, $2::text as s", [i, "x" + i]));
    if (r.rows[0].n !== i || r.rows[0].s !== "x" + i) bad++;
  } catch (e) { if ((e as Error).message === "HUNG") hung++; errs++; if (errs < 4) console.log("err", (e as Error).message); }
}));
const n = (await pool.query("select count(*)::int as n from t")).rows[0].n;
console.log({ bad, errs, expectedErrs, hung, committed: n, expectedCommitted: Array.from({length:300},(_,i)=>i).filter(i=>i%7!==0&&i%5===0&&i%10!==0).length, ms: Date.now() - t0 });
// abandoned transaction: connect, begin, insert, then kill the socket
const c = await pool.connect();
await c.query("begin"); await c.query("insert into t values (100000, 'orphan')");
(c as any).connection.stream.destroy();
c.release(true);
await new Promise((r) => setTimeout(r, 300));
console.log("orphan rows:", (await pool.query("select count(*)::int as n from t where id = 100000")).rows[0].n);
await pool.end(); await proxy.close(); await dbh.close();

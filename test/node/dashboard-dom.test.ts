/**
 * The dashboard's keyed list update (web/src/dom.ts `keyedList`, which the command ledger, the
 * coordination events and the alerts are drawn with) in a real browser: Debian's Chromium driven
 * by playwright-core, the module bundled by esbuild as the page bundle is. No stack needed.
 *
 * Checks, over seeded random sequences of lists (items added, removed, moved, changed): the
 * children are exactly the items in order, an item whose signature did not change keeps its
 * element (that is what saves the browser the work), one whose signature changed gets a new one,
 * and nodes the list did not make are removed.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import * as esbuild from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../scripts/dev-vars";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

type Item = { id: string; v: number };

/** The page's DOM as the in-page callback uses it (this file compiles without the DOM lib; the
 * callback runs in the browser). */
type PageEl = { dataset: Record<string, string | undefined>; textContent: string | null; children: ArrayLike<PageEl> };
declare const document: { getElementById(id: string): PageEl | null; createElement(tag: string): PageEl };

describe("keyedList in a browser", () => {
  let browser: Browser | undefined;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    const bundle = await esbuild.build({
      absWorkingDir: REPO_ROOT,
      stdin: { contents: `import { keyedList } from "./web/src/dom"; (globalThis as any).keyedList = keyedList;`, resolveDir: REPO_ROOT, loader: "ts" },
      bundle: true,
      format: "iife",
      write: false,
      platform: "browser",
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
    page = await browser.newPage();
    await page.setContent("<ul id=list><li id=foreign>not made by the list</li></ul>");
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** Apply one list in the page; returns the children's keys and, per key, whether its element is
   * the same one as before this call. */
  const apply = (items: Item[]) =>
    page.evaluate((items) => {
      const w = globalThis as unknown as {
        keyedList: (p: PageEl, items: Item[], key: (i: Item) => string, sig: (i: Item) => string, build: (i: Item) => PageEl) => void;
        __els?: Map<string, PageEl>;
      };
      const list = document.getElementById("list")!;
      const before = w.__els ?? new Map<string, PageEl>();
      w.keyedList(
        list,
        items,
        (i) => i.id,
        (i) => String(i.v),
        (i) => {
          const li = document.createElement("li");
          li.dataset.key = i.id;
          li.textContent = `${i.id}:${i.v}`;
          return li;
        },
      );
      const children = Array.from(list.children);
      w.__els = new Map(children.map((c) => [c.dataset.key ?? "?", c]));
      return {
        keys: children.map((c) => c.dataset.key ?? "?"),
        texts: children.map((c) => c.textContent),
        kept: Object.fromEntries(children.map((c) => [c.dataset.key ?? "?", before.get(c.dataset.key ?? "?") === c])),
      };
    }, items);

  it("keeps the children equal to the items, reusing unchanged elements and rebuilding changed ones", async () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let prev: Item[] = [];
    const first = await apply([{ id: "a", v: 1 }]);
    expect(first.keys).toEqual(["a"]); // the foreign node is gone
    prev = [{ id: "a", v: 1 }];
    for (let round = 0; round < 200; round++) {
      // Next list: drop some, change some, add some, shuffle.
      let next = prev.filter(() => rand() > 0.2).map((i) => (rand() < 0.2 ? { id: i.id, v: i.v + 1 } : i));
      const add = Math.floor(rand() * 4);
      for (let k = 0; k < add; k++) next.push({ id: `i${round}-${k}`, v: 0 });
      if (rand() < 0.5) next = next.map((i) => ({ i, r: rand() })).sort((a, b) => a.r - b.r).map((x) => x.i);
      else if (next.length > 1 && rand() < 0.5) next.unshift(next.pop()!);
      const r = await apply(next);
      expect(r.keys, `round ${round}`).toEqual(next.map((i) => i.id));
      expect(r.texts).toEqual(next.map((i) => `${i.id}:${i.v}`));
      const old = new Map(prev.map((i) => [i.id, i.v]));
      for (const i of next) expect(r.kept[i.id], `round ${round} ${i.id}`).toBe(old.get(i.id) === i.v);
      prev = next;
    }
    expect((await apply([])).keys).toEqual([]);
  }, 60_000);
});

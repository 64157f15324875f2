/** Tiny DOM helpers: enough to build the page without a framework. */

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

/**
 * Create an element. `attrs`: `class`, `data-*`, `aria-*` and plain attributes as strings;
 * `on<event>` as listeners; booleans set or omit the attribute; null/undefined are skipped.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Replace every child of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** The element with this id; throws when the page lacks it (a build mistake, not a runtime case). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page has no #${id}`);
  return el as T;
}

/** Set text only when it changed: cheap for tables updated several times a second. */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function setClass(el: Element, cls: string, on: boolean): void {
  if (el.classList.contains(cls) !== on) el.classList.toggle(cls, on);
}

/** "12 s", "3 min", "2 h" */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** One formatter for every clock on the page: toLocaleTimeString builds a new one per call, which
 * cost more than the rest of the command ledger put together. */
const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

export function formatClock(ms: number): string {
  return CLOCK.format(ms);
}

/**
 * Keep `parent`'s children in step with `items`, rebuilding only the elements whose `signature`
 * changed and moving the rest into order. A list redrawn several times a second (the command
 * ledger, coordination events, alerts) then costs the browser a few new nodes instead of a whole
 * new subtree to style, lay out and paint. `parent` must hold only the elements of this list.
 */
export function keyedList<T>(
  parent: Element,
  items: readonly T[],
  key: (item: T) => string,
  signature: (item: T) => string,
  build: (item: T) => HTMLElement,
): void {
  const cache = keyedCaches.get(parent) ?? new Map<string, { el: HTMLElement; sig: string }>();
  keyedCaches.set(parent, cache);
  const seen = new Set<string>();
  let cursor: ChildNode | null = parent.firstChild;
  for (const item of items) {
    const k = key(item);
    seen.add(k);
    const sig = signature(item);
    let entry = cache.get(k);
    if (!entry || entry.sig !== sig) {
      if (entry) {
        // The old element goes; if it stood where the list has got to, the next one does now.
        if (entry.el === cursor) cursor = cursor.nextSibling;
        entry.el.remove();
      }
      entry = { el: build(item), sig };
      cache.set(k, entry);
    }
    if (entry.el !== cursor) parent.insertBefore(entry.el, cursor);
    else cursor = cursor.nextSibling;
  }
  // Every element of this list now stands before the cursor: what follows it (items gone, nodes
  // not made here) goes.
  while (cursor) {
    const next: ChildNode | null = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
  for (const k of cache.keys()) if (!seen.has(k)) cache.delete(k);
}

const keyedCaches = new WeakMap<Element, Map<string, { el: HTMLElement; sig: string }>>();

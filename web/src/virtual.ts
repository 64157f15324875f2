/**
 * The window of a virtualised list (pure, tested in Node): which rows a scrolled viewport shows,
 * with a few rows of overscan either side so a small scroll does not reveal a gap before the next
 * frame fills it.
 */

export type RowWindow = { first: number; count: number; padTop: number; padBottom: number };

export function rowWindow(scrollTop: number, viewportPx: number, rowPx: number, total: number, overscan = 6): RowWindow {
  if (total <= 0 || rowPx <= 0) return { first: 0, count: 0, padTop: 0, padBottom: 0 };
  const top = Math.max(0, scrollTop);
  const first = Math.max(0, Math.min(total - 1, Math.floor(top / rowPx) - overscan));
  const last = Math.min(total, Math.ceil((top + Math.max(viewportPx, rowPx)) / rowPx) + overscan);
  const count = Math.max(0, last - first);
  return { first, count, padTop: first * rowPx, padBottom: (total - first - count) * rowPx };
}

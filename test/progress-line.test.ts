// The progress line appears only for slow passes, only on a terminal, and never over
// unfinished generated text.
import { expect, test } from "bun:test";
import { ProgressLine } from "../src/cli/progress-line.ts";
import type { PlanEntry } from "../src/model/architecture.ts";

const layer = (i: number): PlanEntry => ({ index: i + 1, name: `model.layers.${i}`, layer: i, tensors: [], experts: 0 });

test("nothing for fast passes; `token · layer · s/token` once a pass is slow", () => {
  const written: string[] = [];
  let clock = 0;
  const line = new ProgressLine((s) => written.push(s), 64, 32, () => clock);
  line.onEntry(layer(0), 0);
  line.onEntry(layer(1), 0);
  expect(written).toEqual([]);
  clock = 1050;
  line.token = 3;
  line.onEntry(layer(16), 0);
  expect(written.at(-1)).toBe("\r\x1b[2Ktoken 3/64 · layer 17/32");
  clock = 1800;
  line.onEntry(layer(0), 1); // the next pass: the last one's time becomes the rate
  expect(written.at(-1)).toBe("\r\x1b[2Ktoken 3/64 · layer 1/32 · 1.8 s/token");
  line.clear();
  expect(written.at(-1)).toBe("\r\x1b[2K");
});

test("not drawn while generated text has an unfinished line, nor without a terminal", () => {
  const written: string[] = [];
  let clock = 0;
  const line = new ProgressLine((s) => written.push(s), 8, 4, () => clock);
  line.canDraw = () => false;
  line.onEntry(layer(0), 0);
  clock = 1050;
  line.onEntry(layer(1), 0);
  expect(written).toEqual([]);
  expect(ProgressLine.attach({ onEntry: null } as never, false, () => {}, 8, 4)).toBeNull();
});

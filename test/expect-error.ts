// Asserting the project's typed errors: the class, the words the message must name, and a hint.
import { expect } from "bun:test";
import { ModelFormatError } from "../src/errors.ts";

/** Runs `f`, expecting a ModelFormatError whose message contains every one of `parts`. */
export function expectFormatError(f: () => unknown, ...parts: string[]): ModelFormatError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ModelFormatError);
  const err = caught as ModelFormatError;
  for (const p of parts) expect(err.message).toContain(p);
  expect(err.hint).toBeString();
  return err;
}

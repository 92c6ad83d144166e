import { resolve } from "node:path";

/** The repository root. */
export const ROOT = resolve(import.meta.dir, "..");
/** ../shared beside the checkout: read in place, never copied. */
export const SHARED = resolve(ROOT, "..", "shared");
export const STORIES_HF = resolve(SHARED, "models/stories260K-hf");

// The remote-code families' fixtures (test/fixtures/gen_remote_fixtures.py), shared by the tests
// that drive them.
import { resolve } from "node:path";
import { ROOT } from "./paths.ts";

export const REMOTE_FIXTURES = resolve(ROOT, "test/fixtures/remote");
export const REMOTE_GENERATOR = "test/fixtures/gen_remote_fixtures.py";
export const REMOTE_FAMILIES = [
  "chatglm2", "chatglm3", "baichuan", "baichuan2-7b", "baichuan2-13b", "internlm", "internlm2", "internlm2_5-dynamic", "qwen", "qwen-ntk-logn",
];

// `airllm chat` on a pseudo-terminal (util-linux `script` gives it one): two turns, /reset and
// Ctrl-C during a reply. The line after each reply counts the prompt's cached and prefilled tokens.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, STORIES_HF } from "./paths.ts";
import { slowFlags, slowModel } from "./slow-model.ts";

const BINARY = join(ROOT, "dist/airllm");
const CHATML = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
let work: string;

/** A program on a pty: keys in, the terminal's output (both streams, as a user sees it) out. */
class Terminal {
  private out = "";
  private readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">;

  constructor(command: string[]) {
    const quoted = command.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    const proc = Bun.spawn(["script", "-qfec", quoted, "/dev/null"], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, AIRLLM_DEBUG: "" } });
    this.proc = proc;
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stdout) this.out += decoder.decode(chunk, { stream: true });
    })();
  }

  type(keys: string): void {
    this.proc.stdin.write(keys);
    this.proc.stdin.flush();
  }

  /** Waits until the output matches `re` `count` times; returns all of those matches. */
  async waitFor(re: RegExp, count = 1, timeoutMs = 60_000): Promise<RegExpMatchArray[]> {
    const start = performance.now();
    for (;;) {
      const all = [...this.output.matchAll(new RegExp(re.source, "g" + re.flags.replace("g", "")))];
      if (all.length >= count) return all;
      if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${re} ×${count}; output so far:\n${this.output}`);
      await Bun.sleep(10);
    }
  }

  /** The output as lines of text: readline's cursor escapes removed, CR LF (and CR CR LF) as LF. */
  get output(): string {
    return this.out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r+\n/g, "\n");
  }

  async exit(): Promise<number> {
    this.proc.stdin.end();
    return await this.proc.exited;
  }
}

const SUMMARY = /airllm: prompt (\d+) tok \((\d+) cached, (\d+) prefilled\) · reply (\d+) tok at [\d.]+ tok\/s · (\w+)/;

/** The reply printed between the `nth` (0-based) prompt line with `typed` and the summary after it. */
function replyAfter(output: string, typed: string, nth: number): string {
  const line = `> ${typed}\n`;
  let at = -1;
  for (let i = 0; i <= nth; i++) at = output.indexOf(line, at + 1);
  if (at < 0) throw new Error(`no prompt line ${JSON.stringify(line)} ×${nth + 1} in:\n${output}`);
  const start = at + line.length;
  return output.slice(start, output.indexOf("airllm: prompt", start));
}

beforeAll(() => {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`bun run build\` first (the test command does)`);
  work = mkdtempSync(join(tmpdir(), "airllm-chat-"));
  writeFileSync(join(work, "chatml.jinja"), CHATML);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("airllm chat on a terminal", () => {
  test("two turns (the second prefills only what is new), /reset, the same first reply again, /exit", async () => {
    const t = new Terminal([BINARY, "chat", STORIES_HF, "--chat-template", join(work, "chatml.jinja"), "-n", "20", "--device", "cpu"]);
    await t.waitFor(/> /);
    t.type("Hi, who are you?\r");
    const [first] = await t.waitFor(SUMMARY);
    t.type("Tell me more.\r");
    const second = (await t.waitFor(SUMMARY, 2))[1]!;
    const [p1, c1, f1] = [1, 2, 3].map((i) => Number(first![i]));
    const [p2, c2, f2] = [1, 2, 3].map((i) => Number(second[i]));
    expect(c1).toBe(0);
    expect(f1).toBe(p1);
    // Turn 1's prompt and reply are in the cache: only the new user turn and the template's glue
    // around it are prefilled.
    expect(c2).toBeGreaterThanOrEqual(p1);
    expect(f2).toBe(p2 - c2);
    expect(f2).toBeLessThanOrEqual(p2 - p1);
    t.type("/reset\r");
    await t.waitFor(/history cleared/);
    t.type("Hi, who are you?\r");
    const third = (await t.waitFor(SUMMARY, 3))[2]!;
    expect(Number(third[1])).toBe(p1);
    expect(Number(third[2])).toBe(0);
    // Greedy and a fresh history: the first reply again.
    const reply = replyAfter(t.output, "Hi, who are you?", 0);
    expect(reply.trim().length).toBeGreaterThan(0);
    expect(replyAfter(t.output, "Hi, who are you?", 1)).toBe(reply);
    t.type("/exit\r");
    expect(await t.exit()).toBe(0);
  });

  test("Ctrl-C stops the reply, not the program; at the prompt it says how to quit; Ctrl-D quits", async () => {
    // A reply of up to 400 tokens at a few dozen tokens per second: Ctrl-C lands mid-reply.
    const t = new Terminal([BINARY, "chat", slowModel(), "--chat-template", join(work, "chatml.jinja"), "-n", "400", ...slowFlags()]);
    await t.waitFor(/> /);
    t.type("Hello\r");
    await t.waitFor(/> Hello\n./);
    await Bun.sleep(300);
    t.type("\x03");
    const [stopped] = await t.waitFor(SUMMARY);
    expect(stopped![5]).toBe("stopped");
    expect(Number(stopped![4])).toBeLessThan(400);
    t.type("Again\r");
    await t.waitFor(/> Again\n./);
    t.type("\x03");
    await t.waitFor(SUMMARY, 2);
    await t.waitFor(/> /, 3);
    t.type("\x03");
    await t.waitFor(/Ctrl-D or \/exit quits/);
    t.type("\x04");
    expect(await t.exit()).toBe(0);
  });

  test("airllm run on a terminal shows the prompt before the completion; --no-display-prompt and a pipe do not", async () => {
    const args = ["run", STORIES_HF, "-p", "Once upon a time", "-n", "12", "--device", "cpu"];
    const piped = Bun.spawnSync([BINARY, ...args], { stdin: "ignore" }).stdout.toString();
    const completion = piped.replace(/\n$/, "");
    expect(completion.length).toBeGreaterThan(0);
    const shown = new Terminal([BINARY, ...args]);
    expect(await shown.exit()).toBe(0);
    expect(shown.output).toContain(`Once upon a time${completion}\n`);
    const bare = new Terminal([BINARY, ...args, "--no-display-prompt"]);
    expect(await bare.exit()).toBe(0);
    expect(bare.output).toContain(completion);
    expect(bare.output).not.toContain("Once upon a time");
  });
});

// Issue 17's groups of failures, each reproduced through the real binary (dist/airllm) and
// answered the way the issue asks: one clear line naming the file, the value and a fix, a hint,
// a non-zero exit (or, for a reader that left, a quiet 0), bounded memory, no hang.
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, HF_FILES, modelFolder, runArgs, type Expect, type Invocation } from "./fuzz/case.ts";
import { encode, parseGguf, setKv, tensorBytes, writeGguf, type GgufParts } from "./fuzz/gguf-bytes.ts";
import { DEFAULT_LIMITS, runCase, type Outcome } from "./fuzz/run-case.ts";
import { parseSafetensors, writeSafetensors } from "./fuzz/safetensors-bytes.ts";
import { ROOT } from "./paths.ts";

const BINARY = join(ROOT, "dist/airllm");
let n = 0;

/** Runs the binary on what `build` writes; `expect` says what a correct binary must do. */
function cli(build: (dir: string) => Invocation, expect: Expect = "error"): Promise<Outcome> {
  return runCase({ id: `robustness/${n++}`, family: "robustness", what: "", expect, build }, BINARY);
}

/** A clear error (one line, a hint) whose line matches `pattern`. */
function expectClear(o: Outcome, pattern: RegExp): void {
  expect(`${o.cls}: ${o.reason}`).toBe("clear-error: ");
  expect(o.errorLine).toMatch(pattern);
}

const model = (dir: string, changed: Record<string, string | Uint8Array> = {}) => modelFolder(dir, BASES.hf, changed);
const json = (f: string) => JSON.parse(readFileSync(join(BASES.hf, f), "utf8"));
const text = (v: unknown) => JSON.stringify(v);
const stories = () => parseSafetensors(new Uint8Array(readFileSync(join(BASES.hf, "model.safetensors"))));
const gguf = (path: string) => parseGguf(new Uint8Array(readFileSync(path)));
const ggufAt = (dir: string, p: GgufParts, o?: Parameters<typeof writeGguf>[1]) => {
  const path = join(dir, "m.gguf");
  writeFileSync(path, writeGguf(p, o));
  return path;
};
const MIB = 2 ** 20;

describe("1. output failures", () => {
  test("stdout on /dev/full: one error line, exit 1", async () => {
    expectClear(await cli((d) => ({ args: runArgs(model(d)), stdout: "devfull" })), /cannot write to standard output: ENOSPC/);
  });
  test("stdout closed before the start: an error, not output lost in /dev/null", async () => {
    expectClear(await cli((d) => ({ args: runArgs(model(d)), stdout: "closed" })), /standard output is closed/);
  });
  test("a reader that leaves after one byte (head -c1): quiet, exit 0", async () => {
    const o = await cli((d) => ({ args: ["run", model(d), "-p", "Once", "-n", "200", "--device", "cpu"], stdout: "head" }), "ok");
    expect(o.cls).toBe("accepted");
    expect(o.stderr).not.toMatch(/EPIPE|error/);
  });
});

describe("2. huge counts are checked before anything is sized from them", () => {
  for (const layers of [1e9, 2 ** 32 - 1, 2 ** 53 - 1]) {
    test(`num_hidden_layers ${layers}`, async () => {
      const o = await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...json("config.json"), num_hidden_layers: layers }) })) }));
      expectClear(o, /"num_hidden_layers" must be an integer in \[1, 65536\]/);
      expect(o.peakRss).toBeLessThan(200 * MIB);
    });
  }
  test("a layer count within bounds but beyond the weights", async () => {
    const o = await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...json("config.json"), num_hidden_layers: 60000 }) })) }));
    expectClear(o, /gives the model 60000 layers, but the weights have no "model\.layers\.59999\./);
    expect(o.peakRss).toBeLessThan(200 * MIB);
  });
  test("GGUF llama.block_count 2^32-1", async () => {
    const p = gguf(BASES.ggufV1);
    setKv(p, "llama.block_count", encode.u32(2 ** 32 - 1));
    const o = await cli((d) => ({ args: runArgs(ggufAt(d, p)) }));
    expectClear(o, /llama\.block_count must be an integer in \[1, 65536\], got 4294967295/);
    expect(o.peakRss).toBeLessThan(200 * MIB);
  });
  test("bench --prompt-tokens 1e9", async () => {
    const o = await cli((d) => ({ args: ["bench", model(d), "--prompt-tokens", "1e9", "--device", "cpu"] }));
    expectClear(o, /--prompt-tokens 1000000000 and --decode-tokens 32 need 1000000032 positions, more than the model's 512/);
    expect(o.peakRss).toBeLessThan(200 * MIB);
  });
});

describe("3. deeply nested GGUF arrays", () => {
  test("100,000 levels: a depth limit, not a stack overflow", async () => {
    const p = gguf(BASES.ggufV3);
    const levels: Uint8Array[] = [];
    for (let i = 0; i < 100_000; i++) levels.push(encode.u32(9)[1], encode.u64(1n)[1]);
    levels.push(encode.u32(4)[1], encode.u64(0n)[1]);
    p.kvs.push({ key: "deep", type: 9, value: Buffer.concat(levels) });
    const o = await cli((d) => ({ args: runArgs(ggufAt(d, p)) }));
    expectClear(o, /metadata "deep" nests arrays more than 4 deep/);
  });
});

describe("4. environment errors are the environment's, not internal errors", () => {
  test("stdin closed when the prompt comes from it", async () => {
    expectClear(await cli((d) => ({ args: ["run", model(d), "-n", "2", "--device", "cpu"], stdin: "closed" })), /standard input is closed/);
  });
  test("logits -o onto a folder, into a missing folder, onto /dev/full", async () => {
    expectClear(await cli((d) => ({ args: ["logits", model(d), "--ids", "1", "-o", d] })), /--out ".*" is a folder/);
    expectClear(await cli((d) => ({ args: ["logits", model(d), "--ids", "1", "-o", join(d, "no/l.f32")] })), /the folder ".*\/no" does not exist/);
    expectClear(await cli((d) => ({ args: ["logits", model(d), "--ids", "1", "-o", "/dev/full", "--device", "cpu"] })), /cannot write the logits to "\/dev\/full": ENOSPC/);
  });
  test("split whose side-file copy fails", async () => {
    const o = await cli((d) => {
      const m = model(d);
      Bun.spawnSync(["mkdir", "-p", join(d, "out/splitted_model/tokenizer.json")]);
      return { args: ["split", m, "--out", join(d, "out")] };
    });
    expectClear(o, /cannot write the split to ".*splitted_model": EISDIR/);
  });
  test("tokenizer.json post_processor.single true is named, not thrown at the first encode", async () => {
    const t = json("tokenizer.json");
    t.post_processor.single = true;
    expectClear(await cli((d) => ({ args: runArgs(model(d, { "tokenizer.json": text(t) })) })), /tokenizer\.json": post_processor\.single must be a list/);
  });
});

describe("5. NaN or Inf never reaches the output", () => {
  test("a NaN weight: the error names the tensor and the file", async () => {
    const p = stories();
    const [b] = p.header["model.layers.1.post_attention_layernorm.weight"].data_offsets;
    new DataView(p.data.buffer).setFloat32(b + 8, NaN, true);
    const o = await cli((d) => ({ args: runArgs(model(d, { "model.safetensors": writeSafetensors(p) })) }));
    expectClear(o, /NaN logits .*tensor "model\.layers\.1\.post_attention_layernorm\.weight" of ".*model\.safetensors" holds NaN or Inf/);
  });
  test("an overflowing weight: said to overflow, with the largest weight", async () => {
    const p = stories();
    const [b] = p.header["model.norm.weight"].data_offsets;
    for (let i = 0; i < 64; i++) new DataView(p.data.buffer).setFloat32(b + 4 * i, 3e38, true);
    expectClear(await cli((d) => ({ args: runArgs(model(d, { "model.safetensors": writeSafetensors(p) })) })), /overflowed float32; the largest f32 weight is 3\.00e\+38 \("model\.norm\.weight"\)/);
  });
  test("a safetensors header length one byte short", async () => {
    const o = await cli((d) => ({ args: runArgs(model(d, { "model.safetensors": writeSafetensors(stories(), { lengthDelta: -1n }) })) }));
    expectClear(o, /model\.safetensors": (header is not valid|the tensors end at byte)/);
  });
  test("a GGUF tensor count one short", async () => {
    const p = gguf(BASES.ggufV1);
    expectClear(await cli((d) => ({ args: runArgs(ggufAt(d, p, { tensorCount: BigInt(p.tensors.length - 1) })) })), /of the data section|the tensor count/);
  });
  test("a zero rope_freqs.weight", async () => {
    const p = gguf(BASES.ggufV1);
    const end = Math.ceil(p.data.length / 32) * 32;
    const data = new Uint8Array(end + 16);
    data.set(p.data);
    p.data = data;
    p.tensors.push({ name: "rope_freqs.weight", dims: [4n], type: 0, offset: BigInt(end) });
    expectClear(await cli((d) => ({ args: runArgs(ggufAt(d, p)) })), /rope_freqs\.weight\[0\] is 0, but every rotary frequency divisor must be a finite positive number/);
  });
  test("NaN and negative llama.rope.scale_linear", async () => {
    for (const v of [NaN, -2]) {
      const p = gguf(BASES.ggufV1);
      setKv(p, "llama.rope.scale_linear", encode.f32(v));
      expectClear(await cli((d) => ({ args: runArgs(ggufAt(d, p)) })), new RegExp(`llama\\.rope\\.scale_linear must be a finite positive number, got ${v}`));
    }
  });
  test("rope_theta 1e400 (Infinity in JSON)", async () => {
    const config = readFileSync(join(BASES.hf, "config.json"), "utf8").replace(/"rope_theta": [0-9.]+/, '"rope_theta": 1e400');
    expectClear(await cli((d) => ({ args: runArgs(model(d, { "config.json": config })) })), /rope_theta must be a finite positive number, got Infinity/);
  });
});

describe("6. inconsistent files are refused", () => {
  test("GGUF tensors whose byte ranges overlap", async () => {
    const p = gguf(BASES.ggufV1);
    p.tensors[2]!.offset = p.tensors[1]!.offset;
    expectClear(await cli((d) => ({ args: runArgs(ggufAt(d, p)) })), /overlap tensor/);
  });
  test("a 4-layer config over a 5-layer checkpoint: the fifth layer is reported", async () => {
    const o = await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...json("config.json"), num_hidden_layers: 4 }) })) }));
    expectClear(o, /9 tensors of the weights are not part of the model ".*config\.json" describes: "model\.layers\.4\./);
  });
  test("bos_token_id and pad_token_id of 1e9", async () => {
    for (const key of ["bos_token_id", "pad_token_id"]) {
      expectClear(await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...json("config.json"), [key]: 1e9 }) })) })), new RegExp(`"${key}" must be a token id below the vocabulary size 512, got 1000000000`));
    }
  });
  test("tokenizer.json model.type unknown or missing", async () => {
    for (const type of ["Nope", undefined]) {
      const t = json("tokenizer.json");
      t.model.type = type;
      expectClear(await cli((d) => ({ args: runArgs(model(d, { "tokenizer.json": text(t) })) })), /model\.type (undefined|"Nope") is not supported; supported: BPE, Unigram, WordPiece/);
    }
  });
  test("an empty vocabulary; negative, fractional and huge ids", async () => {
    const edits: [(t: any) => void, RegExp][] = [
      [(t) => (t.model.vocab = {}), /model\.vocab must be a non-empty object/],
      [(t) => (t.model.vocab["<0x41>"] = -1), /model\.vocab\["<0x41>"\] must be an integer in \[0, \d+\], got -1/],
      [(t) => (t.model.vocab["<0x41>"] = 2.5), /got 2\.5/],
      [(t) => (t.model.vocab["<0x41>"] = 1e9), /got 1000000000/],
    ];
    for (const [edit, pattern] of edits) {
      const t = json("tokenizer.json");
      edit(t);
      expectClear(await cli((d) => ({ args: runArgs(model(d, { "tokenizer.json": text(t) })) })), pattern);
    }
  });
  test("added tokens without content or with id -1; byte_fallback without byte pieces", async () => {
    const edits: [(t: any) => void, RegExp][] = [
      [(t) => delete t.added_tokens[0].content, /added_tokens\[0\]\.content must be a non-empty string/],
      [(t) => (t.added_tokens[0].id = -1), /added_tokens\[0\]\.id must be an integer in \[0, \d+\], got -1/],
      [(t) => delete t.model.vocab["<0x0A>"], /model\.byte_fallback is true, but the vocabulary has no byte piece "<0x0A>"/],
    ];
    for (const [edit, pattern] of edits) {
      const t = json("tokenizer.json");
      edit(t);
      expectClear(await cli((d) => ({ args: runArgs(model(d, { "tokenizer.json": text(t) })) })), pattern);
    }
  });
  test("a non-boolean add_bos_token names tokenizer_config.json", async () => {
    const o = await cli((d) => ({ args: runArgs(model(d, { "tokenizer_config.json": text({ ...json("tokenizer_config.json"), add_bos_token: "yes" }) })) }));
    expectClear(o, /tokenizer_config\.json": "add_bos_token" must be true or false, got "yes"/);
  });
});

describe("7. every flag is validated, and misapplied ones are refused", () => {
  const cases: [string[], RegExp][] = [
    [["--max-gpu-memory", "garbage"], /--max-gpu-memory "garbage" is not a size/],
    [["--max-host-cache", "-5"], /--max-host-cache "-5" is not a size/],
    [["--max-gpu-memory", "0"], /--max-gpu-memory "0" must be more than 0 bytes/],
    [["--prefetch", "-1"], /--prefetch -1 must be between 0 and 64/],
  ];
  for (const [flags, pattern] of cases) {
    test(`run ${flags.join(" ")} on the CPU`, async () => {
      expectClear(await cli((d) => ({ args: [...runArgs(model(d)), ...flags] })), pattern);
    });
  }
  test("bench --decode-tokens -1", async () => {
    expectClear(await cli((d) => ({ args: ["bench", model(d), "--decode-tokens", "-1"] })), /--decode-tokens -1 must be at least 1/);
  });
  test("logits --ids with -p, and 5000 ids on a 512-position model", async () => {
    expectClear(await cli((d) => ({ args: ["logits", model(d), "--ids", "1", "-p", "x", "-o", join(d, "l")] })), /give only one of --ids, --prompt/);
    const ids = Array(5000).fill(1).join(",");
    expectClear(await cli((d) => ({ args: ["logits", model(d), "--ids", ids, "-o", join(d, "l")] })), /--ids lists 5000 ids, more than a context of 512 positions holds/);
  });
  test("run --compression 4bit on a .gguf", async () => {
    expectClear(await cli(() => ({ args: [...runArgs(BASES.ggufV1), "--compression", "4bit"] })), /--compression 4bit applies to Hugging Face folders/);
  });
  test("split --out \"\"", async () => {
    expectClear(await cli((d) => ({ args: ["split", model(d), "--out", ""] })), /--out is empty/);
  });
  test("a split file with a damaged header (same size, .done present) is redone, not reused", async () => {
    const o = await cli((d) => {
      const m = model(d);
      Bun.spawnSync([BINARY, "split", m], { stdout: "ignore", stderr: "ignore" });
      const file = join(m, "splitted_model/model.layers.1.safetensors");
      const bytes = new Uint8Array(readFileSync(file));
      bytes[10] = 0x7b; // "{" where the header's first key starts: no longer valid JSON
      writeFileSync(file, bytes);
      return { args: ["split", m] };
    }, "ok");
    expect(o.cls).toBe("accepted");
    expect(o.stderr).toMatch(/split \d+\/8 model\.layers\.1 \((?!done earlier)/);
  });
});

describe("8. terminal injection and giant names", () => {
  test("ESC sequences and NUL in a tensor name are escaped", async () => {
    const p = stories();
    p.header["\u001b]52;c;aGk=\u0007\u001b[2J\u0000x"] = p.header["model.norm.weight"];
    delete p.header["model.norm.weight"];
    const o = await cli((d) => ({ args: runArgs(model(d, { "model.safetensors": writeSafetensors(p) })) }));
    expect(o.cls).toBe("clear-error");
    expect(o.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/);
  });
  test("a 734 KB binary name is cut short in the message", async () => {
    const p = gguf(BASES.ggufV1);
    p.tensors[3]!.name = Array.from({ length: 734_000 }, (_, i) => String.fromCharCode(1 + (i % 200))).join("");
    const o = await cli((d) => ({ args: runArgs(ggufAt(d, p)) }));
    expect(o.cls).toBe("clear-error");
    expect(o.errorLine.length).toBeLessThan(1100);
  });
});

describe("9. messages name the right thing", () => {
  test("a GGUF shape error names the GGUF file's metadata, not config.json", async () => {
    const p = gguf(BASES.ggufV1);
    setKv(p, "llama.feed_forward_length", encode.u32(171));
    const o = await cli((d) => ({ args: runArgs(ggufAt(d, p)) }));
    expectClear(o, /but the metadata of ".*m\.gguf" implies \[/);
    expect(o.errorLine).not.toMatch(/config\.json/);
  });
  test("a GGUF string value is quoted", async () => {
    const p = gguf(BASES.ggufV1);
    setKv(p, "general.alignment", encode.string("32", false));
    expectClear(await cli((d) => ({ args: runArgs(ggufAt(d, p)) })), /general\.alignment "32" is not a power of two/);
  });
  test("a derived head_dim names what it was derived from", async () => {
    const { head_dim: _, ...c } = json("config.json");
    expectClear(await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...c, num_attention_heads: 64 }) })) })), /head_dim 1 \(hidden_size 64 \/ num_attention_heads 64; config\.json has no head_dim\)/);
  });
  test("model_type toString, __proto__ and constructor are not supported types", async () => {
    for (const type of ["toString", "__proto__", "constructor"]) {
      expectClear(await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...json("config.json"), model_type: type }) })) })), new RegExp(`unsupported model_type "${type}"`));
    }
  });
  test("a tokenizer_config.json error names tokenizer_config.json", async () => {
    const o = await cli((d) => ({ args: runArgs(model(d, { "tokenizer_config.json": text({ ...json("tokenizer_config.json"), bos_token: "<nope>" }) })) }));
    expectClear(o, /tokenizer_config\.json": bos_token "<nope>" is not in the vocabulary of ".*tokenizer\.json"/);
  });
  test("an over-long prompt is refused with its own count, before any pass", async () => {
    const o = await cli((d) => ({ args: ["run", model(d), "-p", "Once upon a time there was", "--ctx", "4"] }));
    expectClear(o, /the prompt is 7 tokens, and a context of 4 \(--ctx\) holds at most 3/);
  });
  test("a FIFO and /dev/null named as the model are not folders without config.json", async () => {
    expectClear(await cli((d) => (Bun.spawnSync(["mkfifo", join(d, "m.gguf")]), { args: runArgs(join(d, "m.gguf")) })), /is not a regular file/);
    expectClear(await cli(() => ({ args: runArgs("/dev/null") })), /"\/dev\/null" is not a regular file/);
  });
  test("a broken symlink is named as one", async () => {
    const o = await cli((d) => {
      const m = modelFolder(d, BASES.hf, {}, HF_FILES.filter((f) => f !== "model.safetensors"));
      Bun.spawnSync(["ln", "-s", join(d, "gone.safetensors"), join(m, "model.safetensors")]);
      return { args: runArgs(m) };
    });
    expectClear(o, /model\.safetensors" is a symbolic link to ".*gone\.safetensors", which does not exist/);
  });
});

describe("10. tokenizer.json structure errors say which field is wrong", () => {
  test("a null pre-tokenizer inside a Sequence, a merge that is a number", async () => {
    const edits: [(t: any) => void, RegExp][] = [
      [(t) => (t.pre_tokenizer = { type: "Sequence", pretokenizers: [null] }), /pre_tokenizer\.pretokenizers\[0\] must be an object with a "type", got null/],
      [(t) => (t.model.merges = [7]), /model\.merges\[0\] must be a "left right" string, got 7/],
    ];
    for (const [edit, pattern] of edits) {
      const t = json("tokenizer.json");
      edit(t);
      const o = await cli((d) => ({ args: runArgs(model(d, { "tokenizer.json": text(t) })) }));
      expectClear(o, pattern);
      expect(o.errorLine).not.toMatch(/is not an object|is not a function|evaluating/);
    }
  });
});

describe("11. errors name what failed", () => {
  test("a Q8_0 norm weight names the tensor and the file", async () => {
    const p = gguf(BASES.ggufQ8);
    // Stored as whole Q8_0 blocks, with the data rebuilt around it so the file is consistent.
    const norm = p.tensors.find((t) => t.name === "blk.0.attn_norm.weight")!;
    const chunks: Uint8Array[] = [];
    let at = 0;
    for (const t of [...p.tensors].sort((a, b) => Number(a.offset - b.offset))) {
      const bytes = t === norm ? new Uint8Array((Number(t.dims[0]) / 32) * 34) : p.data.slice(Number(t.offset), Number(t.offset) + tensorBytes(t)!);
      const pad = (32 - (at % 32)) % 32;
      chunks.push(new Uint8Array(pad), bytes);
      t.offset = BigInt(at + pad);
      at += pad + bytes.length;
    }
    norm.type = 8;
    p.data = Buffer.concat(chunks);
    const o = await cli((d) => ({ args: runArgs(ggufAt(d, p)) }));
    expectClear(o, /m\.gguf": tensor "model\.layers\.0\.input_layernorm\.weight" is q8_0, but a norm weight or bias must be f32, f16 or bf16/);
  });
  test("--ctx 1e12 names --ctx before anything is allocated", async () => {
    const o = await cli((d) => ({ args: [...runArgs(model(d)), "--ctx", "1e12"] }));
    expectClear(o, /--ctx 1000000000000 is more than the model's 512 positions/);
    expect(o.peakRss).toBeLessThan(200 * MIB);
  });
  test("bench --prompt-tokens 0 names the flag", async () => {
    expectClear(await cli((d) => ({ args: ["bench", model(d), "--prompt-tokens", "0"] })), /--prompt-tokens 0 must be at least 1/);
  });
  test("a tokenizer that disagrees with the model says so", async () => {
    const o = await cli((d) => ({ args: runArgs(model(d, { "config.json": text({ ...json("config.json"), vocab_size: 256 }) })) }));
    expectClear(o, /the tokenizer encodes the prompt to token id \d+, but the model has 256 ids \(vocab_size in ".*config\.json"\)/);
    const t = json("tokenizer.json");
    t.added_tokens.push({ id: 600, content: "<extra>", special: true });
    const extra = await cli((d) => ({ args: ["run", model(d, { "tokenizer.json": text(t) }), "-p", "Once <extra>", "-n", "2", "--device", "cpu"] }));
    expectClear(extra, /the tokenizer encodes the prompt to token id 600, but the model has 512 ids/);
  });
});

describe("12. every usage error has a hint", () => {
  const cases: [string[], RegExp][] = [
    [["-n", "-1"], /--max-tokens -1 must be at least 0/],
    [["--device", "gpu"], /--device "gpu" is not one of cuda, cpu, auto/],
    [["--temp", "NaN"], /--temp "NaN" is not a number/],
    [["-n", "2", "-n", "3"], /option --max-tokens given twice/],
  ];
  for (const [flags, pattern] of cases) {
    test(flags.join(" "), async () => {
      const o = await cli((d) => ({ args: ["run", model(d), "-p", "x", ...flags] }));
      expectClear(o, pattern);
      expect(o.stderr).toMatch(/^hint: \S/m);
    });
  }
});

describe("13. a huge prompt is bounded by the context before it is tokenized", () => {
  test("a 10 MB prompt file costs neither gigabytes nor seconds", async () => {
    const o = await cli((d) => {
      writeFileSync(join(d, "big.txt"), new Uint8Array(10 * MIB).fill(0x61));
      return { args: ["run", model(d), "-f", join(d, "big.txt"), "--device", "cpu"] };
    });
    expectClear(o, /the prompt has 10\.0 MiB, more than a context of 512 tokens can hold/);
    expect(o.peakRss).toBeLessThan(200 * MIB);
    expect(o.ms).toBeLessThan(5000);
  });
});

describe("14. config and tokenizer files that are FIFOs do not block", () => {
  for (const file of ["config.json", "tokenizer.json"]) {
    test(file, async () => {
      const o = await cli((d) => {
        const m = modelFolder(d, BASES.hf, {}, HF_FILES.filter((f) => f !== file));
        Bun.spawnSync(["mkfifo", join(m, file)]);
        return { args: runArgs(m) };
      });
      expectClear(o, new RegExp(`${file.replace(".", "\\.")}" is not a regular file`));
      expect(o.ms).toBeLessThan(DEFAULT_LIMITS.timeoutMs);
    });
  }
});

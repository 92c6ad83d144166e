// A small declarative flag parser: the same table drives parsing and --help, so every flag is
// documented by construction.
import { UsageError } from "../errors.ts";
import { parseSize } from "../util/size.ts";
import { quote } from "../util/validate.ts";

export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  /** Metavariable shown in help; absent for boolean switches. */
  readonly value?: string;
  readonly repeat?: boolean;
  readonly help: string;
}

export interface ParsedArgs {
  /** The command the flags belong to, for hints. */
  readonly command: string;
  readonly positionals: string[];
  readonly flags: Map<string, string[]>;
}

export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[], command: string): ParsedArgs {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(`--${s.name}`, s);
    if (s.short) byName.set(`-${s.short}`, s);
  }
  const positionals: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const key = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = byName.get(key);
    if (!spec) throw new UsageError(`unknown option ${quote(key)} for "airllm ${command}"`, `see airllm ${command} --help`);
    let value = "true";
    if (spec.value) {
      if (eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`option --${spec.name} needs a value (${spec.value})`, `see airllm ${command} --help`);
    } else if (eq > 0) {
      throw new UsageError(`option --${spec.name} takes no value`, `write --${spec.name} alone; see airllm ${command} --help`);
    }
    const list = flags.get(spec.name) ?? [];
    if (list.length > 0 && !spec.repeat) throw new UsageError(`option --${spec.name} given twice`, "give each option once");
    list.push(value);
    flags.set(spec.name, list);
  }
  return { command, positionals, flags };
}

export function flagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const names = (s.short ? `-${s.short}, ` : "    ") + `--${s.name}` + (s.value ? ` ${s.value}` : "");
    return [names, s.help] as const;
  });
  const width = Math.max(...rows.map(([n]) => n.length)) + 2;
  return rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`).join("\n");
}

/** Typed accessors over ParsedArgs; each bad value is a UsageError naming the flag. */
export class Flags {
  constructor(private readonly parsed: ParsedArgs) {}
  has(name: string): boolean {
    return this.parsed.flags.has(name);
  }
  string(name: string): string | undefined {
    return this.parsed.flags.get(name)?.[0];
  }
  all(name: string): string[] {
    return this.parsed.flags.get(name) ?? [];
  }
  number(name: string, opts: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const v = Number(raw);
    const hint = `see airllm ${this.parsed.command} --help`;
    if (raw.trim() === "" || !Number.isFinite(v) || (opts.integer && !Number.isSafeInteger(v))) {
      throw new UsageError(`--${name} ${quote(raw)} is not ${opts.integer ? "an integer" : "a number"}`, hint);
    }
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
      const range = opts.max === undefined ? `at least ${opts.min}` : opts.min === undefined ? `at most ${opts.max}` : `between ${opts.min} and ${opts.max}`;
      throw new UsageError(`--${name} ${raw} must be ${range}`, hint);
    }
    return v;
  }

  /** A byte size (512MiB, 4GiB); `positive`: 0 is refused. */
  size(name: string, positive = true): number | undefined {
    const raw = this.string(name);
    return raw === undefined ? undefined : parseSize(raw, `--${name}`, positive);
  }

  /** A path: the empty string is not one (it would mean the current folder, or nothing). */
  path(name: string): string | undefined {
    const raw = this.string(name);
    if (raw === "") throw new UsageError(`--${name} is empty`, `give --${name} a path`);
    return raw;
  }

  /** A comma-separated list of token ids (`--ids 1,403,407`), at most `max` of them. */
  ids(name: string, max = Number.MAX_SAFE_INTEGER): number[] | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const parts = raw.split(",");
    if (parts.length > max) throw new UsageError(`--${name} lists ${parts.length} ids, more than a context of ${max} positions holds`, "pass fewer ids");
    return parts.map((s) => {
      const v = Number(s);
      if (s.trim() === "" || !Number.isSafeInteger(v) || v < 0) throw new UsageError(`--${name}: ${quote(s)} is not a token id`, "token ids are non-negative integers, comma-separated: --ids 1,403,407");
      return v;
    });
  }
}

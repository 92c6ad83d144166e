// A small declarative flag parser: the same table drives parsing and --help, so every flag is
// documented by construction.
import { UsageError } from "../errors.ts";

export interface FlagSpec {
  readonly name: string;
  readonly short?: string;
  /** Metavariable shown in help; absent for boolean switches. */
  readonly value?: string;
  readonly repeat?: boolean;
  readonly help: string;
}

export interface ParsedArgs {
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
    if (!spec) throw new UsageError(`unknown option ${key} for "airllm ${command}"`, `see airllm ${command} --help`);
    let value = "true";
    if (spec.value) {
      if (eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`option --${spec.name} needs a value (${spec.value})`, `see airllm ${command} --help`);
    } else if (eq > 0) {
      throw new UsageError(`option --${spec.name} takes no value`);
    }
    const list = flags.get(spec.name) ?? [];
    if (list.length > 0 && !spec.repeat) throw new UsageError(`option --${spec.name} given twice`);
    list.push(value);
    flags.set(spec.name, list);
  }
  return { positionals, flags };
}

export function flagHelp(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const names = (s.short ? `-${s.short}, ` : "    ") + `--${s.name}` + (s.value ? ` ${s.value}` : "");
    return [names, s.help] as const;
  });
  const width = Math.max(...rows.map(([n]) => n.length)) + 2;
  return rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`).join("\n");
}

/** Typed accessors over ParsedArgs. */
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
  number(name: string, opts: { integer?: boolean } = {}): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v))) {
      throw new UsageError(`--${name} ${raw} is not ${opts.integer ? "an integer" : "a number"}`);
    }
    return v;
  }
}

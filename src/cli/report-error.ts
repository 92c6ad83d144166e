// The one place where an error becomes what the user sees: one line naming what failed, one hint
// line saying what to try, and the exit status. Typed errors carry their own message and hint
// (a default hint per kind where the thrower gave none); a failed system call outside them (a
// full disk, a closed stream) is the environment's fault and said so; anything else is a bug.
// Every message is made printable and bounded here, whatever reached it.
import { AirLLMError, errnoCode, IoError, ModelFormatError, NativeError, UsageError } from "../errors.ts";
import { printable, truncate } from "../util/validate.ts";

/** Longest line printed: a message quoting a whole file must not flood the terminal. */
const LINE_LIMIT = 1000;

export interface Report {
  readonly text: string;
  /** 1: the user's input or environment; 3: a bug in airllm. */
  readonly code: number;
}

const line = (s: string) => truncate(printable(s), LINE_LIMIT);

function defaultHint(e: AirLLMError, command: string): string {
  if (e instanceof IoError) return "check the path, its permissions and the free space on its disk";
  if (e instanceof UsageError) return `see airllm ${command} --help`;
  if (e instanceof ModelFormatError) return "check the file named above, or download the model again";
  if (e instanceof NativeError) return "a native call failed: check the free memory and the file named above";
  return `see airllm ${command} --help`;
}

/** The lines and exit status for an error thrown by `airllm <command>`. */
export function reportError(e: unknown, command: string, debug: boolean): Report {
  if (e instanceof AirLLMError) {
    return { text: `airllm: error: ${line(e.message)}\nhint: ${line(e.hint ?? defaultHint(e, command))}\n`, code: 1 };
  }
  const message = e instanceof Error ? e.message : String(e);
  const code = errnoCode(e);
  if (code !== undefined) {
    return { text: `airllm: error: ${line(message)}\nhint: ${line(defaultHint(new IoError(message), command))}\n`, code: 1 };
  }
  const stack = debug && e instanceof Error && e.stack ? `${e.stack}\n` : "";
  return {
    text: `airllm: internal error: ${line(message)}\nhint: this is a bug in airllm; rerun with AIRLLM_DEBUG=1 for the stack trace and report it\n${stack}`,
    code: 3,
  };
}

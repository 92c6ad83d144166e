// The process's standard streams as the commands use them: synchronous writes, so a failed write
// is an error at the call that made it (not an 'error' event after the command has returned 0),
// and the cases a Unix tool must tell apart: a reader that went away (EPIPE: stop quietly, as
// `head -c1` expects), any other failure (one error line, non-zero exit), and a stream that was
// closed before the process started (the runtime puts /dev/null there, so writes "succeed").
import { readFileSync, readSync, writeSync } from "node:fs";
import { errnoCode, IoError } from "../errors.ts";

/** Thrown when stdout's reader has gone away: the command stops and the process exits 0. */
export class OutputClosed extends Error {
  constructor() {
    super("standard output was closed by its reader");
    this.name = "OutputClosed";
  }
}

const O_CLOEXEC = 0o2000000;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Whether standard stream `fd` was closed when the process started. An inherited stream cannot be
 * close-on-exec (it came through exec); the runtime's /dev/null stand-in for a closed one is.
 */
function closedAtStart(fd: 0 | 1 | 2): boolean {
  try {
    const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
    return m !== null && (parseInt(m[1]!, 8) & O_CLOEXEC) !== 0;
  } catch {
    return false; // no /proc: nothing to tell
  }
}

const STREAM_NAMES = ["standard input", "standard output", "standard error"] as const;

/** All of `text` to `fd`, through short writes and a non-blocking descriptor's EAGAIN. */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (e) {
      if (errnoCode(e) !== "EAGAIN") throw e;
      Atomics.wait(pause, 0, 0, 1); // the reader is slow: wait a millisecond, not a busy loop
    }
  }
}

let stdoutChecked = false;

/** Writes to stdout; throws OutputClosed on EPIPE and IoError on any other failure (or a closed stdout). */
export function writeStdout(text: string): void {
  if (text.length === 0) return;
  if (!stdoutChecked) {
    requireOpen(1);
    stdoutChecked = true;
  }
  try {
    writeAll(1, text);
  } catch (e) {
    const code = errnoCode(e);
    if (code === "EPIPE") throw new OutputClosed();
    if (code === undefined) throw e;
    throw new IoError(`cannot write to standard output: ${(e as Error).message}`, "check where standard output goes: a full disk, a closed descriptor or a device that refuses writes");
  }
}

/** Writes to stderr; a failure there has nowhere to be reported, so it is dropped. */
export function writeStderr(text: string): void {
  try {
    writeAll(2, text);
  } catch {
    // stderr is gone: the exit status still tells the story.
  }
}

/** Throws unless standard stream `fd` is open: a closed stdout would lose the output silently. */
export function requireOpen(fd: 0 | 1): void {
  if (closedAtStart(fd)) {
    throw new IoError(
      `${STREAM_NAMES[fd]} is closed`,
      fd === 1 ? "redirect the output somewhere (> file, or > /dev/null to discard it)" : "pass the prompt with -p TEXT or -f FILE, or redirect standard input from a file",
    );
  }
}

/**
 * Everything `fd` yields as text, at most `limit` bytes: more is refused unread (the caller's
 * error), so an endless or huge stream costs `limit` bytes, not the machine's memory. `what`
 * names the stream in a read error.
 */
export function readCapped(fd: number, limit: number, tooLong: () => Error, what: string): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const chunk = Buffer.alloc(1 << 16);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (e) {
      const code = errnoCode(e);
      if (code === "EAGAIN") {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      if (code === undefined) throw e;
      throw new IoError(`cannot read the prompt from ${what}: ${(e as Error).message}`, "pass the prompt with -p TEXT or -f FILE");
    }
    if (n === 0) break;
    total += n;
    if (total > limit) throw tooLong();
    chunks.push(Buffer.from(chunk.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString("utf8");
}

// SentencePiece's `tokenizer.model`: a protobuf ModelProto (sentencepiece_model.proto) with the
// pieces (text, score, type), the trainer's settings (model type, byte fallback, special ids) and
// the normalizer's (add_dummy_prefix, remove_extra_whitespaces, precompiled rules). Only what
// encoding needs is kept; the rest of the trainer spec describes how the file was made.
// Note that `split_digits` is a training setting: sentencepiece's encoder never applies it (InternLM's
// file sets it and still merges "2023" into "20" "23"), so it is read but changes nothing.

import { readFileSync } from "node:fs";
import { ModelFormatError } from "../errors.ts";
import { requireFile } from "./input-files.ts";
import { ProtoError, protoFields, protoFloat, protoInt32, protoString, WireType, type ProtoField } from "./protobuf-reader.ts";

/** ModelProto.SentencePiece.Type. */
export const PieceType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;
/** TrainerSpec.ModelType. */
const MODEL_TYPES: Record<number, string> = { 1: "unigram", 2: "bpe", 3: "word", 4: "char" };

export interface SentencePiece {
  readonly piece: string;
  readonly score: number;
  readonly type: number;
}

export interface SentencePieceModel {
  readonly path: string;
  readonly pieces: readonly SentencePiece[];
  readonly modelType: string;
  readonly byteFallback: boolean;
  readonly splitDigits: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  /** -1 when the model has none. */
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** Normalization rule set ("identity", "nmt_nfkc", ...; "" when the file names none). */
  readonly normalizerName: string;
  readonly precompiledCharsmapBytes: number;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

const HINT = "The file is truncated or not a SentencePiece model; download tokenizer.model again.";

function message(f: ProtoField, what: string): Uint8Array {
  if (f.wireType !== WireType.lengthDelimited) throw new ProtoError(`${what} (field ${f.number}) is not a message`);
  return f.bytes;
}

/** Read and parse `path`. Throws ModelFormatError naming the file on any defect. */
export function readSentencePieceModel(path: string): SentencePieceModel {
  // A FIFO or a directory under the name is refused, never read (a FIFO would block forever).
  requireFile(path, HINT);
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new ModelFormatError(`cannot read "${path}": ${(e as Error).message}`, "Check that tokenizer.model exists and is readable.");
  }
  try {
    return parse(path, buf);
  } catch (e) {
    if (e instanceof ProtoError) throw new ModelFormatError(`"${path}" is not a valid SentencePiece model: ${e.message}`, HINT);
    throw e;
  }
}

function parse(path: string, buf: Uint8Array): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  // proto2 defaults of the fields read below.
  const t = { modelType: 1, byteFallback: false, splitDigits: false, suffix: false, unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  const n = { name: "", charsmap: 0, dummyPrefix: true, removeExtra: true, escape: true };
  for (const f of protoFields(buf)) {
    if (f.number === 1) {
      let piece = "";
      let score = 0;
      let type: number = PieceType.normal;
      for (const g of protoFields(message(f, "piece"))) {
        if (g.number === 1) piece = protoString(g);
        else if (g.number === 2) score = protoFloat(g);
        else if (g.number === 3) type = protoInt32(g);
      }
      pieces.push({ piece, score, type });
    } else if (f.number === 2) {
      for (const g of protoFields(message(f, "trainer_spec"))) {
        if (g.wireType !== WireType.varint) continue;
        const v = protoInt32(g);
        if (g.number === 3) t.modelType = v;
        else if (g.number === 35) t.byteFallback = v !== 0;
        else if (g.number === 25) t.splitDigits = v !== 0;
        else if (g.number === 24) t.suffix = v !== 0;
        else if (g.number === 40) t.unkId = v;
        else if (g.number === 41) t.bosId = v;
        else if (g.number === 42) t.eosId = v;
        else if (g.number === 43) t.padId = v;
      }
    } else if (f.number === 3) {
      for (const g of protoFields(message(f, "normalizer_spec"))) {
        if (g.number === 1) n.name = protoString(g);
        else if (g.number === 2) n.charsmap = g.bytes.length;
        else if (g.number === 3) n.dummyPrefix = protoInt32(g) !== 0;
        else if (g.number === 4) n.removeExtra = protoInt32(g) !== 0;
        else if (g.number === 5) n.escape = protoInt32(g) !== 0;
      }
    }
  }
  if (pieces.length === 0) throw new ModelFormatError(`"${path}" holds no pieces`, HINT);
  for (const [key, id] of Object.entries({ unk_id: t.unkId, bos_id: t.bosId, eos_id: t.eosId, pad_id: t.padId })) {
    if (id < -1 || id >= pieces.length) throw new ModelFormatError(`"${path}": ${key} ${id} is outside the ${pieces.length} pieces`, HINT);
  }
  return {
    path,
    pieces,
    modelType: MODEL_TYPES[t.modelType] ?? `type ${t.modelType}`,
    byteFallback: t.byteFallback,
    splitDigits: t.splitDigits,
    treatWhitespaceAsSuffix: t.suffix,
    unkId: t.unkId,
    bosId: t.bosId,
    eosId: t.eosId,
    padId: t.padId,
    normalizerName: n.name,
    precompiledCharsmapBytes: n.charsmap,
    addDummyPrefix: n.dummyPrefix,
    removeExtraWhitespaces: n.removeExtra,
    escapeWhitespaces: n.escape,
  };
}

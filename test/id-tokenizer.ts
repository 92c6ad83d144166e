// A stand-in tokenizer for fixture models that ship none: tests drive them by ids, and id i reads
// as the text "<i>".
import type { TextTokenizer } from "../src/tokenizer/text-tokenizer.ts";

export function idTokenizer(vocabSize: number): TextTokenizer {
  return {
    bosId: 1,
    eosIds: [2],
    vocabSize,
    maxTokenBytes: String(vocabSize).length + 2,
    addsBos: false,
    encode: () => {
      throw new Error("this test drives the model by ids");
    },
    decode: (ids) => ids.map((i) => `<${i}>`).join(""),
    idToToken: (id) => `<${id}>`,
    tokenToId: () => undefined,
  };
}
